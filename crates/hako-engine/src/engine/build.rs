//! `hako build` and the API's `POST /build`: one entry, [`Engine::build`], with the
//! Dockerfile frontend and executor in `hako-build` and the engine's side of it (images,
//! root filesystems, RUN containers, layers, the cache) in `build_worker.rs`.
//!
//! ```text
//!  <root>/build/active/<build>.lock   flock held for the whole build: a lock nobody holds
//!                                     marks a build that died (kill -9) and is cleaned up
//!  <root>/build/tmp/<build>/          the context of a tar build, RUN scratch files
//!  <root>/build/cache-mounts/<id>     RUN --mount=type=cache directories (kept, pruned)
//!  <exec-root>/build/<build>/<n>/     bundles of RUN containers (runtime id hb-<build>-<n>)
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hako_build::build::{BuildError, BuildOptions, BuildOutput};
use hako_build::progress::{Cancel, Progress};
use hako_build::worker::Network;
use hako_image::{BuildCacheUsage, BuildPruneReport, Credentials};
use nix::fcntl::{Flock, FlockArg};

use super::Engine;
use super::build_worker::EngineWorker;
use crate::archive::{Owner, Root};

/// Where the build context comes from.
pub enum BuildContext {
    /// A directory (read in place; only what COPY names is read).
    Dir(PathBuf),
    /// A tar stream, possibly compressed (`hako build -`, `POST /build`), unpacked on disk
    /// as it arrives (never held in memory).
    Tar(Box<dyn Read + Send>),
    /// No context (a Dockerfile on stdin).
    None,
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildContext::Dir(p) => write!(f, "Dir({})", p.display()),
            BuildContext::Tar(_) => write!(f, "Tar"),
            BuildContext::None => write!(f, "None"),
        }
    }
}

/// Where the Dockerfile comes from.
#[derive(Debug, Clone)]
pub enum Dockerfile {
    /// A path in the context (`Dockerfile` by default).
    InContext(String),
    /// Its text, with a name for messages and, when it is a file, its path (for the
    /// `<Dockerfile>.dockerignore` next to it).
    Text {
        /// The content.
        text: String,
        /// Shown in messages (`Dockerfile`).
        name: String,
        /// The file on the host, if it is one.
        path: Option<PathBuf>,
    },
}

/// Looks up registry credentials for a registry host.
pub type CredentialLookup = Arc<dyn Fn(&str) -> Option<Credentials> + Send + Sync>;

/// Everything `docker build` takes.
pub struct BuildRequest {
    /// The context.
    pub context: BuildContext,
    /// The Dockerfile.
    pub dockerfile: Dockerfile,
    /// `--build-arg` (values already taken from the environment when given bare).
    pub build_args: Vec<(String, String)>,
    /// `--target`.
    pub target: Option<String>,
    /// `-t`.
    pub tags: Vec<String>,
    /// `--label`.
    pub labels: Vec<(String, String)>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// `--network` (`default`, `bridge`, `none`, `host`).
    pub network: Option<String>,
    /// `--secret` values.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Registry credentials for pulls.
    pub credentials: Option<CredentialLookup>,
}

impl std::fmt::Debug for BuildRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildRequest")
            .field("context", &self.context)
            .field("dockerfile", &self.dockerfile)
            .field("tags", &self.tags)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Default for BuildRequest {
    fn default() -> BuildRequest {
        BuildRequest {
            context: BuildContext::None,
            dockerfile: Dockerfile::InContext("Dockerfile".into()),
            build_args: Vec::new(),
            target: None,
            tags: Vec::new(),
            labels: Vec::new(),
            no_cache: false,
            pull: false,
            network: None,
            secrets: BTreeMap::new(),
            credentials: None,
        }
    }
}

/// Flight marker kind of builds (hako-image's flight.rs).
pub(crate) const KIND_BUILD: &str = "bld";

fn berr(m: impl Into<String>) -> BuildError {
    BuildError::new(m)
}

/// A build's own directories and lock; dropping it removes them.
pub(super) struct BuildDirs {
    pub(super) id: String,
    pub(super) scratch: PathBuf,
    pub(super) bundles: PathBuf,
    lock_path: PathBuf,
    _lock: Flock<std::fs::File>,
}

impl Drop for BuildDirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
        let _ = std::fs::remove_dir_all(&self.bundles);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Reads a regular file of the context (never resolved outside it), at most 16 MiB.
