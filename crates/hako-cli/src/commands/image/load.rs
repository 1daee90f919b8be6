//! `hako load [-i FILE]`: images from a `docker save` archive or an OCI layout tar.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::commands::container::engine_err;
use crate::context::Global;
use crate::progress::Progress;

/// Arguments of `hako load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN (plain, gzip or zstd)
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<String>,

    /// Suppress the load output (progress)
    #[arg(short, long)]
    pub quiet: bool,
}

/// Loads and prints `Loaded image: NAME` per tag (`Loaded image ID: ID` when untagged).
pub fn run(g: &Global, a: &LoadArgs) -> Result<()> {
    let (reader, len): (Box<dyn Read>, Option<u64>) = match a.input.as_deref() {
        None | Some("-") => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            (Box::new(stdin.lock()), None)
        }
        Some(path) => {
            let f = File::open(path).with_context(|| format!("open {path}"))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
    };
    let engine = g.open_engine()?;
    let progress = Progress::new("Loading", len, a.quiet);
    let mut input = BufReader::with_capacity(1 << 20, progress.wrap(reader));
    let images = engine.image_load(&mut input).map_err(engine_err)?;
    progress.finish();
    let mut out = String::new();
    for img in images {
        if img.tags.is_empty() {
            out.push_str(&format!("Loaded image ID: {}\n", img.id));
        }
        for t in img.tags {
            out.push_str(&format!("Loaded image: {t}\n"));
        }
    }
    super::super::print(&out)
}
