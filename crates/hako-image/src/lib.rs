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
mod commit;
mod db;
mod digest;
mod error;
mod import;
mod inspect;
mod reference;
pub mod registry;
pub mod spec;
mod store;

pub use archive::LoadedImage;
pub use blobs::BlobStore;
pub use commit::CommitOptions;
pub use digest::Digest;
pub use error::{Error, Result};
pub use hako_storage::{Change, ChangeKind, LayerPaths, QuotaUsage, StorageOpts};
pub use import::ImportOptions;
pub use reference::Reference;
pub use registry::{
    Credentials, ProgressEvent, ProgressStatus, PullOptions, PullReport, PushOptions, PushReport,
};
pub use spec::Platform;
pub use store::{ImageStore, ImageSummary, Options, PruneReport, RemoveAction, RootfsMount};

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

/// RFC 3339 UTC time (`2024-01-02T03:04:05Z`) of a Unix time in seconds.
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_600_000_000), "2020-09-13T12:26:40Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
