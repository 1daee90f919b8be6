//! `hako logs`: the json-file log the shim writes, with `-f`, `--tail`, `--since`,
//! `--until`, `-t`.

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use hako_engine::logs::LogOptions;

use super::engine_err;
use crate::context::Global;

/// Arguments of `hako logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all" for everything)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp (2013-01-02T13:23:37Z) or relative (42m for 42 minutes)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    pub until: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show extra details provided to logs (the labels, env and tag the log options name)
    #[arg(long)]
    pub details: bool,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `42m`, `10s`, `1h30m` ago, a Unix time, or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<SystemTime> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(SystemTime::now() - d);
    }
    if let Ok(secs) = s.parse::<f64>()
        && secs >= 0.0
    {
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(s))
        .with_context(|| format!("invalid time {s:?}: use a duration such as 10m or a timestamp such as 2026-01-02T15:04:05Z"))
}

/// `hako logs`.
pub fn run(g: &Global, a: &LogsArgs) -> Result<()> {
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => match n.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => bail!("invalid value {n:?} for --tail: a number or \"all\""),
        },
    };
    let o = LogOptions {
        follow: a.follow,
        tail,
        since: a.since.as_deref().map(parse_time).transpose()?,
        until: a.until.as_deref().map(parse_time).transpose()?,
        timestamps: a.timestamps,
        stdout: true,
        stderr: true,
        details: a.details,
    };
    let engine = g.open_engine()?;
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    engine
        .logs(&a.container, &o, &mut out, &mut err)
        .map_err(engine_err)
}
