//! `hako tag SOURCE TARGET`.

use anyhow::Result;
use clap::Args;

use crate::commands::container::engine_err;
use crate::context::Global;

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
    g.open_engine()?
        .image_tag(&a.source, &a.target)
        .map_err(engine_err)
}
