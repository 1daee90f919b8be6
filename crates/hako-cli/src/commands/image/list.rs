//! `hako images` / `hako image ls`: one row per tag, Docker's columns, filters and
//! `--format`.

use anyhow::{Result, bail};
use clap::Args;
use hako_image::{ImageStore, ImageSummary};
use serde_json::{Value, json};

use crate::context::Global;
use crate::error::image_error;
use crate::format::Format;
use crate::units::{created_at, human_size, parse_rfc3339, parse_rfc3339_nanos, since};

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
            "VirtualSize": human_size(self.size),
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
    let mut filters = Filters::parse(&a.filters)?;
    if let Some(r) = &a.reference {
        filters.references.push(r.clone());
    }
    let store = g.open_store()?;
    let rows = rows(&store, &filters, a.no_trunc)?;
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

/// The rows for the store's images, filtered, newest first.
pub fn rows(store: &ImageStore, filters: &Filters, no_trunc: bool) -> Result<Vec<Row>> {
    let mut images = store.list().map_err(image_error)?;
    images.sort_by_key(|i| std::cmp::Reverse(precise_created(i.created.as_deref())));
    let before = filters
        .before
        .as_deref()
        .map(|n| created_ref(store, n))
        .transpose()?;
    let after = filters
        .since
        .as_deref()
        .map(|n| created_ref(store, n))
        .transpose()?;
    let mut out = Vec::new();
    for img in &images {
        let created = precise_created(img.created.as_deref());
        let dangling = img.repo_tags.is_empty();
        if filters.dangling.is_some_and(|d| d != dangling)
            || before.is_some_and(|b| created.is_none_or(|c| c >= b))
            || after.is_some_and(|s| created.is_none_or(|c| c <= s))
        {
            continue;
        }
        if !filters.labels.is_empty() && !labels_match(store, img, &filters.labels)? {
            continue;
        }
        for row in image_rows(img, no_trunc) {
            let name = format!("{}:{}", row.repository, row.tag);
            let keep = filters.references.is_empty()
                || (row.tag != "<none>"
                    && filters
                        .references
                        .iter()
                        .any(|p| glob(p, &name) || glob(p, &row.repository)));
            if keep {
                out.push(row);
            }
        }
    }
    Ok(out)
}

fn created_of(i: &ImageSummary) -> Option<i64> {
    i.created.as_deref().and_then(parse_rfc3339)
}

fn precise_created(s: Option<&str>) -> Option<(i64, u32)> {
    s.and_then(parse_rfc3339_nanos)
}

fn created_ref(store: &ImageStore, name: &str) -> Result<(i64, u32)> {
    let v = store.inspect(name).map_err(image_error)?;
    Ok(precise_created(v["Created"].as_str()).unwrap_or((0, 0)))
}

fn labels_match(store: &ImageStore, img: &ImageSummary, wanted: &[String]) -> Result<bool> {
    let v = store.inspect(img.id.as_str()).map_err(image_error)?;
    let labels = &v["Config"]["Labels"];
    Ok(wanted.iter().all(|w| match w.split_once('=') {
        Some((k, val)) => labels[k].as_str() == Some(val),
        None => labels.get(w).is_some(),
    }))
}

/// Docker's rows of one image: one per tag; untagged images show their digests, or
/// `<none>` twice.
fn image_rows(img: &ImageSummary, no_trunc: bool) -> Vec<Row> {
    let id = if no_trunc {
        img.id.to_string()
    } else {
        img.id.short().to_string()
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
        created: created_of(img),
        size: img.size,
        containers: img.containers,
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

/// The `--filter` values, checked.
#[derive(Debug, Default)]
pub struct Filters {
    references: Vec<String>,
    dangling: Option<bool>,
    before: Option<String>,
    since: Option<String>,
    labels: Vec<String>,
}

impl Filters {
    fn parse(raw: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for r in raw {
            let Some((k, v)) = r.split_once('=') else {
                bail!("bad format of filter (expected name=value)");
            };
            match k {
                "reference" => f.references.push(v.to_string()),
                "dangling" => match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => f.dangling = Some(true),
                    "false" | "0" => f.dangling = Some(false),
                    _ => bail!("invalid filter 'dangling={v}'"),
                },
                "before" => f.before = Some(v.to_string()),
                "since" => f.since = Some(v.to_string()),
                "label" => f.labels.push(v.to_string()),
                _ => bail!("invalid filter '{k}'"),
            }
        }
        Ok(f)
    }
}

/// Go's `path.Match`: `*` and `?` do not cross `/`; `[...]` classes with ranges and `^`.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len())
            .take_while(|&i| i == 0 || n[i - 1] != '/')
            .any(|i| glob_at(&p[1..], &n[i..])),
        Some('?') => n.first().is_some_and(|c| *c != '/') && glob_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(close) = p.iter().position(|c| *c == ']') else {
                return false;
            };
            let Some(c) = n.first() else { return false };
            let class = &p[1..close];
            let (neg, class) = match class.first() {
                Some('^' | '!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= (class[i]..=class[i + 2]).contains(c);
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != neg && glob_at(&p[close + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob_at(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob_at(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::{glob, split_tag};

    #[test]
    fn globs_like_path_match() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox:*", "busybox:latest"));
        assert!(!glob("*", "a/b"));
        assert!(glob("*/*", "a/b"));
        assert!(glob("b?sybox", "busybox"));
        assert!(glob("[a-c]usybox", "busybox"));
        assert!(!glob("[^b]usybox", "busybox"));
        assert!(!glob("busy", "busybox"));
    }

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
