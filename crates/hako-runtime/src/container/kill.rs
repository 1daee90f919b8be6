//! `kill`: send a signal to the init, or with `--all` to every process of the container.

use std::os::fd::AsFd;
use std::path::Path;

use hako_cgroups::CgroupManager;
use nix::sys::signal::Signal;

use crate::container::Container;
use crate::error::{Context, Error, Refusal, Result};
use crate::state::Status;

/// Parse `KILL`, `SIGKILL`, `kill` or `9` (0 checks the init exists, as kill(2)).
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return if (0..=64).contains(&n) {
            Ok(n)
        } else {
            Err(Error::Usage(format!("invalid signal number {n}")))
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::Usage(format!("unknown signal {s:?}")))
}

/// runc's contract, which engines rely on: a stopped container answers plain `kill` with
/// "container not running" (containerd reads it as "already gone") and `kill --all` with
/// success, since there is nothing left to signal; a paused container is thawed after
/// SIGKILL, or the frozen processes could not die.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    let status = c.status();
    if status == Status::Stopped {
        if !all {
            return Err(Refusal::NotRunning.into());
        }
        // The init is gone but others may be left (no pid namespace of its own).
        // A cgroup already removed means nothing is left either.
        if let Some(cg) = c.cgroup()
            && let Err(e) = cg.kill_all(signal)
        {
            tracing::debug!(error = %e, "kill --all of a stopped container");
        }
        return Ok(());
    }
    let cg = c.cgroup();
    match (&cg, all) {
        (Some(cg), true) => cg.kill_all(signal)?,
        _ => signal_init(&c, signal)?,
    }
    if status == Status::Paused
        && signal == libc::SIGKILL
        && let Some(cg) = &cg
    {
        cg.thaw()?;
    }
    Ok(())
}

/// Signal the init through a pidfd, after checking the pid still is our init.
pub(crate) fn signal_init(c: &Container, signal: i32) -> Result<()> {
    let fd = hako_sys::pidfd_open(c.st.pid).context(|| format!("open init pid {}", c.st.pid))?;
    if !c.st.init_alive() {
        return Ok(());
    }
    hako_sys::pidfd_send_signal(fd.as_fd(), signal).context(|| format!("signal {signal} to init"))
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("hup").unwrap(), 1);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("SIGNOPE").is_err());
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert!(parse_signal("65").is_err());
    }
}
