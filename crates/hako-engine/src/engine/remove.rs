//! `rm` and the `--rm` cleanup the shim runs.

use std::path::Path;
use std::time::Duration;

use hako_shim::protocol::{self, Request};

use crate::error::{Error, Result};
use crate::records::{self, Record};
use crate::state::{Action, Status};
use crate::volumes;

use super::Engine;
use super::status::request_timeout;

impl Engine {
    /// Removes a container: with `force` a running one is killed first; with `volumes` its
    /// anonymous volumes go too. Removes the record last, so a failure can be retried.
    pub fn remove(&self, what: &str, force: bool, remove_volumes: bool) -> Result<Record> {
        self.remove_seen(what, force, remove_volumes, None, false)
            .map(|(rec, _)| rec)
    }

    /// `docker rm` (the CLI's and the API's): [`Engine::remove`], except that a container
    /// whose removal another caller claimed and has not finished is a conflict, as dockerd
    /// answers it, instead of a wait for that removal (the internal removers of an `--rm`
    /// container, which may meet each other, keep [`Engine::remove`]'s quiet way).
    pub fn rm(&self, what: &str, force: bool, remove_volumes: bool) -> Result<Record> {
        if self.get(what)?.removing {
            return Err(Error::Conflict(format!(
                "removal of container {what} is already in progress"
            )));
        }
        self.remove(what, force, remove_volumes)
    }

    /// [`Engine::remove`] by a caller that was told of the exit that ended the container's
    /// last run, `exit`'s `finished_at` (its shim's `Exited` reply). With `defer`, what no
    /// caller can see (the root filesystem, the interfaces and namespace of a container
    /// that published nothing on the default network, the directories) is left in the
    /// [`Tail`] returned, for after the caller answered: the record, its name and its
    /// events are gone already.
    pub(super) fn remove_exited(
        &self,
        id: &str,
        finished_at: &str,
        defer: bool,
    ) -> Result<(Record, Option<Tail<'_>>)> {
        self.remove_seen(id, true, true, Some(finished_at), defer)
    }

    fn remove_seen(
        &self,
        what: &str,
        force: bool,
        remove_volumes: bool,
        exit_seen: Option<&str>,
        defer: bool,
    ) -> Result<(Record, Option<Tail<'_>>)> {
        self.images.make_room();
        // Not while another process starts it (it would look like a start whose CLI died).
        let (_lock, rec) = self.lock_container(what)?;
        // The exit the caller was told of is still the last one (a new run's spawn removes
        // the state directory first, the lock keeps one from starting now, and without a
        // restart policy the shim starts none): the container has exited, and its shim,
        // busy finishing after that exit, is not asked (~0.4 ms of a `run --rm`).
        let exited = exit_seen.is_some_and(|f| {
            super::validate::never_restarts(&rec.host_config)
                && protocol::read_exit(&self.state_dir(&rec.id))
                    .ok()
                    .flatten()
                    .is_some_and(|e| e.finished_at == f)
        });
        let (live_status, monitor) = match exited {
            true => (Status::Exited, false),
            false => {
                let live = self.live(&rec);
                (live.status, live.monitor)
            }
        };
        // What the container is now, for the teardown: looked at once (each look asks a
        // shim that is still there, busy finishing right after an exit).
        let mut status = live_status;
        if live_status.is_active() {
            if !force {
                return Err(Error::IllegalTransition {
                    id: rec.id.clone(),
                    status: live_status,
                    action: Action::Remove,
                });
            }
            let dir = self.state_dir(&rec.id);
            let _ = request_timeout(
                &dir,
                &Request::Stop { no_restart: true },
                Duration::from_secs(5),
            );
            if live_status == Status::Paused {
                let _ = self.runtime_run(&rec, "resume", &["resume", &rec.id]);
            }
            let _ = self.runtime_run(&rec, "kill", &["kill", &rec.id, "SIGKILL"]);
            if !self.wait_exit(&rec, Duration::from_secs(30)) {
                return Err(Error::Timeout(format!(
                    "container {} did not stop after SIGKILL",
                    &rec.id[..12]
                )));
            }
            status = self.live(&rec).status;
        }
        if monitor && live_status == Status::Created {
            // Created by a shim but never started (the CLI died in between): end it.
            let _ = request_timeout(
                &self.state_dir(&rec.id),
                &Request::Stop { no_restart: true },
                Duration::from_secs(5),
            );
            let _ = self.runtime_run(&rec, "kill", &["kill", &rec.id, "SIGKILL"]);
        }
        // From the claim to the record's deletion is one flight: a crash leaves a
        // `removing` record that the recovery finishes (recovery.rs).
        let flight = self.images.begin_flight(crate::recovery::KIND_ENGINE)?;
        if !records::claim_removal(&self.conn(), &rec.id, remove_volumes)? {
            flight.complete();
            return Ok((rec, None));
        }
        tracing::debug!(container = %rec.id, remove_volumes, "rm: removal claimed");
        self.take_fresh(&rec.id);
        // Networked ahead of a start that never came: no `connect` was sent, so no
        // `disconnect` goes either.
        if self.take_connect_events(&rec.id) {
            self.claim_prepared(&rec.id);
            // A failure leaves it to the teardown's release (with the events then).
            let _ = self.release_network_unannounced(&rec.id);
        }
        hako_sys::crash::point("rm.claimed");
        if defer && self.unseen_after_exit(&rec, status, remove_volumes)? {
            // As `teardown` does: the finishing shim runs no exit command.
            let _ = std::fs::write(self.state_dir(&rec.id).join(protocol::REMOVING_FILE), b"");
            // Docker's order: the network's `disconnect` before the container's `destroy`.
            for (_, n) in self.net.attachments(&rec.id).unwrap_or_default() {
                self.network_event("disconnect", &n.id, &n.name, &n.driver, Some(&rec.id));
            }
            let res = self.teardown_record(&rec, Vec::new(), false);
            if let Err(e) = res {
                let _ = records::unclaim_removal(&self.conn(), &rec.id);
                return flight.finish(Err(e));
            }
            self.tails.begin();
            let tail = Tail {
                engine: self,
                rec: rec.clone(),
                flight: Some(flight),
            };
            return Ok((rec, Some(tail)));
        }
        let res = self.teardown(&rec, remove_volumes, Some(status));
        if res.is_err() {
            let _ = records::unclaim_removal(&self.conn(), &rec.id);
        }
        flight.finish(res.map(|()| (rec, None)))
    }

