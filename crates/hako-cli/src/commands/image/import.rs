//! `hako import FILE|URL|- [REPO[:TAG]]`: a root filesystem tar becomes a one-layer image.

use std::fs::File;
use std::io::{BufReader, Read};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use hako_image::ImportOptions;

use crate::commands::container::engine_err;
use crate::context::Global;
use crate::progress::Progress;

/// Arguments of `hako import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tarball: a file, an http(s):// URL, or - for STDIN (plain, gzip or zstd)
    #[arg(value_name = "FILE|URL|-")]
    pub source: String,

    /// Repository and tag for the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,

    /// Apply a Dockerfile instruction to the image (ENV, CMD, ENTRYPOINT, WORKDIR, USER,
    /// EXPOSE, LABEL, VOLUME, STOPSIGNAL); repeatable
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,

    /// Set the commit message for the imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
}

/// Imports and prints the new image's id, as `docker import` does.
pub fn run(g: &Global, a: &ImportArgs) -> Result<()> {
    let (reader, len, source): (Box<dyn Read>, Option<u64>, String) = open_source(&a.source)?;
    let engine = g.open_engine()?;
    let opts = ImportOptions {
        reference: a.reference.clone(),
        changes: a.changes.clone(),
        message: a.message.clone(),
        source: Some(source),
    };
    let progress = Progress::new("Importing", len, false);
    let mut input = BufReader::with_capacity(1 << 20, progress.wrap(reader));
    let id = engine.image_import(&mut input, &opts).map_err(engine_err)?;
    progress.finish();
    super::super::print(&format!("{id}\n"))
}

/// The tar stream, its length if known, and the source for the history comment
/// (`-` for files and STDIN, as Docker records them; the URL for URLs).
fn open_source(src: &str) -> Result<(Box<dyn Read>, Option<u64>, String)> {
    if src == "-" {
        return Ok((Box::new(std::io::stdin().lock()), None, "-".into()));
    }
    if src.starts_with("http://") || src.starts_with("https://") {
        let resp = ureq::get(src)
            .call()
            .with_context(|| format!("download {src}"))?;
        let len = resp.header("content-length").and_then(|v| v.parse().ok());
        return Ok((Box::new(resp.into_reader()), len, src.to_string()));
    }
    if src.contains("://") {
        bail!("cannot import from {src}: only files, http(s):// URLs and - (STDIN) are supported");
    }
    let f = File::open(src).with_context(|| format!("open {src}"))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(f), len, "-".into()))
}
