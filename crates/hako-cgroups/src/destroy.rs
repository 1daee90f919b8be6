//! Tearing a container's cgroups down: nothing may be left, and every failure is
//! reported, not just the first.
//!
//! Order: freeze (so nothing can fork while we kill), SIGKILL everything, thaw (a v1
//! frozen task only dies once thawed), wait until the cgroup is empty, then rmdir
//! every directory bottom-up in every hierarchy. rmdir can briefly fail with EBUSY
//! while the kernel finishes releasing exited tasks, so it is retried for about a
//! second.

use std::io::ErrorKind;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::{CgroupManager, Manager, fs};

const PATIENCE: Duration = Duration::from_secs(1);

pub(crate) fn destroy(m: &Manager) -> Result<(), Error> {
    let dirs = m.all_dirs();
    if !dirs.iter().any(|d| d.exists()) {
        // A scope whose processes all exited is gone already; a failed one may still be
        // loaded (and block its name): stop and reset it all the same.
        return match m.systemd_part() {
            Some(sd) => sd.stop(),
            None => Ok(()),
        };
    }
    let mut errors = Vec::new();
    // The usual case (`delete` after the container's init exited with its PID namespace):
    // nothing left to stop, and freezing, killing and thawing an empty cgroup is three
    // writes and two reads for nothing. Nothing can join an empty cgroup by forking.
    if !m.pids().is_ok_and(|p| p.is_empty()) {
        let frozen = match m.freeze() {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "destroy: cannot freeze, killing without it");
                false
            }
        };
        if let Err(e) = m.kill_all(nix::libc::SIGKILL) {
            errors.push(e);
        }
        if frozen && let Err(e) = m.thaw() {
            errors.push(e);
        }
        if let Err(e) = wait_empty(m) {
            errors.push(e);
        }
    }
    // systemd removes the scope's cgroup (with any nested ones) once the unit stops.
    if let Some(sd) = m.systemd_part()
        && let Err(e) = sd.stop()
    {
        errors.push(e);
    }
    for dir in &dirs {
        if let Err(e) = remove_tree(dir) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Destroy {
            path: m.resolved_path().to_owned(),
            errors,
        })
    }
}

fn wait_empty(m: &Manager) -> Result<(), Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let pids = m.pids()?;
        if pids.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= PATIENCE {
            let dir = m.all_dirs().into_iter().next().unwrap_or_default();
            return Err(Error::NotEmpty { dir, pids });
        }
        // Children forked between the first kill and the freeze taking hold.
        m.kill_all(nix::libc::SIGKILL)?;
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// rmdir `dir` after its child cgroups; a missing directory is fine.
fn remove_tree(dir: &Path) -> Result<(), Error> {
    // Usually there are none: the rmdir is tried first, as listing a cgroup directory (a
    // few dozen kernfs files) costs more than the rmdir, in each of a v1 host's dozen
    // hierarchies. A directory with children refuses with EBUSY.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for child in fs::subdirs(dir) {
        remove_tree(&child)?;
    }
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) && start.elapsed() < PATIENCE => {
                sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(Error::Remove {
                    dir: dir.to_owned(),
                    source,
                });
            }
        }
    }
}
