//! `hako ps`: Docker's columns, `-a`, `-q`, `-s`, `-n`, `-l`, `--filter`, `--format`.

use anyhow::Result;
use clap::Args;
use hako_engine::filters::Filters;
use hako_engine::models::ContainerSummary;
use hako_engine::{CONTAINER_FILTERS, ContainerListOptions};
use serde_json::{Value, json};

use super::engine_err;
use crate::context::Global;
use crate::format::Format;
use crate::units::{created_at, human_size, since};

/// Arguments of `hako ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output: id=, name=, label=KEY[=VALUE], status=, exited=N, ancestor=IMAGE; repeatable
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output using a Go template ('table', 'table TEMPLATE', 'json', or TEMPLATE)
    #[arg(long)]
    pub format: Option<String>,
}

const DEFAULT: &str = r"table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
const DEFAULT_SIZE: &str = r"table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}";

pub(crate) fn header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
        "Size": "SIZE", "State": "STATE", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
    })
}

fn command(c: &ContainerSummary, no_trunc: bool) -> String {
    let mut c = c.command.clone().unwrap_or_default();
    if !no_trunc && c.chars().count() > 20 {
        c = c.chars().take(19).collect::<String>() + "…";
    }
    format!("\"{c}\"")
}

/// `hako ps`.
pub fn run(g: &Global, a: &PsArgs) -> Result<()> {
    let filters = Filters::from_args(&a.filters).map_err(engine_err)?;
    filters.validate(CONTAINER_FILTERS).map_err(engine_err)?;
    let format = if a.quiet {
        None
    } else {
        Some(Format::parse(
            a.format.as_deref().unwrap_or(""),
            if a.size { DEFAULT_SIZE } else { DEFAULT },
        )?)
    };
    let engine = g.open_engine()?;
    let last = if a.latest { 1 } else { a.last };
    let list = engine
        .containers(&ContainerListOptions {
            all: a.all,
            limit: usize::try_from(last).ok().filter(|n| *n > 0),
            // As the docker CLI: a format that shows .Size asks for the sizes.
            size: a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size")),
            filters,
        })
        .map_err(engine_err)?;
    let id_of = |c: &ContainerSummary| {
        let id = c.id.clone().unwrap_or_default();
        if a.no_trunc {
            id
        } else {
            id.chars().take(12).collect()
        }
    };
    if a.quiet {
        let out: String = list.iter().map(|c| format!("{}\n", id_of(c))).collect();
        return super::super::print(&out);
    }
    let rows: Vec<Value> = list.iter().map(|c| row(c, a.no_trunc)).collect();
    let text = format
        .expect("format is set unless quiet")
        .render(&header(), &rows)?;
    super::super::print(&text)
}

/// One container's fields for `ps` (and `system df -v`), Docker's `ContainerContext`.
pub(crate) fn row(c: &ContainerSummary, no_trunc: bool) -> Value {
    let mut id = c.id.clone().unwrap_or_default();
    if !no_trunc {
        id = id.chars().take(12).collect();
    }
    let size = match (c.size_rw, c.size_root_fs) {
        (Some(rw), Some(all)) => format!(
            "{} (virtual {})",
            human_size(u64::try_from(rw).unwrap_or(0)),
            human_size(u64::try_from(all).unwrap_or(0))
        ),
        _ => String::new(),
    };
    let mut lv: Vec<String> = c
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    lv.sort();
    let names: Vec<String> = c
        .names
        .iter()
        .flatten()
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .flatten()
        .filter_map(|m| m.name.clone().or_else(|| m.source.clone()))
        .collect();
    let local_volumes = c
        .mounts
        .iter()
        .flatten()
        .filter(|m| m.driver.as_deref() == Some("local"))
        .count();
    json!({
        "ID": id,
        "Image": image_column(c.image.as_deref().unwrap_or_default(), no_trunc),
        "Command": command(c, no_trunc),
        "CreatedAt": c.created.map(created_at).unwrap_or_default(),
        "RunningFor": since(c.created),
        "Status": c.status.clone().unwrap_or_default(),
        "State": c.state.map(|s| s.to_string()).unwrap_or_default(),
        "Ports": super::port::summary_text(c.ports.as_deref().unwrap_or_default()),
        "Names": names.join(","),
        "Size": size,
        "Labels": lv.join(","),
        "Mounts": mounts.join(","),
        "Networks": c.host_config.as_ref().and_then(|h| h.network_mode.clone()).unwrap_or_default(),
        "LocalVolumes": local_volumes.to_string(),
        "Platform": Value::Null,
        // `{{.Label "key"}}` (Docker's method), see hako-format.
        "Label": c.labels.clone().unwrap_or_default(),
    })
}

/// Docker's IMAGE column: the image as the container was created from it, or its id when
/// that name now means another image (untagged, retagged), 12 hex digits unless
/// `--no-trunc`.
fn image_column(image: &str, no_trunc: bool) -> String {
    match image.strip_prefix("sha256:") {
        Some(hex) if !no_trunc => hex.chars().take(12).collect(),
        _ => image.to_string(),
    }
}
