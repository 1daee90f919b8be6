//! The build cache (`hako build`): step results by cache key, in the same SQLite file as
//! the images, so the cache survives between builds and between processes.
//!
//! ```text
//! build_cache   key PK (the builder's step key), top_layer -> layers (the filesystem
//!               after the step; NULL for an empty one), created (RFC 3339, reused by
//!               rebuilds so their images are identical), empty (the step made no
//!               layer), size (bytes the step's own layer takes), last_used, uses
//!               (the run that made it and every cache hit)
//! build_memo    key PK, value: what a build derived from an immutable state and would
//!               otherwise derive again (the content digest of files selected in a
//!               layer chain: `COPY --from` keys without mounting the source); no
//!               references, dropped by every `builder prune`
//! ```
//!
//! An entry holds a reference on every layer of its chain, exactly as an image does, so
//! `rmi` of a base image keeps the layers a cached step needs, and `builder prune`
//! releases them. A step's layer and its entry are registered in one transaction: a
//! crash leaves either both or an unreferenced layer that garbage collection removes,
//! never an entry pointing at nothing.
//!
//! Build containers get a root filesystem on a layer chain (not on an image) with
//! [`ImageStore::prepare_rootfs_on_chain`]; they are ordinary container layers for GC.

use rusqlite::{OptionalExtension, params};

use crate::db;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::import::{now_rfc3339_nanos, parse_tag};
use crate::store::{
    ImageStore, LayerSource, RootfsMount, Source, chain_of, delete_dead_layers, insert_layers,
};

/// A cached step result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCacheEntry {
    /// The filesystem after the step.
    pub top_layer: Option<Digest>,
    /// When the step ran first.
    pub created: String,
    /// The step changed nothing.
    pub empty: bool,
}

/// What `builder prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildPruneReport {
    /// Cache entries removed.
    pub entries: usize,
    /// Layer directories freed.
    pub layers_removed: usize,
    /// Bytes freed.
    pub space_reclaimed: u64,
}

/// Build cache usage for `system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildCacheUsage {
    /// Entries.
    pub entries: u64,
    /// Bytes of the layers the cache added (each layer once).
    pub size: u64,
    /// Of those, bytes no image uses (freed by a prune).
    pub reclaimable: u64,
}

/// One build cache entry as `system df -v` lists it (Docker's `CacheRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCacheRecord {
    /// The step's cache key.
    pub key: String,
    /// Bytes the step's own layer takes (0 for a step that made none).
    pub size: u64,
    /// When the step ran first (RFC 3339).
    pub created: String,
    /// When a build last used it (Unix seconds).
    pub last_used: i64,
    /// The run that made it and every cache hit since.
    pub uses: u64,
    /// Its layer is held by an image or a container too: a `builder prune` does not free it.
    pub shared: bool,
}

/// The digest of an empty layer tar (two zero blocks).
fn empty_layer() -> Digest {
    Digest::of(&[0u8; 1024])
}

impl ImageStore {
    /// The entry for `key`, if any. A read only: the caller notes the hit with
    /// [`ImageStore::build_cache_note_uses`] (a cached rebuild writes nothing to the
    /// database, so its connections close without a checkpoint).
    pub fn build_cache_get(&self, key: &str) -> Result<Option<BuildCacheEntry>> {
        let conn = self.conn();
        let row: Option<(Option<String>, String, bool)> = conn
            .query_row(
                "SELECT top_layer, created, empty FROM build_cache WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((top, created, empty)) = row else {
            return Ok(None);
        };
        Ok(Some(BuildCacheEntry {
            top_layer: top.map(|t| Digest::parse(&t)).transpose()?,
            created,
            empty,
        }))
    }

