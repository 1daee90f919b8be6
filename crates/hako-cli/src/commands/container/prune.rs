//! `hako container prune [-f] [--filter until=...|label=...]`: removes stopped containers.

use std::collections::HashMap;

use anyhow::{Result, bail};
use clap::Args;
use hako_engine::Record;

use super::engine_err;
use crate::context::Global;
use crate::units::{human_size, parse_rfc3339_nanos};

/// Arguments of `hako container prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>", "label=KEY[=VALUE]", "label!=KEY")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// `label=K`, `label=K=V`, `label!=K[=V]`: whether `labels` pass.
pub fn label_matches(labels: &HashMap<String, String>, expr: &str, negate: bool) -> bool {
    let hit = match expr.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(expr),
    };
    hit != negate
}

fn nanos((secs, n): (i64, u32)) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(n)
}

/// `until=` as Docker takes it: RFC 3339, Unix seconds, or a duration before now (`24h`);
/// in nanoseconds since the epoch.
fn parse_until(v: &str) -> Result<i128> {
    if let Some(t) = parse_rfc3339_nanos(v) {
        return Ok(nanos(t));
    }
    if let Ok(secs) = v.split('.').next().unwrap_or(v).parse::<i64>() {
        return Ok(nanos((secs, 0)));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    match humantime::parse_duration(v) {
        Ok(d) => Ok(now - i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)),
        Err(_) => bail!("invalid filter 'until={v}'"),
    }
}

/// Container prune filters.
#[derive(Debug, Default)]
pub struct Filters {
    until: Option<i128>,
    labels: Vec<(String, bool)>,
}

impl Filters {
    /// Parses `--filter` values.
    pub fn parse(raw: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for r in raw {
            if let Some(v) = r.strip_prefix("until=") {
                f.until = Some(parse_until(v)?);
            } else if let Some(v) = r.strip_prefix("label!=") {
                f.labels.push((v.to_string(), true));
            } else if let Some(v) = r.strip_prefix("label=") {
                f.labels.push((v.to_string(), false));
            } else {
                bail!("invalid filter '{r}'");
            }
        }
        Ok(f)
    }

    /// Whether the container is kept (not pruned).
    pub fn keeps(&self, r: &Record) -> bool {
        if let Some(u) = self.until
            && parse_rfc3339_nanos(&r.created).is_some_and(|c| nanos(c) >= u)
        {
            return true;
        }
        let labels = r.config.labels.clone().unwrap_or_default();
        !self
            .labels
            .iter()
            .all(|(e, neg)| label_matches(&labels, e, *neg))
    }
}

/// Docker's prompt on stderr; true if the answer is yes.
pub fn confirm(warning: &str) -> Result<bool> {
    use std::io::{BufRead, Write};
    let mut err = std::io::stderr().lock();
    write!(err, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// Removes the stopped containers `filters` does not keep; returns Docker's report text
/// and the bytes reclaimed.
pub fn prune(engine: &hako_engine::Engine, filters: &Filters) -> Result<(String, u64)> {
    let (removed, space, errors) = engine
        .prune_containers(|r, _| filters.keeps(r))
        .map_err(engine_err)?;
    for e in &errors {
        eprintln!("Error: {e}");
    }
    let mut out = String::new();
    if !removed.is_empty() {
        out.push_str("Deleted Containers:\n");
        for id in &removed {
            out.push_str(id);
            out.push('\n');
        }
        out.push('\n');
    }
    Ok((out, space))
}

/// `hako container prune`.
pub fn run(g: &Global, a: &PruneArgs) -> Result<()> {
    let filters = Filters::parse(&a.filters)?;
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(());
    }
    let engine = g.open_engine()?;
    let (mut out, space) = prune(&engine, &filters)?;
    out.push_str(&format!("Total reclaimed space: {}\n", human_size(space)));
    crate::commands::print(&out)
}
