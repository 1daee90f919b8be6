//! [`ImageStore`]: images, tags, layers and container root filesystems under one root.
//!
//! ```text
//! <root>/hako-image.db        metadata (see db.rs)
//! <root>/blobs/sha256/<hex>   configs, manifests and layer blobs as received
//! <root>/overlay2/ or vfs/    unpacked layers (hako-storage driver)
//! <root>/locks/gc.lock        flock: shared by every flight, exclusive for garbage
//!                             collection (see flight.rs)
//! <root>/locks/flight/        one locked marker file per operation in progress
//! <root>/locks/layers.lock    flock: exclusive while layers are created and registered,
//!                             so two processes never unpack the same layer twice
//! ```
//!
//! Every operation that adds an image writes blobs and layer directories first and makes
//! them visible with one database transaction at the end. A process killed before that
//! transaction leaves only unreferenced files and its flight marker; the next
//! [`ImageStore::open`] that sees the marker (and finds no flight in progress) or
//! [`ImageStore::prune`] removes them (gc.rs).

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use hako_storage::{Driver, LayerPaths, StorageOpts};
use hako_sys::sqlite::Cached;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, OptionalExtension, params};

use crate::blobs::BlobStore;
use crate::db;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::flight::{Flight, KIND_IMAGE};
use crate::reference::Reference;
use crate::spec::Platform;

/// `images`: every image with the number of containers made from it, newest first (each
/// count is a lookup in db's `container_layers_by_image`, not a scan of all containers).
pub(crate) const LIST_IMAGES: &str = "SELECT id, created, size,
    (SELECT COUNT(*) FROM container_layers c WHERE c.image_id = images.id)
    FROM images ORDER BY added DESC, id";

/// What [`ImageStore::layer_usage`] counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerUsage {
    /// Bytes of all image layers, each layer once.
    pub layers_size: u64,
    /// Image id → bytes of its layers other images share.
    pub shared: std::collections::HashMap<String, u64>,
}

/// How to open an [`ImageStore`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Storage driver (`overlay2`, `vfs`). Default: what the store was created with, or
    /// overlay2 if it mounts here, else vfs.
    pub driver: Option<String>,
    /// Platform to pick from multi-platform images. Default: the host's.
    pub platform: Option<Platform>,
    /// Do not clean up after crashed operations at open: the caller (the engine) does it
    /// with its own leftovers first ([`ImageStore::recover`]).
    pub skip_recovery: bool,
}

/// The image store. Safe to use from several threads and several processes at once.
#[derive(Debug)]
pub struct ImageStore {
    pub(crate) root: PathBuf,
    pub(crate) blobs: BlobStore,
    pub(crate) driver: Box<dyn Driver>,
    db: Mutex<Connection>,
    pub(crate) platform: Platform,
}

/// One row of `hako images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// `sha256:<hex>` of the config.
    pub id: Digest,
    /// Tags, as Docker prints them (`busybox:latest`).
    pub repo_tags: Vec<String>,
    /// `repo@sha256:...` of the manifests the image came from.
    pub repo_digests: Vec<String>,
    /// The config's `created` (RFC 3339), if any.
    pub created: Option<String>,
    /// Bytes of all layers.
    pub size: u64,
    /// Containers using the image.
    pub containers: u64,
}

/// What `remove` did, in Docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveAction {
    /// A tag was removed (`Untagged: busybox:latest`).
    Untagged(String),
    /// The image was deleted (`Deleted: sha256:...`).
    Deleted(Digest),
}

/// What `prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Images deleted.
    pub images_deleted: Vec<Digest>,
    /// Layer directories removed.
    pub layers_removed: usize,
    /// Blobs removed.
    pub blobs_removed: usize,
    /// Leftovers of interrupted operations removed.
    pub temp_removed: usize,
    /// Bytes freed (blobs and layers).
    pub space_reclaimed: u64,
}

/// A container's root filesystem, as returned by [`ImageStore::prepare_rootfs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsMount {
    /// The directory to use as the container's `/`.
    pub rootfs: PathBuf,
    /// Driver directories (for `docker inspect` `GraphDriver`).
    pub paths: LayerPaths,
    /// The image the container is based on.
    pub image: Digest,
}

