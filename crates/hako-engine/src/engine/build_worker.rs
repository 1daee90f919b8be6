//! The engine's side of a build ([`hako_build::worker::Worker`]): base images (pulled
//! when missing), build root filesystems on layer chains, the cache in the image store,
//! `--chown`/`USER` lookups, tar extraction, cache mounts and the final image.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hako_build::config::ImageConfig;
use hako_build::dispatch::args::Platform;
use hako_build::mounts::Sharing;
use hako_build::progress::Cancel;
use hako_build::worker::{
    BaseImage, Layers, Rootfs, RunRequest, StepResult, WResult, Worker, WorkerError,
};
use hako_image::{BuildCacheEntry, Digest, ImageStore};
use nix::fcntl::{Flock, FlockArg};

use super::Engine;
use super::build::{BuildDirs, CredentialLookup};
use crate::archive::{Owner, Root};

fn werr(e: impl std::fmt::Display) -> WorkerError {
    WorkerError(e.to_string())
}

/// A build's root filesystem: released (unmounted, deleted) when dropped.
pub(super) struct BuildRootfs<'a> {
    store: &'a ImageStore,
    id: String,
    path: PathBuf,
}

impl Rootfs for BuildRootfs<'_> {
    fn path(&self) -> &Path {
        &self.path
    }
    fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for BuildRootfs<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.store.release_rootfs(&self.id) {
            tracing::warn!(rootfs = %self.id, error = %e, "release a build rootfs");
        }
    }
}

/// A cache mount directory held (shared or exclusive) while a RUN uses it.
struct CacheMount {
    path: PathBuf,
    _lock: Flock<std::fs::File>,
}

impl Rootfs for CacheMount {
    fn path(&self) -> &Path {
        &self.path
    }
    fn id(&self) -> &str {
        ""
    }
}

fn layers_top(l: &Layers) -> WResult<Option<Digest>> {
    l.0.as_deref().map(Digest::parse).transpose().map_err(werr)
}

fn entry_result(e: BuildCacheEntry) -> StepResult {
    StepResult {
        layers: Layers(e.top_layer.map(|d| d.to_string())),
        created: e.created,
        empty: e.empty,
    }
}

/// The engine as a build worker.
///
/// Every state handed to the builder is pinned in the build's flight, so that nothing
/// removes its layers while the build relies on them. While the build has only read (cache
/// hits, base images: a cached rebuild), the pins wait in memory and the build writes
/// nothing to the database; the first step that writes (a miss) pins them all in one
/// transaction, and from then on each state is pinned as it comes. A deferred pin whose
/// layer went meanwhile (another build replaced the cache entry that held it) makes the
/// worker [`EngineWorker::stale`]: [`Engine::build`] builds again, pinning as it goes.
pub(super) struct EngineWorker<'a> {
    pub(super) engine: &'a Engine,
    pub(super) build_id: String,
    pub(super) bundles: PathBuf,
    /// The build's flight: every state handed to the builder is pinned in it.
    flight: &'a hako_image::Flight<'a>,
    next: AtomicU64,
    credentials: Option<CredentialLookup>,
    /// Pins not written yet (`None`: pinning as states come).
    deferred: Mutex<Option<Vec<Digest>>>,
    /// A deferred pin found its layer gone.
    stale: AtomicBool,
    /// Cache entries this build used (noted in the store's journal at its end).
    hits: Mutex<Vec<String>>,
}

