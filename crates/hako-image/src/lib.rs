//! hako's images: a content-addressed blob store, OCI and Docker manifests and configs,
//! image metadata in SQLite, and the ways images get in and out of the store
//! (`import`, `load`, `save`, and [`registry`] `pull` / `push` / `login`). Layers are unpacked and mounted by `hako-storage`.
//!
//! The entry point is [`ImageStore`]:
//!
//! ```no_run
//! use hako_image::{ImageStore, ImportOptions};
//! # fn main() -> hako_image::Result<()> {
//! let store = ImageStore::open("/var/lib/hako")?;
//! let rootfs = std::fs::File::open("rootfs.tar")?;
//! let opts = ImportOptions { reference: Some("busybox:local".into()), changes: vec!["CMD [\"sh\"]".into()], ..Default::default() };
//! let id = store.import(&mut std::io::BufReader::new(rootfs), &opts)?;
//! let mnt = store.prepare_rootfs("busybox:local", "ctr1")?;   // overlay mounted at mnt.rootfs
//! store.release_rootfs("ctr1")?;
//! store.save(&["busybox:local"], &mut std::fs::File::create("out.tar")?)?;
//! store.remove(id.as_str(), false)?;
//! # Ok(()) }
//! ```

mod archive;
mod blobs;
mod build_cache;
mod build_uses;
mod check;
mod commit;
mod db;
mod digest;
mod error;
mod flight;
mod gc;
mod import;
mod inspect;
mod reference;
pub mod registry;
mod reserve;
pub mod spec;
mod store;

pub use archive::LoadedImage;
pub use blobs::BlobStore;
pub use build_cache::{BuildCacheEntry, BuildCacheRecord, BuildCacheUsage, BuildPruneReport};
pub use check::{CheckCounts, Finding};
pub use commit::CommitOptions;
pub use db::describe as describe_db_error;
pub use digest::Digest;
pub use error::{Error, Result};
pub use flight::{Exclusive, Flight, KIND_IMAGE};
pub use hako_storage::{Change, ChangeKind, LayerPaths, QuotaUsage, StorageOpts, dir_size};
pub use import::ImportOptions;
pub use reference::Reference;
pub use registry::{
    Credentials, ProgressEvent, ProgressStatus, PullOptions, PullReport, PushOptions, PushReport,
};
pub use spec::Platform;
pub use store::{
    ImageStore, ImageSummary, LayerUsage, Options, PruneReport, RemoveAction, RootfsMount,
};

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            context: "i/o".into(),
            source,
        }
    }
}

/// `n` random bytes from the kernel, hex encoded.
pub(crate) fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            format!("{t}-{}", std::process::id()),
        ));
        for (i, b) in buf.iter_mut().enumerate() {
            *b = seed[i % seed.len()];
        }
    }
    hex::encode(buf)
}
