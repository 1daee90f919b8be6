//! Rootless mode: a normal user's `hako` runs in a user namespace of its own, where it is
//! root over its own files and the id range /etc/subuid and /etc/subgid give it.
//!
//! The first `hako` of a user starts a pause process (this executable again, argv[0]
//! `hako-rootless-pause`) that makes a new user and mount namespace and then only waits;
//! the parent maps ids into it with `newuidmap`/`newgidmap` (package uidmap) or, without
//! a subordinate range, maps the user alone (`0 UID 1`, setgroups denied). Every `hako`
//! of that user then joins the pause process's namespaces before doing anything, so the
//! overlay mounts and network namespace files one invocation makes are there for the
//! next (`run -d`, then `exec`, `stop`, `rm`), as Podman's pause process does.
//!
//! Data lives in `$XDG_DATA_HOME/hako` (default `~/.local/share/hako`), runtime state in
//! `$XDG_RUNTIME_DIR/hako` (default `/tmp/hako-run-UID`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{Context as _, Result, bail};
use nix::unistd::{Gid, Uid};

use crate::context::{DEFAULT_EXEC_ROOT, DEFAULT_ROOT, Global};

/// argv[0] of the pause process: how a live one is told from a reused pid.
const PAUSE_ARG0: &str = "hako-rootless-pause";
/// Set in the pause process's environment: `main` becomes [`pause_main`].
const PAUSE_ENV: &str = "_HAKO_ROOTLESS_PAUSE";

/// The pause process, when this executable was started as one (first thing in `main`).
pub fn pause_main() -> Option<ExitCode> {
    std::env::var_os(PAUSE_ENV)?;
    if let Err(e) = hako_sys::userns::unshare_user_and_mount() {
        eprintln!("{e}");
        return Some(ExitCode::FAILURE);
    }
    // Ready for the maps; the parent closes our stdin once they are written.
    let mut out = std::io::stdout();
    if out.write_all(b"1").and_then(|()| out.flush()).is_err() {
        return Some(ExitCode::FAILURE);
    }
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    loop {
        nix::unistd::pause();
    }
}

/// For a user other than root: picks the rootless data and state directories where the
/// defaults were left, then joins (or first makes) this user's namespaces. Must run
/// while the process is single-threaded. Root, and a hako already inside, do nothing.
pub fn enter(g: &mut Global) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let uid = nix::unistd::getuid();
    if g.root == Path::new(DEFAULT_ROOT) {
        g.root = data_home()?.join("hako");
    }
    if g.exec_root == Path::new(DEFAULT_EXEC_ROOT) {
        g.exec_root = runtime_dir(uid)?.join("hako");
    }
    for dir in [&g.root, &g.exec_root] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("rootless: make {}", dir.display()))?;
    }
    let lock = File::create(g.exec_root.join("pause.lock"))
        .with_context(|| format!("rootless: lock {}", g.exec_root.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("rootless: lock the pause process")?;
    let pid_file = g.exec_root.join("pause.pid");
    let pid = match live_pause(&pid_file, uid) {
        Some(pid) => pid,
        None => {
            let pid = start_pause(uid, nix::unistd::getgid())?;
            std::fs::write(&pid_file, pid.to_string())
                .with_context(|| format!("rootless: write {}", pid_file.display()))?;
            pid
        }
    };
    hako_sys::userns::join(pid)
        .with_context(|| format!("rootless: join the namespaces of pause process {pid}"))
}

/// `$XDG_DATA_HOME`, else `~/.local/share`.
fn data_home() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share")),
        None => bail!(
            "rootless hako needs HOME or XDG_DATA_HOME to keep its data: set one, or pass --root"
        ),
    }
}

/// `$XDG_RUNTIME_DIR`, else `/tmp/hako-run-UID` (ours and private, or refused).
fn runtime_dir(uid: Uid) -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let dir = PathBuf::from(format!("/tmp/hako-run-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("rootless: make {}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid.as_raw() || meta.mode() & 0o077 != 0 {
        bail!(
            "rootless: {} is not a private directory of this user: set XDG_RUNTIME_DIR, or pass --exec-root",
            dir.display()
        );
    }
    Ok(dir)
}

/// The pid in `pid_file` if it is this user's live pause process.
fn live_pause(pid_file: &Path, uid: Uid) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = std::fs::read(proc.join("cmdline")).ok()?;
    let owner = std::fs::metadata(&proc).ok()?.uid();
    (cmdline.split(|b| *b == 0).next() == Some(PAUSE_ARG0.as_bytes()) && owner == uid.as_raw())
        .then_some(pid)
}

