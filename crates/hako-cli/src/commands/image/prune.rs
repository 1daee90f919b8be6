//! `hako image prune [-a] [-f]`.

use std::io::{BufRead, Write};

use anyhow::Result;
use clap::Args;

use crate::commands::container::engine_err;
use crate::context::Global;
use crate::units::human_size;
use hako_engine::filters::Filters;

/// Arguments of `hako image prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,

    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,

    /// Provide filter values (e.g. 'until=24h', 'label=KEY=VALUE')
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

/// Asks (unless `-f`), prunes, prints Docker's report.
pub fn run(g: &Global, a: &PruneArgs) -> Result<()> {
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
    let mut filters = Filters::from_args(&a.filters).map_err(engine_err)?;
    if a.all {
        filters.add("dangling", "false");
    }
    let engine = g.open_engine()?;
    let report = engine.image_prune(&filters).map_err(engine_err)?;
    let mut out = String::new();
    let deleted = report.images_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for d in &deleted {
            if let Some(t) = &d.untagged {
                out.push_str(&format!("untagged: {t}\n"));
            }
            if let Some(id) = &d.deleted {
                out.push_str(&format!("deleted: {id}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(u64::try_from(report.space_reclaimed.unwrap_or(0)).unwrap_or(0))
    ));
    super::super::print(&out)
}
