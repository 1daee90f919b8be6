//! `hako system df [-v]`: disk usage by images, containers, volumes and build cache.
//! Build cache is zero: hako has no builder yet.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use hako_engine::DiskUsage;
use hako_engine::models::{ContainerSummary, ContainerSummaryStateEnum};

use crate::commands::container::engine_err;
use crate::commands::image::list::split_tag;
use crate::context::Global;
use crate::format::{Format, align};
use crate::units::{human_size4, since};

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
    let du = engine.disk_usage().map_err(engine_err)?;
    if a.verbose {
        return verbose(&du);
    }
    let build = engine.build_cache_usage().map_err(engine_err)?;
    let n = |x: i64| u64::try_from(x).unwrap_or(0);
    let images = &du.images;
    let total: u64 = images.iter().map(|i| n(i.size)).sum();
    let active = images.iter().filter(|i| i.containers > 0).count();
    let reclaimable: u64 = images
        .iter()
        .filter(|i| i.containers == 0)
        .map(|i| n(i.size))
        .sum();
    let ctr = |c: &ContainerSummary| {
        (
            n(c.size_rw.unwrap_or(0)),
            matches!(
                c.state,
                Some(
                    ContainerSummaryStateEnum::RUNNING
                        | ContainerSummaryStateEnum::PAUSED
                        | ContainerSummaryStateEnum::RESTARTING
                )
            ),
        )
    };
    let containers: Vec<(u64, bool)> = du.containers.iter().map(ctr).collect();
    let volumes: Vec<(u64, bool)> = du
        .volumes
        .iter()
        .map(|v| {
            let u = v.usage_data.as_ref();
            (
                n(u.map_or(0, |u| u.size)),
                u.is_some_and(|u| u.ref_count > 0),
            )
        })
        .collect();
    let rows = [
        row("Images", images.len(), active, total, reclaimable),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(|c| c.1).count(),
            containers.iter().map(|c| c.0).sum(),
            containers.iter().filter(|c| !c.1).map(|c| c.0).sum(),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            volumes.iter().filter(|v| v.1).count(),
            volumes.iter().map(|v| v.0).sum(),
            volumes.iter().filter(|v| !v.1).map(|v| v.0).sum(),
        ),
        row(
            "Build Cache",
            usize::try_from(build.entries).unwrap_or(usize::MAX),
            0,
            build.size,
            build.reclaimable,
        ),
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

fn verbose(du: &DiskUsage) -> Result<()> {
    let mut t = String::from(
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS\n",
    );
    for img in &du.images {
        let size = u64::try_from(img.size).unwrap_or(0);
        let shared = u64::try_from(img.shared_size).unwrap_or(0);
        let id: String = img
            .id
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        let created = since(Some(img.created).filter(|c| *c > 0));
        let tags: Vec<(&str, &str)> = if img.repo_tags.is_empty() {
            vec![("<none>", "<none>")]
        } else {
            img.repo_tags.iter().map(|t| split_tag(t)).collect()
        };
        for (repo, tag) in tags {
            t.push_str(&format!(
                "{repo}\t{tag}\t{id}\t{created}\t{}\t{}\t{}\t{}\n",
                human_size4(size),
                human_size4(shared),
                human_size4(size - shared.min(size)),
                img.containers
            ));
        }
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