/// Starts the pause process and maps ids into its new user namespace.
fn start_pause(uid: Uid, gid: Gid) -> Result<i32> {
    let exe = std::env::current_exe().context("rootless: find the hako executable")?;
    let mut child = Command::new(exe)
        .arg0(PAUSE_ARG0)
        .env(PAUSE_ENV, "1")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Out of the terminal's process group: ^C of this hako must not end it.
        .process_group(0)
        .spawn()
        .context("rootless: start the pause process")?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let mut ready = [0u8; 1];
    let got = child.stdout.take().map(|mut o| o.read_exact(&mut ready));
    if !matches!(got, Some(Ok(()))) {
        let why = child_error(&mut child);
        bail!(
            "rootless: cannot make a user namespace ({why}): unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces)"
        );
    }
    if let Err(e) = map_ids(pid, uid, gid) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    // stdin closes: the pause process waits from now on, holding the namespaces.
    drop(child.stdin.take());
    drop(child.stderr.take());
    Ok(pid)
}

fn child_error(child: &mut Child) -> String {
    let _ = child.kill();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
    match err.trim() {
        "" => status,
        e => e.to_owned(),
    }
}

/// A subordinate id range: first id and count.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Range {
    start: u32,
    count: u32,
}

/// The first range of /etc/subuid (or subgid) for `name` or `id`.
fn sub_range(file: &str, name: Option<&str>, id: u32) -> Option<Range> {
    let text = std::fs::read_to_string(file).ok()?;
    parse_sub_range(&text, name, id)
}

fn parse_sub_range(text: &str, name: Option<&str>, id: u32) -> Option<Range> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let ours = Some(who) == name || who.parse::<u32>().ok() == Some(id);
        let r = Range {
            start: start.parse().ok()?,
            count: count.parse().ok()?,
        };
        (ours && r.count > 0).then_some(r)
    })
}

/// Container root is the user; ids 1.. are the subordinate range when there is one,
/// else the user alone is mapped (images whose files belong to other ids then fail to
/// unpack, as with Podman).
fn map_ids(pid: i32, uid: Uid, gid: Gid) -> Result<()> {
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name);
    let subuid = sub_range("/etc/subuid", name.as_deref(), uid.as_raw());
    let subgid = sub_range("/etc/subgid", name.as_deref(), uid.as_raw());
    let who = name.clone().unwrap_or_else(|| uid.to_string());
    match (subuid, subgid) {
        (Some(u), Some(g)) => {
            newidmap("newuidmap", pid, uid.as_raw(), u)?;
            newidmap("newgidmap", pid, gid.as_raw(), g)
        }
        _ => {
            tracing::warn!(
                "no range for {who} in /etc/subuid and /etc/subgid: only root (your own user) exists in containers; add one (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who})"
            );
            let proc = PathBuf::from(format!("/proc/{pid}"));
            std::fs::write(proc.join("uid_map"), format!("0 {uid} 1\n"))
                .context("rootless: write uid_map")?;
            std::fs::write(proc.join("setgroups"), "deny").context("rootless: write setgroups")?;
            std::fs::write(proc.join("gid_map"), format!("0 {gid} 1\n"))
                .context("rootless: write gid_map")
        }
    }
}

/// `newuidmap PID 0 ID 1 1 START COUNT`.
fn newidmap(tool: &str, pid: i32, id: u32, r: Range) -> Result<()> {
    let out = Command::new(tool)
        .args([
            pid.to_string(),
            "0".into(),
            id.to_string(),
            "1".into(),
            "1".into(),
        ])
        .args([r.start.to_string(), r.count.to_string()])
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "rootless: {tool} is not installed, and it is needed to use the ranges of /etc/subuid and /etc/subgid (Debian/Ubuntu: apt-get install uidmap)"
        ),
        Err(e) => return Err(e).with_context(|| format!("rootless: run {tool}")),
    };
    if !out.status.success() {
        bail!(
            "rootless: {tool} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Range, parse_sub_range};

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let t = "alice:100000:65536\n1001:200000:65536\nbob:300000:0\n";
        let r = |start, count| Some(Range { start, count });
        assert_eq!(parse_sub_range(t, Some("alice"), 1000), r(100000, 65536));
        assert_eq!(parse_sub_range(t, Some("carol"), 1001), r(200000, 65536));
        assert_eq!(parse_sub_range(t, Some("bob"), 1002), None);
        assert_eq!(parse_sub_range("garbage\n", Some("alice"), 1000), None);
    }
}
