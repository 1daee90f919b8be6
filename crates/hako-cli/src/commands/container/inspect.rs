//! `hako inspect` (containers, then images, like Docker's top-level command) and
//! `hako container inspect`: Docker's JSON array, or a Go template per object.

use anyhow::Result;
use clap::Args;

use crate::commands::image::inspect::render;
use crate::context::Global;
use crate::error::AlreadyReported;
use crate::format::Template;

/// Arguments of `hako inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a Go template ('{{.State.Pid}}', '{{json .Config}}')
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes (accepted for compatibility)
    #[arg(short, long)]
    pub size: bool,
    /// Only inspect objects of this type (container, image)
    #[arg(long = "type")]
    pub typ: Option<String>,
    /// Containers or images
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// `hako inspect` / `hako container inspect` (`containers_only`).
pub fn run(g: &Global, a: &InspectArgs, containers_only: bool) -> Result<()> {
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let engine = g.open_engine()?;
    let want_containers = containers_only || a.typ.as_deref() != Some("image");
    let want_images = !containers_only && a.typ.as_deref() != Some("container");
    let mut found = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for name in &a.names {
        if want_containers {
            match engine.inspect_json(name) {
                Ok(v) => {
                    found.push(v);
                    continue;
                }
                Err(hako_engine::Error::NoSuchContainer(_)) => {}
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            }
        }
        if want_images && let Ok(v) = engine.images().inspect(name) {
            found.push(v);
            continue;
        }
        errors.push(
            if containers_only || a.typ.as_deref() == Some("container") {
                format!("No such container: {name}")
            } else {
                format!("No such object: {name}")
            },
        );
    }
    crate::commands::print(&render(template.as_ref(), &found)?)?;
    match errors.len() {
        0 => Ok(()),
        n => {
            for e in &errors {
                eprintln!("Error: {e}");
            }
            Err(AlreadyReported(n).into())
        }
    }
}
