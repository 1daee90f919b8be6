//! Per-container operation locks: `<exec-root>/locks/<id>`, flock'ed exclusive by the
//! process that starts or removes the container (Docker's daemon holds a container lock
//! for the same reason). Without it `rm` or `container prune` in one process can see a
//! container "created, shim up, not started" that another process is starting this very
//! moment, take it for one whose CLI died, and kill it.
//!
//! The file is removed with the container; a process that waited on it re-reads the
//! record after getting the lock and finds the container gone.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, IoContext, Result};

/// Held while a container is started or removed.
#[derive(Debug)]
pub(crate) struct ContainerLock {
    _lock: Flock<File>,
}

pub(crate) fn path(exec_root: &Path, id: &str) -> PathBuf {
    exec_root.join("locks").join(id)
}

/// Waits for and takes container `id`'s lock.
pub(crate) fn lock(exec_root: &Path, id: &str) -> Result<ContainerLock> {
    let p = path(exec_root, id);
    let l = Flock::lock(open_lock(&p)?, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
        context: format!("lock {}", p.display()),
        source: e.into(),
    })?;
    Ok(ContainerLock { _lock: l })
}

/// Takes container `id`'s lock if nobody holds it; `None` if somebody does.
pub(crate) fn try_lock(exec_root: &Path, id: &str) -> Result<Option<ContainerLock>> {
    let p = path(exec_root, id);
    match Flock::lock(open_lock(&p)?, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(ContainerLock { _lock: l })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(Error::Io {
            context: format!("lock {}", p.display()),
            source: e.into(),
        }),
    }
}

/// Removes container `id`'s lock files (with the container, or when a process that waited
/// on them finds the container gone).
pub(crate) fn remove(exec_root: &Path, id: &str) {
    let _ = std::fs::remove_file(path(exec_root, id));
    let _ = std::fs::remove_file(attached_path(exec_root, id));
}

/// Held (shared) by a foreground CLI attached to an `--rm` container from before it starts
/// until it has removed it, so that the shim's exit command ([`await_attached`]) leaves the
/// removal to it and the CLI still finds the exit code.
#[derive(Debug)]
pub(crate) struct AttachedLock {
    _lock: Flock<File>,
}

pub(crate) fn attached_path(exec_root: &Path, id: &str) -> PathBuf {
    exec_root.join("locks").join(format!("{id}.attached"))
}

fn open_lock(p: &Path) -> Result<File> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .ctx(|| format!("open {}", p.display()))
}

/// Takes container `id`'s attached lock (shared).
pub(crate) fn attached(exec_root: &Path, id: &str) -> Result<AttachedLock> {
    let p = attached_path(exec_root, id);
    let l = Flock::lock(open_lock(&p)?, FlockArg::LockShared).map_err(|(_, e)| Error::Io {
        context: format!("lock {}", p.display()),
        source: e.into(),
    })?;
    Ok(AttachedLock { _lock: l })
}

/// Waits until no foreground CLI is attached to container `id` (each holds
/// [`AttachedLock`] until it has removed the container, or died).
pub(crate) fn await_attached(exec_root: &Path, id: &str) -> Result<()> {
    let p = attached_path(exec_root, id);
    let l = Flock::lock(open_lock(&p)?, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
        context: format!("lock {}", p.display()),
        source: e.into(),
    })?;
    drop(l);
    Ok(())
}
