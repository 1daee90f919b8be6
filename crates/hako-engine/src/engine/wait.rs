//! Waiting for a container to stop (`docker wait`, `run`'s exit code), with Docker's three
//! conditions. A [`Waiter`] registers with the shim when it is made, so an exit that
//! happens before the caller reads it is not missed: `run --rm` learns the exit code even
//! when the shim's cleanup removes the container right after.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use hako_shim::protocol::{self, Reply, Request};

use crate::error::{Error, Result};
use crate::records;
use crate::state::Status;

use super::Engine;

/// Docker's `condition` of `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitCondition {
    /// Return at once if not running, else at the exit (default).
    #[default]
    NotRunning,
    /// Return at the next exit, even of a container not running yet.
    NextExit,
    /// Return once the container is removed.
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = Error;

    fn from_str(s: &str) -> Result<WaitCondition> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::InvalidArgument(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

/// A registered wait; [`Waiter::wait`] or [`Waiter::poll`] it.
#[derive(Debug)]
pub struct Waiter<'a> {
    engine: &'a Engine,
    id: String,
    cond: WaitCondition,
    conn: Option<UnixStream>,
    line: Vec<u8>,
    /// The exit code, once known.
    code: Option<i32>,
    /// The exit code of the container's last run as last looked at: the answer when the
    /// record goes before this waiter saw an exit (`removed` of an exited container that
    /// another caller removes; dockerd answers the container's code then).
    last_code: i32,
    /// The container was seen running (an exit after that counts for `next-exit`).
    seen_active: bool,
    /// The end of the last run when the wait was registered: an exit recorded with another
    /// time came after it, even when no look saw the container running (a run shorter
    /// than the time from the waiter's last look, before its shim was up, to the next).
    finished_before: Option<String>,
    /// Waiting until an `--rm` container is removed: this waiter removes it at its exit,
    /// holding the removal lock from before it can exit so that the shim's exit command
    /// leaves the removal to it (the caller waits for that removal anyway: a second
    /// process starting up to do it only adds its start-up to the wait). Released when
    /// the waiter is dropped (its client gone): the exit command then does it.
    removal: Option<crate::locks::AttachedLock>,
    /// [`Spawns`]'s count when the state was last looked at.
    spawns_seen: u64,
    /// The `finished_at` of the exit the shim reported to this waiter.
    exit_seen: Option<String>,
    /// [`Waiter::defer_removal`] was asked for.
    defer: bool,
    /// What its removal left for after the answer ([`Waiter::finish`]).
    tail: Option<super::remove::Tail<'a>>,
}

/// A count of the shims an engine spawned, and a condition variable to wait for the next.
#[derive(Debug, Default)]
pub(crate) struct Spawns {
    count: Mutex<u64>,
    cv: Condvar,
}

