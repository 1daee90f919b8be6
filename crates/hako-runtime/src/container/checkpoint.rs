//! `checkpoint` / `restore` through CRIU (being written).

use std::path::Path;

use crate::cli::{CheckpointArgs, RestoreArgs};
use crate::error::{Error, Result};

pub fn checkpoint(_root: &Path, _args: &CheckpointArgs) -> Result<()> {
    Err(Error::Unsupported(
        "checkpoint is not implemented yet".into(),
    ))
}

/// Returns the exit code like `run` (0 when detached).
pub fn restore(_root: &Path, _args: &RestoreArgs) -> Result<i32> {
    Err(Error::Unsupported("restore is not implemented yet".into()))
}
