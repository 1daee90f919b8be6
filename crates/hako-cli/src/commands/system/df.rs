//! `hako system df [-v]`: disk usage by images, containers, volumes and build cache.
//! Containers, volumes and build cache are zero until those subsystems land.

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
    let store = g.open_store()?;
    let images = store.list().map_err(image_error)?;
    if a.verbose {
        return verbose(&store);
    }
    let total: u64 = images.iter().map(|i| i.size).sum();
    let active = images.iter().filter(|i| i.containers > 0).count();
    let reclaimable: u64 = images
        .iter()
        .filter(|i| i.containers == 0)
        .map(|i| i.size)
        .sum();
    let rows = [
        row("Images", images.len(), active, total, reclaimable),
        row("Containers", 0, 0, 0, 0),
        row("Local Volumes", 0, 0, 0, 0),
        row("Build Cache", 0, 0, 0, 0),
    ];
    let header = json!({
        "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
        "Reclaimable": "RECLAIMABLE",
    });
    super::super::print(&format.render(&header, &rows)?)
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

fn verbose(store: &hako_image::ImageStore) -> Result<()> {
    let rows = list::rows(store, &Filters::default(), false)?;
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
            "0B",
            human_size4(r.size),
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
