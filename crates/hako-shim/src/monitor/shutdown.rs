//! SIGTERM to the shim: what a service manager sends when it stops the unit or session the
//! shim runs in (a shutdown or reboot, `systemctl stop`, the end of a login session). The
//! shim stops its container the way `hako stop` does: the container's stop signal, SIGKILL
//! after its stop timeout (`--stop-signal`, `--stop-timeout`: default SIGTERM, 10 s). The
//! restart policy does not fire; the exit is recorded and reported as any other, then the
//! shim ends (or execs its exit command). Without this, systemd waits its own stop timeout
//! (90 s by default) for a shim that ignores SIGTERM before it kills everything.
//!
//! The shim writes no "stopped by hand" marker (that one is the engine's, for `stop` and
//! `kill`), so `hako system boot` at the next boot starts `always` and `unless-stopped`
//! containers again, as dockerd's own shutdown leaves them.
//!
//! SIGINT and SIGHUP stay ignored: the shim is the leader of a session of its own with no
//! controlling terminal, so neither comes from a terminal's ^C or hangup; a detached
//! container outlives the terminal that started it, as `docker run -d` does.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{Phase, Shim};

impl Shim {
    /// The shim got SIGTERM (see the module doc). Once only.
    pub(super) fn terminate(&mut self) {
        if self.terminating {
            return;
        }
        self.terminating = true;
        self.stopped = true;
        match self.phase {
            // Nothing runs (not started yet, or waiting to restart): end now.
            Phase::Created | Phase::Restarting { .. } => {
                self.shimlog
                    .note("SIGTERM: the container is not running; not starting it again");
                self.finish();
            }
            Phase::Running => self.send_stop_signal(),
            // Already ending; `stopped` keeps it from restarting.
            Phase::Draining { .. } | Phase::Finished { .. } => {}
        }
    }

    fn send_stop_signal(&mut self) {
        let sig = self.opts.stop_signal.clone();
        let timeout = self.opts.stop_timeout;
        self.shimlog.note(&format!(
            "SIGTERM: stopping the container with {sig}{}",
            if timeout >= 0 {
                format!(", SIGKILL after {timeout}s")
            } else {
                String::new()
            }
        ));
        let sent = if self.opts.exec_process.is_some() {
            self.signal_exec(&sig)
        } else {
            // A frozen container would not see its stop signal (nor, on cgroup v1, SIGKILL).
            if self.runtime.paused()
                && let Err(e) = self.runtime.resume()
            {
                self.shimlog
                    .note(&format!("resuming the paused container: {e}"));
            }
            let r = self.runtime.kill(&sig);
            if r.is_ok() {
                self.event("kill", &[("signal", signal_number(&sig))]);
            }
            r
        };
        self.kill_at = match sent {
            Err(e) => {
                self.shimlog
                    .note(&format!("sending {sig}: {e}; SIGKILL now"));
                Some(Instant::now())
            }
            Ok(()) => u64::try_from(timeout)
                .ok()
                .map(|s| Instant::now() + Duration::from_secs(s)),
        };
    }

    /// The stop timeout is over and the container still runs: SIGKILL.
    pub(super) fn kill_after_timeout(&mut self) {
        if self.kill_at.is_none_or(|at| Instant::now() < at) {
            return;
        }
        self.kill_at = None;
        let r = if self.opts.exec_process.is_some() {
            self.signal_exec("SIGKILL")
        } else {
            self.runtime.kill("SIGKILL")
        };
        match r {
            Ok(()) => self.shimlog.note("stop timeout over: SIGKILL sent"),
            Err(e) => self
                .shimlog
                .note(&format!("stop timeout over: SIGKILL: {e}")),
        }
        if self.opts.exec_process.is_none() {
            self.event("kill", &[("signal", "9".to_string())]);
        }
    }

    /// An exec's monitor signals its own process (the runtime's `kill` is the container's).
    fn signal_exec(&self, sig: &str) -> Result<(), String> {
        let signal = parse_signal(sig).ok_or_else(|| format!("unknown signal {sig}"))?;
        let pid = self.pid.ok_or_else(|| "no process".to_string())?;
        nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(|e| e.to_string())
    }
}

/// `SIGTERM`, `TERM`, `term` or `15`.
fn parse_signal(sig: &str) -> Option<Signal> {
    let s = sig.trim_start_matches("SIG").trim_start_matches("sig");
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    format!("SIG{}", s.to_ascii_uppercase()).parse().ok()
}

/// A signal's number as Docker's `kill` event shows it; what cannot be parsed stays as given.
fn signal_number(sig: &str) -> String {
    parse_signal(sig).map_or_else(|| sig.to_string(), |s| (s as i32).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        for s in ["SIGUSR1", "USR1", "usr1", "10"] {
            assert_eq!(parse_signal(s), Some(Signal::SIGUSR1), "{s}");
        }
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(signal_number("SIGTERM"), "15");
        assert_eq!(signal_number("RTMIN+3"), "RTMIN+3");
    }
}
