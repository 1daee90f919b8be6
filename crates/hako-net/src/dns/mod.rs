//! Name resolution on user-defined networks: `hako-dns`, one small resolver process per
//! exec root (so per host, or per test namespace), that no container owns.
//!
//! ```text
//!   Net::setup (a container on a user network)      hako-dns (detached, setsid)
//!     lock <exec-root>/dns/lock                        binds UDP+TCP <gateway>:53 of every
//!     pid alive? ── yes: SIGHUP ───────────────────▶   user network with a live endpoint
//!              └─ no: spawn hako-dns ───────────────▶   (re-read on SIGHUP: new listeners
//!     wait until dns/listen names the gateway ◀──────    bound, unused ones closed; none
//!   Net::teardown ── SIGHUP ───────────────────────▶    left: remove pid file and exit)
//! ```
//!
//! Port 53 of a gateway taken by another server (a dnsmasq on 0.0.0.0:53): hako-dns takes
//! one free port there for UDP and TCP (listen file line `GW PORT`), and `Net` redirects
//! the containers' GW:53 to it in the firewall ([`redirected`], `Net::redirect_dns`).
//!
//! Answers come straight from the store (`net_endpoints` + `net_sandboxes` +
//! `net_attachments`, read-only SQLite), so a container started after the asker is found
//! at once, with no file to rewrite: by name, network alias, short (12) or full id, only
//! among containers on the network the question arrived on (the source network), TTL 0.
//! Anything else is relayed to the host's resolvers (from the host's namespace, so a
//! loopback stub like 127.0.0.53 works), SERVFAIL when none answers in time. The default
//! `bridge` network has no resolver (Docker's rule): its containers get the host's
//! resolv.conf.

pub mod server;
pub mod wire;

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, IoContext, Result};

/// `<exec-root>/dns`.
pub fn dir(exec_root: &Path) -> PathBuf {
    exec_root.join("dns")
}

/// The resolver's pid file.
pub fn pid_file(exec_root: &Path) -> PathBuf {
    dir(exec_root).join("pid")
}

/// What the resolver listens on, one address per line (written after each reload).
pub fn listen_file(exec_root: &Path) -> PathBuf {
    dir(exec_root).join("listen")
}

fn lock(exec_root: &Path) -> Result<Flock<File>> {
    let d = dir(exec_root);
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&d)
        .ctx(|| format!("create {}", d.display()))?;
    let f = std::os::unix::fs::OpenOptionsExt::mode(
        File::options().create(true).truncate(false).write(true),
        0o600,
    )
    .open(d.join("lock"))
    .ctx(|| "open the resolver's lock".into())?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
        context: "lock the resolver".into(),
        source: e.into(),
    })
}

/// The resolver's pid, if it runs.
pub fn running(exec_root: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(exec_root))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    // A resolver that died and is not reaped yet (a zombie) still answers kill(0).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat
        .rsplit_once(')')
        .map(|(_, r)| r.trim_start().chars().next());
    (comm.trim() == "hako-dns"
        && state != Some(Some('Z'))
        && kill(Pid::from_raw(pid), None).is_ok())
    .then_some(pid)
}

