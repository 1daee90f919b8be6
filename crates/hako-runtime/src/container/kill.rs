//! `kill`: send a signal to the init, or with `--all` to every process of the container.

use std::os::fd::AsFd;
use std::path::Path;

use hako_cgroups::CgroupManager;
use nix::sys::signal::Signal;

use crate::container::Container;
use crate::error::{Context, Error, Result};
use crate::state::Status;

/// Parse `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
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

pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    let status = c.status();
    if status == Status::Stopped {
        return Err(Error::IllegalTransition {
            op: "kill",
            id: id.to_owned(),
            status: status.as_str(),
        });
    }
    if all && let Some(cg) = c.cgroup() {
        cg.kill_all(signal)?;
        return Ok(());
    }
    signal_init(&c, signal)
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
        assert!(parse_signal("0").is_err());
    }
}
