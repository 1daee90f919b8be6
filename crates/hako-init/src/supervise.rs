//! The main loop: read a signal from the signalfd; SIGCHLD means reap every zombie, anything
//! else is forwarded to the child (or its process group with `-g`). The loop ends when the
//! first child has been reaped, with its status as hako-init's exit code.
//!
//! Signals were blocked before the child was forked, so none is lost: a signal that arrives
//! before the signalfd is read just waits, pending. SIGCHLD does not queue (two children
//! exiting together raise it once), hence the `waitpid(-1, WNOHANG)` loop.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::signals;

/// The state of the supervision loop.
#[derive(Debug)]
pub struct Supervisor {
    /// The first child (the program hako-init was asked to run).
    pub child: Pid,
    /// `-g`: signal the child's process group instead of the child.
    pub kill_group: bool,
    /// `-e` codes reported as 0.
    pub remap_to_zero: Vec<u8>,
    /// `-v` count.
    pub verbosity: u8,
    /// A pidfd of the child, for real-time signals (nix's `kill` only knows named ones).
    pub pidfd: Option<OwnedFd>,
}

impl Supervisor {
    /// Run until the child is gone; returns hako-init's exit code.
    pub fn run(&self, signals: &SignalFd) -> i32 {
        loop {
            let info = match signals.read_signal() {
                Ok(Some(info)) => info,
                Ok(None) | Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
                Err(e) => {
                    eprintln!("hako-init: reading signals: {e}");
                    return 1;
                }
            };
            let sig = i32::try_from(info.ssi_signo).unwrap_or(0);
            if sig == Signal::SIGCHLD as i32 {
                if let Some(code) = self.reap() {
                    return code;
                }
            } else if !signals::NOT_FORWARDED.contains(&sig) {
                self.forward(sig);
            }
        }
    }

    /// Reap every zombie there is; the child's exit code once it has been reaped.
    fn reap(&self) -> Option<i32> {
        let mut child_code = None;
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("hako-init: waitpid: {e}");
                    break;
                }
                Ok(status) => status,
            };
            let (pid, code) = match status {
                WaitStatus::Exited(pid, code) => (pid, code),
                WaitStatus::Signaled(pid, sig, _) => (pid, 128 + sig as i32),
                _ => continue,
            };
            if pid == self.child {
                let code = self.remap(code);
                if self.verbosity >= 1 {
                    eprintln!("hako-init: child {pid} exited, status {code}");
                }
                child_code = Some(code);
            } else if self.verbosity >= 2 {
                eprintln!("hako-init: reaped zombie {pid}");
            }
        }
        child_code
    }

    fn remap(&self, code: i32) -> i32 {
        if u8::try_from(code).is_ok_and(|c| self.remap_to_zero.contains(&c)) {
            0
        } else {
            code
        }
    }

    /// Pass `sig` on. A child that is already gone (ESRCH) is not an error: its SIGCHLD is
    /// on the way.
    fn forward(&self, sig: i32) {
        let target = if self.kill_group {
            Pid::from_raw(-self.child.as_raw())
        } else {
            self.child
        };
        let result = match Signal::try_from(sig) {
            Ok(named) => kill(target, named).map_err(std::io::Error::from),
            // Real-time signals: to the child itself (also with -g; see the crate docs).
            Err(_) => match &self.pidfd {
                Some(fd) => hako_sys::pidfd_send_signal(fd.as_fd(), sig),
                None => Ok(()),
            },
        };
        if self.verbosity >= 2 {
            eprintln!("hako-init: forwarding {} to {target}", signals::name(sig));
        }
        if let Err(e) = result
            && e.raw_os_error() != Some(Errno::ESRCH as i32)
        {
            eprintln!("hako-init: forwarding {}: {e}", signals::name(sig));
        }
    }
}
