//! `hako images` / `hako image ls`: one row per tag, Docker's columns, filters and
//! `--format`.

use anyhow::Result;
use clap::Args;
use hako_engine::filters::Filters;
use hako_engine::models::ImageSummary;
use hako_engine::{Engine, ImageListOptions};
use serde_json::{Value, json};

use crate::commands::container::engine_err;
use crate::context::Global;
use crate::format::Format;
use crate::units::{created_at, human_size, since};

/// Arguments of `hako images`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only show images of this repository (and tag; wildcards allowed)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,

    /// Show all images (intermediate images too; hako keeps none)
    #[arg(short, long)]
    pub all: bool,

    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,

    /// Show digests
    #[arg(long)]
    pub digests: bool,

    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,

    /// Filter output: reference=PATTERN, dangling=true|false, before=IMAGE, since=IMAGE,
    /// label=KEY or label=KEY=VALUE; repeatable
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,

    /// Format output using a Go template ('table', 'table TEMPLATE', 'json', or TEMPLATE)
    #[arg(long)]
    pub format: Option<String>,
}

const DEFAULT: &str = r"table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const DEFAULT_DIGESTS: &str =
    r"table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// Column titles of the fields a template can use.
pub fn header() -> Value {
    json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
        "VirtualSize": "VIRTUAL SIZE",
    })
}

/// One line of the listing.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub created: Option<i64>,
    pub size: u64,
    pub containers: u64,
}

impl Row {
    /// The template data, with Docker's field names (values as Docker prints them).
    pub fn to_value(&self) -> Value {
        json!({
            "Containers": self.containers.to_string(),
            "CreatedAt": self.created.map(created_at).unwrap_or_default(),
            "CreatedSince": since(self.created),
            "Digest": self.digest,
            "ID": self.id,
            "Repository": self.repository,
            "SharedSize": "N/A",
            "Size": human_size(self.size),
            "Tag": self.tag,
            "UniqueSize": "N/A",
            // Docker's VirtualSize() is go-units HumanSize (4 digits), Size() 3.
            "VirtualSize": crate::units::human_size4(self.size),
        })
    }
}

/// Lists.
pub fn run(g: &Global, a: &ListArgs) -> Result<()> {
    // Parse the format before touching the store: a bad template is a usage error.
    let format = if a.quiet {
        None
    } else {
        let default = if a.digests { DEFAULT_DIGESTS } else { DEFAULT };
        Some(Format::parse(a.format.as_deref().unwrap_or(""), default)?)
    };
    let mut filters = Filters::from_args(&a.filters).map_err(engine_err)?;
    if let Some(r) = &a.reference {
        filters.add("reference", r.clone());
    }
    let engine = g.open_engine()?;
    let rows = rows(&engine, filters, a.all, a.no_trunc)?;
    let text = match format {
        None => {
            let mut seen = Vec::new();
            for r in &rows {
                if !seen.contains(&r.id) {
                    seen.push(r.id.clone());
                }
            }
            seen.iter().map(|id| format!("{id}\n")).collect()
        }
        Some(f) => {
            let values: Vec<Value> = rows.iter().map(Row::to_value).collect();
            f.render(&header(), &values)?
        }
    };
    super::super::print(&text)
}

/// The rows for the engine's images, filtered, newest first.
pub fn rows(engine: &Engine, filters: Filters, all: bool, no_trunc: bool) -> Result<Vec<Row>> {
    let images = engine
        .image_list(&ImageListOptions { all, filters })
        .map_err(engine_err)?;
    Ok(images
        .iter()
        .flat_map(|i| image_rows(i, no_trunc))
        .collect())
}

/// Docker's rows of one image: one per tag; untagged images show their digests, or
/// `<none>` twice.
fn image_rows(img: &ImageSummary, no_trunc: bool) -> Vec<Row> {
    let hex = img.id.trim_start_matches("sha256:");
    let id = if no_trunc {
        img.id.clone()
    } else {
        hex.chars().take(12).collect()
    };
    let digests: Vec<(&str, &str)> = img
        .repo_digests
        .iter()
        .filter_map(|d| d.split_once('@'))
        .collect();
    let digest_for = |repo: &str| {
        digests
            .iter()
            .find(|(r, _)| *r == repo)
            .map_or("<none>", |(_, d)| d)
            .to_string()
    };
    let row = |repository: &str, tag: &str, digest: String| Row {
        id: id.clone(),
        repository: repository.to_string(),
        tag: tag.to_string(),
        digest,
        created: Some(img.created).filter(|c| *c > 0),
        size: u64::try_from(img.size).unwrap_or(0),
        containers: u64::try_from(img.containers).unwrap_or(0),
    };
    let mut rows: Vec<Row> = img
        .repo_tags
        .iter()
        .map(|t| {
            let (repo, tag) = split_tag(t);
            row(repo, tag, digest_for(repo))
        })
        .collect();
    if rows.is_empty() {
        rows = digests
            .iter()
            .map(|(repo, d)| row(repo, "<none>", (*d).to_string()))
            .collect();
    }
    if rows.is_empty() {
        rows.push(row("<none>", "<none>", "<none>".into()));
    }
    rows
}

/// `localhost:5000/a/b:tag` -> (`localhost:5000/a/b`, `tag`).
pub fn split_tag(name: &str) -> (&str, &str) {
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, "<none>"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn splits_tags_after_the_last_slash() {
        assert_eq!(split_tag("busybox:latest"), ("busybox", "latest"));
        assert_eq!(
            split_tag("localhost:5000/a/b:1"),
            ("localhost:5000/a/b", "1")
        );
        assert_eq!(
            split_tag("localhost:5000/a"),
            ("localhost:5000/a", "<none>")
        );
    }
}