impl<'a> EngineWorker<'a> {
    /// A worker that defers its pins (`defer`) or pins each state as it comes.
    pub(super) fn new(
        engine: &'a Engine,
        dirs: &BuildDirs,
        flight: &'a hako_image::Flight<'a>,
        credentials: Option<CredentialLookup>,
        defer: bool,
    ) -> EngineWorker<'a> {
        EngineWorker {
            engine,
            build_id: dirs.id.clone(),
            bundles: dirs.bundles.clone(),
            flight,
            next: AtomicU64::new(0),
            credentials,
            deferred: Mutex::new(defer.then(Vec::new)),
            stale: AtomicBool::new(false),
            hits: Mutex::new(Vec::new()),
        }
    }

    /// A worker for building again after this one went stale: it pins as it goes, and
    /// names its root filesystems after this one's.
    pub(super) fn again(&self) -> EngineWorker<'a> {
        EngineWorker {
            engine: self.engine,
            build_id: self.build_id.clone(),
            bundles: self.bundles.clone(),
            flight: self.flight,
            next: AtomicU64::new(self.next.load(Ordering::SeqCst)),
            credentials: self.credentials.clone(),
            deferred: Mutex::new(None),
            stale: AtomicBool::new(false),
            hits: Mutex::new(Vec::new()),
        }
    }

    /// Whether a state this build relied on without pinning it went meanwhile (checked
    /// now for the pins still deferred: a failed build asks before it is believed).
    pub(super) fn stale(&self) -> bool {
        let _ = self.write_pins();
        self.stale.load(Ordering::SeqCst)
    }

    /// The cache entries the build used.
    pub(super) fn take_hits(&self) -> Vec<String> {
        std::mem::take(&mut *self.hits.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Pins the state `layers` for the rest of the build (see [`EngineWorker`]).
    fn pin(&self, layers: &Layers) -> WResult<()> {
        let Some(top) = layers_top(layers)? else {
            return Ok(());
        };
        if let Some(d) = self
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            if !d.contains(&top) {
                d.push(top);
            }
            return Ok(());
        }
        if !self.flight.pin_layer(&top).map_err(werr)? {
            return Err(WorkerError(format!("layer {top} is not in the store")));
        }
        Ok(())
    }

    /// Writes the deferred pins (before the build's first write); from then on each state
    /// is pinned as it comes.
    fn write_pins(&self) -> WResult<()> {
        let Some(d) = self
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return Ok(());
        };
        if let Some(gone) = self.flight.pin_layers(&d).map_err(werr)? {
            self.stale.store(true, Ordering::SeqCst);
            return Err(WorkerError(format!(
                "layer {gone} went while the build used it (another build replaced its cache entry)"
            )));
        }
        Ok(())
    }

    fn store(&self) -> &'a ImageStore {
        &self.engine.images
    }

    fn pull(
        &self,
        reference: &str,
        platform: Option<&str>,
        log: &mut dyn FnMut(&str),
    ) -> WResult<()> {
        use hako_image::registry::PullOptions;
        let r = hako_image::Reference::parse(reference).map_err(werr)?;
        let platform = platform
            .map(hako_image::Platform::parse)
            .transpose()
            .map_err(werr)?;
        log(&format!("pulling {}", r.familiar()));
        let opts = PullOptions {
            platform,
            credentials: self.credentials.as_ref().and_then(|c| c(r.domain())),
            ..PullOptions::default()
        };
        let report = self.store().pull(reference, &opts).map_err(|e| {
            WorkerError(format!(
                "failed to resolve source metadata for {}: {e}",
                hako_build::build::normalize_tag(reference)
            ))
        })?;
        log(&format!("resolve {} done", report.digest));
        Ok(())
    }
}

