//! `docker pull` / `docker push` against an OCI distribution registry, and `docker login`.
//!
//! ```text
//! client.rs  HTTP: scheme (https, http for loopback or --insecure), Basic and Bearer
//!            auth, registry error bodies → Error::Registry
//! auth.rs    WWW-Authenticate parsing, Docker's config.json, login / logout
//! pull.rs    ImageStore::pull: manifest (index → platform pick) → config → layers in
//!            parallel (verified, resumable) → unpack → one database transaction
//! push.rs    ImageStore::push: blobs (HEAD, mount, monolithic or chunked upload) → manifest
//! ```
//!
//! Pull keeps the store's crash-safety rule: nothing is listed until every blob has been
//! verified and every layer unpacked; an interrupted pull leaves unreferenced files that
//! the next open collects, and partial downloads (`blobs/partial/`) that the next pull
//! resumes with an HTTP `Range` request.
//!
//! ```no_run
//! use hako_image::{ImageStore, registry::{self, PullOptions, PushOptions}};
//! # fn main() -> hako_image::Result<()> {
//! let store = ImageStore::open("/var/lib/hako")?;
//! let config = std::path::Path::new("/root/.config/hako/config.json");
//! let creds = registry::load_credentials(config, "localhost:5000")?;
//! let show = |e: registry::ProgressEvent| eprintln!("{}: {} {}/{}", e.id, e.status, e.current, e.total);
//! let pulled = store.pull("localhost:5000/app:1", &PullOptions {
//!     credentials: creds.clone(), progress: Some(&show), ..Default::default() })?;
//! println!("Digest: {}", pulled.digest);
//! store.push("localhost:5000/app:1", &PushOptions { credentials: creds, ..Default::default() })?;
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod pull;
mod push;

pub use auth::{Credentials, check_login, config_key, load_credentials, login, logout};

use crate::digest::Digest;
use crate::error::Result;
use crate::reference::Reference;
use crate::spec::Platform;

/// A progress callback. Called from several download threads at once.
pub type Progress<'a> = &'a (dyn Fn(ProgressEvent) + Sync);

/// One step of one layer (or config), for Docker-like progress bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    /// Docker's short id of the blob (12 hex digits).
    pub id: String,
    /// What is happening.
    pub status: ProgressStatus,
    /// Bytes done (downloaded, pushed); 0 when not applicable.
    pub current: u64,
    /// Bytes in all; 0 when unknown.
    pub total: u64,
}

/// The statuses Docker prints beside a layer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStatus {
    /// `Pulling fs layer`
    PullingFsLayer,
    /// `Waiting`
    Waiting,
    /// `Downloading` (with bytes)
    Downloading,
    /// `Verifying Checksum`
    VerifyingChecksum,
    /// `Download complete`
    DownloadComplete,
    /// `Extracting`
    Extracting,
    /// `Pull complete`
    PullComplete,
    /// `Already exists` (the layer is in the store)
    AlreadyExists,
    /// `Preparing`
    Preparing,
    /// `Pushing` (with bytes)
    Pushing,
    /// `Pushed`
    Pushed,
    /// `Layer already exists` (in the registry)
    LayerAlreadyExists,
    /// `Mounted from <repository>`
    Mounted,
}

impl ProgressStatus {
    /// Docker's words.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressStatus::PullingFsLayer => "Pulling fs layer",
            ProgressStatus::Waiting => "Waiting",
            ProgressStatus::Downloading => "Downloading",
            ProgressStatus::VerifyingChecksum => "Verifying Checksum",
            ProgressStatus::DownloadComplete => "Download complete",
            ProgressStatus::Extracting => "Extracting",
            ProgressStatus::PullComplete => "Pull complete",
            ProgressStatus::AlreadyExists => "Already exists",
            ProgressStatus::Preparing => "Preparing",
            ProgressStatus::Pushing => "Pushing",
            ProgressStatus::Pushed => "Pushed",
            ProgressStatus::LayerAlreadyExists => "Layer already exists",
            ProgressStatus::Mounted => "Mounted",
        }
    }
}

