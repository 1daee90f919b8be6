//! Who may change the store, and how a crash is noticed: flights, pins and the GC lock.
//!
//! ```text
//! <root>/locks/gc.lock           flock: SHARED by every flight, EXCLUSIVE for garbage collection
//! <root>/locks/flight/<kind>-<token>
//!                                one file per flight, flock'ed EXCLUSIVE by its owner and
//!                                unlinked when the flight ends
//! layer_pins (table)             chain ids a flight relies on before its own transaction
//!                                references them (owner = the flight's token)
//! ```
//!
//! Every operation that writes files or rows that are not yet (or no longer) referenced by
//! a committed record is a *flight*: pull, load, import, commit, container root filesystems
//! made and released, image removal, and in the engine container create/remove and volume
//! create/remove. A flight holds `gc.lock` shared for its whole life, so garbage collection
//! (which holds it exclusive) never sees half-made state and never races a removal.
//!
//! A flight ends either completed ([`Flight::complete`]: the marker goes) or not (an
//! error, a panic, a kill: the marker stays, unlocked). A process killed mid-flight, or one
//! whose operation failed half-way, thus leaves a marker no longer locked by anyone.
//! [`ImageStore::open`] looks for such markers (one `readdir`, usually empty) and only then
//! tries the exclusive lock *without waiting*: the one process that gets it collects
//! garbage, the others go on (the next open tries again). So an open costs no scan of the
//! store unless something crashed, and two processes never collect at the same time.
//!
//! A thread that holds the exclusive lock (recovery runs the engine's cleanup under it)
//! may still call operations that start flights: on that thread they start without
//! locking (they would wait for the thread itself otherwise).
//!
//! A flight that finds a layer already in the store (an unpack reusing a base layer) pins
//! it in the same statement that checks it exists; a concurrent `rmi` never deletes a
//! pinned layer (nor, through `parent`, anything below it). Pins go when the flight ends;
//! pins of a crashed flight go with the next collection.

use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use hako_sys::sqlite::Cached;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, IoContext, Result};
use crate::store::ImageStore;

/// Marker kind of the image store's own flights.
pub const KIND_IMAGE: &str = "img";

thread_local! {
    /// Exclusive locks this thread holds (of any store).
    static EXCLUSIVE_HERE: Cell<u32> = const { Cell::new(0) };
}

/// An operation in progress (see the module docs). Ends when dropped.
#[derive(Debug)]
pub struct Flight<'a> {
    store: &'a ImageStore,
    kind: String,
    token: String,
    /// The marker and its lock, and the shared GC lock; none under this thread's own
    /// exclusive lock.
    locks: Option<(PathBuf, Flock<File>, Flock<File>)>,
    pinned: AtomicBool,
    /// Files the flight made unneeded (the blobs of layers registered with a tar-split
    /// record): collected at its end like a removal's.
    garbage: AtomicBool,
    completed: bool,
}

