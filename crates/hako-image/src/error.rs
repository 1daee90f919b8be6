//! The one error type of this crate.

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with the step it happened at.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata database failed.
    #[error("image database: {}", crate::db::describe(.0))]
    Db(#[from] rusqlite::Error),
    /// A layer could not be stored or mounted.
    #[error(transparent)]
    Storage(#[from] hako_storage::Error),
    /// A reference (`name:tag`, `name@digest`) that does not parse.
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference {
        /// The text given.
        reference: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A digest string that does not parse.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// Content whose digest is not the one it was announced with.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The announced digest.
        expected: String,
        /// The digest of the content.
        actual: String,
    },
    /// No image by that name or id.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// An id prefix that matches several images.
    #[error("image id prefix {0:?} is ambiguous")]
    Ambiguous(String),
    /// The image is used by containers and `force` was not given.
    #[error("unable to remove image {image}: image is being used by container {container}")]
    ImageInUse {
        /// The image.
        image: String,
        /// One container using it.
        container: String,
    },
    /// An image has several tags and was removed by id without `force`.
    #[error("unable to delete {0} (must be forced) - image is referenced in multiple repositories")]
    MultipleTags(String),
    /// A malformed manifest, index, config or archive.
    #[error("bad image data: {0}")]
    BadImage(String),
    /// No manifest in an index matches the wanted platform.
    #[error(
        "no matching manifest for {wanted} in the manifest list entries (available: {available})"
    )]
    NoMatchingPlatform {
        /// `os/arch[/variant]` that was asked for.
        wanted: String,
        /// What the index has.
        available: String,
    },
    /// A `--change` instruction hako does not apply.
    #[error(
        "invalid --change {0:?}: only ENV, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL are allowed"
    )]
    BadChange(String),
    /// The registry could not be reached (connection refused, DNS, TLS).
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable {
        /// `host[:port]` of the registry.
        registry: String,
        /// What the transport said.
        reason: String,
    },
    /// The registry answered with an error (`manifest unknown`, `unauthorized`, ...).
    #[error("{code}: {detail}")]
    Registry {
        /// The HTTP status.
        status: u16,
        /// The distribution error code in words (`manifest unknown`, `unauthorized`).
        code: String,
        /// What was asked for, and what the registry said about it.
        detail: String,
    },
    /// The credentials file could not be read or written.
    #[error("credentials file {path}: {reason}")]
    Credentials {
        /// The config.json.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The container already has a rootfs.
    #[error("container {0} already has a root filesystem")]
    ContainerExists(String),
    /// `system check --repair` found the image's content damaged.
    #[error("image {image} is damaged ({reason}): remove it (hako rmi) and pull or load it again")]
    Damaged {
        /// The image id.
        image: String,
        /// What is damaged.
        reason: String,
    },
    /// The container has no rootfs.
    #[error("container {0} has no root filesystem")]
    NoSuchContainer(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        Error::BadImage(msg.into())
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
