//! `hako export [-o FILE] CONTAINER`: the container's filesystem as a tar.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::engine_err;
use crate::context::Global;

/// Arguments of `hako export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The container
    pub container: String,
}

/// `hako export`.
pub fn run(g: &Global, a: &ExportArgs) -> Result<()> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let engine = g.open_engine()?;
    engine.get(&a.container).map_err(engine_err)?;
    match &a.output {
        Some(p) => {
            let f = std::fs::File::create(p)
                .with_context(|| format!("failed to export container: create {}", p.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            engine.export(&a.container, &mut w).map_err(engine_err)?;
            w.flush()?;
            w.into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()
                .with_context(|| format!("write {}", p.display()))
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            match engine.export(&a.container, &mut w) {
                Ok(()) => Ok(w.flush()?),
                Err(e) => reader_left(e),
            }
        }
    }
}

/// `hako export c | tar t | head`: the reader leaving is no error.
pub fn reader_left(e: hako_engine::Error) -> Result<()> {
    match &e {
        hako_engine::Error::Io { source, .. }
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Ok(())
        }
        _ => Err(engine_err(e)),
    }
}
