//! The one error type of this crate.

use std::path::PathBuf;

/// Errors of snapshot drivers and layer unpacking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with the path or step it happened at.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A layer tar entry that would escape the layer or is otherwise unsafe.
    #[error("unsafe layer entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry's name as written in the tar.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A stream that is not a (supported) layer tar.
    #[error("bad layer stream: {0}")]
    BadStream(String),
    /// The stream's digest is not the expected one.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller expected.
        expected: String,
        /// The digest of the data.
        actual: String,
    },
    /// The layer id is not usable as a directory name.
    #[error("invalid layer id {0:?}")]
    InvalidId(String),
    /// The layer does not exist.
    #[error("layer {0} does not exist")]
    NotFound(String),
    /// The layer already exists.
    #[error("layer {0} already exists")]
    Exists(String),
    /// The mount options do not fit the kernel's one-page limit.
    #[error("mount options for layer {id} are {len} bytes, more than the {max} the kernel takes")]
    MountOptionsTooLong {
        /// The layer being mounted.
        id: String,
        /// Length of the options.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The driver cannot work on this host.
    #[error("driver {driver} is not supported here: {reason}")]
    NotSupported {
        /// The driver.
        driver: &'static str,
        /// Why.
        reason: String,
    },
    /// A driver that this kernel does not have (aufs, devicemapper, ...).
    #[error("storage driver {0:?} is not available on this kernel (use overlay2 or vfs)")]
    UnsupportedDriver(String),
    /// A driver name hako does not know.
    #[error("unknown storage driver {0:?} (known: overlay2, vfs)")]
    UnknownDriver(String),
    /// `--storage-opt size` where the backing filesystem cannot enforce it (Docker's words).
    #[error("--storage-opt size is only supported for overlay over xfs with 'pquota' mount option")]
    QuotaNotSupported,
    /// A `--storage-opt` this driver does not take.
    #[error("--storage-opt is not supported by the {0} storage driver")]
    StorageOptNotSupported(&'static str),
    /// A malformed `--storage-opt`.
    #[error("bad --storage-opt: {0}")]
    BadStorageOpt(String),
    /// A mount or unmount failed.
    #[error("{op} {path}: {source}")]
    Mount {
        /// `mount` or `unmount`.
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with a phrase of context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            context: "i/o".into(),
            source,
        }
    }
}

/// Adds a phrase of context to I/O results.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), std::io::Error::from(e)))
    }
}
