//! `hako volume create`, `inspect` and `rm`.

use std::collections::HashMap;

use anyhow::{Result, bail};
use clap::Args;

use crate::commands::container::{engine_err, for_each};
use crate::commands::image::inspect::inspect_each;
use crate::context::Global;
use crate::format::Template;

/// Arguments of `hako volume create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name (only "local")
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume (KEY=VALUE)
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Set driver specific options (none are supported by hako's local driver)
    #[arg(short = 'o', long = "opt", value_name = "OPT")]
    pub opts: Vec<String>,
    /// Volume name (default: a random one)
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

/// Arguments of `hako volume inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a Go template ('{{.Mountpoint}}', '{{json .}}')
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

/// Arguments of `hako volume rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail when a volume does not exist (a volume in use is never removed)
    #[arg(short, long)]
    pub force: bool,
    /// Volumes
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

/// `KEY=VALUE` (or `KEY`) labels.
pub fn parse_labels(raw: &[String]) -> HashMap<String, String> {
    raw.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// `hako volume create`: prints the name.
pub fn create(g: &Global, a: &CreateArgs) -> Result<()> {
    if a.driver != "local" {
        bail!(
            "create {}: error looking up volume plugin {}: plugin \"{}\" not found",
            a.name.as_deref().unwrap_or(""),
            a.driver,
            a.driver
        );
    }
    if let Some(o) = a.opts.first() {
        bail!("invalid option {o:?}: hako's local driver takes no options");
    }
    let engine = g.open_engine()?;
    let v = engine
        .volume_create(a.name.as_deref(), &parse_labels(&a.labels))
        .map_err(engine_err)?;
    crate::commands::print(&format!("{}\n", v.name))
}

/// `hako volume inspect`.
pub fn inspect(g: &Global, a: &InspectArgs) -> Result<()> {
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let engine = g.open_engine()?;
    inspect_each(template.as_ref(), &a.names, "Error: ", |n| {
        engine.volume_inspect(n)
    })
}

/// `hako volume rm`.
pub fn rm(g: &Global, a: &RmArgs) -> Result<()> {
    let engine = g.open_engine()?;
    for_each(&a.names, |n| {
        match engine.volume_remove(n) {
            Ok(()) => {}
            Err(hako_engine::Error::NoSuchVolume(_)) if a.force => return Ok(()),
            Err(e) => return Err(engine_err(e)),
        }
        println!("{n}");
        Ok(())
    })
}
