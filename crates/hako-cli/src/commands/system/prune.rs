//! `hako system prune [-a] [-f] [--volumes]`: stopped containers, then unused anonymous
//! volumes (with `--volumes`), then dangling images (all unused ones with `-a`).

use anyhow::Result;
use clap::Args;

use crate::commands::container::prune::{Filters, confirm};
use crate::context::Global;
use crate::error::image_error;
use crate::units::human_size;

/// Arguments of `hako system prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>", "until=<timestamp>")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
}

/// `hako system prune`.
pub fn run(g: &Global, a: &PruneArgs) -> Result<()> {
    let filters = Filters::parse(&a.filters)?;
    if !a.force {
        let mut w = String::from("WARNING! This will remove:\n  - all stopped containers\n");
        if a.volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        w.push_str(if a.all {
            "  - all images without at least one container associated to them\n"
        } else {
            "  - all dangling images\n"
        });
        if !confirm(&w)? {
            return Ok(());
        }
    }
    let engine = g.open_engine()?;
    let (mut out, mut space) = crate::commands::container::prune::prune(&engine, &filters)?;
    if a.volumes {
        let (text, s) = crate::commands::volume::prune::prune(&engine, false, &[])?;
        out.push_str(&text);
        space += s;
    }
    let report = engine.images().prune(a.all).map_err(image_error)?;
    if !report.images_deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for d in &report.images_deleted {
            out.push_str(&format!("deleted: {d}\n"));
        }
        out.push('\n');
    }
    space += report.space_reclaimed;
    out.push_str(&format!("Total reclaimed space: {}\n", human_size(space)));
    crate::commands::print(&out)
}
