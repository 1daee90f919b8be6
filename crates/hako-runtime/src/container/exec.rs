//! `exec`: a new process in a running container (being written).

use std::path::Path;

use crate::cli::ExecArgs;
use crate::error::{Error, Result};

/// Returns the exit code of the process (0 when detached).
pub fn exec(_root: &Path, _args: &ExecArgs) -> Result<i32> {
    Err(Error::Unsupported("exec is not implemented yet".into()))
}
