//! The container state machine.
//!
//! ```text
//!             start                 exit (no restart)
//!   created ─────────► running ─────────────────────► exited ──► (removed)
//!      │                 │  ▲  ▲                         │
//!      │          pause  ▼  │  │ restart policy          │ start / restart
//!      │              paused │  └── restarting ◄─ exit   │
//!      │                     └───────────────────────────┘
//!      └──────────────────────────── rm ───────────────► (removed)
//! ```
//!
//! The status itself is never stored as the truth: it is derived from the shim (alive?
//! restarting?), the exit record the shim leaves, and the paused flag, so a crash of any
//! hako process cannot leave a stale status behind. What is checked here is which actions a
//! status allows; an illegal one is an [`crate::Error::IllegalTransition`] naming both.

use std::fmt;

/// A container's status, with Docker's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Made, never started (or its shim has it created but not started).
    Created,
    /// The init process runs.
    Running,
    /// Frozen.
    Paused,
    /// Exited; the shim will start it again (restart policy).
    Restarting,
    /// Exited and stays so.
    Exited,
    /// The shim is gone without leaving an exit record (it was killed): the container is lost.
    Dead,
}

impl Status {
    /// Docker's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a process of the container exists (running, paused or between restarts).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can be asked of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `kill`.
    Kill,
    /// `pause`.
    Pause,
    /// `unpause`.
    Unpause,
    /// `rm` without `-f`.
    Remove,
    /// `exec`.
    Exec,
    /// `attach`.
    Attach,
    /// `restart`.
    Restart,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Unpause => "unpause",
            Action::Remove => "remove",
            Action::Exec => "exec",
            Action::Attach => "attach",
            Action::Restart => "restart",
        })
    }
}

/// Whether `action` is allowed in `status`. `Stop` of a stopped container and `Start` of a
/// running one are allowed (Docker treats them as no-ops).
pub fn allowed(status: Status, action: Action) -> bool {
    use Action as A;
    use Status as S;
    match action {
        A::Start => !matches!(status, S::Paused | S::Dead),
        A::Stop | A::Restart => status != S::Dead,
        A::Kill | A::Pause | A::Exec => status == S::Running,
        A::Unpause => status == S::Paused,
        A::Remove => !status.is_active(),
        A::Attach => status != S::Dead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_containers_cannot_be_removed_without_force() {
        assert!(!allowed(Status::Running, Action::Remove));
        assert!(!allowed(Status::Paused, Action::Remove));
        assert!(!allowed(Status::Restarting, Action::Remove));
        assert!(allowed(Status::Exited, Action::Remove));
        assert!(allowed(Status::Created, Action::Remove));
        assert!(allowed(Status::Dead, Action::Remove));
    }

    #[test]
    fn exec_and_pause_need_a_running_container() {
        for s in [
            Status::Created,
            Status::Exited,
            Status::Paused,
            Status::Dead,
        ] {
            assert!(!allowed(s, Action::Exec), "{s}");
            assert!(!allowed(s, Action::Pause), "{s}");
        }
        assert!(allowed(Status::Running, Action::Exec));
        assert!(allowed(Status::Paused, Action::Unpause));
        assert!(!allowed(Status::Running, Action::Unpause));
    }

    #[test]
    fn messages_name_the_status() {
        let e = crate::Error::IllegalTransition {
            id: "0123456789abcdef".into(),
            status: Status::Running,
            action: Action::Remove,
        };
        assert_eq!(
            e.to_string(),
            "cannot remove container \"0123456789ab\": container is running: stop the container before removing or force remove"
        );
    }
}
