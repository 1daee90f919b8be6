//! What the builder needs from the engine: images, root filesystems on layer chains,
//! containers for RUN, layers from a step's changes, the cache, and the final image.
//! hako-engine implements it (`hako_engine::Engine::build`); the builder itself never
//! touches the image store, the runtime or a cgroup.
//!
//! Contract, per step that misses the cache:
//!
//! ```text
//!   rootfs(parent) ─► (run | copy into rootfs.path()) ─► commit(rootfs, parent, key)
//!        │ dropped without commit (error, cancel): unmounted and deleted, nothing cached
//! ```
//!
//! `commit` records the step's result under `key` only once the layer is registered, in
//! one transaction, so a crash never leaves a cache entry without its layer.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::ImageConfig;
use crate::dispatch::args::Platform;
use crate::progress::Cancel;

/// An error the engine reports (already worded for the user).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorkerError(pub String);

/// `Result` of worker calls.
pub type WResult<T> = Result<T, WorkerError>;

/// A filesystem state: the top of a layer chain (`None`: empty, `FROM scratch`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Layers(pub Option<String>);

/// A base image.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// Config digest (`sha256:...`).
    pub id: String,
    /// The reference normalized (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// Its config.
    pub config: ImageConfig,
    /// Its layers.
    pub layers: Layers,
}

/// The recorded result of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    /// The filesystem after the step.
    pub layers: Layers,
    /// When the step first ran (RFC 3339); reused so cached rebuilds give the same image.
    pub created: String,
    /// The step changed nothing (no layer; `empty_layer` in history).
    pub empty: bool,
}

/// A root filesystem mounted for a step; dropping it unmounts and deletes it.
pub trait Rootfs: Send {
    /// Where it is mounted.
    fn path(&self) -> &Path;
    /// The engine's id for it (the RUN container's id too).
    fn id(&self) -> &str;
}

/// How a RUN container is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The engine's default for builds.
    Default,
    /// Loopback only.
    None,
    /// The host's network namespace.
    Host,
}

/// A mount of a RUN container (already resolved to host paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// A host path bind-mounted.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Container path.
        target: String,
        /// Read-only.
        readonly: bool,
    },
    /// A tmpfs.
    Tmpfs {
        /// Container path.
        target: String,
        /// Size limit.
        size: Option<u64>,
    },
}

/// A RUN container to run to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// argv.
    pub argv: Vec<String>,
    /// `K=V`.
    pub env: Vec<String>,
    /// `USER` (name or uid[:gid], resolved in the rootfs by the engine).
    pub user: String,
    /// Working directory.
    pub cwd: String,
    /// Extra mounts.
    pub mounts: Vec<RunMount>,
    /// Network.
    pub network: Network,
    /// `--security=insecure` (all capabilities, no seccomp).
    pub insecure: bool,
}

/// The engine side of a build.
pub trait Worker: Sync {
    /// The host platform.
    fn platform(&self) -> Platform;

    /// Finds `reference` (pulling it when missing, or always with `pull`).
    fn base_image(
        &self,
        reference: &str,
        platform: Option<&str>,
        pull: bool,
        log: &mut dyn FnMut(&str),
    ) -> WResult<BaseImage>;

    /// The result recorded for `key`, if any.
    fn cache_get(&self, key: &str) -> WResult<Option<StepResult>>;

    /// Records `result` under `key` (a step whose result is an existing state).
    fn cache_put(&self, key: &str, result: &StepResult) -> WResult<()>;

    /// A fact derived from an immutable state, recorded under `key` by an earlier build
    /// ([`Worker::memo_put`]).
    fn memo_get(&self, key: &str) -> WResult<Option<String>>;

    /// Records a fact derived from an immutable state (the content digest of files
    /// selected in a layer chain), so later builds need not derive it again.
    fn memo_put(&self, key: &str, value: &str) -> WResult<()>;

    /// A writable root filesystem on `layers`.
    fn rootfs(&self, layers: &Layers) -> WResult<Box<dyn Rootfs + '_>>;

    /// `USER` or `--chown` text → uid and gid, from the rootfs' `/etc/passwd` and
    /// `/etc/group`.
    fn resolve_user(&self, rootfs: &dyn Rootfs, user: &str) -> WResult<(u32, u32)>;

    /// Runs a container on `rootfs` to completion; output goes to `out(stream, bytes)`.
    /// Returns the exit code. `cancel` kills it.
    fn run(
        &self,
        rootfs: &dyn Rootfs,
        req: &RunRequest,
        out: &mut dyn FnMut(u8, &[u8]),
        cancel: &Cancel,
    ) -> WResult<i32>;

    /// Extracts a tar stream into `dir` (absolute in the rootfs, resolved in it).
    fn extract(
        &self,
        rootfs: &dyn Rootfs,
        dir: &str,
        tar: &mut dyn Read,
        owner: Option<(u32, u32)>,
    ) -> WResult<()>;

    /// Turns the changes made in `rootfs` into a layer on `parent` and records the
    /// result under `key`.
    fn commit(
        &self,
        rootfs: Box<dyn Rootfs + '_>,
        parent: &Layers,
        key: &str,
    ) -> WResult<StepResult>;

    /// `COPY --link`: puts `own` (a step committed on `Layers(None)`: its files as a
    /// layer of their own) on `parent`, recorded under `key`. The same layer whatever
    /// the parent; nothing is copied from the step's sources again.
    fn stack(&self, own: &StepResult, parent: &Layers, key: &str) -> WResult<StepResult>;

    /// The diff ids of a chain, base first.
    fn diff_ids(&self, layers: &Layers) -> WResult<Vec<String>>;

    /// A cache mount directory, held until the guard drops (`locked` waits for it).
    fn cache_mount(
        &self,
        id: &str,
        sharing: crate::mounts::Sharing,
        owner: (u32, u32),
        mode: u32,
    ) -> WResult<Box<dyn Rootfs + '_>>;

    /// Writes the image and points `tags` at it; returns its id.
    fn export(&self, config: &ImageConfig, layers: &Layers, tags: &[String]) -> WResult<String>;
}
