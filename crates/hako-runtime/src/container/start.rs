//! `start`: release a created container's init, which then runs the user's program.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::container::Container;
use crate::error::{Context, Error, Refusal, Result};
use crate::hooks::{self, HookState};
use crate::state::Status;

pub fn start(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Paused => return Err(Refusal::StartPaused.into()),
        Status::Stopped => return Err(Refusal::StartStopped.into()),
        Status::Running | Status::Creating => return Err(Refusal::StartRunning.into()),
    }
    release(&c)?;
    tracing::debug!(id, pid = c.st.pid, "started");
    let state = HookState {
        oci_version: &c.st.oci_version,
        id,
        status: "running",
        pid: Some(c.st.pid),
        bundle: &c.st.bundle,
        annotations: Some(&c.st.annotations),
    };
    // A failing poststart hook is logged, not fatal: the program already runs (spec).
    if let Err(e) = hooks::run_all("poststart", &c.st.poststart, &state) {
        tracing::warn!("{e}");
    }
    Ok(())
}

/// Write the byte the init waits for, then remove the fifo: its absence is what makes
/// the status "running".
pub(crate) fn release(c: &Container) -> Result<()> {
    let fifo = c.dir.fifo();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(|e| match e.raw_os_error() {
            // No reader: the init is gone.
            Some(libc::ENXIO) => Refusal::StartStopped.into(),
            _ => Error::Io {
                context: "open exec fifo".into(),
                source: e,
            },
        })?;
    f.write_all(b"0").context(|| "write exec fifo".into())?;
    std::fs::remove_file(&fifo).context(|| "remove exec fifo".into())?;
    wait_for_exec(&f);
    // The init writes exec.error before it exits, and exits before the fifo reports no
    // reader: what is there now is all there will be.
    match std::fs::read_to_string(c.dir.exec_error()) {
        Ok(msg) if !msg.trim().is_empty() => Err(Error::Init(msg.trim().to_owned())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context(|| "read exec.error".into()),
    }
}

/// The init holds the fifo open close-on-exec, as its only reader: once it has run its
/// startContainer hooks and exec'd the user's program (or died), the reader count drops
/// to zero and our write end reports POLLERR. Waiting for that makes poststart hooks run
/// after the program started, as the spec orders.
fn wait_for_exec(f: &std::fs::File) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}