impl Flight<'_> {
    /// Ends the flight: everything it made is referenced by committed rows, or gone.
    /// A flight dropped without this (an error on the way) leaves its marker, so that the
    /// next open collects what it may have left.
    pub fn complete(mut self) {
        if self.garbage.load(Ordering::Relaxed) {
            return self.leave_garbage();
        }
        self.completed = true;
    }

    /// Notes that the flight made files unneeded that other flights in progress may still
    /// read (a layer blob, once its layer is unpacked with a tar-split record): the flight
    /// ends as [`Flight::leave_garbage`] does.
    pub(crate) fn leaves_garbage(&self) {
        self.garbage.store(true, Ordering::Relaxed);
    }

    /// Ends the flight with garbage left for a collection: files that may be shared with
    /// an operation in flight in another process (the blobs of a removed image), which only
    /// a collection under the exclusive lock may remove. An image flight collects at once
    /// if no other flight is in progress; else the next open that finds the marker does.
    pub fn leave_garbage(self) {
        let (store, image) = (self.store, self.kind == KIND_IMAGE);
        drop(self);
        if image && let Err(e) = store.recover(&[KIND_IMAGE], |_| Ok::<(), Error>(())) {
            tracing::warn!(error = %e, "collecting garbage failed; the next open tries again");
        }
    }

    /// [`Flight::complete`] if `r` is `Ok`, else [`Flight::leave_garbage`] (what a failed
    /// operation made is collected); passes `r` through.
    pub fn finish<T, E>(self, r: std::result::Result<T, E>) -> std::result::Result<T, E> {
        if r.is_ok() {
            self.complete();
        } else {
            self.leave_garbage();
        }
        r
    }

    /// Pins layer `chain` (and so everything below it) for the rest of the flight; false
    /// if it is not in the store. A build pins every state it builds on, so that another
    /// build replacing a cache entry never deletes a layer this one still uses.
    pub fn pin_layer(&self, chain: &crate::Digest) -> Result<bool> {
        self.pin(chain.as_str())
    }

    /// Pins every layer of `chains` for the rest of the flight, in one transaction (a build
    /// that deferred its pins while it only read). Returns the first that is not in the
    /// store, if any; then none is pinned.
    pub fn pin_layers(&self, chains: &[crate::Digest]) -> Result<Option<crate::Digest>> {
        if chains.is_empty() {
            return Ok(None);
        }
        let mut conn = self.store.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for c in chains {
            let n = tx.execute_cached(
                "INSERT INTO layer_pins (chain_id, owner) SELECT chain_id, ?2 FROM layers WHERE chain_id = ?1",
                rusqlite::params![c.as_str(), self.token],
            )?;
            if n == 0 {
                return Ok(Some(c.clone()));
            }
        }
        tx.commit()?;
        self.pinned.store(true, Ordering::Relaxed);
        Ok(None)
    }

    /// Pins layer `chain_id` for the rest of the flight if it exists; false if it does not
    /// (gone, or never there).
    pub(crate) fn pin(&self, chain_id: &str) -> Result<bool> {
        let n = self.store.conn().execute_cached(
            "INSERT INTO layer_pins (chain_id, owner) SELECT chain_id, ?2 FROM layers WHERE chain_id = ?1",
            rusqlite::params![chain_id, self.token],
        )?;
        if n > 0 {
            self.pinned.store(true, Ordering::Relaxed);
        }
        Ok(n > 0)
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        if self.pinned.load(Ordering::Relaxed)
            && let Err(e) = self
                .store
                .conn()
                .execute_cached("DELETE FROM layer_pins WHERE owner = ?1", [&self.token])
        {
            // Left for the next collection (prune, or an open after a crash).
            tracing::warn!(error = %e, "release layer pins");
        }
        if let Some((marker, _, _)) = &self.locks
            && self.completed
        {
            let _ = std::fs::remove_file(marker);
        }
    }
}

/// The exclusive GC lock: no flight is in progress while it is held.
#[derive(Debug)]
pub struct Exclusive {
    _gc: Flock<File>,
}

impl Exclusive {
    fn new(gc: Flock<File>) -> Exclusive {
        EXCLUSIVE_HERE.with(|c| c.set(c.get() + 1));
        Exclusive { _gc: gc }
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        EXCLUSIVE_HERE.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

fn open_lock(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ctx(|| format!("open {}", path.display()))
}

fn flock(f: File, arg: FlockArg, what: &str) -> Result<Option<Flock<File>>> {
    match Flock::lock(f, arg) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(Error::io(format!("lock {what}"), e.into())),
    }
}

impl ImageStore {
    fn flight_dir(&self) -> PathBuf {
        self.root.join("locks").join("flight")
    }

    fn gc_lock(&self, arg: FlockArg) -> Result<Option<Flock<File>>> {
        let f = open_lock(&self.root.join("locks").join("gc.lock"))?;
        flock(f, arg, "gc.lock")
    }

