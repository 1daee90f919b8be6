//! `hako diff CONTAINER`: what the container changed in its image, `A`/`C`/`D` per path.

use anyhow::Result;
use clap::Args;

use super::engine_err;
use crate::context::Global;

/// Arguments of `hako diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The container
    pub container: String,
}

/// `hako diff`.
pub fn run(g: &Global, a: &DiffArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let changes = engine.changes(&a.container).map_err(engine_err)?;
    let mut out = String::new();
    for c in changes {
        out.push_str(&format!("{c}\n"));
    }
    crate::commands::print(&out)
}
