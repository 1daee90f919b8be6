//! `hako system prune [-a] [-f] [--volumes]`: stopped containers, then unused anonymous
//! volumes (with `--volumes`), then dangling images (all unused ones with `-a`).

use anyhow::Result;
use clap::Args;

use crate::commands::container::engine_err;
use crate::commands::container::prune::confirm;
use crate::context::Global;
use crate::units::human_size;
use hako_engine::filters::Filters;

/// Arguments of `hako system prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>", "until=<timestamp>")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
}

/// `hako system prune`.
pub fn run(g: &Global, a: &PruneArgs) -> Result<()> {
    let filters = Filters::from_args(&a.filters).map_err(engine_err)?;
    filters
        .validate(hako_engine::CONTAINER_PRUNE_FILTERS)
        .map_err(engine_err)?;
    if !a.force {
        let mut w = String::from("WARNING! This will remove:\n  - all stopped containers\n");
        if a.volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        w.push_str(if a.all {
            "  - all images without at least one container associated to them\n"
        } else {
            "  - all dangling images\n"
        });
        w.push_str("  - unused build cache\n");
        if !confirm(&w)? {
            return Ok(());
        }
    }
    let engine = g.open_engine()?;
    let (mut out, mut space) = crate::commands::container::prune::prune(&engine, &filters)?;
    if a.volumes {
        let (text, s) = crate::commands::volume::prune::prune(&engine, false, &[])?;
        out.push_str(&text);
        space += s;
    }
    let mut image_filters = Filters::new();
    for (k, vals) in filters.iter() {
        for v in vals {
            image_filters.add(k, v.clone());
        }
    }
    if a.all {
        image_filters.add("dangling", "false");
    }
    let report = engine.image_prune(&image_filters).map_err(engine_err)?;
    let deleted = report.images_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for d in &deleted {
            if let Some(t) = &d.untagged {
                out.push_str(&format!("untagged: {t}\n"));
            }
            if let Some(id) = &d.deleted {
                out.push_str(&format!("deleted: {id}\n"));
            }
        }
        out.push('\n');
    }
    space += u64::try_from(report.space_reclaimed.unwrap_or(0)).unwrap_or(0);
    let build = engine.build_prune(None).map_err(engine_err)?;
    if build.entries > 0 {
        out.push_str(&format!(
            "Deleted build cache objects: {}\n\n",
            build.entries
        ));
    }
    space += build.space_reclaimed;
    out.push_str(&format!("Total reclaimed space: {}\n", human_size(space)));
    crate::commands::print(&out)
}