    /// Starts a flight of `kind` (a short word: `img`, `eng`): waits while garbage is
    /// being collected. Engine operations that leave state outside the image store's
    /// records (container directories, volumes) start their own flights.
    pub fn begin_flight(&self, kind: &str) -> Result<Flight<'_>> {
        let token = crate::random_hex(12);
        if EXCLUSIVE_HERE.with(Cell::get) > 0 {
            return Ok(Flight {
                store: self,
                kind: kind.to_string(),
                token,
                locks: None,
                pinned: AtomicBool::new(false),
                garbage: AtomicBool::new(false),
                completed: false,
            });
        }
        let gc = self
            .gc_lock(FlockArg::LockShared)?
            .ok_or_else(|| Error::io("lock gc.lock", std::io::ErrorKind::WouldBlock.into()))?;
        let dir = self.flight_dir();
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let marker = dir.join(format!("{kind}-{token}"));
        let f = File::options()
            .create_new(true)
            .write(true)
            .open(&marker)
            .ctx(|| format!("create {}", marker.display()))?;
        // Waiting, not failing: between the create and this lock another process's open
        // may be probing the new marker (`crashed_flights`: a lock taken and dropped at
        // once). Nothing else ever locks a marker (collection needs gc.lock exclusive,
        // which this flight's shared lock keeps away), so the wait is that probe's.
        let lock = match flock(f, FlockArg::LockExclusive, "flight marker") {
            Ok(Some(l)) => l,
            Ok(None) => {
                let _ = std::fs::remove_file(&marker);
                return Err(Error::io(
                    "lock flight marker",
                    std::io::ErrorKind::WouldBlock.into(),
                ));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&marker);
                return Err(e);
            }
        };
        tracing::debug!(flight = %token, kind, "flight begins");
        Ok(Flight {
            store: self,
            kind: kind.to_string(),
            token,
            locks: Some((marker, lock, gc)),
            pinned: AtomicBool::new(false),
            garbage: AtomicBool::new(false),
            completed: false,
        })
    }

    /// A flight of the image store itself.
    pub(crate) fn in_flight(&self) -> Result<Flight<'_>> {
        self.begin_flight(KIND_IMAGE)
    }

    /// Whether a process died in a flight whose kind is one of `kinds` (its marker is
    /// there and nobody holds it).
    pub fn crashed_flights(&self, kinds: &[&str]) -> Result<bool> {
        let dir = self.flight_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !kinds
                .iter()
                .any(|k| name.strip_prefix(k).is_some_and(|r| r.starts_with('-')))
            {
                continue;
            }
            // Gone meanwhile: its flight ended.
            let Ok(f) = File::open(e.path()) else {
                continue;
            };
            if flock(f, FlockArg::LockExclusiveNonblock, "flight marker")?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The exclusive GC lock if no flight is in progress now, without waiting.
    pub fn try_exclusive(&self) -> Result<Option<Exclusive>> {
        Ok(self
            .gc_lock(FlockArg::LockExclusiveNonblock)?
            .map(Exclusive::new))
    }

    /// The exclusive GC lock, waiting for the flights in progress to end. Never call it
    /// while this process is in a flight: it would wait for itself.
    pub fn exclusive(&self) -> Result<Exclusive> {
        let gc = self
            .gc_lock(FlockArg::LockExclusive)?
            .ok_or_else(|| Error::io("lock gc.lock", std::io::ErrorKind::WouldBlock.into()))?;
        Ok(Exclusive::new(gc))
    }

    /// Forgets the flights of `kinds` that crashed (all of them: none is in progress while
    /// `_lock` is held) once their leftovers are collected. Returns how many there were.
    pub fn clear_crashed_flights(&self, _lock: &Exclusive, kinds: &[&str]) -> Result<usize> {
        let dir = self.flight_dir();
        let mut n = 0;
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if kinds
                .iter()
                .any(|k| name.strip_prefix(k).is_some_and(|r| r.starts_with('-')))
                && std::fs::remove_file(e.path()).is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }
}