    /// Whether what is left of `rec` once its record is gone can be removed after the
    /// caller's answer with nobody able to tell: it exited alone (no process left), and
    /// its network is the default bridge (no name in a resolver) with no published port
    /// (none for the next container to find taken), or none at all; no anonymous volume
    /// (`volume ls`) goes with it.
    fn unseen_after_exit(
        &self,
        rec: &Record,
        status: Status,
        remove_volumes: bool,
    ) -> Result<bool> {
        use super::network::{Mode, mode_of};
        let network_unseen = match mode_of(&rec.host_config) {
            Mode::Bridge(n) => n == "bridge" && self.network_after_shim(rec),
            Mode::None | Mode::Host => !self.opts.rootless,
            Mode::Container(_) => false,
        };
        Ok(network_unseen
            && self.exited_alone(rec, Some(status))
            && (!remove_volumes || volumes::anonymous_of(&self.conn(), &rec.id)?.is_empty()))
    }

    /// Removes everything of a container claimed for removal (or left half-made by a
    /// create): runtime state, root filesystem, directories, then the record last (so a
    /// failure can be retried), then its anonymous volumes if asked. `status`: the
    /// container's, if the caller looked already.
    pub(crate) fn teardown(
        &self,
        rec: &Record,
        remove_volumes: bool,
        status: Option<Status>,
    ) -> Result<()> {
        // The shim of an exited container reports the exit first, then runs `RUNTIME
        // delete` and removes its files. When the container had a PID namespace of its
        // own nothing of it runs any more (the kernel kills the namespace's processes
        // before its init's exit is reported), so its network and root filesystem go
        // meanwhile (both wait on RCU grace periods in the kernel), whether its shim is
        // still finishing or done already; the runtime's state and the directories wait
        // for the shim.
        let overlap = self.exited_alone(rec, status);
        // Tells a finishing shim to skip its exit command: the removal is ours now (a
        // failure below leaves the record for the next `rm`, which redoes what the command
        // would have done). A shim already past that point runs it, and it finds the
        // removal under way and exits.
        let _ = std::fs::write(self.state_dir(&rec.id).join(protocol::REMOVING_FILE), b"");
        if overlap {
            self.release_exited(rec, true)?;
        }
        self.wait_shim_gone(&rec.id, Duration::from_secs(10));
        if !overlap {
            self.release_network(&rec.id, true)?;
            self.net.forget(&rec.id)?;
        }
        let runtime_state = self.runtime_root(&rec.runtime).join(&rec.id);
        if runtime_state.exists() {
            let _ = self.runtime_run(rec, "delete", &["delete", "--force", &rec.id]);
        }
        hako_sys::crash::point("rm.runtime");
        if !overlap {
            self.release_rootfs(rec)?;
        }
        tracing::debug!(container = %rec.id, "rm: runtime state and root filesystem gone");
        hako_sys::crash::point("rm.rootfs");
        // Claimed for removal before the record goes: a crash later leaves `removing`
        // volumes that the recovery finishes, never anonymous volumes nobody owns.
        let anon = if remove_volumes {
            volumes::claim_anonymous(&self.conn(), &rec.id)?
        } else {
            Vec::new()
        };
        for d in [self.state_dir(&rec.id), self.container_dir(&rec.id)] {
            crate::recovery::remove_tree(&d)?;
        }
        hako_sys::crash::point("rm.dirs");
        self.teardown_record(rec, anon, true)
    }

