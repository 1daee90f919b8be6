//! `hako system df [-v]`: disk usage by images, containers, volumes and build cache.
//! Build cache is zero: hako has no builder yet.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::commands::image::list::{self, Filters};
use crate::context::Global;
use crate::error::image_error;
use crate::format::{Format, align};
use crate::units::human_size4;

/// Arguments of `hako system df`.
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,

    /// Format output using a Go template ('table', 'table TEMPLATE', 'json', or TEMPLATE)
    #[arg(long)]
    pub format: Option<String>,
}

const DEFAULT: &str = r"table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";

/// Prints the summary table (or the verbose listing).
pub fn run(g: &Global, a: &DfArgs) -> Result<()> {
    let format = Format::parse(a.format.as_deref().unwrap_or(""), DEFAULT)?;
    let engine = g.open_engine()?;
    let store = engine.images();
    let images = store.list().map_err(image_error)?;
    if a.verbose {
        return verbose(store);
    }
    let usage = Usage::measure(&engine)?;
    let total: u64 = images.iter().map(|i| i.size).sum();
    let active = images.iter().filter(|i| i.containers > 0).count();
    let reclaimable: u64 = images
        .iter()
        .filter(|i| i.containers == 0)
        .map(|i| i.size)
        .sum();
    let rows = [
        row("Images", images.len(), active, total, reclaimable),
        row(
            "Containers",
            usage.containers.len(),
            usage.containers.iter().filter(|c| c.1).count(),
            usage.containers.iter().map(|c| c.0).sum(),
            usage.containers.iter().filter(|c| !c.1).map(|c| c.0).sum(),
        ),
        row(
            "Local Volumes",
            usage.volumes.len(),
            usage.volumes.iter().filter(|v| v.1).count(),
            usage.volumes.iter().map(|v| v.0).sum(),
            usage.volumes.iter().filter(|v| !v.1).map(|v| v.0).sum(),
        ),
        row("Build Cache", 0, 0, 0, 0),
    ];
    let header = json!({
        "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
        "Reclaimable": "RECLAIMABLE",
    });
    super::super::print(&format.render(&header, &rows)?)
}

/// Bytes and "in use" of each container (its writable layer; running) and volume (used by
/// a container).
struct Usage {
    containers: Vec<(u64, bool)>,
    volumes: Vec<(u64, bool)>,
}

impl Usage {
    fn measure(engine: &hako_engine::Engine) -> Result<Usage> {
        let containers = engine
            .list()
            .map_err(crate::commands::container::engine_err)?
            .into_iter()
            .map(|(r, l)| {
                let size = crate::commands::container::rw_size(engine, &r.id);
                (size, l.status.is_active())
            })
            .collect();
        let volumes = engine
            .volume_list()
            .map_err(crate::commands::container::engine_err)?
            .into_iter()
            .map(|(v, _)| {
                let used = engine
                    .volume_users(&v.name)
                    .map(|u| !u.is_empty())
                    .unwrap_or(false);
                (crate::units::dir_size(&v.mountpoint), used)
            })
            .collect();
        Ok(Usage {
            containers,
            volumes,
        })
    }
}

fn row(kind: &str, total: usize, active: usize, size: u64, reclaimable: u64) -> Value {
    let reclaim = match (reclaimable * 100).checked_div(size) {
        Some(pct) => format!("{} ({pct}%)", human_size4(reclaimable)),
        None => human_size4(reclaimable),
    };
    json!({
        "Type": kind,
        "TotalCount": total.to_string(),
        "Active": active.to_string(),
        "Size": human_size4(size),
        "Reclaimable": reclaim,
    })
}

/// The shared bytes of the image whose (short) id is `id`.
fn shared_of(shared: &std::collections::HashMap<String, u64>, id: &str) -> u64 {
    let id = id.trim_start_matches("sha256:");
    shared
        .iter()
        .find(|(k, _)| k.trim_start_matches("sha256:").starts_with(id))
        .map_or(0, |(_, v)| *v)
}

fn verbose(store: &hako_image::ImageStore) -> Result<()> {
    let rows = list::rows(store, &Filters::default(), false)?;
    let shared = store.shared_sizes().map_err(image_error)?;
    let mut t = String::from(
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS\n",
    );
    for r in &rows {
        let v = r.to_value();
        t.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.repository,
            r.tag,
            r.id,
            v["CreatedSince"].as_str().unwrap_or(""),
            human_size4(r.size),
            human_size4(shared_of(&shared, &r.id)),
            human_size4(r.size - shared_of(&shared, &r.id).min(r.size)),
            r.containers
        ));
    }
    let mut out = format!("Images space usage:\n\n{}\n", align(&t));
    out.push_str("Containers space usage:\n\n");
    out.push_str(&align(
        "CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES\n",
    ));
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&align("VOLUME NAME\tLINKS\tSIZE\n"));
    out.push_str("\nBuild cache usage: 0B\n\n");
    out.push_str(&align(
        "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n",
    ));
    super::super::print(&out)
}
