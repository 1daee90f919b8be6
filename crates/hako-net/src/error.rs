//! hako-net's errors: one enum, one phrase of context per layer.

use std::fmt;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user (Docker's messages where Docker has one). Exit 125.
    #[error("{0}")]
    InvalidArgument(String),
    /// `network X not found` (Docker's words).
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// Something is taken: a host port, an address, a network name, a subnet.
    #[error("{0}")]
    Conflict(String),
    /// A netlink request failed.
    #[error("{context}: {source}")]
    Netlink {
        /// What was being done.
        context: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// A file or system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// nftables refused a batch.
    #[error("nftables: {0}")]
    Nft(String),
    /// iptables (the fallback driver) refused a batch.
    #[error("iptables: {0}")]
    Iptables(String),
    /// The network store.
    #[error("network store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Several failures (teardown goes on after each one).
    #[error("{0}")]
    List(ErrorList),
}

impl Error {
    /// The exit code a CLI should use: 125 (hako's own error), as Docker.
    pub fn exit_code(&self) -> i32 {
        125
    }
}

/// Adds context to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

/// Errors collected by a teardown that carried on after each one.
#[derive(Debug, Default)]
pub struct ErrorList(pub Vec<Error>);

impl ErrorList {
    /// Records the error of `r`, if any.
    pub fn push<T>(&mut self, r: Result<T>) {
        if let Err(e) = r {
            match e {
                Error::List(l) => self.0.extend(l.0),
                e => self.0.push(e),
            }
        }
    }

    /// `Ok` when nothing failed, the one error, or all of them.
    pub fn into_result(mut self) -> Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(self.0.remove(0)),
            _ => Err(Error::List(self)),
        }
    }
}

impl fmt::Display for ErrorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// hako-net's result.
pub type Result<T> = std::result::Result<T, Error>;