impl std::fmt::Display for ProgressStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of [`ImageStore::pull`](crate::ImageStore::pull).
#[derive(Clone, Default)]
pub struct PullOptions<'a> {
    /// Platform to pick from a multi-platform image. Default: the store's.
    pub platform: Option<Platform>,
    /// Allow plain http (and fall back to it when https fails). Loopback registries
    /// always allow it.
    pub insecure: bool,
    /// Credentials (see [`load_credentials`]); anonymous without.
    pub credentials: Option<Credentials>,
    /// Called for every layer step.
    pub progress: Option<Progress<'a>>,
    /// Layers downloaded at once; 0 means 3 (Docker's default).
    pub max_concurrent_downloads: usize,
}

/// Options of [`ImageStore::push`](crate::ImageStore::push).
#[derive(Clone, Default)]
pub struct PushOptions<'a> {
    /// Allow plain http (and fall back to it when https fails). Loopback registries
    /// always allow it.
    pub insecure: bool,
    /// Credentials (see [`load_credentials`]); anonymous without.
    pub credentials: Option<Credentials>,
    /// Called for every layer step.
    pub progress: Option<Progress<'a>>,
    /// Upload blobs in `PATCH` chunks of this many bytes; `None` uploads each blob with
    /// one `PUT`.
    pub chunk_size: Option<u64>,
    /// Blobs uploaded at once; 0 means 5 (Docker's default).
    pub max_concurrent_uploads: usize,
}

macro_rules! debug_options {
    ($t:ident, $($f:ident),*) => {
        impl std::fmt::Debug for $t<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($f), &self.$f))*
                    .field("progress", &self.progress.map(|_| "Fn"))
                    .finish()
            }
        }
    };
}
debug_options!(
    PullOptions,
    platform,
    insecure,
    credentials,
    max_concurrent_downloads
);
debug_options!(
    PushOptions,
    insecure,
    credentials,
    chunk_size,
    max_concurrent_uploads
);

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// The image id (config digest).
    pub id: Digest,
    /// The digest of what the reference named (the index, for multi-platform images);
    /// recorded in `RepoDigests`.
    pub digest: Digest,
    /// The reference, normalized and familiar (`localhost:5000/app:1`).
    pub reference: String,
    /// `false` if the image was already in the store ("Image is up to date").
    pub new: bool,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The tag pushed (`1`).
    pub tag: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size in bytes.
    pub size: u64,
}

/// The tags of a repository (`localhost:5000/app`), as the registry lists them.
pub fn list_tags(
    repository: &str,
    insecure: bool,
    credentials: Option<Credentials>,
) -> Result<Vec<String>> {
    let r = Reference::parse(repository)?;
    let client = client::Client::new(
        r.domain(),
        insecure,
        credentials,
        format!("repository:{}:pull", r.path()),
    );
    let mut out = Vec::new();
    let mut next = Some(format!("/v2/{}/tags/list", r.path()));
    while let Some(path) = next.take() {
        let url = client.url(&path)?;
        let resp = client.call("GET", &url, &[], &client::Body::Empty)?;
        let resp = client::expect(resp, &[], || format!("tags of {}", r.familiar_repository()))?;
        // Link: </v2/x/tags/list?last=a&n=100>; rel="next"
        next = resp
            .header("link")
            .and_then(|l| l.split_once('<'))
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(u, _)| u.to_string());
        #[derive(serde::Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        let t: Tags = client::read_json(resp, "tag list")?;
        out.extend(t.tags.unwrap_or_default());
    }
    Ok(out)
}

/// Docker's short id of a digest.
fn short_id(d: &str) -> String {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// Sends `ev` to the callback, if any.
fn emit(
    progress: Option<Progress<'_>>,
    id: &str,
    status: ProgressStatus,
    current: u64,
    total: u64,
) {
    if let Some(p) = progress {
        p(ProgressEvent {
            id: id.to_string(),
            status,
            current,
            total,
        });
    }
}
