//! `hako save [-o FILE] IMAGE...`: one archive that is both a `docker save` archive and
//! an OCI image layout.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::commands::container::engine_err;
use crate::context::Global;

/// Arguments of `hako save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,

    /// Images to save (names, tags or ids)
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Saves; a file is written under a temporary name and renamed when complete, so a
/// failed save never leaves a truncated archive behind.
pub fn run(g: &Global, a: &SaveArgs) -> Result<()> {
    let names: Vec<&str> = a.images.iter().map(String::as_str).collect();
    match a.output.as_deref() {
        None | Some("-") => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let engine = g.open_engine()?;
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            engine.image_save(&names, &mut out).map_err(engine_err)?;
            out.flush()?;
            Ok(())
        }
        Some(path) => {
            let engine = g.open_engine()?;
            let path = Path::new(path);
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let tmp = tempfile_in(dir)?;
            let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
            engine.image_save(&names, &mut out).map_err(engine_err)?;
            out.flush()?;
            drop(out);
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("write {}", path.display()))?;
            Ok(())
        }
    }
}

fn tempfile_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".hako-save-")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "failed to save image: invalid output path: {}",
                dir.display()
            )
        })
}
