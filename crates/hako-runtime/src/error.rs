//! The runtime's error type: one enum, one short phrase of context per layer, mapped to an
//! exit code by the binary.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in a runtime operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    #[error("container with id {0} already exists")]
    ContainerExists(String),

    #[error("container {0} does not exist")]
    ContainerNotFound(String),

    #[error("cannot {op} container {id}: it is {status}")]
    IllegalTransition {
        op: &'static str,
        id: String,
        status: &'static str,
    },

    #[error("cannot read {}: {source}", path.display())]
    ConfigMissing { path: PathBuf, source: io::Error },

    #[error("invalid {}: {msg}", path.display())]
    ConfigParse { path: PathBuf, msg: String },

    #[error("invalid config: {0}")]
    ConfigInvalid(String),

    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },

    #[error("{0}")]
    Cgroup(#[from] hako_cgroups::Error),

    #[error("{0}")]
    Seccomp(#[from] hako_seccomp::Error),

    #[error("{kind} hook {}: {reason}", path.display())]
    Hook {
        kind: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// The container's init reported this error before running the user's program.
    #[error("{0}")]
    Init(String),

    #[error("{0}")]
    Unsupported(String),

    #[error("invalid argument: {0}")]
    Usage(String),
}

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach one phrase of context to an `io::Result`.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::Io {
            context: what(),
            source: io::Error::from(errno),
        })
    }
}
