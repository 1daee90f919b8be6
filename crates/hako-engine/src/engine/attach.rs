//! Connections to a container's stdio and its tty size.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use hako_shim::protocol::{self, Request};

use crate::error::{Error, IoContext, Result};
use crate::records::Record;
use crate::state::{Action, Status};

use super::Engine;
use super::status::request_timeout;
use super::wait::{WaitCondition, Waiter};

/// Which streams an attach wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    /// The caller's input goes to the container's stdin.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
}

/// An attach checked and, for a created container, holding its lock: see
/// [`Engine::attach_begin`].
#[derive(Debug)]
pub struct PendingAttach {
    rec: Record,
    options: AttachOptions,
    /// No shim yet: [`Engine::attach_finish`] spawns it.
    spawn: bool,
    _lock: Option<crate::locks::ContainerLock>,
    /// A start made ahead is under way: it hands the lock over once done.
    prep: Option<std::sync::Arc<super::prepare::Preparation>>,
}

/// An attach connection to a container's stdio.
#[derive(Debug)]
pub struct Attached {
    /// The stream (stdcopy frames, or raw bytes with a tty).
    pub stream: UnixStream,
    /// The container has a tty.
    pub tty: bool,
    /// Sets the terminal size of what is attached (container or exec), from any thread.
    pub resizer: Resizer,
    /// For an `--rm` container: the shim's exit command leaves the removal to the holder.
    pub(super) _attached: Option<crate::locks::AttachedLock>,
}

impl Attached {
    /// Takes the `--rm` removal lock out of the connection, for a caller that removes the
    /// container after the stream ends (a foreground `run --rm`): held until dropped, so
    /// the shim's exit command waits for that removal instead of racing it.
    pub fn take_removal_lock(&mut self) -> Option<RemovalLock> {
        self._attached.take().map(RemovalLock)
    }
}

/// See [`Attached::take_removal_lock`].
#[derive(Debug)]
pub struct RemovalLock(#[allow(dead_code)] crate::locks::AttachedLock);

/// Resizes the terminal of an attached container or exec (its monitor's state directory).
#[derive(Debug, Clone)]
pub struct Resizer {
    pub(super) dir: std::path::PathBuf,
}

impl Resizer {
    /// Sets the pty size (ignored without a tty).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        request_timeout(
            &self.dir,
            &Request::Resize { rows, cols },
            Duration::from_secs(5),
        )
        .ctx(|| "resize the tty".into())?;
        Ok(())
    }
}

impl Engine {
    /// Starts a container with a connection to its stdio made *before* it runs, so no
    /// output is lost (`run` without `-d`, `start -a`), and a wait registered before it
    /// runs too, so its exit code is known even when `--rm` removes it at once. With a
    /// tty, `size` (rows, cols) is set before the process starts, so its first `stty size`
    /// is already right.
    pub fn start_attached(
        &self,
        what: &str,
        streams: &AttachOptions,
        size: Option<(u16, u16)>,
    ) -> Result<(Record, Attached, Waiter<'_>)> {
        let (_lock, rec) = self.lock_container(what)?;
        self.claim_prepared(&rec.id);
        let live = self.check(&rec, Action::Start)?;
        if live.status.is_active() {
            let a = self.attach_with(&rec.id, streams)?;
            let w = self.waiter(&rec.id, WaitCondition::NotRunning)?;
            return Ok((rec, a, w));
        }
        if !live.monitor {
            self.spawn_shim(&rec)?;
        }
        let dir = self.state_dir(&rec.id);
        let attached = protocol::attach(&dir, streams.stdin, streams.stdout, streams.stderr)
            .ctx(|| format!("attach to container {}", &rec.id[..12]))?;
        if let (true, Some((rows, cols))) = (attached.1, size) {
            let _ = request_timeout(
                &dir,
                &Request::Resize { rows, cols },
                Duration::from_secs(5),
            );
        }
        self.container_event(&rec, "attach", &[]);
        let waiter = self.waiter(&rec.id, WaitCondition::NextExit)?;
        // Before it can exit: this caller removes an `--rm` container, not the shim.
        let attached_lock = if rec.host_config.auto_remove == Some(true) {
            Some(crate::locks::attached(&self.opts.exec_root, &rec.id)?)
        } else {
            None
        };
        self.begin(&rec)?;
        Ok((
            rec,
            Attached {
                stream: attached.0,
                tty: attached.1,
                resizer: Resizer { dir: dir.clone() },
                _attached: attached_lock,
            },
            waiter,
        ))
    }

    /// Attaches to a running container's stdio (stdout and stderr), as `docker attach`.
    pub fn attach(&self, what: &str, stdin: bool) -> Result<Attached> {
        let rec = self.get(what)?;
        if !self.live(&rec).status.is_active() {
            return Err(Error::InvalidArgument(
                "You cannot attach to a stopped container, start it first".into(),
            ));
        }
        self.attach_with(
            what,
            &AttachOptions {
                stdin,
                stdout: true,
                stderr: true,
            },
        )
    }