impl Spawns {
    fn now(&self) -> u64 {
        *self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One more shim: wakes every waiter.
    pub(crate) fn bump(&self) {
        *self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.cv.notify_all();
    }

    /// Sleeps until a shim is spawned after `seen` was read, at most `timeout`.
    fn wait_past(&self, seen: u64, timeout: Duration) {
        let guard = self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = self
            .cv
            .wait_timeout_while(guard, timeout, |n| *n == seen)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

impl Engine {
    /// Registers a wait for `what` under `cond`.
    pub fn waiter(&self, what: &str, cond: WaitCondition) -> Result<Waiter<'_>> {
        let rec = self.get(what)?;
        let removal = if cond == WaitCondition::Removed && rec.host_config.auto_remove == Some(true)
        {
            Some(crate::locks::attached(&self.opts.exec_root, &rec.id)?)
        } else {
            None
        };
        // A start made ahead holds the lock since the create: the container is created and
        // never ran, and its shim, busy with `RUNTIME create`, would answer only after it.
        let live = match self.preparing(&rec.id) {
            true => super::status::LiveState::created(),
            false => self.live(&rec),
        };
        let mut w = Waiter {
            engine: self,
            id: rec.id.clone(),
            cond,
            conn: None,
            line: Vec::new(),
            code: None,
            seen_active: live.status.is_active(),
            last_code: live.exit_code,
            finished_before: live.finished_at.clone(),
            removal,
            spawns_seen: self.spawns.now(),
            exit_seen: None,
            defer: false,
            tail: None,
        };
        if cond == WaitCondition::NotRunning && !live.status.is_active() {
            w.code = Some(live.exit_code);
        } else {
            w.conn = w.register();
        }
        Ok(w)
    }

    /// Waits until the container is not running and returns its exit code.
    pub fn wait(&self, what: &str) -> Result<i32> {
        self.waiter(what, WaitCondition::NotRunning)?.wait()
    }

    /// Waits (at most `timeout`) until the container's record is gone.
    pub fn wait_removed(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if records::find(&self.conn(), id).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Waiter<'_> {
    /// For a caller that answers its client between the met condition and
    /// [`Waiter::finish`] (`hako serve`): the removal of an `--rm` container leaves what
    /// nobody can see (see `Engine::remove_exited`) for `finish`, after the answer.
    pub fn defer_removal(mut self) -> Self {
        self.defer = true;
        self
    }

    /// Finishes what the removal left for after the answer, if anything.
    pub fn finish(mut self) {
        if let Some(t) = self.tail.take() {
            t.finish();
        }
    }

    /// Blocks until the condition is met; the exit code.
    pub fn wait(mut self) -> Result<i32> {
        loop {
            if let Some(code) = self.poll(Duration::from_secs(3600))? {
                return Ok(code);
            }
        }
    }

    /// Waits at most about `timeout`: `Some(exit code)` once the condition is met (so a
    /// caller can give up when its client went away).
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.code {
                if self.cond != WaitCondition::Removed {
                    return Ok(Some(code));
                }
                if self.removal.is_some() {
                    self.remove();
                }
                if records::find(&self.engine.conn(), &self.id).is_err() {
                    return Ok(Some(code));
                }
            } else if self.conn.is_some() {
                match self.read_reply(deadline) {
                    Some(Ok(Reply::Exited(e))) => {
                        self.conn = None;
                        self.seen_active = true;
                        if self.restarting() {
                            self.conn = self.register();
                        } else {
                            self.code = Some(e.exit_code);
                            self.exit_seen = Some(e.finished_at);
                        }
                        continue;
                    }
                    Some(_) => self.conn = None,
                    None => {}
                }
            } else {
                self.spawns_seen = self.engine.spawns.now();
                self.check_state()?;
                if self.code.is_none() && self.conn.is_none() {
                    self.conn = self.register();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            if self.code.is_some() {
                // Exited, waiting for the removal (`run --rm`): the client returns as soon
                // as the record is gone, so look often (a cheap indexed read).
                std::thread::sleep(left.min(Duration::from_millis(5)));
            } else if self.conn.is_none() {
                // No shim to ask: a start by this process wakes this at once, one by
                // another process (`hako start`) is seen at the next look.
                self.engine
                    .spawns
                    .wait_past(self.spawns_seen, left.min(Duration::from_millis(25)));
            }
        }
    }

    /// Removes the exited `--rm` container this waiter holds the removal lock of (see
    /// [`Waiter::removal`]), then lets the lock go: whoever finds it still there after
    /// that (the exit command) tries again.
    fn remove(&mut self) {
        let removed = match &self.exit_seen {
            Some(f) => self
                .engine
                .remove_exited(&self.id, f, self.defer)
                .map(|(_, tail)| self.tail = tail),
            None => self.engine.remove(&self.id, true, true).map(|_| ()),
        };
        match removed {
            Ok(()) | Err(Error::NoSuchContainer(_)) => {}
            Err(e) => tracing::warn!(container = %self.id, "remove the --rm container: {e}"),
        }
        self.removal = None;
        if records::find(&self.engine.conn(), &self.id).is_err() {
            // The lock file this waiter may have made again after the removal.
            crate::locks::remove(&self.engine.opts.exec_root, &self.id);
        }
    }

    fn restarting(&self) -> bool {
        // A container without a restart policy (every `--rm` one) is never restarted: its
        // shim, busy finishing right after the exit, is not asked (~0.5 ms of a `run --rm`).
        self.engine.get(&self.id).is_ok_and(|r| {
            !super::validate::never_restarts(&r.host_config)
                && self.engine.live(&r).status == Status::Restarting
        })
    }

    /// Without a shim connection: decide from the status (the shim is gone, or not there
    /// yet for a created container).
    fn check_state(&mut self) -> Result<()> {
        let rec = match self.engine.get(&self.id) {
            Ok(r) => r,
            Err(Error::NoSuchContainer(_)) if self.cond == WaitCondition::Removed => {
                self.code = Some(self.code.unwrap_or(self.last_code));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let live = self.engine.live(&rec);
        // (Not from a removal under way: its exit file goes before its record.)
        if live.status == Status::Exited {
            self.last_code = live.exit_code;
        }
        let ended_since = live.status != Status::Created
            && live.finished_at.is_some()
            && live.finished_at != self.finished_before;
        if live.status.is_active() {
            self.seen_active = true;
        } else if self.cond == WaitCondition::NotRunning
            || (self.seen_active && live.status != Status::Created)
            || ended_since
        {
            self.code = Some(live.exit_code);
        }
        Ok(())
    }

    /// Sends `wait` on a fresh connection to the shim, if it runs.
    fn register(&self) -> Option<UnixStream> {
        let dir = self.engine.state_dir(&self.id);
        let mut s = hako_shim::sockpath::connect(&protocol::socket_path(&dir)).ok()?;
        let mut line = serde_json::to_vec(&Request::Wait).ok()?;
        line.push(b'\n');
        s.write_all(&line).ok()?;
        Some(s)
    }

    /// Reads the reply line until `deadline`: `None` while it has not come.
    fn read_reply(&mut self, deadline: Instant) -> Option<std::io::Result<Reply>> {
        let s = self.conn.as_mut()?;
        let mut byte = [0u8; 64];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = s.set_read_timeout(Some(left));
            match s.read(&mut byte) {
                Ok(0) => {
                    return Some(Err(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "the shim closed the connection",
                    )));
                }
                Ok(n) => {
                    self.line.extend_from_slice(&byte[..n]);
                    if let Some(nl) = self.line.iter().position(|b| *b == b'\n') {
                        let reply = serde_json::from_slice(&self.line[..nl])
                            .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e));
                        self.line.clear();
                        return Some(reply);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
