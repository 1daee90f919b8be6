//! `hako volume ls [-q] [--filter dangling=|name=|label=|driver=] [--format]`.

use anyhow::Result;
use clap::Args;
use hako_engine::filters::Filters;
use serde_json::{Value, json};

use crate::commands::container::engine_err;
use crate::context::Global;
use crate::format::Format;

/// Arguments of `hako volume ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true", "name=NAME", "label=KEY[=VALUE]")
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output using a Go template ('table', 'table TEMPLATE', 'json', or TEMPLATE)
    #[arg(long)]
    pub format: Option<String>,
}

const DEFAULT: &str = r"table {{.Driver}}\t{{.Name}}";

fn header() -> Value {
    json!({
        "Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT",
        "Labels": "LABELS", "Scope": "SCOPE", "Size": "SIZE", "Links": "LINKS",
        "CreatedAt": "CREATED AT",
    })
}

/// `hako volume ls`.
pub fn run(g: &Global, a: &LsArgs) -> Result<()> {
    let filters = Filters::from_args(&a.filters).map_err(engine_err)?;
    let engine = g.open_engine()?;
    let mut rows = Vec::new();
    let mut names = String::new();
    for (v, links) in engine.volumes(&filters).map_err(engine_err)? {
        names.push_str(&v.name);
        names.push('\n');
        let mut labels: Vec<String> = v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect();
        labels.sort();
        rows.push(json!({
            "Driver": v.driver, "Name": v.name, "Mountpoint": v.mountpoint,
            "Labels": labels.join(","), "Scope": "local", "Size": "N/A",
            // Docker's cluster-volume fields, N/A for a local volume.
            "Availability": "N/A", "Group": "N/A", "Status": "N/A",
            "Links": links.to_string(), "CreatedAt": v.created_at.clone().unwrap_or_default(),
            "Label": v.labels,
        }));
    }
    if a.quiet {
        return crate::commands::print(&names);
    }
    let format = Format::parse(a.format.as_deref().unwrap_or(""), DEFAULT)?;
    crate::commands::print(&format.render(&header(), &rows)?)
}
