//! `hako volume prune [-a] [-f] [--filter label=...]`: removes volumes no container uses;
//! only anonymous ones unless `-a` (Docker 23+).

use anyhow::{Result, bail};
use clap::Args;

use crate::commands::container::engine_err;
use crate::commands::container::prune::{confirm, label_matches};
use crate::context::Global;
use crate::units::human_size;

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
    let mut labels = Vec::new();
    for f in filters {
        if let Some(v) = f.strip_prefix("label!=") {
            labels.push((v.to_string(), true));
        } else if let Some(v) = f.strip_prefix("label=") {
            labels.push((v.to_string(), false));
        } else if f == "all=true" || f == "all=1" {
        } else {
            bail!("invalid filter '{f}'");
        }
    }
    let all = all || filters.iter().any(|f| f == "all=true" || f == "all=1");
    let (removed, space) = engine
        .prune_volumes(all, |v| {
            !labels
                .iter()
                .all(|(e, neg)| label_matches(&v.labels, e, *neg))
        })
        .map_err(engine_err)?;
    let mut out = String::new();
    if !removed.is_empty() {
        out.push_str("Deleted Volumes:\n");
        for n in &removed {
            out.push_str(n);
            out.push('\n');
        }
        out.push('\n');
    }
    Ok((out, space))
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
