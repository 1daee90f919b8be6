//! `delete`: remove every trace of a container: processes, cgroup, state.

use std::os::fd::AsFd;
use std::path::Path;

use hako_cgroups::CgroupManager;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::container::Container;
use crate::error::{Error, Refusal, Result};
use crate::hooks::{self, HookState};
use crate::state::{StateDir, Status};

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    crate::id::validate(id)?;
    let c = match Container::load(root, id) {
        Ok(c) => c,
        Err(Error::ContainerNotFound(_)) => {
            let dir = StateDir::new(root, id);
            // A state dir without state.json is what a crashed create leaves: clean it.
            if dir.exists() {
                return dir.remove();
            }
            return if force {
                Ok(())
            } else {
                Err(Error::ContainerNotFound(id.to_owned()))
            };
        }
        Err(e) => return Err(e),
    };
    let status = c.status();
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(Refusal::DeleteLive {
            id: id.to_owned(),
            status: status.as_str(),
        }
        .into());
    }
    destroy(&c)
}

/// Kill what runs, remove the cgroup, run poststop hooks, remove the state directory.
pub(crate) fn destroy(c: &Container) -> Result<()> {
    tracing::debug!(id = %c.st.id, pid = c.st.pid, cgroup = %c.st.cgroup_path, "destroy");
    let cg = c.cgroup();
    if c.st.init_alive() {
        if let Some(cg) = &cg {
            let _ = cg.thaw();
        }
        if c.st.own_pid_ns {
            // The kernel kills the whole pid namespace with its init.
            kill_init_and_wait(c);
        } else if let Some(cg) = &cg {
            cg.kill_all(libc::SIGKILL)?;
            kill_init_and_wait(c);
        } else {
            kill_init_and_wait(c);
        }
    }
    let mut first_err = None;
    if let Some(cg) = &cg
        && let Err(e) = cg.destroy()
    {
        first_err = Some(Error::from(e));
    }
    if let Err(e) = crate::rootfs::detach_host_mounts(&c.st.rootfs, &c.st.host_mounts) {
        first_err.get_or_insert(e);
    }
    let state = HookState {
        oci_version: &c.st.oci_version,
        id: &c.st.id,
        status: "stopped",
        pid: None,
        bundle: &c.st.bundle,
        annotations: Some(&c.st.annotations),
    };
    if let Err(e) = hooks::run_all("poststop", &c.st.poststop, &state) {
        tracing::warn!("{e}");
    }
    if let Err(e) = c.dir.remove() {
        first_err.get_or_insert(e);
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn kill_init_and_wait(c: &Container) {
    let Ok(fd) = hako_sys::pidfd_open(c.st.pid) else {
        return;
    };
    if !c.st.init_alive() {
        return;
    }
    let _ = hako_sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
    // A pidfd turns readable when the process exits (even before it is reaped).
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(10_000u16));
}
