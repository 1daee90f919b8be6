//! Engine errors. Messages follow Docker's wording where users (and scripts) know it.

use std::io;

use crate::state::{Action, Status};

/// Something the engine could not do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container with that id, id prefix or name.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// An id prefix that matches more than one container.
    #[error("multiple containers match {0:?}; use more of the id")]
    Ambiguous(String),
    /// `--name` taken.
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse {
        /// The name asked for.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// The image is not in the store.
    #[error("Unable to find image '{0}' locally")]
    NoSuchImage(String),
    /// An action the container's current status does not allow.
    #[error("{}", illegal_message(.id, *.status, *.action))]
    IllegalTransition {
        /// The container.
        id: String,
        /// Its status now.
        status: Status,
        /// What was asked.
        action: Action,
    },
    /// Bad options (bad `-v`, bad `--restart`, missing bind source, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The OCI runtime failed; the message is the runtime's.
    #[error("OCI runtime {op} failed: {message}")]
    Runtime {
        /// `create`, `start`, `exec`, ...
        op: &'static str,
        /// What the runtime said.
        message: String,
        /// Docker's exit code for it: 126 not executable, 127 not found, else 125.
        exit_code: i32,
    },
    /// No network with that name or id (Docker's words).
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// Container networking failed (hako-net's message).
    #[error("{0}")]
    Network(String),
    /// No such volume.
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// A volume still in use.
    #[error("remove {name}: volume is in use - [{containers}]")]
    VolumeInUse {
        /// The volume.
        name: String,
        /// Containers using it, comma separated.
        containers: String,
    },
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] hako_image::Error),
    /// The database failed.
    #[error("database: {}", hako_image::describe_db_error(.0))]
    Db(#[from] rusqlite::Error),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: io::Error,
    },
    /// No exec session with that id.
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// The object is not in a state that allows the request (Docker's 409).
    #[error("{0}")]
    Conflict(String),
    /// A timeout.
    #[error("{0}")]
    Timeout(String),
}

fn illegal_message(id: &str, status: Status, action: Action) -> String {
    let short = &id[..id.len().min(12)];
    match (action, status) {
        (Action::Remove, Status::Running | Status::Paused | Status::Restarting) => format!(
            "cannot remove container \"{short}\": container is {status}: stop the container before removing or force remove"
        ),
        (Action::Exec, Status::Paused) => {
            format!("container {short} is paused, unpause the container before exec")
        }
        (Action::Exec, _) => format!("container {short} is not running"),
        (Action::Start, Status::Paused) => {
            format!("cannot start a paused container, try unpause instead (container {short})")
        }
        (Action::Pause, Status::Paused) => format!("container {short} is already paused"),
        (Action::Unpause, _) => format!("container {short} is not paused"),
        (Action::Kill | Action::Pause, _) => format!("container {short} is not running"),
        _ => format!("cannot {action} container {short}: container is {status}"),
    }
}

impl Error {
    /// The exit code `hako` should use for this error (Docker's convention).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Runtime { exit_code, .. } => *exit_code,
            _ => 125,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a context line to `io::Error`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
