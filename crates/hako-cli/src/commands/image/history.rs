//! `hako history IMAGE`: the config's history, newest first, with layer sizes.

use anyhow::Result;
use clap::{ArgAction, Args};
use hako_image::{BlobStore, Digest, ImageStore, spec::ImageConfig};
use serde_json::{Value, json};

use crate::context::Global;
use crate::error::image_error;
use crate::format::Format;
use crate::units::{created_at, human_size, parse_rfc3339, since};

/// Arguments of `hako history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, action = ArgAction::Set, default_value_t = true, value_name = "BOOL")]
    pub human: bool,

    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,

    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,

    /// Format output using a Go template ('table', 'table TEMPLATE', 'json', or TEMPLATE)
    #[arg(long)]
    pub format: Option<String>,

    /// The image (name, tag or id)
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

const DEFAULT: &str = r"table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// Prints the history.
pub fn run(g: &Global, a: &HistoryArgs) -> Result<()> {
    let format = if a.quiet {
        None
    } else {
        Some(Format::parse(a.format.as_deref().unwrap_or(""), DEFAULT)?)
    };
    let store = g.open_store()?;
    let id = store.resolve(&a.image).map_err(image_error)?;
    let rows = rows(&store, &id, a)?;
    let text = match format {
        None => rows
            .iter()
            .map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default()))
            .collect(),
        Some(f) => {
            let header = json!({
                "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
            });
            f.render(&header, &rows)?
        }
    };
    super::super::print(&text)
}

fn rows(store: &ImageStore, id: &Digest, a: &HistoryArgs) -> Result<Vec<Value>> {
    let config = ImageConfig::parse(&BlobStore::open(store.root())?.read(id)?)?;
    let inspect = store.inspect(id.as_str()).map_err(image_error)?;
    let mut sizes = layer_sizes(&inspect).into_iter();
    let mut rows = Vec::new();
    for h in &config.history {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty {
            Some(0)
        } else {
            sizes.next().flatten()
        };
        let created = h["created"].as_str().and_then(parse_rfc3339);
        let created_by = h["created_by"].as_str().unwrap_or("").replace('\t', " ");
        rows.push(json!({
            "CreatedSince": if a.human { since(created) } else { h["created"].as_str().unwrap_or("").to_string() },
            "CreatedAt": created.map(created_at).unwrap_or_default(),
            "CreatedBy": if a.no_trunc { created_by } else { ellipsis(&created_by, 45) },
            "Size": match size {
                Some(s) if a.human => human_size(s),
                Some(s) => s.to_string(),
                None => "N/A".into(),
            },
            "Comment": h["comment"].as_str().unwrap_or(""),
        }));
    }
    rows.reverse();
    let shown_id = if a.no_trunc {
        id.to_string()
    } else {
        id.short().to_string()
    };
    for (i, r) in rows.iter_mut().enumerate() {
        r["ID"] = json!(if i == 0 {
            shown_id.as_str()
        } else {
            "<missing>"
        });
    }
    Ok(rows)
}

/// Each layer's own size, base first. Exact for one-layer images and for overlay2 (each
/// layer's `diff/`); unknown (`N/A`) for lower vfs layers, which are full copies.
fn layer_sizes(inspect: &Value) -> Vec<Option<u64>> {
    let layers = inspect["RootFS"]["Layers"].as_array().map_or(0, Vec::len);
    let total = inspect["Size"].as_u64();
    if layers == 1 {
        return vec![total];
    }
    let data = &inspect["GraphDriver"]["Data"];
    if let Some(upper) = data["UpperDir"].as_str() {
        let mut dirs: Vec<&str> = data["LowerDir"]
            .as_str()
            .map(|l| l.split(':').rev().collect())
            .unwrap_or_default();
        dirs.push(upper);
        if dirs.len() == layers {
            return dirs
                .into_iter()
                .map(|d| Some(crate::units::dir_size(d)))
                .collect();
        }
    }
    vec![None; layers]
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}
