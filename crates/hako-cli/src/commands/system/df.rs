//! `hako system df [-v]`: disk usage by images, containers, volumes and build cache, with
//! the docker CLI's columns and sums (a layer several images share counts once).

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use hako_engine::DiskUsage;
use hako_engine::models::{ContainerSummary, ContainerSummaryStateEnum};

use crate::commands::container::{engine_err, ps};
use crate::commands::image::list::split_tag;
use crate::context::Global;
use crate::format::{Format, align};
use crate::units::{human_size, human_size4, since};

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
/// The docker CLI's containers table of `system df -v`.
const CONTAINERS: &str = r"table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}";

/// Prints the summary table (or the verbose listing).
pub fn run(g: &Global, a: &DfArgs) -> Result<()> {
    let format = Format::parse(a.format.as_deref().unwrap_or(""), DEFAULT)?;
    let engine = g.open_engine()?;
    let du = engine.disk_usage().map_err(engine_err)?;
    if a.verbose {
        // A template (not `table`) runs once on Docker's {Images, Containers, Volumes,
        // BuildCache} lists, as the docker CLI runs it.
        if let Some(f) = a
            .format
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty() && !f.starts_with("table"))
        {
            let f = if f == "json" { "{{json .}}" } else { f };
            let t = crate::format::Template::parse(f)?;
            return super::super::print(&format!("{}\n", t.execute(&verbose_value(&du))?));
        }
        return verbose(&du);
    }
    let n = |x: i64| u64::try_from(x).unwrap_or(0);
    let images = &du.images;
    // Docker's sums: SIZE is every layer once (`LayersSize`); RECLAIMABLE is that minus
    // what only the images in use hold (their unique bytes).
    let total = n(du.layers_size);
    let active = images.iter().filter(|i| i.containers > 0).count();
    let used: u64 = images
        .iter()
        .filter(|i| i.containers > 0 && i.shared_size >= 0)
        .map(|i| n(i.size - i.shared_size))
        .sum();
    let reclaimable = total.saturating_sub(used);
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
            du.build_cache.len(),
            du.build_cache.iter().filter(|r| r["InUse"] == true).count(),
            builder_size(&du),
            builder_size(&du)
                - du.build_cache
                    .iter()
                    .filter(|r| r["InUse"] == true && r["Shared"] != true)
                    .map(|r| r["Size"].as_u64().unwrap_or(0))
                    .sum::<u64>(),
        ),
    ];
    let header = json!({
        "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
        "Reclaimable": "RECLAIMABLE",
    });
    super::super::print(&format.render(&header, &rows)?)
}

/// The docker CLI's build cache size: the entries whose bytes nothing else holds.
fn builder_size(du: &DiskUsage) -> u64 {
    du.build_cache
        .iter()
        .filter(|r| r["Shared"] != true)
        .map(|r| r["Size"].as_u64().unwrap_or(0))
        .sum()
}

fn row(kind: &str, total: usize, active: usize, size: u64, reclaimable: u64) -> Value {
    // The docker CLI gives no percentage for the build cache.
    let reclaim = match (reclaimable * 100).checked_div(size) {
        Some(pct) if kind != "Build Cache" => format!("{} ({pct}%)", human_size4(reclaimable)),
        _ => human_size4(reclaimable),
    };
    json!({
        "Type": kind,
        "TotalCount": total.to_string(),
        "Active": active.to_string(),
        "Size": human_size4(size),
        "Reclaimable": reclaim,
    })
}