fn read_in_context(dir: &Path, rel: &str) -> std::io::Result<String> {
    use hako_sys::fs::{Root, Rules};
    let root = Root::open(dir, Rules::Beneath)?;
    let data = root
        .read_file(rel, 16 << 20)?
        .ok_or_else(|| std::io::Error::from(nix::errno::Errno::ENOENT))?;
    String::from_utf8(data)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

impl Engine {
    fn build_root(&self) -> PathBuf {
        self.opts.root.join("build")
    }

    /// Builds an image from a Dockerfile. `progress` gets the events as they happen;
    /// `cancel` stops the build (a running RUN is killed, nothing is cached or tagged).
    pub fn build(
        &self,
        req: BuildRequest,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> std::result::Result<BuildOutput, BuildError> {
        self.collect_dead_builds();
        // A flight for the whole build: garbage collection and prunes (which need the
        // store exclusive) wait until it ends, so the layers of earlier steps stay. It
        // spans the build's directories too: a build killed at any point leaves a marker,
        // and the next open cleans up after it (recovery.rs).
        let flight = self
            .images
            .begin_flight(KIND_BUILD)
            .map_err(|e| berr(e.to_string()))?;
        let dirs = self.build_dirs().map_err(|e| berr(e.to_string()))?;
        hako_sys::crash::point("build.started");
        let tags = req.tags.clone();
        let r = self.build_in(req, &dirs, &flight, progress, cancel);
        // Everything a failed build made is gone already (steps clean up after themselves);
        // only a killed build leaves its marker.
        drop(dirs);
        flight.complete();
        // The blobs its steps made unneeded (layers kept as tar-split records) could not be
        // collected while this flight was in progress: their image flights left markers.
        // Collected now, by the build, rather than by whatever command opens the store next.
        if let Err(e) = self.images.recover(&[hako_image::KIND_IMAGE], |_| {
            Ok::<(), hako_image::Error>(())
        }) {
            tracing::warn!(error = %e, "collecting the build's garbage failed; the next command tries again");
        }
        self.images.build_cache_fold_uses_if_large();
        if let Ok(out) = &r {
            for t in &tags {
                self.image_event("tag", &out.id, &super::images::familiar(t));
            }
        }
        r
    }

    fn build_in(
        &self,
        req: BuildRequest,
        dirs: &BuildDirs,
        flight: &hako_image::Flight<'_>,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> std::result::Result<BuildOutput, BuildError> {
        let context = match req.context {
            BuildContext::Dir(d) => {
                let d = std::fs::canonicalize(&d).map_err(|e| {
                    berr(format!(
                        "unable to prepare context: path {:?} not found: {e}",
                        d.display()
                    ))
                })?;
                if !d.is_dir() {
                    return Err(berr(format!(
                        "unable to prepare context: {} is not a directory",
                        d.display()
                    )));
                }
                Some(d)
            }
            BuildContext::Tar(r) => {
                let dir = dirs.scratch.join("context");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| berr(format!("create {}: {e}", dir.display())))?;
                let mut input = hako_build::archive::decompress(r)
                    .map_err(|e| berr(format!("read the build context: {e}")))?;
                Root::open(&dir)
                    .and_then(|root| root.extract(".", &mut input, Owner::Keep))
                    .map_err(|e| berr(format!("unpack the build context: {e}")))?;
                Some(dir)
            }
            BuildContext::None => None,
        };
        let (dockerfile, name, ignore_file) = match &req.dockerfile {
            Dockerfile::InContext(p) => {
                let Some(ctx) = &context else {
                    return Err(berr("no build context to read the Dockerfile from"));
                };
                let text = read_in_context(ctx, p)
                    .map_err(|e| berr(format!("failed to read dockerfile: open {p}: {e}")))?;
                (text, p.clone(), Some(ctx.join(format!("{p}.dockerignore"))))
            }
            Dockerfile::Text { text, name, path } => (
                text.clone(),
                name.clone(),
                path.as_ref().map(|p| {
                    let mut s = p.clone().into_os_string();
                    s.push(".dockerignore");
                    PathBuf::from(s)
                }),
            ),
        };
        let mut ignore_text = None;
        if let Some(f) = &ignore_file
            && let Ok(t) = std::fs::read_to_string(f)
        {
            ignore_text = Some(t);
        }
        if ignore_text.is_none()
            && let Some(ctx) = &context
        {
            ignore_text = read_in_context(ctx, ".dockerignore").ok();
        }
        let ignore = ignore_text
            .map(|t| hako_build::ignore::read_patterns(&t))
            .unwrap_or_default();
        let network = match req.network.as_deref() {
            None | Some("" | "default" | "bridge") => Network::Default,
            Some("none") => Network::None,
            Some("host") => Network::Host,
            Some(other) => {
                return Err(berr(format!(
                    "network mode {other:?} is not supported for builds (default, none, host)"
                )));
            }
        };
        let opts = BuildOptions {
            dockerfile,
            dockerfile_name: name,
            context,
            ignore,
            build_args: req.build_args,
            target: req.target,
            tags: req.tags,
            labels: req.labels,
            no_cache: req.no_cache,
            pull: req.pull,
            network,
            secrets: req.secrets,
            scratch: dirs.scratch.clone(),
        };
        let worker = EngineWorker::new(self, dirs, flight, req.credentials, true);
        let mut r = hako_build::build::build(&opts, &worker, progress, cancel);
        let mut hits = worker.take_hits();
        // A layer the build relied on without a pin went meanwhile (a concurrent build
        // replaced the cache entry holding it): what it did is not to be trusted; again,
        // pinning each state as it comes (see EngineWorker).
        if r.as_ref().is_err_and(|e| !e.cancelled) && worker.stale() {
            progress.event(hako_build::progress::Event::Warning {
                message: "the build cache changed under the build (another build replaced an entry it used): building again".into(),
            });
            let again = worker.again();
            r = hako_build::build::build(&opts, &again, progress, cancel);
            hits = again.take_hits();
        }
        self.images.build_cache_note_uses(&hits);
        r
    }

    /// Six hex digits naming this store in build container ids (`hb-<store><random>-<n>`),
    /// so what one store's builds leave can be told from another's.
    pub fn build_id_prefix(&self) -> String {
        hako_image::Digest::of(self.opts.root.as_os_str().as_encoded_bytes()).hex()[..6].to_string()
    }

    fn build_dirs(&self) -> crate::Result<BuildDirs> {
        let id = format!("{}{}", self.build_id_prefix(), &crate::random_id()[..6]);
        let active = self.build_root().join("active");
        std::fs::create_dir_all(&active).map_err(|e| crate::Error::Io {
            context: format!("create {}", active.display()),
            source: e,
        })?;
        let lock_path = active.join(format!("{id}.lock"));
        // Locked under a temporary name first: a lock file that is there and free is a
        // dead build's, which another process's open cleans up.
        let temp = active.join(format!("{id}.new"));
        let f = std::fs::File::create(&temp).map_err(|e| crate::Error::Io {
            context: format!("create {}", temp.display()),
            source: e,
        })?;
        let lock =
            Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| crate::Error::Io {
                context: format!("lock {}", temp.display()),
                source: e.into(),
            })?;
        std::fs::rename(&temp, &lock_path).map_err(|e| crate::Error::Io {
            context: format!("create {}", lock_path.display()),
            source: e,
        })?;
        // Made by the first step that needs them (a cached rebuild needs neither).
        let scratch = self.build_root().join("tmp").join(&id);
        let bundles = self.opts.exec_root.join("build").join(&id);
        Ok(BuildDirs {
            id,
            scratch,
            bundles,
            lock_path,
            _lock: lock,
        })
    }

    /// Cleans up after builds whose process died: their RUN containers, root
    /// filesystems and directories. A build still running holds its lock and is left alone.
    pub fn collect_dead_builds(&self) {
        // Their flight markers go when no flight at all is in progress.
        if self.collect_dead_builds_locked() > 0
            && let Ok(Some(x)) = self.images.try_exclusive()
        {
            let _ = self.images.clear_crashed_flights(&x, &[KIND_BUILD]);
        }
    }

    /// [`Engine::collect_dead_builds`] without clearing the flight markers (the recovery,
    /// which holds the exclusive lock, clears them); returns how many builds were dead.
    pub(crate) fn collect_dead_builds_locked(&self) -> usize {
        let mut dead = 0;
        for (id, path) in self.dead_builds() {
            let Ok(f) = std::fs::File::options().write(true).open(&path) else {
                continue;
            };
            let Ok(_lock) = Flock::lock(f, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            tracing::info!(build = %id, "cleaning up after a build that did not finish");
            self.remove_build_leftovers(&id);
            let _ = std::fs::remove_file(&path);
            dead += 1;
        }
        dead
    }

    /// Builds whose lock file nobody holds (their process died): id and lock file. A
    /// build takes its lock before its lock file appears under its name.
    pub(crate) fn dead_builds(&self) -> Vec<(String, PathBuf)> {
        let active = self.build_root().join("active");
        let Ok(rd) = std::fs::read_dir(&active) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // (`.new`: one that died before naming its lock file; it made nothing else.)
            let Some(id) = name
                .strip_suffix(".lock")
                .or_else(|| name.strip_suffix(".new"))
            else {
                continue;
            };
            let Ok(f) = std::fs::File::options().write(true).open(e.path()) else {
                continue;
            };
            if Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok() {
                out.push((id.to_string(), e.path()));
            }
        }
        out
    }

    fn remove_build_leftovers(&self, id: &str) {
        let prefix = format!("hb-{id}-");
        let runtime = self.opts.runtime.clone();
        let root = self.runtime_root("hako-runtime");
        let bundles = self.opts.exec_root.join("build").join(id);
        if let Ok(rd) = std::fs::read_dir(&bundles) {
            for b in rd.flatten() {
                let cid = format!("{prefix}{}", b.file_name().to_string_lossy());
                let _ = std::process::Command::new(&runtime)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", &cid])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
        if let Ok(ids) = self.images.container_layers_with_prefix(&prefix) {
            for cid in ids {
                if let Err(e) = self.images.release_rootfs(&cid) {
                    tracing::warn!(container = %cid, error = %e, "release a dead build's rootfs");
                }
            }
        }
        // RUN containers on the bridge: their network and attachment records.
        if let Ok(all) = self.net.containers() {
            for cid in all.iter().filter(|c| c.starts_with(&prefix)) {
                if let Err(e) = self.net.forget(cid) {
                    tracing::warn!(container = %cid, error = %e, "release a dead build's network");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&bundles);
        let _ = std::fs::remove_dir_all(self.build_root().join("tmp").join(id));
        remove_build_cgroups(&prefix);
    }

    /// `hako builder prune`: removes the build cache (entries not used for `until`
    /// seconds, or all) and the cache-mount directories no build is using.
    pub fn build_prune(&self, until: Option<u64>) -> crate::Result<BuildPruneReport> {
        self.collect_dead_builds();
        let mut report = self.images.build_cache_prune(until)?;
        if until.is_none() {
            report.space_reclaimed += super::build_worker::prune_cache_mounts(&self.build_root());
        }
        let mut a = std::collections::BTreeMap::new();
        a.insert("reclaimed".to_string(), report.space_reclaimed.to_string());
        self.emit("builder", "prune", "", a);
        Ok(report)
    }

    /// Build cache usage for `system df`.
    pub fn build_cache_usage(&self) -> crate::Result<BuildCacheUsage> {
        Ok(self.images.build_cache_usage()?)
    }
}

/// The cgroups of a dead build's RUN containers (`/hako/hb-BUILD-N` in every hierarchy) that
/// `delete` could not reach: a build killed while the runtime was creating one leaves the
/// cgroup without the runtime's state (a CI crash test caught it, 1 run in 9). What is left
/// in it is the dead build's, and is killed; the emptied cgroup is removed.
fn remove_build_cgroups(prefix: &str) {
    let base = Path::new("/sys/fs/cgroup");
    let mut parents = vec![base.join("hako")];
    for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            parents.push(e.path().join("hako"));
        }
    }
    for parent in parents {
        for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            if !e.file_name().to_string_lossy().starts_with(prefix) {
                continue;
            }
            let dir = e.path();
            for _ in 0..50 {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                match std::fs::remove_dir(&dir) {
                    Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod cgroup_tests {
    use super::*;

    /// A dead build's RUN cgroup with a process still in it (the runtime was killed while
    /// creating the container): the process is killed and the cgroup removed.
    #[test]
    fn a_dead_builds_run_cgroups_are_emptied_and_removed() {
        // v1's pids hierarchy, or the unified one on a pure v2 host.
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let parent = if v1.is_dir() {
            v1
        } else {
            Path::new("/sys/fs/cgroup")
        }
        .join("hako");
        let parent = parent.as_path();
        if !nix::unistd::geteuid().is_root() || std::fs::create_dir_all(parent).is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "needs root and a cgroup hierarchy"
            );
            return;
        }
        let prefix = format!("hb-t{}-", std::process::id());
        let dir = parent.join(format!("{prefix}0"));
        std::fs::create_dir(&dir).expect("a cgroup");
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("sleep");
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).expect("move it in");
        remove_build_cgroups(&prefix);
        assert!(!dir.exists(), "{} is left", dir.display());
        let status = child.wait().expect("wait");
        assert!(!status.success(), "the process was killed: {status:?}");
    }
}
