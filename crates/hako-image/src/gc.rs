//! Garbage collection: `docker image prune`, and the cleanup after a crashed operation.
//!
//! Collection holds the exclusive GC lock (flight.rs), so no operation is half-way while it
//! runs: every layer directory, blob or temporary file that no committed row references is
//! garbage, and so is every pin.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::flight::Exclusive;
use crate::store::{ImageStore, PruneReport, RemoveAction, column, delete_dead_layers};

impl ImageStore {
    /// `docker image prune`: deletes dangling images (no tag), or with `all` every image
    /// no container uses, then collects garbage (unreferenced layers and blobs, leftovers
    /// of interrupted operations). Waits for the operations of other processes in flight.
    pub fn prune(&self, all: bool) -> Result<PruneReport> {
        let candidates: Vec<String> = {
            let conn = self.conn();
            let sql = if all {
                "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM container_layers)"
            } else {
                "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM tags)
                   AND id NOT IN (SELECT image_id FROM container_layers)"
            };
            let mut stmt = conn.prepare(sql)?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut deleted = Vec::new();
        for id in candidates {
            let actions = match self.remove(&id, true) {
                Ok(a) => a,
                // Removed by another process meanwhile.
                Err(Error::NoSuchImage(_)) => continue,
                Err(e) => return Err(e),
            };
            for a in actions {
                if let RemoveAction::Deleted(d) = a {
                    deleted.push(d);
                }
            }
        }
        let lock = self.exclusive()?;
        let mut report = self.collect_garbage(&lock)?;
        report.temp_removed += self.blobs.cleanup_partial(std::time::Duration::ZERO)?;
        report.images_deleted = deleted;
        Ok(report)
    }

    /// If a process died in a flight of one of `kinds` and no flight is in progress now,
    /// runs `extra` (the caller's own cleanup) and then collects garbage, under the
    /// exclusive lock; else does nothing (another process does it, or the next open).
    /// Returns whether it collected.
    pub fn recover<E: From<Error>>(
        &self,
        kinds: &[&str],
        extra: impl FnOnce(&Exclusive) -> Result<(), E>,
    ) -> Result<bool, E> {
        if !self.crashed_flights(kinds)? {
            return Ok(false);
        }
        let Some(lock) = self.try_exclusive()? else {
            tracing::debug!(
                "an interrupted operation left garbage; another process is busy, collecting later"
            );
            return Ok(false);
        };
        extra(&lock)?;
        let report = self.collect_garbage(&lock)?;
        let flights = self.clear_crashed_flights(&lock, kinds)?;
        tracing::info!(flights, ?report, "cleaned up after interrupted operations");
        Ok(true)
    }

    /// Removes unreferenced layers, layer dirs and blobs, temporaries, and pins. `_lock`
    /// proves that nothing is in flight.
    pub fn collect_garbage(&self, _lock: &Exclusive) -> Result<PruneReport> {
        // Partial registry downloads are kept for a day so an interrupted pull resumes.
        let stale = std::time::Duration::from_secs(24 * 3600);
        let mut report = PruneReport {
            temp_removed: self.blobs.cleanup_temp()? + self.blobs.cleanup_partial(stale)?,
            ..PruneReport::default()
        };
        self.driver.cleanup()?;
        let (dead, live_dirs, live_blobs) = {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM layer_pins", [])?;
            let dead = delete_dead_layers(&tx)?;
            tx.execute(
                "DELETE FROM blob_sources WHERE diff_id NOT IN (SELECT diff_id FROM layers)",
                [],
            )?;
            let live_dirs: HashSet<String> = column(
                &tx,
                "SELECT cache_id FROM layers UNION SELECT rw_cache_id FROM container_layers",
            )?;
            let live_blobs: HashSet<String> = column(
                &tx,
                "SELECT id FROM images UNION SELECT manifest_digest FROM images WHERE manifest_digest IS NOT NULL
                 UNION SELECT COALESCE(tar_split, blob_digest) FROM layers
                   WHERE COALESCE(tar_split, blob_digest) IS NOT NULL",
            )?;
            tx.commit()?;
            (dead, live_dirs, live_blobs)
        };
        for id in self.driver.list()? {
            if !live_dirs.contains(&id) || dead.contains(&id) {
                report.space_reclaimed += self.driver.size(&id).unwrap_or(0);
                self.driver.remove(&id)?;
                report.layers_removed += 1;
            }
        }
        for (d, size) in self.blobs.list()? {
            if !live_blobs.contains(d.as_str()) {
                self.blobs.remove(&d)?;
                report.blobs_removed += 1;
                report.space_reclaimed += size;
            }
        }
        Ok(report)
    }
}
