//! `ps`: the processes of a container (being written).

use std::path::Path;

use crate::error::{Error, Result};

/// The processes of container `id`: a JSON array of pids, or ps(1)'s table filtered to the
/// container's processes.
pub fn ps(_root: &Path, _id: &str, _json: bool, _ps_args: &[String]) -> Result<String> {
    Err(Error::Unsupported("ps is not implemented yet".into()))
}