impl Worker for EngineWorker<'_> {
    fn platform(&self) -> Platform {
        let p = hako_image::Platform::host();
        Platform {
            os: p.os,
            arch: p.architecture,
            variant: p.variant,
        }
    }

    fn base_image(
        &self,
        reference: &str,
        platform: Option<&str>,
        pull: bool,
        log: &mut dyn FnMut(&str),
    ) -> WResult<BaseImage> {
        let store = self.store();
        let found = if pull {
            self.pull(reference, platform, log)?;
            store.resolve(reference)
        } else {
            match store.resolve(reference) {
                Err(hako_image::Error::NoSuchImage(_)) => {
                    self.pull(reference, platform, log)?;
                    store.resolve(reference)
                }
                r => r,
            }
        };
        let id = found.map_err(werr)?;
        let bytes = store.image_config(&id).map_err(werr)?;
        let config: ImageConfig = serde_json::from_slice(&bytes)
            .map_err(|e| WorkerError(format!("config of image {reference}: {e}")))?;
        let top = store.image_top_layer(&id).map_err(werr)?;
        let layers = Layers(top.map(|d| d.to_string()));
        self.pin(&layers)?;
        Ok(BaseImage {
            id: id.to_string(),
            reference: hako_build::build::normalize_tag(reference),
            config,
            layers,
        })
    }

    fn cache_get(&self, key: &str) -> WResult<Option<StepResult>> {
        let Some(r) = self
            .store()
            .build_cache_get(key)
            .map_err(werr)?
            .map(entry_result)
        else {
            return Ok(None);
        };
        // An entry whose layer went meanwhile (a prune) is a miss.
        if self.pin(&r.layers).is_err() {
            return Ok(None);
        }
        self.hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key.to_string());
        Ok(Some(r))
    }

    fn cache_put(&self, key: &str, result: &StepResult) -> WResult<()> {
        self.write_pins()?;
        let entry = BuildCacheEntry {
            top_layer: layers_top(&result.layers)?,
            created: result.created.clone(),
            empty: result.empty,
        };
        self.store().build_cache_put(key, &entry).map_err(werr)?;
        hako_sys::crash::point("build.cached");
        Ok(())
    }

    fn memo_get(&self, key: &str) -> WResult<Option<String>> {
        self.store().build_memo_get(key).map_err(werr)
    }

    fn memo_put(&self, key: &str, value: &str) -> WResult<()> {
        self.store().build_memo_put(key, value).map_err(werr)
    }

    fn rootfs(&self, layers: &Layers) -> WResult<Box<dyn Rootfs + '_>> {
        self.write_pins()?;
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let id = format!("hb-{}-{n}", self.build_id);
        let top = layers_top(layers)?;
        let m = self
            .store()
            .prepare_rootfs_on_chain(top.as_ref(), &id)
            .map_err(werr)?;
        tracing::debug!(rootfs = %id, layers = ?layers.0, "build root filesystem mounted");
        hako_sys::crash::point("build.rootfs");
        Ok(Box::new(BuildRootfs {
            store: self.store(),
            id,
            path: m.rootfs,
        }))
    }

    fn resolve_user(&self, rootfs: &dyn Rootfs, user: &str) -> WResult<(u32, u32)> {
        let u = crate::user::resolve(rootfs.path(), user).map_err(werr)?;
        // `--chown=user` without a group: the group is the same number (Docker's rule).
        if user.contains(':') {
            Ok((u.uid, u.gid))
        } else {
            Ok((u.uid, u.uid))
        }
    }

    fn run(
        &self,
        rootfs: &dyn Rootfs,
        req: &RunRequest,
        out: &mut dyn FnMut(u8, &[u8]),
        cancel: &Cancel,
    ) -> WResult<i32> {
        self.run_container(rootfs, req, out, cancel)
    }

    fn extract(
        &self,
        rootfs: &dyn Rootfs,
        dir: &str,
        tar: &mut dyn Read,
        owner: Option<(u32, u32)>,
    ) -> WResult<()> {
        let owner = match owner {
            Some((u, g)) => Owner::Set(u, g),
            None => Owner::Keep,
        };
        let mut tar = CrashPointAfterFirstRead {
            inner: tar,
            read: false,
            marked: false,
        };
        Root::open(rootfs.path())
            .and_then(|r| r.extract(dir, &mut tar, owner))
            .map_err(werr)?;
        hako_sys::crash::point("build.extracted");
        Ok(())
    }

    fn commit(
        &self,
        rootfs: Box<dyn Rootfs + '_>,
        parent: &Layers,
        key: &str,
    ) -> WResult<StepResult> {
        self.write_pins()?;
        let top = layers_top(parent)?;
        let entry = self
            .store()
            .build_commit(rootfs.id(), top.as_ref(), key)
            .map_err(werr)?;
        hako_sys::crash::point("build.committed");
        drop(rootfs);
        let r = entry_result(entry);
        self.pin(&r.layers)?;
        Ok(r)
    }

    fn stack(&self, own: &StepResult, parent: &Layers, key: &str) -> WResult<StepResult> {
        self.write_pins()?;
        let Some(layer) = layers_top(&own.layers)? else {
            // The step made nothing: the parent's state is the result.
            return self
                .cache_put(
                    key,
                    &StepResult {
                        layers: parent.clone(),
                        created: own.created.clone(),
                        empty: true,
                    },
                )
                .and_then(|()| {
                    self.cache_get(key)?
                        .ok_or_else(|| WorkerError(format!("cache entry {key} went")))
                });
        };
        let top = layers_top(parent)?;
        let entry = self
            .store()
            .build_stack(&layer, top.as_ref(), key, &own.created)
            .map_err(werr)?;
        let r = entry_result(entry);
        self.pin(&r.layers)?;
        Ok(r)
    }

    fn diff_ids(&self, layers: &Layers) -> WResult<Vec<String>> {
        let top = layers_top(layers)?;
        Ok(self
            .store()
            .chain_diff_ids(top.as_ref())
            .map_err(werr)?
            .into_iter()
            .map(|d| d.to_string())
            .collect())
    }

    fn cache_mount(
        &self,
        id: &str,
        sharing: Sharing,
        owner: (u32, u32),
        mode: u32,
    ) -> WResult<Box<dyn Rootfs + '_>> {
        let base = self.engine.opts.root.join("build").join("cache-mounts");
        std::fs::create_dir_all(&base)
            .map_err(|e| werr(format!("create {}: {e}", base.display())))?;
        let name = Digest::of(id.as_bytes()).hex()[..32].to_string();
        let lock_of = |n: &str| -> WResult<std::fs::File> {
            let p = base.join(format!("{n}.lock"));
            std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .map_err(|e| werr(format!("open {}: {e}", p.display())))
        };
        let (dir_name, lock) = match sharing {
            Sharing::Shared | Sharing::Locked => {
                let how = if sharing == Sharing::Shared {
                    FlockArg::LockShared
                } else {
                    FlockArg::LockExclusive
                };
                let l = Flock::lock(lock_of(&name)?, how)
                    .map_err(|(_, e)| werr(format!("lock cache mount {id}: {e}")))?;
                (name, l)
            }
            Sharing::Private => {
                let mut n = 0;
                loop {
                    let candidate = if n == 0 {
                        name.clone()
                    } else {
                        format!("{name}-{n}")
                    };
                    match Flock::lock(lock_of(&candidate)?, FlockArg::LockExclusiveNonblock) {
                        Ok(l) => break (candidate, l),
                        Err(_) => n += 1,
                    }
                }
            }
        };
        let path = base.join(&dir_name);
        if !path.exists() {
            let tmp = base.join(format!("{dir_name}.new"));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir(&tmp)
                .map_err(|e| werr(format!("create {}: {e}", tmp.display())))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
                .map_err(|e| werr(format!("chmod {}: {e}", tmp.display())))?;
            nix::unistd::chown(&tmp, Some(owner.0.into()), Some(owner.1.into()))
                .map_err(|e| werr(format!("chown {}: {e}", tmp.display())))?;
            if let Err(e) = std::fs::rename(&tmp, &path)
                && !path.exists()
            {
                return Err(werr(format!("create {}: {e}", path.display())));
            }
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Ok(Box::new(CacheMount { path, _lock: lock }))
    }

    fn export(&self, config: &ImageConfig, layers: &Layers, tags: &[String]) -> WResult<String> {
        let bytes = serde_json::to_vec(config).map_err(werr)?;
        // A rebuild whose image is there under its tags already writes nothing.
        if let Some(id) = self.store().image_in_place(&bytes, tags).map_err(werr)? {
            hako_sys::crash::point("build.exported");
            return Ok(id.to_string());
        }
        self.write_pins()?;
        let top = layers_top(layers)?;
        let id = self
            .store()
            .create_image(&bytes, top.as_ref(), tags)
            .map_err(werr)?;
        hako_sys::crash::point("build.exported");
        Ok(id.to_string())
    }
}

/// A COPY's tar stream that marks the crash point `build.extracting` once, at its second
/// read: the copy is under way, part of it written.
struct CrashPointAfterFirstRead<'a> {
    inner: &'a mut dyn Read,
    read: bool,
    marked: bool,
}

impl Read for CrashPointAfterFirstRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && !self.read {
            self.read = true;
        } else if n > 0 && !self.marked {
            self.marked = true;
            hako_sys::crash::point("build.extracting");
        }
        Ok(n)
    }
}

/// Removes the cache mount directories no build holds; returns the bytes freed.
pub(super) fn prune_cache_mounts(build_root: &Path) -> u64 {
    let base = build_root.join("cache-mounts");
    let Ok(rd) = std::fs::read_dir(&base) else {
        return 0;
    };
    let mut freed = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") || name.ends_with(".new") {
            continue;
        }
        let lock_path = base.join(format!("{name}.lock"));
        let Ok(f) = std::fs::File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
        else {
            continue;
        };
        let Ok(_l) = Flock::lock(f, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        freed += hako_image::dir_size(&e.path()).unwrap_or(0);
        if std::fs::remove_dir_all(e.path()).is_ok() {
            let _ = std::fs::remove_file(&lock_path);
        }
    }
    freed
}