/// Starts the resolver (it puts itself in the background) and writes its pid file; the
/// caller holds the lock. Returns the resolver's pid.
///
/// The pid file is written here, under the lock, not only by the resolver once it runs:
/// otherwise a second start in between (another container on a user network, from another
/// process) found no resolver and started a second one, which lost port 53 to the first
/// and served on another port until the first exited (the soak saw two at once).
fn start(program: &Path, db: &Path, exec_root: &Path) -> Result<i32> {
    let _ = std::fs::remove_file(listen_file(exec_root));
    let context = || format!("start the resolver {}", program.display());
    let out = Command::new(program)
        .arg("--db")
        .arg(db)
        .arg("--exec-root")
        .arg(exec_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .ctx(context)?;
    let pid = String::from_utf8_lossy(&out.stdout).trim().parse::<i32>();
    let pid = match (out.status.success(), pid) {
        (true, Ok(pid)) => pid,
        (ok, pid) => {
            return Err(Error::Io {
                context: context(),
                source: std::io::Error::other(if ok {
                    format!("it did not say its pid ({pid:?})")
                } else {
                    format!("exited with {}", out.status)
                }),
            });
        }
    };
    std::fs::write(pid_file(exec_root), format!("{pid}\n"))
        .ctx(|| format!("write {}", pid_file(exec_root).display()))?;
    Ok(pid)
}

fn listening(exec_root: &Path) -> String {
    std::fs::read_to_string(listen_file(exec_root)).unwrap_or_default()
}

/// Gateways on which the resolver listens on another port than 53 (53 was taken), with
/// that port, as the listen file says now.
pub fn redirected(exec_root: &Path) -> Vec<(IpAddr, u16)> {
    parse_redirected(&listening(exec_root))
}

fn parse_redirected(listen: &str) -> Vec<(IpAddr, u16)> {
    listen
        .lines()
        .filter_map(|l| {
            let (a, p) = l.split_once(' ')?;
            Some((a.parse().ok()?, p.trim().parse().ok()?))
        })
        .collect()
}

/// Makes sure the resolver runs and listens on every user network with a live container
/// (call after the new endpoint is in the store). Waits until it does, and fails when it
/// cannot listen on one of `gateways`. Returns the gateways of `gateways` where it listens on
/// another port than 53 (53 taken by another DNS server): the caller redirects 53 there.
pub fn ensure(
    program: &Path,
    db: &Path,
    exec_root: &Path,
    gateways: &[IpAddr],
) -> Result<Vec<(IpAddr, u16)>> {
    let l = lock(exec_root)?;
    let mut before = listening(exec_root);
    let mut signalled = match running(exec_root) {
        Some(pid) => {
            let _ = kill(Pid::from_raw(pid), Signal::SIGHUP);
            Some(pid)
        }
        // A resolver that dies before it reports its listeners is started again, once,
        // as one signalled below.
        None => {
            before = String::new();
            Some(start(program, db, exec_root)?)
        }
    };
    // The resolver takes the lock to reload: let go before waiting for it.
    drop(l);
    // The resolver rewrites the listen file after (re)binding; its stamp line changes.
    // Generous: on a loaded host a just-started (or niced) resolver can take seconds to
    // be scheduled.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut checked = Instant::now();
    while Instant::now() < deadline {
        // The resolver signalled died before reloading (the soak saw one gone with its
        // pid and listen files left, and a zombie that still took the signal): start a
        // new one, once. (One started by another process meanwhile reloads anyway.)
        if let Some(pid) = signalled
            && checked.elapsed() > Duration::from_millis(200)
        {
            checked = Instant::now();
            if running(exec_root) != Some(pid) && listening(exec_root) == before {
                signalled = None;
                let l = lock(exec_root)?;
                if running(exec_root).is_none() {
                    before = String::new();
                    let _ = start(program, db, exec_root)?;
                }
                drop(l);
            }
        }
        let now = listening(exec_root);
        if !now.is_empty() && now != before {
            check_listening(&now, gateways)?;
            return Ok(parse_redirected(&now)
                .into_iter()
                .filter(|(a, _)| gateways.contains(a))
                .collect());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(Error::Io {
        context: "start the resolver".into(),
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "it did not report its listeners within 30s",
        ),
    })
}

/// Whether the listen file names every one of `gateways`; else the resolver's reason.
fn check_listening(listen: &str, gateways: &[IpAddr]) -> Result<()> {
    for gw in gateways {
        let text = gw.to_string();
        if listen
            .lines()
            .any(|l| l == text || l.split_once(' ').is_some_and(|(a, _)| a == text))
        {
            continue;
        }
        let why = listen
            .lines()
            .find_map(|l| l.strip_prefix(&format!("! {text} ")))
            .unwrap_or("not listed by the resolver");
        return Err(Error::Conflict(format!(
            "the network's name resolver cannot listen on {}: {why}; use the default bridge \
             network (no name resolution) or fix the address",
            SocketAddr::new(*gw, 53)
        )));
    }
    Ok(())
}

/// Tells the resolver to re-read the store (a container left a user network); it exits
/// when nothing is left to serve.
pub fn reload(exec_root: &Path) {
    if let Ok(_l) = lock(exec_root)
        && let Some(pid) = running(exec_root)
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGHUP);
    }
}
