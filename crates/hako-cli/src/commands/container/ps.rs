//! `hako ps`: Docker's columns, `-a`, `-q`, `-s`, `-n`, `-l`, `--filter`, `--format`.

use anyhow::{Result, bail};
use clap::Args;
use hako_engine::{LiveState, Record, Status};
use serde_json::{Value, json};

use super::engine_err;
use crate::context::Global;
use crate::format::Format;
use crate::units::{created_at, human_duration, human_size, now, parse_rfc3339, since};

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

fn header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
        "Size": "SIZE", "State": "STATE", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
    })
}

fn ago(t: Option<&str>) -> String {
    human_duration(
        u64::try_from(now() - t.and_then(parse_rfc3339).unwrap_or_else(now)).unwrap_or(0),
    )
}

/// Docker's STATUS column.
pub fn status_text(l: &LiveState) -> String {
    match l.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", ago(l.started_at.as_deref())),
        Status::Paused => format!("Up {} (Paused)", ago(l.started_at.as_deref())),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            l.exit_code,
            ago(l.finished_at.as_deref())
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            l.exit_code,
            ago(l.finished_at.as_deref())
        ),
        Status::Dead => "Dead".into(),
    }
}

fn command(r: &Record, no_trunc: bool) -> String {
    let mut c = std::iter::once(r.path.as_str())
        .chain(r.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    if !no_trunc && c.chars().count() > 20 {
        c = c.chars().take(19).collect::<String>() + "…";
    }
    format!("\"{c}\"")
}

struct Filters(Vec<(String, String)>);

impl Filters {
    fn parse(list: &[String]) -> Result<Filters> {
        let mut out = Vec::new();
        for f in list {
            let Some((k, v)) = f.split_once('=') else {
                bail!("bad format of filter (expected name=value): {f}");
            };
            if !matches!(
                k,
                "id" | "name" | "label" | "status" | "exited" | "ancestor"
            ) {
                bail!("invalid filter '{k}'");
            }
            if k == "status"
                && !matches!(
                    v,
                    "created"
                        | "restarting"
                        | "running"
                        | "removing"
                        | "paused"
                        | "exited"
                        | "dead"
                )
            {
                bail!("invalid filter 'status={v}'");
            }
            out.push((k.to_string(), v.to_string()));
        }
        Ok(Filters(out))
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Filters of the same key are ORed, different keys ANDed (Docker's rule).
    fn matches(&self, r: &Record, l: &LiveState) -> bool {
        let keys: std::collections::BTreeSet<&str> =
            self.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.into_iter().all(|key| {
            self.0
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(_, v)| match key {
                    "id" => r.id.starts_with(v.as_str()),
                    "name" => r.name.contains(v.as_str()),
                    "label" => {
                        let labels = r.config.labels.clone().unwrap_or_default();
                        match v.split_once('=') {
                            Some((lk, lv)) => labels.get(lk).is_some_and(|x| x == lv),
                            None => labels.contains_key(v.as_str()),
                        }
                    }
                    "status" => l.status.as_str() == v,
                    "exited" => {
                        l.status == Status::Exited && v.parse::<i32>().ok() == Some(l.exit_code)
                    }
                    "ancestor" => {
                        r.image == *v
                            || r.image_id
                                .trim_start_matches("sha256:")
                                .starts_with(v.trim_start_matches("sha256:"))
                    }
                    _ => true,
                })
        })
    }
}

/// `hako ps`.
pub fn run(g: &Global, a: &PsArgs) -> Result<()> {
    let filters = Filters::parse(&a.filters)?;
    let format = if a.quiet {
        None
    } else {
        Some(Format::parse(
            a.format.as_deref().unwrap_or(""),
            if a.size { DEFAULT_SIZE } else { DEFAULT },
        )?)
    };
    let engine = g.open_engine()?;
    let mut list = engine.list().map_err(engine_err)?;
    let last = if a.latest { 1 } else { a.last };
    let show_all = a.all || last > 0 || filters.has("status") || filters.has("exited");
    list.retain(|(r, l)| (show_all || l.status.is_active()) && filters.matches(r, l));
    if last > 0 {
        list.truncate(usize::try_from(last).unwrap_or(usize::MAX));
    }
    if a.quiet {
        let mut out = String::new();
        for (r, _) in &list {
            out.push_str(if a.no_trunc { &r.id } else { &r.id[..12] });
            out.push('\n');
        }
        return super::super::print(&out);
    }
    let rows: Vec<Value> = list
        .iter()
        .map(|(r, l)| {
            let size = if a.size {
                let rw = super::rw_size(&engine, &r.id);
                format!(
                    "{} (virtual {})",
                    human_size(rw),
                    human_size(rw + image_size(&engine, r))
                )
            } else {
                String::new()
            };
            let labels = r.config.labels.clone().unwrap_or_default();
            let mut lv: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            lv.sort();
            let created = parse_rfc3339(&r.created);
            json!({
                "ID": if a.no_trunc { r.id.clone() } else { r.id[..12].to_string() },
                "Image": r.image,
                "Command": command(r, a.no_trunc),
                "CreatedAt": created.map(created_at).unwrap_or_default(),
                "RunningFor": since(created),
                "Status": status_text(l),
                "State": l.status.as_str(),
                "Ports": "",
                "Names": r.name,
                "Size": size,
                "Labels": lv.join(","),
                "Mounts": "",
                "Networks": r.host_config.network_mode.clone().unwrap_or_default(),
                "LocalVolumes": "0",
            })
        })
        .collect();
    let text = format
        .expect("format is set unless quiet")
        .render(&header(), &rows)?;
    super::super::print(&text)
}

fn image_size(engine: &hako_engine::Engine, r: &Record) -> u64 {
    if r.image_id.is_empty() {
        return 0;
    }
    engine
        .images()
        .list()
        .ok()
        .and_then(|l| {
            l.into_iter()
                .find(|i| i.id.as_str() == r.image_id)
                .map(|i| i.size)
        })
        .unwrap_or(0)
}
