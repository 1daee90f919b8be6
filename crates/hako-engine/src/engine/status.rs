//! A container's live state, derived from its shim (asked over its socket) and the exit
//! record the shim leaves.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use hako_shim::protocol::{self, ExitInfo, Reply, Request, ShimState};

use crate::error::{Error, Result};
use crate::records::Record;
use crate::state::{self, Action, Status};

use super::Engine;

/// A container's status and its details, derived from the shim and the exit record.
#[derive(Debug, Clone)]
pub struct LiveState {
    /// Docker's status.
    pub status: Status,
    /// The init's pid while running.
    pub pid: Option<i32>,
    /// When the last run started.
    pub started_at: Option<String>,
    /// When the last run ended.
    pub finished_at: Option<String>,
    /// The last exit code.
    pub exit_code: i32,
    /// Restarts by the restart policy.
    pub restart_count: u32,
    /// Whether the last run was OOM killed.
    pub oom_killed: bool,
    /// A shim answers for the container (also while it is created but not started, when
    /// a CLI died between the two).
    pub monitor: bool,
}

impl LiveState {
    /// A container that never ran.
    pub(crate) fn created() -> LiveState {
        LiveState {
            status: Status::Created,
            pid: None,
            started_at: None,
            finished_at: None,
            exit_code: 0,
            restart_count: 0,
            oom_killed: false,
            monitor: false,
        }
    }
}

impl Engine {
    /// The container's status now.
    pub fn live(&self, rec: &Record) -> LiveState {
        let dir = self.state_dir(&rec.id);
        let mut st = LiveState {
            started_at: read_trimmed(&dir.join("started_at")),
            ..LiveState::created()
        };
        let exit = protocol::read_exit(&dir).ok().flatten();
        if let Some(e) = &exit {
            apply_exit(&mut st, e);
        }
        if protocol::socket_path(&dir).exists()
            && let Ok(Reply::State(s)) =
                request_timeout(&dir, &Request::State, Duration::from_secs(5))
        {
            apply_shim(&mut st, &s, rec.paused);
            st.monitor = true;
            return st;
        }
        if exit.is_some() {
            st.status = Status::Exited;
            return st;
        }
        if dir.join(protocol::SHIM_PID_FILE).exists() {
            // A shim that does not answer: running if that very process lives (a recycled
            // pid does not count), else dead.
            st.status = if protocol::shim_alive(&dir) {
                Status::Running
            } else {
                Status::Dead
            };
        }
        st
    }

    pub(super) fn check(&self, rec: &Record, action: Action) -> Result<LiveState> {
        let live = self.live(rec);
        if state::allowed(live.status, action) {
            Ok(live)
        } else {
            Err(Error::IllegalTransition {
                id: rec.id.clone(),
                status: live.status,
                action,
            })
        }
    }
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn apply_exit(st: &mut LiveState, e: &ExitInfo) {
    st.finished_at = Some(e.finished_at.clone());
    st.exit_code = e.exit_code;
    st.oom_killed = e.oom_killed;
    st.restart_count = e.restart_count;
}

fn apply_shim(st: &mut LiveState, s: &ShimState, paused: bool) {
    if let Some(e) = &s.exit {
        apply_exit(st, e);
    }
    st.restart_count = s.restart_count;
    if s.started_at.is_some() {
        st.started_at = s.started_at.clone();
    }
    st.status = match s.status.as_str() {
        "running" if paused => Status::Paused,
        "running" => Status::Running,
        "restarting" => Status::Restarting,
        "exited" => Status::Exited,
        _ => Status::Created,
    };
    st.pid = if st.status.is_active() { s.pid } else { None };
}

/// One request on a fresh connection, with a reply timeout.
pub(super) fn request_timeout(
    dir: &Path,
    req: &Request,
    timeout: Duration,
) -> std::io::Result<Reply> {
    let mut s = hako_shim::sockpath::connect(&protocol::socket_path(dir))?;
    s.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte)? {
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the shim closed the connection",
                ));
            }
            _ if byte[0] == b'\n' => break,
            _ => buf.push(byte[0]),
        }
    }
    serde_json::from_slice(&buf)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
