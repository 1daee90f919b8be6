//! `hako system boot`: the boot step that stands in for a daemon's start for containers
//! with `--restart always` or `unless-stopped` (see `hako_engine`'s `boot.rs`).

use anyhow::Result;
use clap::Args;

use crate::context::Global;
use crate::error::AlreadyReported;

/// Arguments of `hako system boot`.
#[derive(Debug, Args)]
pub struct BootArgs {}

/// Prints the id of each container started, one error line for each that failed.
pub fn run(g: &Global, _a: &BootArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let report = engine
        .boot()
        .map_err(crate::commands::container::engine_err)?;
    for id in &report.started {
        println!("{id}");
    }
    for (id, e) in &report.failed {
        eprintln!(
            "Error: start {}: {}",
            &id[..12.min(id.len())],
            crate::error::one_line(e)
        );
    }
    if !report.failed.is_empty() {
        return Err(AlreadyReported(report.failed.len()).into());
    }
    Ok(())
}