    /// The memo recorded under `key`, if any.
    pub fn build_memo_get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM build_memo WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Records `value` under `key` (replacing what was there).
    pub fn build_memo_put(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO build_memo (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    /// Records `entry` under `key` (a step whose result already exists, such as a
    /// `mkdir` of a directory that was there). An entry with the same result is kept;
    /// another one is replaced. Returns the entry in effect.
    pub fn build_cache_put(&self, key: &str, entry: &BuildCacheEntry) -> Result<BuildCacheEntry> {
        let flight = self.in_flight()?;
        let r = (|| {
            if let Some(t) = &entry.top_layer
                && !flight.pin(t.as_str())?
            {
                return Err(Error::bad(format!("layer {t} is not in the store")));
            }
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let r = upsert_entry(&tx, key, entry, 0)?;
            tx.commit()?;
            Ok(r)
        })();
        self.end_with_dead(flight, r)
    }

    /// Removes the layer directories an entry replacement freed and ends the flight
    /// (their blobs are left for the next collection, as `rmi` leaves them).
    fn end_with_dead(
        &self,
        flight: crate::Flight<'_>,
        r: Result<(BuildCacheEntry, Vec<String>)>,
    ) -> Result<BuildCacheEntry> {
        match r {
            Ok((kept, dead)) if !dead.is_empty() => {
                for cache_id in &dead {
                    if let Err(e) = self.driver.remove(cache_id) {
                        tracing::warn!(layer = %cache_id, error = %e, "remove a layer the build cache no longer uses");
                    }
                }
                flight.leave_garbage();
                Ok(kept)
            }
            r => flight.finish(r.map(|(kept, _)| kept)),
        }
    }

    /// A build container's root filesystem on the chain `top` (`None`: empty).
    pub fn prepare_rootfs_on_chain(
        &self,
        top: Option<&Digest>,
        container_id: &str,
    ) -> Result<RootfsMount> {
        self.prepare_rootfs_at(
            Source::Chain(top),
            container_id,
            &hako_storage::StorageOpts::default(),
        )
    }

    /// The layer the changes in build container `container_id` make on top of
    /// `parent`, registered together with the cache entry `key` (one transaction). A
    /// container that changed nothing gives an empty entry and no layer.
    pub fn build_commit(
        &self,
        container_id: &str,
        parent: Option<&Digest>,
        key: &str,
    ) -> Result<BuildCacheEntry> {
        let flight = self.in_flight()?;
        let r = (|| -> Result<(BuildCacheEntry, Vec<String>)> {
            let parent_cache: Option<String> = match parent {
                Some(p) => Some(
                    self.conn()
                        .query_row(
                            "SELECT cache_id FROM layers WHERE chain_id = ?1",
                            [p.as_str()],
                            |r| r.get(0),
                        )
                        .optional()?
                        .ok_or_else(|| {
                            Error::bad(format!("build step parent layer {p} is not in the store"))
                        })?,
                ),
                None => None,
            };
            let blob = self.write_diff_blob(container_id, parent_cache.as_deref())?;
            let created = now_rfc3339_nanos();
            if blob == empty_layer() {
                let _ = self.blobs.remove(&blob);
                if let Some(p) = parent
                    && !flight.pin(p.as_str())?
                {
                    return Err(Error::bad(format!("layer {p} is not in the store")));
                }
                let entry = BuildCacheEntry {
                    top_layer: parent.cloned(),
                    created,
                    empty: true,
                };
                let mut conn = self.conn();
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let r = upsert_entry(&tx, key, &entry, 0)?;
                tx.commit()?;
                return Ok(r);
            }
            self.stack_blob(&flight, blob, None, parent, key, created)
        })();
        self.end_with_dead(flight, r)
    }

    /// `COPY --link` on another parent: the one layer of chain `layer` (a build step
    /// committed on nothing) put on `parent`, recorded under `key` with `created`. The
    /// files are not copied again from their source, and the layer's diff id is the same
    /// on every parent.
    pub fn build_stack(
        &self,
        layer: &Digest,
        parent: Option<&Digest>,
        key: &str,
        created: &str,
    ) -> Result<BuildCacheEntry> {
        let flight = self.in_flight()?;
        let r = (|| -> Result<(BuildCacheEntry, Vec<String>)> {
            if !flight.pin(layer.as_str())? {
                return Err(Error::bad(format!("layer {layer} is not in the store")));
            }
            let (record, below) = crate::store::layer_record(&self.conn(), layer)?;
            if below.is_some() {
                return Err(Error::bad(format!(
                    "layer {layer} is not a layer of its own (it has a parent)"
                )));
            }
            // Its tar (from the layer and its tar-split record) as a blob to unpack again;
            // the blob is garbage once the new layer is registered.
            let mut tar = self.layer_tar(&record)?;
            let mut w = self.blobs.writer()?;
            std::io::copy(&mut tar, &mut w).map_err(|e| Error::io("copy a layer", e))?;
            let (blob, _) = w.commit()?;
            flight.leaves_garbage();
            if blob != record.diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("layer {layer}"),
                    expected: record.diff_id.to_string(),
                    actual: blob.to_string(),
                });
            }
            self.stack_blob(
                &flight,
                blob,
                Some(record.diff_id),
                parent,
                key,
                created.to_string(),
            )
        })();
        self.end_with_dead(flight, r)
    }

    /// Unpacks layer `blob` on the chain `parent` and records the result under `key`,
    /// layer and entry in one transaction.
    fn stack_blob(
        &self,
        flight: &crate::Flight<'_>,
        blob: Digest,
        diff_id: Option<Digest>,
        parent: Option<&Digest>,
        key: &str,
        created: String,
    ) -> Result<(BuildCacheEntry, Vec<String>)> {
        let _layers = self.lock_layers()?;
        let mut sources: Vec<LayerSource> = self
            .chain_diff_ids_blobs(parent)?
            .into_iter()
            .map(|(diff_id, blob)| LayerSource {
                blob: blob.unwrap_or_else(|| diff_id.clone()),
                diff_id: Some(diff_id),
                media_type: crate::spec::OCI_LAYER.into(),
            })
            .collect();
        sources.push(LayerSource {
            diff_id,
            blob,
            media_type: crate::spec::OCI_LAYER.into(),
        });
        let (pending, top) = self.unpack_layers(flight, &sources)?;
        let result = (|| {
            let top = top.ok_or_else(|| Error::bad("build step produced no layer"))?;
            let size: i64 = pending
                .last()
                .map_or(0, |p| i64::try_from(p.size).unwrap_or(0));
            let entry = BuildCacheEntry {
                top_layer: Some(top),
                created,
                empty: false,
            };
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            insert_layers(&tx, &pending)?;
            let r = upsert_entry(&tx, key, &entry, size)?;
            tx.commit()?;
            Ok(r)
        })();
        if result.is_err() {
            for p in &pending {
                let _ = self.driver.remove(&p.cache_id);
            }
        }
        result
    }

    /// (diff id, blob) of each layer of a chain, base first.
    fn chain_diff_ids_blobs(&self, top: Option<&Digest>) -> Result<Vec<(Digest, Option<Digest>)>> {
        let conn = self.conn();
        let mut out = Vec::new();
        let mut cur = top.map(|d| d.to_string());
        while let Some(c) = cur {
            let (parent, diff, blob): (Option<String>, String, Option<String>) = conn
                .query_row(
                    "SELECT parent, diff_id, blob_digest FROM layers WHERE chain_id = ?1",
                    [&c],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?
                .ok_or_else(|| Error::bad(format!("layer {c} is not in the store")))?;
            out.push((
                Digest::parse(&diff)?,
                blob.map(|b| Digest::parse(&b)).transpose()?,
            ));
            cur = parent;
        }
        out.reverse();
        Ok(out)
    }

    /// The diff ids of a chain, base first.
    pub fn chain_diff_ids(&self, top: Option<&Digest>) -> Result<Vec<Digest>> {
        Ok(self
            .chain_diff_ids_blobs(top)?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    /// The config bytes of an image.
    pub fn image_config(&self, id: &Digest) -> Result<Vec<u8>> {
        self.image_top_layer(id)?;
        self.blobs.read(id)
    }

    /// The top layer of an image.
    pub fn image_top_layer(&self, id: &Digest) -> Result<Option<Digest>> {
        let top: Option<String> = self
            .conn()
            .query_row(
                "SELECT top_layer FROM images WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
        top.map(|t| Digest::parse(&t)).transpose()
    }

    /// A built image: its config (whose diff ids must be the chain's) on the layers of
    /// `top`, tagged `tags`. Returns its id.
    pub fn create_image(
        &self,
        config: &[u8],
        top: Option<&Digest>,
        tags: &[String],
    ) -> Result<Digest> {
        let refs = tags
            .iter()
            .map(|t| parse_tag(t))
            .collect::<Result<Vec<_>>>()?;
        let parsed = crate::spec::ImageConfig::parse(config)?;
        let want = self.chain_diff_ids(top)?;
        if parsed.diff_ids()? != want {
            return Err(Error::bad("image config does not match its layers"));
        }
        let flight = self.in_flight()?;
        let r = (|| {
            if let Some(t) = top
                && !flight.pin(t.as_str())?
            {
                return Err(Error::bad(format!("layer {t} is not in the store")));
            }
            let id = self.blobs.write_bytes(config)?;
            self.commit_image(&id, parsed.created.as_deref(), &[], top, None, &refs, None)?;
            Ok(id)
        })();
        flight.finish(r)
    }

    /// `builder prune`: removes cache entries (all, or those unused for `unused_for`
    /// seconds), then the layers nothing else uses.
    pub fn build_cache_prune(&self, unused_for: Option<u64>) -> Result<BuildPruneReport> {
        let _gc = self.exclusive()?;
        // `last_used` as the builds left it (their hits are journaled, see build_uses.rs).
        self.fold_build_uses(&_gc)?;
        let (entries, dead) = {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let cutoff = unused_for.map(|s| db::now() - i64::try_from(s).unwrap_or(i64::MAX));
            let keys: Vec<(String, Option<String>)> = {
                let mut stmt = tx.prepare(
                    "SELECT key, top_layer FROM build_cache WHERE ?1 IS NULL OR last_used < ?1",
                )?;
                stmt.query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            for (key, top) in &keys {
                let top = top.as_deref().map(Digest::parse).transpose()?;
                for (chain_id, _, _) in chain_of(&tx, top.as_ref())? {
                    tx.execute(
                        "UPDATE layers SET refcount = refcount - 1 WHERE chain_id = ?1",
                        [chain_id],
                    )?;
                }
                tx.execute("DELETE FROM build_cache WHERE key = ?1", [key])?;
            }
            // Memos are derived facts: cheap to derive again, never worth keeping past a prune.
            tx.execute("DELETE FROM build_memo", [])?;
            let dead = delete_dead_layers(&tx)?;
            tx.commit()?;
            (keys.len(), dead)
        };
        let mut report = BuildPruneReport {
            entries,
            ..Default::default()
        };
        for cache_id in dead {
            report.space_reclaimed += self.driver.size(&cache_id).unwrap_or(0);
            self.driver.remove(&cache_id)?;
            report.layers_removed += 1;
        }
        // The blobs of the layers that went (and anything else nothing references).
        let gc = self.collect_garbage(&_gc)?;
        report.space_reclaimed += gc.space_reclaimed;
        Ok(report)
    }

    /// Container layers whose id starts with `prefix` (a build's RUN containers).
    pub fn container_layers_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT container_id FROM container_layers WHERE substr(container_id, 1, length(?1)) = ?1")?;
        let ids = stmt
            .query_map([prefix], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    /// Every entry, least recently used first, then by key (the docker CLI's order).
    pub fn build_cache_records(&self) -> Result<Vec<BuildCacheRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT b.key, b.size, b.created, b.last_used, b.uses,
                    COALESCE(l.refcount > (SELECT COUNT(*) FROM build_cache c2 WHERE c2.top_layer = b.top_layer), 0)
             FROM build_cache b LEFT JOIN layers l ON l.chain_id = b.top_layer
             ORDER BY b.last_used, b.key",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(BuildCacheRecord {
                key: r.get(0)?,
                size: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                created: r.get(2)?,
                last_used: r.get(3)?,
                uses: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                shared: r.get(5)?,
            })
        })?;
        let mut records: Vec<BuildCacheRecord> = rows.collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        drop(conn);
        // Hits not folded into the table yet.
        let unfolded = self.unfolded_build_uses()?;
        if !unfolded.is_empty() {
            for r in &mut records {
                if let Some((n, last)) = unfolded.get(&r.key) {
                    r.uses += n;
                    r.last_used = r.last_used.max(*last);
                }
            }
            records.sort_by(|a, b| (a.last_used, &a.key).cmp(&(b.last_used, &b.key)));
        }
        Ok(records)
    }

    /// The id of the image whose config is `config` if it is in the store and each of
    /// `tags` already names it: a build whose result is that image has nothing to write
    /// (a fully cached rebuild). Read in one snapshot.
    pub fn image_in_place(&self, config: &[u8], tags: &[String]) -> Result<Option<Digest>> {
        let refs = tags
            .iter()
            .map(|t| parse_tag(t))
            .collect::<Result<Vec<_>>>()?;
        let id = Digest::of(config);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists = tx
            .query_row("SELECT 1 FROM images WHERE id = ?1", [id.as_str()], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        if !exists {
            return Ok(None);
        }
        for t in &refs {
            let named: Option<String> = tx
                .query_row(
                    "SELECT image_id FROM tags WHERE name = ?1",
                    [t.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            if named.as_deref() != Some(id.as_str()) {
                return Ok(None);
            }
        }
        Ok(Some(id))
    }

    /// Build cache usage (`system df`).
    pub fn build_cache_usage(&self) -> Result<BuildCacheUsage> {
        let conn = self.conn();
        let entries: i64 = conn.query_row("SELECT COUNT(*) FROM build_cache", [], |r| r.get(0))?;
        let (size, reclaimable): (i64, i64) = conn.query_row(
            "SELECT COALESCE(SUM(l.size), 0),
                    COALESCE(SUM(CASE WHEN l.refcount <= (SELECT COUNT(*) FROM build_cache c2 WHERE c2.top_layer = l.chain_id)
                                      AND NOT EXISTS (SELECT 1 FROM images i WHERE i.top_layer = l.chain_id)
                                 THEN l.size ELSE 0 END), 0)
             FROM layers l
             WHERE l.chain_id IN (SELECT top_layer FROM build_cache WHERE empty = 0)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(BuildCacheUsage {
            entries: u64::try_from(entries).unwrap_or(0),
            size: u64::try_from(size).unwrap_or(0),
            reclaimable: u64::try_from(reclaimable).unwrap_or(0),
        })
    }
}

/// Records `entry` under `key`, taking its references on the chain. An entry already
/// there with the same result is kept (its time too, so rebuilds stay identical); one with
/// another result (`--no-cache` ran the step again) is replaced and its references
/// dropped. Returns the entry in effect and the layer directories that died.
fn upsert_entry(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    entry: &BuildCacheEntry,
    size: i64,
) -> Result<(BuildCacheEntry, Vec<String>)> {
    let old: Option<(Option<String>, String, bool)> = tx
        .query_row(
            "SELECT top_layer, created, empty FROM build_cache WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let new_top = entry.top_layer.as_ref().map(|d| d.to_string());
    if let Some((top, created, empty)) = old {
        if top == new_top {
            tx.execute(
                "UPDATE build_cache SET last_used = ?2, uses = uses + 1 WHERE key = ?1",
                params![key, db::now()],
            )?;
            return Ok((
                BuildCacheEntry {
                    top_layer: entry.top_layer.clone(),
                    created,
                    empty,
                },
                Vec::new(),
            ));
        }
        let top = top.as_deref().map(Digest::parse).transpose()?;
        for (chain_id, _, _) in chain_of(tx, top.as_ref())? {
            tx.execute(
                "UPDATE layers SET refcount = refcount - 1 WHERE chain_id = ?1",
                [chain_id],
            )?;
        }
        tx.execute("DELETE FROM build_cache WHERE key = ?1", [key])?;
    }
    tx.execute(
        "INSERT INTO build_cache (key, top_layer, created, empty, size, last_used, uses)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
        params![key, new_top, entry.created, entry.empty, size, db::now()],
    )?;
    for (chain_id, _, _) in chain_of(tx, entry.top_layer.as_ref())? {
        tx.execute(
            "UPDATE layers SET refcount = refcount + 1 WHERE chain_id = ?1",
            [chain_id],
        )?;
    }
    let dead = delete_dead_layers(tx)?;
    Ok((entry.clone(), dead))
}
