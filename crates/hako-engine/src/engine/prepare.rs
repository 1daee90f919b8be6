//! A start made ahead of need: `hako serve` spawns the shim of a container it has just
//! created (the network, the shim, `RUNTIME create`: ~8 ms, nothing runs yet) while the
//! client reads the create's answer and sends its next requests, since Docker clients
//! start what they create at once (`docker run`'s create, attach, wait, start).
//!
//! The preparation holds the container's lock from the create on, so a start (of this
//! process or another) waits for it and then finds the shim up. An attach made meanwhile
//! answers at once and takes the lock over when the preparation is done, so that no start
//! runs before the attach is connected (the attach's two halves, attach.rs). A container
//! still not started a while later gets its shim ended (`Engine::unmount_unstarted`):
//! created by `docker create`, it holds no process, address or namespace.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::locks::ContainerLock;
use crate::records::Record;
use crate::state::Status;

use super::Engine;
use super::network::{Mode, mode_of};

/// The preparations of one engine.
#[derive(Debug, Default)]
pub(crate) struct Preparations {
    /// Under way, by container id.
    running: Mutex<HashMap<String, Arc<Preparation>>>,
    /// Done, with a shim up that no attach or start has claimed yet.
    unclaimed: Mutex<HashSet<String>>,
    /// Networked ahead: the `connect` events wait for the start (Docker sends them then).
    connects: Mutex<HashSet<String>>,
    /// Made ahead and not started since: created, its shim up. A start of this process
    /// takes the mark under the container's lock and skips its look at the state.
    fresh: Mutex<HashSet<String>>,
}

/// One preparation under way.
#[derive(Debug, Default)]
pub(crate) struct Preparation {
    state: Mutex<PrepState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct PrepState {
    done: bool,
    /// The shim is up (the container created by the runtime, under this lock).
    spawned: bool,
    /// An attach waits for this preparation: the lock goes to it.
    wanted: bool,
    lock: Option<ContainerLock>,
}

impl Preparation {
    /// Waits until the preparation is done (a start's time at most); the container's
    /// lock it hands over, and whether the shim is up.
    pub(crate) fn wait(&self) -> (Option<ContainerLock>, bool) {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut st, _) = self
            .cv
            .wait_timeout_while(st, std::time::Duration::from_secs(60), |s| !s.done)
            .unwrap_or_else(PoisonError::into_inner);
        (st.lock.take(), st.spawned)
    }
}

impl Engine {
    /// Whether the start of `rec` can be made ahead: its network is the default bridge
    /// without published ports (set up beside the shim's start), none or the host's; it
    /// joins no other container's namespaces; not rootless. Others start as before.
    fn preparable(&self, rec: &Record) -> bool {
        let network = match mode_of(&rec.host_config) {
            Mode::Bridge(n) => n == "bridge" && self.network_after_shim(rec),
            Mode::None | Mode::Host => true,
            Mode::Container(_) => false,
        };
        network
            && !self.opts.rootless
            && rec.rootfs_managed
            && super::joins::joins(&rec.host_config).is_empty()
            && rec.host_config.ipc_mode.as_deref() != Some("shareable")
    }

    /// Begins the start ahead of container `id`, just created: takes its lock (nobody else
    /// holds it yet, or nothing is done) and registers the preparation, which
    /// [`Engine::prepare_run`] makes (on another thread: the caller answers meanwhile).
    /// `false`: none begun.
    pub fn prepare_begin(&self, rec: &Record) -> bool {
        if !self.preparable(rec) {
            return false;
        }
        let Ok(Some(lock)) = crate::locks::try_lock(&self.opts.exec_root, &rec.id) else {
            return false;
        };
        let prep = Arc::new(Preparation::default());
        prep.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lock = Some(lock);
        self.preps
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(rec.id.clone(), prep);
        true
    }

    /// Makes the preparation [`Engine::prepare_begin`] began: the shim, if the container
    /// is still created with none. A failure is only logged: the start that comes makes
    /// the shim itself and answers with the error.
    pub fn prepare_run(&self, id: &str) {
        let Some(prep) = self
            .preps
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
        else {
            return;
        };
        let spawned = match self.get(id) {
            Ok(rec) => {
                let live = self.live(&rec);
                live.status == Status::Created && !live.monitor && {
                    match self.spawn_shim_with_events(&rec, false) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::debug!(container = %id, "the start made ahead failed: {e}");
                            false
                        }
                    }
                }
            }
            Err(_) => false,
        };
        if spawned {
            self.preps
                .fresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.to_string());
        }
        let mut st = prep.state.lock().unwrap_or_else(PoisonError::into_inner);
        // An attach that came meanwhile claimed the shim already (the end of an unstarted
        // container leaves it alone).
        if spawned && !st.wanted {
            self.preps
                .unclaimed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.to_string());
        }
        self.preps
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        st.done = true;
        st.spawned = spawned;
        if !st.wanted {
            st.lock = None;
        }
        drop(st);
        prep.cv.notify_all();
    }

    /// For an attach to created container `id`: the preparation under way, which hands
    /// it the container's lock once done (see [`Preparation::wait`]); `None` when there
    /// is none. Either way the shim is the attach's from now on (see
    /// [`Engine::end_unclaimed`]).
    pub(crate) fn prepared_for_attach(&self, id: &str) -> Option<Arc<Preparation>> {
        self.claim_prepared(id);
        let prep = self
            .preps
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()?;
        let mut st = prep.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.done {
            return None;
        }
        st.wanted = true;
        drop(st);
        Some(prep)
    }

    /// The network `connect` events of `id` go out at its start.
    pub(crate) fn connect_events_later(&self, id: &str) {
        self.preps
            .connects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string());
    }

    /// Whether `id`'s `connect` events wait for its start; forgets it.
    pub(crate) fn take_connect_events(&self, id: &str) -> bool {
        self.preps
            .connects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Whether a start of `id` is being made ahead (the container is created and holds
    /// still until it is done).
    pub(crate) fn preparing(&self, id: &str) -> bool {
        self.preps
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }

    /// The shim made ahead for `id` is claimed (an attach): left alone by
    /// [`Engine::end_unclaimed`].
    pub(crate) fn claim_prepared(&self, id: &str) {
        self.take_unclaimed(id);
    }

    /// Whether the shim of `id` was made ahead and nobody claimed it since; forgets it.
    pub(crate) fn take_unclaimed(&self, id: &str) -> bool {
        self.preps
            .unclaimed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Whether `id` was made ahead and not started since (see `Preparations::fresh`);
    /// forgets it. Only under the container's lock.
    pub(crate) fn take_fresh(&self, id: &str) -> bool {
        self.preps
            .fresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Ends the shims made ahead that no start or attach came for (a server's end).
    pub fn end_unclaimed(&self) {
        let ids: Vec<String> = self
            .preps
            .unclaimed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        for id in ids {
            self.unmount_unstarted(&id);
        }
    }
}