    /// The end of a removal: the record, its lock files, exec sessions, the `destroy`
    /// event, then the anonymous volumes claimed with it.
    fn teardown_record(&self, rec: &Record, anon: Vec<String>, dirs_gone: bool) -> Result<()> {
        records::delete(&self.conn(), &rec.id)?;
        // After the record: a process that opens the lock file from now on (the shim's
        // exit command unmounting a stopped container, a start) makes it anew, finds no
        // record and removes it; one that made it before the record went would keep it.
        crate::locks::remove(&self.opts.exec_root, &rec.id);
        match dirs_gone {
            true => {
                tracing::debug!(container = %rec.id, volumes = ?anon, "rm: directories and record gone");
            }
            false => {
                tracing::debug!(container = %rec.id, "rm: record gone (the rest follows the answer)");
            }
        }
        hako_sys::crash::point("rm.record");
        self.drop_exec_sessions(&rec.id);
        self.container_event(rec, "destroy", &[]);
        for v in anon {
            if volumes::finish_removal(&self.conn(), &self.opts.root, &v).is_ok() {
                self.volume_event(&v, "destroy");
            }
        }
        Ok(())
    }

    /// Whether `rec` exited (its shim recorded the exit) and no process of it can be left:
    /// a PID namespace of its own (with `--pid host` or `container:X` others may outlive
    /// its init until `RUNTIME delete --force` kills them). Its network then goes with its
    /// namespace's unmount, never by deleting the interfaces (which waits for RCU grace
    /// periods), also when its shim is gone already: a third of `docker run --rm`s here.
    fn exited_alone(&self, rec: &Record, status: Option<Status>) -> bool {
        rec.host_config.pid_mode.as_deref().unwrap_or("").is_empty()
            && status.unwrap_or_else(|| self.live(rec).status) == Status::Exited
    }

    /// The network (with `disconnect` events if `events`) and the root filesystem of a
    /// container that exited alone, side by side: each is ~1 ms, mostly waiting in the
    /// kernel (RCU grace periods).
    fn release_exited(&self, rec: &Record, events: bool) -> Result<()> {
        let network = || -> Result<()> {
            match events {
                true => self.release_network_after_exit(&rec.id)?,
                false => self.release_network_quietly(&rec.id)?,
            }
            Ok(self.net.forget(&rec.id)?)
        };
        let (network, rootfs) = std::thread::scope(|s| {
            let thread = std::thread::Builder::new()
                .name("hako-rm-net".into())
                .spawn_scoped(s, network);
            let rootfs = self.release_rootfs(rec);
            let network = match thread {
                Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                // No thread to be had: here, after the root filesystem.
                Err(_) => network(),
            };
            (network, rootfs)
        });
        network.and(rootfs)
    }

