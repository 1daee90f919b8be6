//! `hako commit [-a] [-m] [-c CHANGE] [--pause] CONTAINER [REPO[:TAG]]`.

use anyhow::Result;
use clap::Args;
use hako_image::CommitOptions;

use super::engine_err;
use crate::context::Global;

/// Arguments of `hako commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "CHANGE")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(
        short,
        long,
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub pause: bool,
    /// The container
    pub container: String,
    /// Name of the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `hako commit`: prints the new image id.
pub fn run(g: &Global, a: &CommitArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let opts = CommitOptions {
        reference: a.reference.clone(),
        changes: a.changes.clone(),
        message: a.message.clone(),
        author: a.author.clone(),
        pause: a.pause,
        config: None,
        created_by: None,
    };
    let id = engine.commit(&a.container, &opts).map_err(engine_err)?;
    crate::commands::print(&format!("{id}\n"))
}
