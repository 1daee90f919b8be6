//! `hako tag SOURCE TARGET`.

use anyhow::Result;
use clap::Args;

use crate::context::Global;
use crate::error::image_error;

/// Arguments of `hako tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image to tag (name, tag or id)
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// The new name
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// Tags silently, like Docker.
pub fn run(g: &Global, a: &TagArgs) -> Result<()> {
    g.open_store()?
        .tag(&a.source, &a.target)
        .map_err(image_error)
}
