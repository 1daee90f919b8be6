//! One network namespace made ahead of time by a long-lived engine (`hako serve`), so that
//! a container's network setup adopts it instead of making one.
//!
//! Why: a new namespace is the kernel building a whole network stack (`unshare
//! (CLONE_NEWNET)`, ~0.6 ms here), on a thread of its own, plus its loopback brought up:
//! ~0.9 ms, on the way from `docker run`'s attach to the container's start (the shim waits
//! for it: a median 0.85 ms on the go byte over 20 runs). A spare is only that: a namespace
//! with `lo` up, bound at `<exec_root>/netns/.spare-<pid>-<n>`, nothing of any container
//! in it. Adopting it is two mounts (bind onto the container's file, detach the spare's).
//!
//! The spare belongs to the process that made it (its pid is in the name): that process
//! removes it when it stops keeping one ([`Spares::stop`], at `hako serve`'s shutdown), and
//! the next process that starts keeping one removes those of dead processes ([`sweep`]).
//! A process that never asks for spares (every CLI command) never makes one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::mount::MsFlags;

use crate::error::{IoContext, Result};
use crate::netns::{self, Netns};

const PREFIX: &str = ".spare-";

/// How long after a start the next spare is made: past the start's own burst of work (the
/// container's first milliseconds, a short run's exit and removal), where ~0.9 ms of CPU
/// for the spare slowed the rest as much as the spare saved (2 cores, A/B of 300 runs).
const REPLENISH_DELAY: Duration = Duration::from_millis(25);

/// The spare namespace of this process (at most one).
#[derive(Debug)]
pub(crate) struct Spares {
    dir: PathBuf,
    on: AtomicBool,
    made: AtomicU64,
    /// Held while a spare is made, taken or removed.
    slot: Mutex<Option<PathBuf>>,
}

impl Spares {
    /// Spares under `dir` (`<exec_root>/netns`), none kept until [`Spares::start`].
    pub(crate) fn new(dir: PathBuf) -> Arc<Spares> {
        Arc::new(Spares {
            dir,
            on: AtomicBool::new(false),
            made: AtomicU64::new(0),
            slot: Mutex::new(None),
        })
    }

    /// Keep a spare from now on: remove dead processes' ones, make the first.
    pub(crate) fn start(self: &Arc<Self>) {
        sweep(&self.dir, true);
        self.on.store(true, Ordering::SeqCst);
        self.replenish_after(Duration::ZERO);
    }

    /// Keep none any more; the spare there is is removed.
    pub(crate) fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = slot.take() {
            let _ = netns::remove(&path);
        }
    }

    /// Makes a spare in the background when spares are kept and there is none, after
    /// [`REPLENISH_DELAY`].
    pub(crate) fn replenish(self: &Arc<Self>) {
        self.replenish_after(REPLENISH_DELAY);
    }

    fn replenish_after(self: &Arc<Self>, delay: Duration) {
        if !self.on.load(Ordering::SeqCst) {
            return;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("hako-netns-spare".into())
            .spawn(move || {
                std::thread::sleep(delay);
                me.make();
            });
        if let Err(e) = spawned {
            tracing::debug!("no thread to make a spare network namespace: {e}");
        }
    }

    fn make(&self) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() || !self.on.load(Ordering::SeqCst) {
            return;
        }
        let n = self.made.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("{PREFIX}{}-{n}", std::process::id()));
        match Netns::create(&path) {
            Ok(_) => *slot = Some(path),
            Err(e) => tracing::debug!("make a spare network namespace: {e}"),
        }
    }

    /// The spare, bound at `path` (a file that must not exist yet) instead of its own name;
    /// `None` when there is none or the bind failed (the caller makes a namespace as
    /// without spares). One being made is waited for: what is left of its making is never
    /// more than making another.
    pub(crate) fn adopt(&self, path: &Path) -> Option<Netns> {
        let spare = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        match bind_over(&spare, path) {
            Ok(ns) => {
                let _ = netns::remove(&spare);
                Some(ns)
            }
            Err(e) => {
                tracing::debug!("adopt the spare network namespace: {e}");
                let _ = netns::remove(&spare);
                let _ = netns::remove(path);
                None
            }
        }
    }
}

/// Binds the namespace bound at `from` onto a new file `to`.
fn bind_over(from: &Path, to: &Path) -> Result<Netns> {
    netns::mount_point(to)?;
    nix::mount::mount(Some(from), to, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(std::io::Error::from)
        .ctx(|| format!("bind {} onto {}", from.display(), to.display()))?;
    Netns::open(to)
}

/// Whose spare `path` is: `Some(true)` for one of a live process (this one included),
/// `Some(false)` for one of a process that is gone, `None` for no spare's name.
pub fn spare_alive(path: &Path) -> Option<bool> {
    let owner = path
        .file_name()?
        .to_str()?
        .strip_prefix(PREFIX)?
        .split('-')
        .next()?
        .parse::<i32>()
        .ok()?;
    Some(owner > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(owner), None).is_ok())
}

/// Removes the spares of processes that are gone (a `hako serve` killed with SIGKILL);
/// with `mine_too`, this process's own name as well (a pid reused from a dead server).
pub(crate) fn sweep(dir: &Path, mine_too: bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = format!("{PREFIX}{}-", std::process::id());
    for e in entries.flatten() {
        let path = e.path();
        let dead = match spare_alive(&path) {
            Some(alive) => !alive || (mine_too && e.file_name().to_string_lossy().starts_with(&me)),
            None => false,
        };
        if dead {
            let _ = netns::remove(&path);
        }
    }
}