    /// Attaches to a container's stdio. A created container gets its shim first (the
    /// runtime creates it, nothing runs), so an attach made before `start` loses no output
    /// (the API's `docker run`: create, attach, wait, start).
    pub fn attach_with(&self, what: &str, o: &AttachOptions) -> Result<Attached> {
        let pending = self.attach_begin(what, o)?;
        self.attach_finish(pending)
    }

    /// [`Engine::attach_with`]'s first half, quick: the checks (no such container, a
    /// stopped one) and, for a created container, its lock, which [`Engine::attach_finish`]
    /// holds through the shim's spawn and the connection to it. A `start` waits for that
    /// lock, so it never runs the container before the attach is connected: the API answers
    /// `docker run`'s attach between the two halves, and the client's `wait` and `start`
    /// requests overlap the spawn (~8 ms: network, shim, `RUNTIME create`), as with dockerd,
    /// where an attach never waits for the runtime.
    pub fn attach_begin(&self, what: &str, o: &AttachOptions) -> Result<PendingAttach> {
        let rec = self.get(what)?;
        // The shim a server is making ahead (the container is created, its shim busy with
        // `RUNTIME create` would answer a look at its state only after it): answered at
        // once, the lock is taken over in the second half, which decides on the spawn.
        if let Some(prep) = self.prepared_for_attach(&rec.id) {
            return Ok(PendingAttach {
                rec,
                options: *o,
                spawn: false,
                _lock: None,
                prep: Some(prep),
            });
        }
        let live = self.check(&rec, Action::Attach)?;
        if live.status == Status::Created {
            // Under the container's lock, as a start's spawn and the server's unmount of an
            // unstarted container are (a caller that holds the lock attaches only to an
            // active container: this is never reached). Also when a shim runs: it may be
            // one that another spawn (a start by another request or process) is still
            // making, whose socket does not answer yet.
            let (lock, rec) = self.lock_container(&rec.id)?;
            let live = self.live(&rec);
            let spawn = live.status == Status::Created && !live.monitor;
            return Ok(PendingAttach {
                rec,
                options: *o,
                spawn,
                _lock: Some(lock),
                prep: None,
            });
        }
        if !live.status.is_active() {
            return Err(Error::Conflict(
                "You cannot attach to a stopped container, start it first".into(),
            ));
        }
        Ok(PendingAttach {
            rec,
            options: *o,
            spawn: false,
            _lock: None,
            prep: None,
        })
    }

    /// [`Engine::attach_with`]'s second half: the shim's spawn when the container has none
    /// yet, then the connection to it, under the lock taken by [`Engine::attach_begin`]
    /// (released at the end).
    pub fn attach_finish(&self, mut p: PendingAttach) -> Result<Attached> {
        if let Some(prep) = p.prep.take() {
            match prep.wait() {
                // Held since the create: the shim it made is up, nothing else happened.
                (Some(lock), true) => p._lock = Some(lock),
                (lock, _) => {
                    let lock = match lock {
                        Some(lock) => lock,
                        None => self.lock_container(&p.rec.id)?.0,
                    };
                    let live = self.live(&p.rec);
                    p.spawn = live.status == Status::Created && !live.monitor;
                    p._lock = Some(lock);
                }
            }
        }
        let rec = &p.rec;
        if p.spawn {
            self.spawn_shim(rec)?;
        }
        let (stream, tty) = self
            .attach_shim(&rec.id, &p.options)
            .ctx(|| format!("attach to container {}", &rec.id[..12]))?;
        self.container_event(rec, "attach", &[]);
        Ok(Attached {
            stream,
            tty,
            resizer: Resizer {
                dir: self.state_dir(&rec.id),
            },
            _attached: None,
        })
    }

    /// Connects to the shim's stdio. A shim that another process or thread is still
    /// spawning (a start: it holds the container's lock) has no socket yet, and the
    /// container already reads as running: tried again until that holder is done (10 s at
    /// most).
    fn attach_shim(&self, id: &str, o: &AttachOptions) -> std::io::Result<(UnixStream, bool)> {
        let dir = self.state_dir(id);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match protocol::attach(&dir, o.stdin, o.stdout, o.stderr) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) && std::time::Instant::now() < deadline
                        && matches!(crate::locks::try_lock(&self.opts.exec_root, id), Ok(None)) =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }

    /// Sets the pty size of a container with a tty.
    pub fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let _ = request_timeout(
            &self.state_dir(id),
            &Request::Resize { rows, cols },
            Duration::from_secs(5),
        )
        .ctx(|| "resize the container's tty".into())?;
        if let Ok(rec) = self.get(id) {
            self.container_event(
                &rec,
                "resize",
                &[("height", rows.to_string()), ("width", cols.to_string())],
            );
        }
        Ok(())
    }
}