/// What a container root filesystem is made on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// An image (name or id).
    Image(&'a str),
    /// A layer chain (`None`: empty).
    Chain(Option<&'a Digest>),
}

/// A layer unpacked but not yet registered.
#[derive(Debug)]
pub(crate) struct PendingLayer {
    pub(crate) chain_id: Digest,
    pub(crate) diff_id: Digest,
    pub(crate) parent: Option<Digest>,
    pub(crate) cache_id: String,
    pub(crate) size: u64,
    pub(crate) diff_size: u64,
    /// The blob the layer came from, and its media type.
    pub(crate) blob: Option<(Digest, String)>,
    /// The layer's tar-split record (a blob); `None`: `blob` is kept instead.
    pub(crate) tar_split: Option<Digest>,
}

/// Where to get one layer of an image being added.
#[derive(Debug, Clone)]
pub(crate) struct LayerSource {
    /// Known for loads (from the config); computed while unpacking for imports.
    pub(crate) diff_id: Option<Digest>,
    pub(crate) blob: Digest,
    pub(crate) media_type: String,
}

impl ImageStore {
    /// Opens the store at `root` (created if needed) with default [`Options`], and cleans
    /// up what a crashed process left if no other process is using the store.
    pub fn open(root: impl AsRef<Path>) -> Result<ImageStore> {
        ImageStore::open_with(root, Options::default())
    }

    /// Opens the store at `root` with `opts`.
    pub fn open_with(root: impl AsRef<Path>, opts: Options) -> Result<ImageStore> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(root.join("locks")).ctx(|| format!("create {}", root.display()))?;
        // 0710 as Docker's /var/lib/docker, whatever the umask: only root looks inside.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o710))
                .ctx(|| format!("set the mode of {}", root.display()))?;
        }
        let blobs = BlobStore::open(&root)?;
        let conn = db::open(&root.join("hako-image.db"))?;
        let recorded: Option<String> = conn
            .query_row_cached("SELECT value FROM meta WHERE key = 'driver'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let driver = match (recorded.as_deref(), opts.driver.as_deref()) {
            (Some(r), Some(w)) if r != w => {
                return Err(Error::bad(format!(
                    "store {} was created with storage driver {r}, not {w}",
                    root.display()
                )));
            }
            (Some(name), _) | (None, Some(name)) => hako_storage::open_driver(name, &root)?,
            (None, None) => hako_storage::open_default(&root)?,
        };
        conn.execute_cached(
            "INSERT OR IGNORE INTO meta VALUES ('driver', ?1)",
            params![driver.name()],
        )?;
        let store = ImageStore {
            root,
            blobs,
            driver,
            db: Mutex::new(conn),
            platform: opts.platform.unwrap_or_else(Platform::host),
        };
        if !opts.skip_recovery {
            store.recover(&[KIND_IMAGE], |_| Ok::<(), Error>(()))?;
        }
        crate::reserve::ensure(&store.root);
        Ok(store)
    }

    /// The storage driver's name (`overlay2`, `vfs`).
    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    /// Whether `--storage-opt size=` works here (overlay2 on XFS mounted with `pquota`).
    pub fn quota_supported(&self) -> bool {
        self.driver.quota_supported()
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Frees the connection's page cache and statements (an idle `hako serve`).
    pub fn release_memory(&self) {
        hako_sys::sqlite::release_memory(&self.conn());
    }

    fn lock_file(&self, name: &str) -> Result<File> {
        let path = self.root.join("locks").join(name);
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))
    }

    pub(crate) fn lock_layers(&self) -> Result<Flock<File>> {
        let f = self.lock_file("layers.lock")?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io("lock layers.lock", e.into()))
    }

    /// Unpacks the layers that are not in the store yet. Call with the layers lock held;
    /// on error the layers unpacked by this call are removed again.
    pub(crate) fn unpack_layers(
        &self,
        flight: &Flight<'_>,
        sources: &[LayerSource],
    ) -> Result<(Vec<PendingLayer>, Option<Digest>)> {
        self.unpack_layers_with(flight, sources, &|_, _| {})
    }

    /// [`ImageStore::unpack_layers`], telling `step(index, done)` when layer `index`
    /// starts (`false`) and finishes (`true`) unpacking; a layer already in the store
    /// only finishes. Layers found in the store are pinned for the rest of `flight`, so
    /// that a concurrent `rmi` cannot delete them before the new image references them.
    pub(crate) fn unpack_layers_with(
        &self,
        flight: &Flight<'_>,
        sources: &[LayerSource],
        step: &dyn Fn(usize, bool),
    ) -> Result<(Vec<PendingLayer>, Option<Digest>)> {
        let mut pending: Vec<PendingLayer> = Vec::new();
        let result = self.unpack_layers_inner(flight, sources, &mut pending, step);
        if result.is_err() {
            for p in pending.iter().rev() {
                let _ = self.driver.remove(&p.cache_id);
            }
        }
        result.map(|top| (pending, top))
    }

    fn unpack_layers_inner(
        &self,
        flight: &Flight<'_>,
        sources: &[LayerSource],
        pending: &mut Vec<PendingLayer>,
        step: &dyn Fn(usize, bool),
    ) -> Result<Option<Digest>> {
        let mut parent: Option<(Digest, String)> = None;
        for (index, src) in sources.iter().enumerate() {
            let parent_chain = parent.as_ref().map(|p| &p.0);
            let known = match &src.diff_id {
                Some(d) => self.pinned_cache_id(flight, &Digest::chain(parent_chain, d))?,
                None => None,
            };
            if let (Some(cache_id), Some(d)) = (known, &src.diff_id) {
                parent = Some((Digest::chain(parent_chain, d), cache_id));
                step(index, true);
                continue;
            }
            step(index, false);
            let cache_id = crate::random_hex(32);
            let file = self.blobs.open_blob(&src.blob)?;
            let mut blob = std::io::BufReader::with_capacity(256 * 1024, file);
            let parent_cache = parent.as_ref().map(|p| p.1.as_str());
            let mut split = self.blobs.writer()?;
            let dg =
                self.driver
                    .apply_layer_split(&cache_id, parent_cache, &mut blob, &mut split)?;
            tracing::debug!(blob = %src.blob, layer = %cache_id, diff_id = %dg.diff_id, "layer unpacked");
            hako_sys::crash::point("layer.unpacked");
            let diff_id = Digest::parse(&dg.diff_id)?;
            if let Some(expected) = &src.diff_id
                && *expected != diff_id
            {
                let _ = self.driver.remove(&cache_id);
                return Err(Error::DigestMismatch {
                    what: format!("layer {}", src.blob),
                    expected: expected.to_string(),
                    actual: diff_id.to_string(),
                });
            }
            // The blob the layer came from is not needed once the layer is registered with
            // its tar-split record: the flight collects it at its end (see flight.rs).
            flight.leaves_garbage();
            let chain = Digest::chain(parent_chain, &diff_id);
            if let Some(existing) = self.pinned_cache_id(flight, &chain)? {
                // Known only now that we know its diff id (import): keep the stored one.
                self.driver.remove(&cache_id)?;
                parent = Some((chain, existing));
                step(index, true);
                continue;
            }
            let tar_split = if dg.split_complete {
                match split.commit() {
                    Ok((d, _)) => Some(d),
                    Err(e) => {
                        let _ = self.driver.remove(&cache_id);
                        return Err(e);
                    }
                }
            } else {
                tracing::info!(layer = %diff_id, blob = %src.blob,
                    "the layer tar overwrites its own files: keeping the tar itself");
                None
            };
            pending.push(PendingLayer {
                chain_id: chain.clone(),
                diff_id,
                parent: parent.as_ref().map(|p| p.0.clone()),
                cache_id: cache_id.clone(),
                size: self.driver.size(&cache_id)?,
                diff_size: dg.diff_size,
                blob: Some((src.blob.clone(), src.media_type.clone())),
                tar_split,
            });
            parent = Some((chain, cache_id));
            step(index, true);
        }
        Ok(parent.map(|p| p.0))
    }

    /// The cache id of layer `chain` if it is in the store, pinned for `flight`.
    fn pinned_cache_id(&self, flight: &Flight<'_>, chain: &Digest) -> Result<Option<String>> {
        if !flight.pin(chain.as_str())? {
            return Ok(None);
        }
        Ok(self
            .conn()
            .query_row_cached(
                "SELECT cache_id FROM layers WHERE chain_id = ?1",
                [chain.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Registers an image and its new layers in one transaction, and points `tags` at it.
    #[expect(
        clippy::too_many_arguments,
        reason = "one transaction takes everything an image is registered with"
    )]
    pub(crate) fn commit_image(
        &self,
        config: &Digest,
        created: Option<&str>,
        pending: &[PendingLayer],
        top: Option<&Digest>,
        manifest: Option<&Digest>,
        tags: &[Reference],
        repo_digest: Option<&str>,
    ) -> Result<()> {
        hako_sys::crash::point("image.register");
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = db::now();
        insert_layers(&tx, pending)?;
        let exists: bool = tx
            .query_row_cached(
                "SELECT 1 FROM images WHERE id = ?1",
                [config.as_str()],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false);
        if !exists {
            let chain = chain_of(&tx, top)?;
            let size: i64 = chain.iter().map(|(_, _, s)| *s).sum();
            tx.execute_cached(
                "INSERT INTO images (id, top_layer, manifest_digest, created, size, added) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![config.as_str(), top.map(|d| d.as_str()), manifest.map(|d| d.as_str()), created, size, now],
            )?;
            for (chain_id, _, _) in &chain {
                tx.execute_cached(
                    "UPDATE layers SET refcount = refcount + 1 WHERE chain_id = ?1",
                    [chain_id],
                )?;
            }
        }
        for t in tags {
            tx.execute_cached(
                "INSERT OR REPLACE INTO tags (name, image_id, tagged) VALUES (?1, ?2, ?3)",
                params![t.to_string(), config.as_str(), now],
            )?;
        }
        if let Some(d) = repo_digest {
            tx.execute_cached(
                "INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?1, ?2)",
                params![d, config.as_str()],
            )?;
        }
        tx.commit()?;
        tracing::debug!(image = %config, new_layers = pending.len(), "image registered");
        hako_sys::crash::point("image.registered");
        Ok(())
    }

    /// Finds an image by tag (`busybox`, `busybox:1.36`), digest reference
    /// (`busybox@sha256:...`), full id, or unique id prefix.
    pub fn resolve(&self, name: &str) -> Result<Digest> {
        let conn = self.conn();
        if let Ok(r) = Reference::parse(name) {
            let r = r.with_default_tag();
            let key = if r.digest().is_some() {
                format!(
                    "{}@{}",
                    r.repository(),
                    r.digest().map(|d| d.as_str()).unwrap_or("")
                )
            } else {
                r.to_string()
            };
            let table = if r.digest().is_some() {
                "repo_digests"
            } else {
                "tags"
            };
            let found: Option<String> = conn
                .query_row_cached(
                    &format!("SELECT image_id FROM {table} WHERE name = ?1"),
                    [&key],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = found {
                return Digest::parse(&id);
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut stmt = conn.prepare_cached("SELECT id FROM images WHERE id LIKE ?1 LIMIT 2")?;
            let ids: Vec<String> = stmt
                .query_map([format!("sha256:{}%", hex.to_ascii_lowercase())], |r| {
                    r.get(0)
                })?
                .collect::<rusqlite::Result<_>>()?;
            match ids.as_slice() {
                [one] => return Digest::parse(one),
                [] => {}
                _ => return Err(Error::Ambiguous(name.to_string())),
            }
        }
        Err(Error::NoSuchImage(name.to_string()))
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let conn = self.conn();
        // One read transaction and three queries for the whole list (not two per image:
        // each statement alone takes and drops SQLite's lock).
        let tx = conn.unchecked_transaction()?;
        let mut stmt = tx.prepare_cached(LIST_IMAGES)?;
        let rows: Vec<(String, Option<String>, i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        let mut tags = all_names(&tx, "tags")?;
        let mut digests = all_names(&tx, "repo_digests")?;
        tx.commit()?;
        let mut out = Vec::new();
        for (id, created, size, containers) in rows {
            out.push(ImageSummary {
                repo_tags: tags.remove(&id).unwrap_or_default(),
                repo_digests: digests.remove(&id).unwrap_or_default(),
                id: Digest::parse(&id)?,
                created,
                size: u64::try_from(size).unwrap_or(0),
                containers: u64::try_from(containers).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Points `target` (`repo[:tag]`) at the image `source` names.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        // The new name first, as the docker CLI checks it before asking for the image.
        let r = Reference::parse(target)?.with_default_tag();
        let id = self.resolve(source)?;
        if r.digest().is_some() {
            return Err(Error::InvalidReference {
                reference: target.into(),
                reason: "cannot tag with a digest",
            });
        }
        self.conn().execute_cached(
            "INSERT OR REPLACE INTO tags (name, image_id, tagged) VALUES (?1, ?2, ?3)",
            params![r.to_string(), id.as_str(), db::now()],
        )?;
        Ok(())
    }

    /// `docker rmi`: by tag, removes the tag, and the image with its last tag; by id,
    /// removes the image. Refuses while containers use the image (unless `force`, which
    /// then only untags), and refuses an id with several tags unless `force`.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<RemoveAction>> {
        self.make_room();
        let flight = self.in_flight()?;
        let r = (|| -> Result<Vec<RemoveAction>> {
            let id = self.resolve(name)?;
            let by_tag = Reference::parse(name)
                .ok()
                .map(|r| r.with_default_tag())
                .filter(|r| r.digest().is_none())
                .map(|r| r.to_string());
            let mut actions = Vec::new();
            let dead_layers = {
                let mut conn = self.conn();
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                if !exists(&tx, "SELECT 1 FROM images WHERE id = ?1", id.as_str())? {
                    // Removed by another process since `resolve`.
                    return Err(Error::NoSuchImage(name.to_string()));
                }
                let tags: Vec<String> = names_full(&tx, "tags", id.as_str())?;
                let tagged_by_name = by_tag.as_ref().filter(|t| tags.contains(t));
                let container: Option<String> = tx
                    .query_row_cached(
                        "SELECT container_id FROM container_layers WHERE image_id = ?1 LIMIT 1",
                        [id.as_str()],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(t) = tagged_by_name {
                    if tags.len() > 1 || (container.is_some() && force) {
                        tx.execute_cached("DELETE FROM tags WHERE name = ?1", [t])?;
                        tx.commit()?;
                        return Ok(vec![RemoveAction::Untagged(familiar(t))]);
                    }
                } else if tags.len() > 1 && !force {
                    return Err(Error::MultipleTags(id.short().to_string()));
                }
                if let Some(c) = &container
                    && !force
                {
                    return Err(Error::ImageInUse {
                        image: name.to_string(),
                        container: c.clone(),
                    });
                }
                for t in &tags {
                    tx.execute_cached("DELETE FROM tags WHERE name = ?1", [t])?;
                    actions.push(RemoveAction::Untagged(familiar(t)));
                }
                for d in names_full(&tx, "repo_digests", id.as_str())? {
                    tx.execute_cached("DELETE FROM repo_digests WHERE name = ?1", [&d])?;
                    actions.push(RemoveAction::Untagged(familiar(&d)));
                }
                if container.is_some() {
                    tx.commit()?;
                    return Ok(actions);
                }
                let top: Option<String> = tx.query_row_cached(
                    "SELECT top_layer FROM images WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )?;
                let top = top.map(|t| Digest::parse(&t)).transpose()?;
                for (chain_id, _, _) in chain_of(&tx, top.as_ref())? {
                    tx.execute_cached(
                        "UPDATE layers SET refcount = refcount - 1 WHERE chain_id = ?1",
                        [chain_id],
                    )?;
                }
                tx.execute_cached("DELETE FROM images WHERE id = ?1", [id.as_str()])?;
                tx.execute_cached(
                    "DELETE FROM damaged_images WHERE image_id = ?1",
                    [id.as_str()],
                )?;
                let dead = delete_dead_layers(&tx)?;
                tx.commit()?;
                hako_sys::crash::point("rmi.deleted");
                actions.push(RemoveAction::Deleted(id.clone()));
                dead
            };
            for cache_id in dead_layers {
                self.driver.remove(&cache_id)?;
                hako_sys::crash::point("rmi.layer-removed");
            }
            Ok(actions)
        })();
        // Refused before anything changed: nothing to collect.
        if matches!(
            r,
            Err(Error::NoSuchImage(_) | Error::ImageInUse { .. } | Error::MultipleTags(_))
        ) {
            flight.complete();
            return r;
        }
        if let Ok(actions) = &r
            && actions
                .iter()
                .any(|a| matches!(a, RemoveAction::Deleted(_)))
        {
            flight.leave_garbage();
            return r;
        }
        flight.finish(r)
    }

    /// Creates and mounts a writable root filesystem for `container_id` on `image`: the
    /// image's layers read-only, a new layer on top for the container's writes.
    /// The container id becomes the driver's layer id (`[0-9a-zA-Z_.-]`, at most 128).
    pub fn prepare_rootfs(&self, image: &str, container_id: &str) -> Result<RootfsMount> {
        self.prepare_rootfs_with(image, container_id, &StorageOpts::default())
    }

    /// [`ImageStore::prepare_rootfs`] with `--storage-opt` options (`size=` limits the
    /// container layer; see [`StorageOpts::parse`]). Options the driver cannot honour fail
    /// before anything is created.
    pub fn prepare_rootfs_with(
        &self,
        image: &str,
        container_id: &str,
        opts: &StorageOpts,
    ) -> Result<RootfsMount> {
        self.prepare_rootfs_at(Source::Image(image), container_id, opts)
    }

    /// [`ImageStore::prepare_rootfs_with`] on an image, or on a layer chain (a build
    /// container: `image_id` then holds the chain id, or the empty digest for none).
    pub(crate) fn prepare_rootfs_at(
        &self,
        source: Source<'_>,
        container_id: &str,
        opts: &StorageOpts,
    ) -> Result<RootfsMount> {
        let flight = self.in_flight()?;
        let r = (|| -> Result<RootfsMount> {
            let id = match source {
                Source::Image(image) => self.resolve(image)?,
                Source::Chain(top) => top.cloned().unwrap_or_else(|| Digest::of(b"")),
            };
            // The claim first, in one transaction: the container's row and the references to
            // the image's layers. From then on `rmi` sees the image in use; an `rmi` that came
            // first leaves no image to claim. The directory comes after (a crash in between
            // leaves a row that `release_rootfs` removes like any other).
            let parent_cache = {
                let mut conn = self.conn();
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let top = match source {
                    Source::Image(image) => {
                        let top: Option<String> = tx
                            .query_row_cached(
                                "SELECT top_layer FROM images WHERE id = ?1",
                                [id.as_str()],
                                |r| r.get(0),
                            )
                            .optional()?
                            .ok_or_else(|| Error::NoSuchImage(image.to_string()))?;
                        top.map(|t| Digest::parse(&t)).transpose()?
                    }
                    Source::Chain(top) => {
                        if let Some(t) = top
                            && !exists(&tx, "SELECT 1 FROM layers WHERE chain_id = ?1", t.as_str())?
                        {
                            return Err(Error::bad(format!("layer {t} is not in the store")));
                        }
                        top.cloned()
                    }
                };
                if let Some(reason) = tx
                    .query_row_cached(
                        "SELECT reason FROM damaged_images WHERE image_id = ?1",
                        [id.as_str()],
                        |r| r.get::<_, String>(0),
                    )
                    .optional()?
                {
                    return Err(Error::Damaged {
                        image: id.short().to_string(),
                        reason,
                    });
                }
                if exists(
                    &tx,
                    "SELECT 1 FROM container_layers WHERE container_id = ?1",
                    container_id,
                )? || self.driver.exists(container_id)
                {
                    return Err(Error::ContainerExists(container_id.to_string()));
                }
                tx.execute_cached(
                    "INSERT INTO container_layers (container_id, image_id, top_layer, rw_cache_id, created) VALUES (?1, ?2, ?3, ?1, ?4)",
                    params![container_id, id.as_str(), top.as_ref().map(|d| d.as_str()), db::now()],
                )?;
                let chain = chain_of(&tx, top.as_ref())?;
                for (chain_id, _, _) in &chain {
                    tx.execute_cached(
                        "UPDATE layers SET refcount = refcount + 1 WHERE chain_id = ?1",
                        [chain_id],
                    )?;
                }
                tx.commit()?;
                hako_sys::crash::point("rootfs.claimed");
                chain.first().map(|(_, cache, _)| cache.clone())
            };
            let made = self
                .driver
                .create_rw_with(container_id, parent_cache.as_deref(), opts)
                .map_err(Error::from)
                .and_then(|()| Ok(self.driver.mount(container_id)?));
            match made {
                Ok(m) => Ok(RootfsMount {
                    rootfs: m.rootfs,
                    paths: self.driver.paths(container_id)?,
                    image: id,
                }),
                Err(e) => {
                    let _ = self.release_rootfs(container_id);
                    Err(e)
                }
            }
        })();
        if matches!(
            r,
            Err(Error::NoSuchImage(_)
                | Error::ContainerExists(_)
                | Error::Ambiguous(_)
                | Error::Damaged { .. })
        ) {
            flight.complete();
            return r;
        }
        flight.finish(r)
    }

    /// The containers that have a root filesystem here.
    pub fn container_layer_ids(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT container_id FROM container_layers")?;
        let v = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// Mounts the root filesystem of a container prepared earlier (after a reboot, say).
    pub fn mount_rootfs(&self, container_id: &str) -> Result<PathBuf> {
        self.container_image(container_id)?;
        Ok(self.driver.mount(container_id)?.rootfs)
    }

    /// Unmounts a container's root filesystem (lazily: a descriptor opened in it keeps
    /// working until it is closed); it stays on disk for [`ImageStore::mount_rootfs`].
    pub fn unmount_rootfs(&self, container_id: &str) -> Result<()> {
        self.container_image(container_id)?;
        Ok(self.driver.unmount(container_id)?)
    }

    /// Unmounts and deletes a container's root filesystem and releases its image layers.
    pub fn release_rootfs(&self, container_id: &str) -> Result<()> {
        let flight = self.in_flight()?;
        let mut garbage = false;
        let r = (|| -> Result<()> {
            if !exists(
                &self.conn(),
                "SELECT 1 FROM container_layers WHERE container_id = ?1",
                container_id,
            )? {
                return Err(Error::NoSuchContainer(container_id.to_string()));
            }
            // Directory first, row last: a crash in between leaves a row whose release
            // finishes the job.
            self.driver.unmount(container_id)?;
            self.driver.remove(container_id)?;
            hako_sys::crash::point("rootfs.dir-removed");
            let dead = {
                let mut conn = self.conn();
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let Some(top) = tx
                    .query_row_cached(
                        "SELECT top_layer FROM container_layers WHERE container_id = ?1",
                        [container_id],
                        |r| r.get::<_, Option<String>>(0),
                    )
                    .optional()?
                else {
                    // Released by another process meanwhile.
                    return Ok(());
                };
                let top = top.map(|t| Digest::parse(&t)).transpose()?;
                for (chain_id, _, _) in chain_of(&tx, top.as_ref())? {
                    tx.execute_cached(
                        "UPDATE layers SET refcount = refcount - 1 WHERE chain_id = ?1",
                        [chain_id],
                    )?;
                }
                tx.execute_cached(
                    "DELETE FROM container_layers WHERE container_id = ?1",
                    [container_id],
                )?;
                let dead = delete_dead_layers(&tx)?;
                tx.commit()?;
                hako_sys::crash::point("rootfs.released");
                dead
            };
            // Their blobs are left for the next collection (see `remove`).
            garbage = !dead.is_empty();
            for cache_id in dead {
                self.driver.remove(&cache_id)?;
                hako_sys::crash::point("rootfs.layer-removed");
            }
            Ok(())
        })();
        if matches!(r, Err(Error::NoSuchContainer(_))) {
            flight.complete();
            return r;
        }
        if garbage && r.is_ok() {
            flight.leave_garbage();
            return r;
        }
        flight.finish(r)
    }

    /// A container layer's directories as `docker inspect` shows them under
    /// `GraphDriver.Data` (`LowerDir`, `UpperDir`, `WorkDir`, `MergedDir`).
    pub fn container_paths(
        &self,
        container_id: &str,
    ) -> Result<std::collections::HashMap<String, String>> {
        self.container_image(container_id)?;
        let p = self.driver.paths(container_id)?;
        let mut out = std::collections::HashMap::new();
        if !p.lower_dirs.is_empty() {
            let lower: Vec<String> = p
                .lower_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            out.insert("LowerDir".to_string(), lower.join(":"));
        }
        out.insert("UpperDir".to_string(), p.upper_dir.display().to_string());
        if let Some(w) = &p.work_dir {
            out.insert("WorkDir".to_string(), w.display().to_string());
        }
        if let Some(m) = &p.merged_dir {
            out.insert("MergedDir".to_string(), m.display().to_string());
        }
        Ok(out)
    }

    /// `docker system df`: the bytes of every image layer counted once (`LayersSize`), and
    /// for each image id the bytes of its layers that at least one other image uses too
    /// (`SharedSize`: stored once, counted in both images' sizes).
    pub fn layer_usage(&self) -> Result<LayerUsage> {
        let mut chains = Vec::new();
        let mut users: std::collections::HashMap<String, (usize, u64)> =
            std::collections::HashMap::new();
        for img in self.list()? {
            let rec = self.image_record(&img.id)?;
            for l in &rec.layers {
                users.entry(l.cache_id.clone()).or_insert((0, l.size)).0 += 1;
            }
            chains.push((img.id.to_string(), rec.layers));
        }
        let shared = chains
            .into_iter()
            .map(|(id, layers)| {
                let shared = layers
                    .iter()
                    .filter(|l| users.get(&l.cache_id).is_some_and(|u| u.0 > 1))
                    .map(|l| l.size)
                    .sum();
                (id, shared)
            })
            .collect();
        Ok(LayerUsage {
            layers_size: users.values().map(|u| u.1).sum(),
            shared,
        })
    }

    /// The bytes of each layer of image `name`, base first: the sizes its `Size` adds up
    /// (`docker history` shows them).
    pub fn layer_sizes(&self, name: &str) -> Result<Vec<u64>> {
        let id = self.resolve(name)?;
        Ok(self
            .image_record(&id)?
            .layers
            .iter()
            .map(|l| l.size)
            .collect())
    }

    /// `docker diff`: what the container changed relative to its image.
    pub fn container_changes(&self, container_id: &str) -> Result<Vec<hako_storage::Change>> {
        let top: Option<String> = self
            .conn()
            .query_row_cached(
                "SELECT top_layer FROM container_layers WHERE container_id = ?1",
                [container_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NoSuchContainer(container_id.to_string()))?;
        let parent: Option<String> = match top {
            Some(t) => Some(self.conn().query_row_cached(
                "SELECT cache_id FROM layers WHERE chain_id = ?1",
                [t],
                |r| r.get(0),
            )?),
            None => None,
        };
        Ok(self.driver.changes(container_id, parent.as_deref())?)
    }

    pub(crate) fn container_image(&self, container_id: &str) -> Result<Digest> {
        let id: String = self
            .conn()
            .query_row_cached(
                "SELECT image_id FROM container_layers WHERE container_id = ?1",
                [container_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NoSuchContainer(container_id.to_string()))?;
        Digest::parse(&id)
    }

    /// The image's config bytes, top layer and layer chain (base first: chain id, cache
    /// id, size).
    pub(crate) fn image_record(&self, id: &Digest) -> Result<ImageRecord> {
        let conn = self.conn();
        let (top, created, size, manifest): (Option<String>, Option<String>, i64, Option<String>) =
            conn.query_row_cached(
                "SELECT top_layer, created, size, manifest_digest FROM images WHERE id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
        let top = top.map(|t| Digest::parse(&t)).transpose()?;
        let mut layers = Vec::new();
        let mut cur = top.clone();
        while let Some(c) = cur {
            let (record, parent) = layer_record(&conn, &c)?;
            layers.push(record);
            cur = parent;
        }
        layers.reverse();
        Ok(ImageRecord {
            repo_tags: names_of(&conn, "tags", id.as_str())?,
            repo_digests: names_of(&conn, "repo_digests", id.as_str())?,
            repo_digests_full: names_full(&conn, "repo_digests", id.as_str())?,
            tags_full: names_full(&conn, "tags", id.as_str())?,
            created,
            size: u64::try_from(size).unwrap_or(0),
            layers,
            manifest: manifest.map(|m| Digest::parse(&m)).transpose()?,
        })
    }
}

impl ImageStore {
    /// The uncompressed tar of layer `l`: rebuilt from its tar-split record and its
    /// directory, or read from the blob it was kept as (decompressed). Reading fails if the
    /// layer is damaged; the caller checks the diff id of what it read.
    pub(crate) fn layer_tar(&self, l: &LayerRecord) -> Result<Box<dyn Read + '_>> {
        if let Some(record) = &l.tar_split {
            let file = self.blobs.open_blob(record).map_err(|e| {
                Error::bad(format!(
                    "layer {}: its tar-split record {record} cannot be read ({e}): remove the image and pull or load it again",
                    l.diff_id
                ))
            })?;
            let tar = self
                .driver
                .layer_tar(&l.cache_id, Box::new(std::io::BufReader::new(file)))?;
            return Ok(Box::new(tar));
        }
        let blob = l
            .blob
            .as_ref()
            .ok_or_else(|| Error::bad(format!("layer {} has no stored content", l.diff_id)))?;
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, self.blobs.open_blob(blob)?);
        let compression = hako_storage::unpack::detect_compression(&mut reader)?;
        Ok(hako_storage::unpack::decoder(
            Box::new(reader),
            compression,
        )?)
    }

    /// The chain id of the layer stored as `cache_id`.
    pub(crate) fn chain_id_of(&self, cache_id: &str) -> Result<Digest> {
        let c: String = self.conn().query_row_cached(
            "SELECT chain_id FROM layers WHERE cache_id = ?1",
            [cache_id],
            |r| r.get(0),
        )?;
        Digest::parse(&c)
    }
}

/// What the database knows about one image.
#[derive(Debug)]
pub(crate) struct ImageRecord {
    pub(crate) repo_tags: Vec<String>,
    pub(crate) repo_digests: Vec<String>,
    pub(crate) repo_digests_full: Vec<String>,
    pub(crate) tags_full: Vec<String>,
    pub(crate) created: Option<String>,
    pub(crate) size: u64,
    pub(crate) layers: Vec<LayerRecord>,
    pub(crate) manifest: Option<Digest>,
}

/// One layer of an image.
#[derive(Debug)]
pub(crate) struct LayerRecord {
    pub(crate) cache_id: String,
    pub(crate) diff_id: Digest,
    pub(crate) diff_size: u64,
    /// The blob the layer came from (kept in the blob store only if `tar_split` is `None`).
    pub(crate) blob: Option<Digest>,
    /// Its media type.
    pub(crate) media_type: Option<String>,
    /// The layer's tar-split record: the tar is rebuilt from it and the layer directory.
    pub(crate) tar_split: Option<Digest>,
    /// Bytes on disk, as counted in the image's size.
    pub(crate) size: u64,
}

fn familiar(full: &str) -> String {
    if let Some((name, digest)) = full.split_once('@') {
        return Reference::parse(name)
            .map(|r| format!("{}@{digest}", r.familiar()))
            .unwrap_or_else(|_| full.to_string());
    }
    Reference::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

/// Whether `sql` (with one parameter) returns a row.
fn exists(conn: &Connection, sql: &str, param: &str) -> Result<bool> {
    Ok(conn
        .query_row_cached(sql, [param], |_| Ok(true))
        .optional()?
        .unwrap_or(false))
}

fn names_full(conn: &Connection, table: &str, id: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT name FROM {table} WHERE image_id = ?1 ORDER BY name"
    ))?;
    let v = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Every image's names in `table` (familiar form, sorted), by image id.
fn all_names(
    conn: &Connection,
    table: &str,
) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT image_id, name FROM {table} ORDER BY name"))?;
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (id, name) = row?;
        out.entry(id).or_default().push(familiar(&name));
    }
    Ok(out)
}

fn names_of(conn: &Connection, table: &str, id: &str) -> Result<Vec<String>> {
    Ok(names_full(conn, table, id)?
        .iter()
        .map(|n| familiar(n))
        .collect())
}

pub(crate) fn column(conn: &Connection, sql: &str) -> Result<HashSet<String>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let v = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Inserts newly unpacked layers (refcount 0: the caller takes its references in the same
/// transaction).
pub(crate) fn insert_layers(tx: &Connection, pending: &[PendingLayer]) -> Result<()> {
    let now = db::now();
    for p in pending {
        tx.execute_cached(
            "INSERT INTO layers (chain_id, diff_id, parent, cache_id, size, diff_size, blob_digest, blob_media_type, refcount, created, tar_split)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
            params![
                p.chain_id.as_str(),
                p.diff_id.as_str(),
                p.parent.as_ref().map(|d| d.as_str()),
                p.cache_id,
                i64::try_from(p.size).unwrap_or(i64::MAX),
                i64::try_from(p.diff_size).unwrap_or(i64::MAX),
                p.blob.as_ref().map(|b| b.0.as_str()),
                p.blob.as_ref().map(|b| b.1.as_str()),
                now,
                p.tar_split.as_ref().map(Digest::as_str),
            ],
        )?;
    }
    Ok(())
}

/// The chain from `top` down to the base: (chain id, cache id, size).
pub(crate) fn chain_of(
    conn: &Connection,
    top: Option<&Digest>,
) -> Result<Vec<(String, String, i64)>> {
    let mut out = Vec::new();
    let mut cur = top.map(|d| d.to_string());
    while let Some(c) = cur {
        let (parent, cache, size): (Option<String>, String, i64) = conn.query_row_cached(
            "SELECT parent, cache_id, size FROM layers WHERE chain_id = ?1",
            [&c],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        out.push((c, cache, size));
        cur = parent;
    }
    Ok(out)
}

/// Deletes layers no image, container or flight references, children first; returns
/// their cache ids (the caller removes the directories after commit).
pub(crate) fn delete_dead_layers(conn: &Connection) -> Result<Vec<String>> {
    let mut dead = Vec::new();
    loop {
        let batch: Vec<(String, String)> = {
            let mut stmt = conn.prepare_cached(
                "SELECT chain_id, cache_id FROM layers l WHERE refcount <= 0
                   AND NOT EXISTS (SELECT 1 FROM layers c WHERE c.parent = l.chain_id)
                   AND NOT EXISTS (SELECT 1 FROM images i WHERE i.top_layer = l.chain_id)
                   AND NOT EXISTS (SELECT 1 FROM container_layers k WHERE k.top_layer = l.chain_id)
                   AND NOT EXISTS (SELECT 1 FROM layer_pins p WHERE p.chain_id = l.chain_id)",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        if batch.is_empty() {
            return Ok(dead);
        }
        for (chain, cache) in batch {
            conn.execute_cached("DELETE FROM layers WHERE chain_id = ?1", [&chain])?;
            dead.push(cache);
        }
    }
}

/// The record of layer `chain` and its parent's chain id.
pub(crate) fn layer_record(
    conn: &Connection,
    chain: &Digest,
) -> Result<(LayerRecord, Option<Digest>)> {
    Ok(conn.query_row_cached(
        "SELECT cache_id, parent, diff_id, diff_size, blob_digest, size, blob_media_type, tar_split
                 FROM layers WHERE chain_id = ?1",
        [chain.as_str()],
        |r| {
            let digest = |i: usize| -> rusqlite::Result<Option<Digest>> {
                r.get::<_, Option<String>>(i)
                    .map(|d| d.and_then(|d| Digest::parse(&d).ok()))
            };
            Ok((
                LayerRecord {
                    cache_id: r.get(0)?,
                    diff_id: digest(2)?.ok_or_else(|| {
                        rusqlite::Error::InvalidColumnType(
                            2,
                            "diff_id".into(),
                            rusqlite::types::Type::Text,
                        )
                    })?,
                    diff_size: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    blob: digest(4)?,
                    size: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                    media_type: r.get(6)?,
                    tar_split: digest(7)?,
                },
                digest(1)?,
            ))
        },
    )?)
}
