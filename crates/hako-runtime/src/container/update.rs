//! `update`: change resources of a running container (being written).

use std::path::Path;

use crate::cli::UpdateArgs;
use crate::error::{Error, Result};

pub fn update(_root: &Path, _args: &UpdateArgs) -> Result<()> {
    Err(Error::Unsupported("update is not implemented yet".into()))
}
