//! `hako image prune [-a] [-f]`.

use std::io::{BufRead, Write};

use anyhow::Result;
use clap::Args;

use crate::context::Global;
use crate::error::image_error;
use crate::units::human_size;

/// Arguments of `hako image prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,

    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Asks (unless `-f`), prunes, prints Docker's report.
pub fn run(g: &Global, a: &PruneArgs) -> Result<()> {
    let store = g.open_store()?;
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        let mut err = std::io::stderr().lock();
        write!(err, "{warning}\nAre you sure you want to continue? [y/N] ")?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
            return Ok(());
        }
    }
    let report = store.prune(a.all).map_err(image_error)?;
    let mut out = String::new();
    if !report.images_deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for d in &report.images_deleted {
            out.push_str(&format!("deleted: {d}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(report.space_reclaimed)
    ));
    super::super::print(&out)
}
