//! `hako history IMAGE`: the config's history, newest first, with layer sizes.

use anyhow::Result;
use clap::{ArgAction, Args};
use serde_json::{Value, json};

use crate::commands::container::engine_err;
use crate::context::Global;
use crate::format::Format;
use crate::units::{human_size, since};

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
    let engine = g.open_engine()?;
    let rows = rows(&engine, a)?;
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

fn rows(engine: &hako_engine::Engine, a: &HistoryArgs) -> Result<Vec<Value>> {
    let items = engine.image_history(&a.image).map_err(engine_err)?;
    Ok(items
        .iter()
        .map(|h| {
            let created = Some(h.created).filter(|c| *c > 0);
            let created_by = h.created_by.replace('\t', " ");
            let id = if h.id.starts_with("sha256:") && !a.no_trunc {
                h.id.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect()
            } else {
                h.id.clone()
            };
            json!({
                "ID": id,
                "CreatedSince": if a.human {
                    since(created)
                } else {
                    created.map(rfc3339).unwrap_or_default()
                },
                // The docker CLI's history CreatedAt is RFC 3339 (ps and images use Go's
                // time string).
                "CreatedAt": created
                    .map(|t| {
                        let when = std::time::UNIX_EPOCH
                            + std::time::Duration::from_secs(t.max(0).unsigned_abs());
                        humantime::format_rfc3339_seconds(when).to_string()
                    })
                    .unwrap_or_default(),
                "CreatedBy": if a.no_trunc { created_by } else { ellipsis(&created_by, 45) },
                "Size": match u64::try_from(h.size) {
                    Ok(s) if a.human => human_size(s),
                    Ok(s) => s.to_string(),
                    Err(_) => "N/A".into(),
                },
                "Comment": h.comment,
            })
        })
        .collect())
}

fn rfc3339(t: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.unsigned_abs()),
    )
    .to_string()
}

fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}
