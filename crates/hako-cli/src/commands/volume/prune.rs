//! `hako volume prune [-a] [-f] [--filter label=...]`: removes volumes no container uses;
//! only anonymous ones unless `-a` (Docker 23+).

use anyhow::Result;
use clap::Args;

use crate::commands::container::engine_err;
use crate::commands::container::prune::confirm;
use crate::context::Global;
use crate::units::human_size;
use hako_engine::filters::Filters;

/// Arguments of `hako volume prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=KEY[=VALUE]", "label!=KEY")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Removes unused volumes; returns Docker's "Deleted Volumes:" text and the bytes freed.
pub fn prune(engine: &hako_engine::Engine, all: bool, filters: &[String]) -> Result<(String, u64)> {
    let mut f = Filters::from_args(filters).map_err(engine_err)?;
    if all {
        f.add("all", "true");
    }
    let report = engine.volume_prune(&f).map_err(engine_err)?;
    let removed = report.volumes_deleted.unwrap_or_default();
    let mut out = String::new();
    if !removed.is_empty() {
        out.push_str("Deleted Volumes:\n");
        for n in &removed {
            out.push_str(n);
            out.push('\n');
        }
        out.push('\n');
    }
    Ok((
        out,
        u64::try_from(report.space_reclaimed.unwrap_or(0)).unwrap_or(0),
    ))
}

/// `hako volume prune`.
pub fn run(g: &Global, a: &PruneArgs) -> Result<()> {
    let warning = if a.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !a.force && !confirm(warning)? {
        return Ok(());
    }
    let engine = g.open_engine()?;
    let (mut out, space) = prune(&engine, a.all, &a.filters)?;
    out.push_str(&format!("Total reclaimed space: {}\n", human_size(space)));
    crate::commands::print(&out)
}
