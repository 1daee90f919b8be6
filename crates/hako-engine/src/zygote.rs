//! One shim started ahead of need by a long-lived engine (`hako serve`), handed the command
//! line of the next shim instead of spawning it (see `hako_shim::zygote` for the other end).
//!
//! Why: spawning a shim is a fork of the server and an exec that `Command::spawn` waits
//! for (~1 ms here), then the shim's start-up to its detach (~0.7 ms), all between
//! `docker run`'s attach and the container's start. A zygote did all of that earlier; the
//! handover is one `sendmsg`.
//!
//! The zygote is this process's alone: nothing names it on disk. It ends when its socket
//! pair's other end closes: when this process stops keeping one ([`Zygotes::stop`], at
//! `hako serve`'s shutdown) or dies, however it dies. A process that never asks for
//! zygotes (every CLI command) never starts one.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

/// How long after a handover the next zygote is started: past the start's own burst of
/// work, as for the spare network namespace (`hako_net`'s `REPLENISH_DELAY`).
const REPLENISH_DELAY: Duration = Duration::from_millis(25);

/// This process's zygote (at most one).
#[derive(Debug)]
pub(crate) struct Zygotes {
    shim: PathBuf,
    on: AtomicBool,
    /// The server's end of the ready zygote's socket pair.
    slot: Mutex<Option<OwnedFd>>,
}

impl Zygotes {
    pub(crate) fn new(shim: PathBuf) -> Arc<Zygotes> {
        Arc::new(Zygotes {
            shim,
            on: AtomicBool::new(false),
            slot: Mutex::new(None),
        })
    }

    /// Keep a zygote from now on; the first is started now (in the background).
    pub(crate) fn start(self: &Arc<Self>) {
        self.on.store(true, Ordering::SeqCst);
        self.replenish_after(Duration::ZERO);
    }

    /// Keep none any more: the one there is sees its socket close and ends.
    pub(crate) fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Starts the next zygote in the background, when zygotes are kept and there is none.
    fn replenish(self: &Arc<Self>) {
        self.replenish_after(REPLENISH_DELAY);
    }

    fn replenish_after(self: &Arc<Self>, delay: Duration) {
        if !self.on.load(Ordering::SeqCst)
            || self
                .slot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
        {
            return;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("hako-zygote".into())
            .spawn(move || {
                std::thread::sleep(delay);
                me.make();
            });
        if let Err(e) = spawned {
            tracing::debug!("no thread to start a zygote shim: {e}");
        }
    }

    fn make(&self) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() || !self.on.load(Ordering::SeqCst) {
            return;
        }
        match spawn(&self.shim) {
            Ok(ctl) => *slot = Some(ctl),
            Err(e) => tracing::debug!("start a zygote shim: {e}"),
        }
    }

    /// Hands `cmd` (a shim's command line, its stdin and stdout /dev/null) to the zygote,
    /// with `fds` (the descriptors its arguments name by number) and `stderr`. `false`:
    /// there is none, or `cmd` cannot be handed over (the caller spawns it).
    pub(crate) fn hand(
        self: &Arc<Self>,
        cmd: &Command,
        fds: &[&OwnedFd],
        stderr: BorrowedFd<'_>,
    ) -> bool {
        if !self.on.load(Ordering::SeqCst) {
            return false;
        }
        let Some(h) = handover(cmd, fds) else {
            return false;
        };
        let Some(ctl) = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return false;
        };
        let mut raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        raw.push(stderr.as_raw_fd());
        let sent = hako_shim::zygote::send(&ctl, &h, &raw);
        // The next one, whether this one took the command line or is gone.
        self.replenish();
        match sent {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("hand a shim to the zygote: {e}");
                false
            }
        }
    }
}

/// The handover for `cmd`, if it can be one: its whole command line is text that fits over
/// the zygote's, and its environment is the zygote's (only the variables `crash::scrub`
/// removes from both are removed).
fn handover(cmd: &Command, fds: &[&OwnedFd]) -> Option<hako_shim::zygote::Handover> {
    if cmd.get_envs().any(|(_, v)| v.is_some()) {
        return None;
    }
    let program = cmd.get_program().to_str()?.to_string();
    let mut args = vec![program.clone()];
    for a in cmd.get_args() {
        args.push(a.to_str()?.to_string());
    }
    if !hako_shim::zygote::fits(&args, &program) || fds.len() >= hako_shim::zygote::MAX_FDS {
        return None;
    }
    let cwd = match cmd.get_current_dir() {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir().ok()?,
    };
    Some(hako_shim::zygote::Handover {
        args,
        cwd: cwd.to_str()?.to_string(),
        fds: fds.iter().map(|f| f.as_raw_fd()).collect(),
        stderr: Some(fds.len()),
    })
}

/// Starts a zygote: `SHIM --zygote-fd N PAD` with its end of a socket pair as N, executed
/// from a read-only mount of `SHIM`'s directory. Its first process exits once it has
/// detached; that exit is waited for here.
fn spawn(shim: &std::path::Path) -> std::io::Result<OwnedFd> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    // Inherited by number (a duplicate without close-on-exec), as the port sockets are.
    let inherited = nix::unistd::dup(&theirs)?;
    drop(theirs);
    // From a read-only mount of its directory, which its image then stays on: the shim
    // creates containers in a fork of itself (not with an exec of the runtime) only there.
    let sealed = hako_sys::mount::readonly_tree(shim);
    let mut cmd = match &sealed {
        Some((tree, name)) => {
            let mut c = Command::new(hako_sys::mount::in_tree(tree, name));
            std::os::unix::process::CommandExt::arg0(&mut c, shim);
            c
        }
        None => Command::new(shim),
    };
    hako_sys::crash::scrub(&mut cmd);
    cmd.arg(hako_shim::zygote::FLAG)
        .arg(inherited.as_raw_fd().to_string())
        .arg(hako_shim::zygote::pad())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn()?;
    drop(inherited);
    drop(sealed);
    let status = child.wait()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("the zygote shim {status}")));
    }
    Ok(ours)
}
