//! `hako container prune [-f] [--filter until=...|label=...]`: removes stopped containers.

use anyhow::Result;
use clap::Args;
use hako_engine::filters::Filters;

use super::engine_err;
use crate::context::Global;
use crate::units::human_size;

/// Arguments of `hako container prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>", "label=KEY[=VALUE]", "label!=KEY")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Docker's prompt on stderr; true if the answer is yes.
pub fn confirm(warning: &str) -> Result<bool> {
    use std::io::{BufRead, Write};
    let mut err = std::io::stderr().lock();
    write!(err, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// Removes stopped containers; returns Docker's "Deleted Containers:" text and the bytes
/// freed. A container that fails to go is reported on its own line.
pub fn prune(engine: &hako_engine::Engine, filters: &Filters) -> Result<(String, u64)> {
    let (report, errors) = engine.container_prune(filters).map_err(engine_err)?;
    for e in &errors {
        eprintln!("Error: {e}");
    }
    let removed = report.containers_deleted.unwrap_or_default();
    let mut out = String::new();
    if !removed.is_empty() {
        out.push_str("Deleted Containers:\n");
        for id in &removed {
            out.push_str(id);
            out.push('\n');
        }
        out.push('\n');
    }
    Ok((
        out,
        u64::try_from(report.space_reclaimed.unwrap_or(0)).unwrap_or(0),
    ))
}

/// `hako container prune`.
pub fn run(g: &Global, a: &PruneArgs) -> Result<()> {
    let filters = Filters::from_args(&a.filters).map_err(engine_err)?;
    filters
        .validate(hako_engine::CONTAINER_PRUNE_FILTERS)
        .map_err(engine_err)?;
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(());
    }
    let engine = g.open_engine()?;
    let (mut out, space) = prune(&engine, &filters)?;
    out.push_str(&format!("Total reclaimed space: {}\n", human_size(space)));
    crate::commands::print(&out)
}