    /// The container's shareable /dev/shm and its root filesystem.
    fn release_rootfs(&self, rec: &Record) -> Result<()> {
        self.unmount_shm(&rec.id);
        if rec.rootfs_managed {
            match self.images.release_rootfs(&rec.id) {
                Ok(()) | Err(hako_image::Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// What the shim's exit command runs (in place of the shim, with its pid): give the
    /// container's network back, and remove `--rm` containers with their anonymous
    /// volumes, if they still exist and still want to be removed.
    pub fn cleanup(&self, what: &str) -> Result<()> {
        // A foreground `run --rm` removes the container itself, after it read the exit
        // code: wait for it to finish (or die).
        if let Ok(rec) = self.get(what) {
            crate::locks::await_attached(&self.opts.exec_root, &rec.id)?;
        }
        let rec = match self.get(what) {
            Ok(r) => r,
            Err(Error::NoSuchContainer(_)) => {
                if what.len() == 64 && what.bytes().all(|b| b.is_ascii_hexdigit()) {
                    crate::locks::remove(&self.opts.exec_root, what);
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if self.live(&rec).status.is_active() {
            return Ok(());
        }
        self.release_network(&rec.id, false)?;
        if rec.host_config.auto_remove != Some(true) {
            self.unmount_stopped(&rec);
            return Ok(());
        }
        self.remove(&rec.id, false, true).map(|_| ())
    }
}

/// What a removal left for after its caller's answer ([`Engine::remove_exited`]): the
/// network, root filesystem, runtime state and directories of a container whose record is
/// gone. Its flight stays open until [`Tail::finish`]: a process killed before that
/// leaves the marker, and the next open's recovery removes what no record owns.
#[derive(Debug)]
pub(crate) struct Tail<'a> {
    engine: &'a Engine,
    rec: Record,
    flight: Option<hako_image::Flight<'a>>,
}

impl Tail<'_> {
    /// Removes what is left (a failure is logged; the recovery tries again), on a thread
    /// of its own at the lowest priority: the client that had the answer goes first.
    pub fn finish(mut self) {
        let ran = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("hako-rm-tail".into())
                .spawn_scoped(s, || {
                    hako_sys::process::lowest_priority_for_this_thread();
                    self.run();
                })
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .is_ok()
        });
        if !ran {
            self.run();
        }
    }

    fn run(&mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        let (engine, rec) = (self.engine, &self.rec);
        hako_sys::crash::point("rm.tail");
        let res = engine.release_exited(rec, false).and_then(|()| {
            engine.wait_shim_gone(&rec.id, Duration::from_secs(10));
            let runtime_state = engine.runtime_root(&rec.runtime).join(&rec.id);
            if runtime_state.exists() {
                let _ = engine.runtime_run(rec, "delete", &["delete", "--force", &rec.id]);
            }
            hako_sys::crash::point("rm.tail-dirs");
            for d in [engine.state_dir(&rec.id), engine.container_dir(&rec.id)] {
                crate::recovery::remove_tree(&d)?;
            }
            Ok(())
        });
        if let Err(e) = &res {
            tracing::warn!(container = %rec.id, "finishing the removal: {e}; the next open tries again");
        }
        let _ = flight.finish(res);
        engine.tails.end();
    }
}

impl Drop for Tail<'_> {
    /// Not finished by its holder (a panic on the way): done here.
    fn drop(&mut self) {
        self.run();
    }
}

/// The removals whose [`Tail`] is still running.
#[derive(Debug, Default)]
pub(crate) struct Tails {
    pending: std::sync::Mutex<usize>,
    cv: std::sync::Condvar,
}

impl Tails {
    fn begin(&self) {
        *self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    }

    fn end(&self) {
        let mut n = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.cv.notify_all();
        }
    }
}

impl Engine {
    /// Whether removals are finishing after their answers ([`Engine::settle`] waits).
    pub fn removals_finishing(&self) -> bool {
        *self
            .tails
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            > 0
    }

    /// Waits (at most `timeout`) until every removal finished what it left for after its
    /// answer: a server does before each request, so that no request sees half of one
    /// (an image whose layers a gone container still holds, say), and before it ends.
    pub fn settle(&self, timeout: Duration) {
        let n = self
            .tails
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = self
            .tails
            .cv
            .wait_timeout_while(n, timeout, |n| *n > 0)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

/// The exit command's first step, before it opens the engine (the store, the network
/// state, the recovery of others' crashes: most of its cost): waits for whoever holds the
/// container's removal lock (a foreground `run --rm`, or `hako serve` answering a
/// `wait?condition=removed`: each removes the container at its exit) and tells whether
/// there is still anything to do. `false` when the container's directory is gone: its
/// removal ran past the directories (a remover that died after that left a `removing`
/// record, which the next open's recovery finishes).
pub fn cleanup_needed(root: &Path, exec_root: &Path, id: &str) -> Result<bool> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(true);
    }
    let dir = root.join("containers").join(id);
    if dir.exists() {
        crate::locks::await_attached(exec_root, id)?;
    }
    if dir.exists() {
        return Ok(true);
    }
    // The lock files this process may have made again after the removal.
    crate::locks::remove(exec_root, id);
    Ok(false)
}
