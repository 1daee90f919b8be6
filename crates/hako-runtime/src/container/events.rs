//! `events`: stats and OOM notifications as JSON lines (being written).

use std::path::Path;

use crate::error::{Error, Result};

pub fn events(_root: &Path, _id: &str, _interval: &str, _stats: bool) -> Result<()> {
    Err(Error::Unsupported("events is not implemented yet".into()))
}
