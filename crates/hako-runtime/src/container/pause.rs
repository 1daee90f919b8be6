//! `pause` / `resume`: the cgroup freezer (being written).

use std::path::Path;

use crate::error::{Error, Result};

pub fn pause(_root: &Path, _id: &str) -> Result<()> {
    Err(Error::Unsupported("pause is not implemented yet".into()))
}

pub fn resume(_root: &Path, _id: &str) -> Result<()> {
    Err(Error::Unsupported("resume is not implemented yet".into()))
}