/// Docker's `system df -v`: one table per kind, as the docker CLI prints them.
/// `system df -v` as template data: the docker CLI's rows of each list (images with their
/// full ids, containers as `ps` rows with their own size, volumes, build cache records).
fn verbose_value(du: &DiskUsage) -> Value {
    let n = |x: i64| u64::try_from(x).unwrap_or(0);
    let images: Vec<Value> = du
        .images
        .iter()
        .map(|img| {
            let (repo, tag) = img
                .repo_tags
                .first()
                .map_or(("<none>", "<none>"), |t| split_tag(t));
            let (shared, unique) = if img.shared_size < 0 {
                ("N/A".to_string(), "N/A".to_string())
            } else {
                (
                    human_size4(n(img.shared_size)),
                    human_size4(n(img.size - img.shared_size)),
                )
            };
            let created = Some(img.created).filter(|c| *c > 0);
            json!({
                "Containers": img.containers.to_string(),
                "CreatedAt": created.map(crate::units::created_at).unwrap_or_default(),
                "CreatedSince": since(created),
                "Digest": img.repo_digests.first().and_then(|d| d.split_once('@')).map(|(_, d)| d).unwrap_or(""),
                "ID": img.id,
                "Repository": repo,
                "SharedSize": shared,
                "Size": human_size(n(img.size)),
                "Tag": tag,
                "UniqueSize": unique,
                "VirtualSize": human_size4(n(img.size)),
            })
        })
        .collect();
    let containers: Vec<Value> = du
        .containers
        .iter()
        .map(|c| {
            let mut r = ps::row(c, false);
            r["Size"] = json!(human_size(n(c.size_rw.unwrap_or(0))));
            r
        })
        .collect();
    let volumes: Vec<Value> = du
        .volumes
        .iter()
        .map(|v| {
            let mut labels: Vec<String> =
                v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect();
            labels.sort();
            let (links, size) = v
                .usage_data
                .as_ref()
                .map_or(("N/A".into(), "N/A".into()), |u| {
                    (u.ref_count.to_string(), human_size4(n(u.size)))
                });
            json!({
                "Availability": "N/A", "Driver": v.driver, "Group": "N/A",
                "Labels": labels.join(","), "Links": links, "Mountpoint": v.mountpoint,
                "Name": v.name, "Scope": "local", "Size": size, "Status": "N/A",
            })
        })
        .collect();
    let ago = |v: &Value| since(v.as_str().and_then(hako_engine::units::parse_rfc3339));
    let cache: Vec<Value> = du
        .build_cache
        .iter()
        .map(|r| {
            json!({
                "CacheType": r["Type"], "CreatedAt": r["CreatedAt"], "CreatedSince": ago(&r["CreatedAt"]),
                "Description": r["Description"], "ID": r["ID"], "LastUsedAt": r["LastUsedAt"],
                "LastUsedSince": ago(&r["LastUsedAt"]), "Parent": r["Parent"],
                "Shared": r["Shared"] == true, "Size": human_size(r["Size"].as_u64().unwrap_or(0)),
                "UsageCount": r["UsageCount"],
            })
        })
        .collect();
    json!({"Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": cache})
}

fn verbose(du: &DiskUsage) -> Result<()> {
    let v = verbose_value(du);
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let s = |r: &Value, k: &str| match &r[k] {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut t = String::from(
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS\n",
    );
    for img in list("Images") {
        let id: String = s(&img, "ID")
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        let cols = [
            "CreatedSince",
            "Size",
            "SharedSize",
            "UniqueSize",
            "Containers",
        ];
        t.push_str(&format!(
            "{}\t{}\t{id}\t{}\n",
            s(&img, "Repository"),
            s(&img, "Tag"),
            cols.map(|k| s(&img, k)).join("\t")
        ));
    }
    let mut out = format!("Images space usage:\n\n{}", align(&t));
    out.push_str("\nContainers space usage:\n\n");
    let rows = list("Containers");
    out.push_str(&Format::parse("", CONTAINERS)?.render(&ps::header(), &rows)?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    let mut t = String::from("VOLUME NAME\tLINKS\tSIZE\n");
    for vol in list("Volumes") {
        let cols = ["Name", "Links", "Size"];
        t.push_str(&format!("{}\n", cols.map(|k| s(&vol, k)).join("\t")));
    }
    out.push_str(&align(&t));
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size4(builder_size(du))
    ));
    let mut t = String::from("CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n");
    for (r, row) in du.build_cache.iter().zip(list("BuildCache")) {
        let key = r["ID"].as_str().unwrap_or_default();
        let mut id: String = key
            .rsplit_once(':')
            .map_or(key, |(_, hex)| hex)
            .chars()
            .take(12)
            .collect();
        if r["InUse"] == true {
            id.push('*');
        }
        let cols = [
            "CacheType",
            "Size",
            "CreatedSince",
            "LastUsedSince",
            "UsageCount",
            "Shared",
        ];
        t.push_str(&format!("{id}\t{}\n", cols.map(|k| s(&row, k)).join("\t")));
    }
    out.push_str(&align(&t));
    super::super::print(&out)
}
