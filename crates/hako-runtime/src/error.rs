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

    /// runc's words, which engines match ("does not exist" means already gone).
    #[error("container does not exist")]
    ContainerNotFound(String),

    /// A verb refused in the container's current status, in runc's words: engines parse
    /// them (containerd takes "container not running" after a kill as "already gone").
    #[error("{0}")]
    Refused(Refusal),

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

/// Why a verb cannot act on a container in its current status (runc's messages).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// kill, pause, update of a stopped container; pause of a paused one.
    #[error("container not running")]
    NotRunning,
    #[error("container not paused")]
    NotPaused,
    #[error("cannot start an already running container")]
    StartRunning,
    #[error("cannot start a container in the paused state")]
    StartPaused,
    #[error("cannot start a container that has stopped")]
    StartStopped,
    #[error("cannot delete container {id} that is not stopped: {status}")]
    DeleteLive { id: String, status: &'static str },
    #[error("cannot exec in a paused container (use --ignore-paused to override)")]
    ExecPaused,
    #[error("cannot exec in a stopped container")]
    ExecStopped,
    #[error("container with id {0} is not running")]
    EventsStopped(String),
    #[error("Container cannot be checkpointed in {0} state")]
    Checkpoint(&'static str),
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        Error::Refused(r)
    }
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
