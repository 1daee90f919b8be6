//! `hako stats [--no-stream] [-a] [--format] [CONTAINER...]`: Docker's live resource
//! table. CPU % is the CPU time used between two readings over the wall time between them
//! (100% = one CPU busy, as Docker computes it); a memory limit of 0 (none) shows the
//! host's memory, as Docker does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use hako_engine::{Engine, StatsSample};
use serde_json::{Value, json};

use super::engine_err;
use crate::context::Global;
use crate::format::Format;
use crate::units::{bytes_size, human_size};

/// Arguments of `hako stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a Go template ('table', 'table TEMPLATE', 'json', or TEMPLATE)
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: all running ones)
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

const DEFAULT: &str = r"table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

fn header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

/// Bytes received and sent on the container's own interfaces (loopback left out, as
/// Docker counts only its network's interfaces); 0/0 with the host's network.
fn net_io(engine: &Engine, id: &str) -> (u64, u64) {
    let Ok(rec) = engine.get(id) else {
        return (0, 0);
    };
    if rec.host_config.network_mode.as_deref() == Some("host") {
        return (0, 0);
    }
    let Some(pid) = engine.live(&rec).pid else {
        return (0, 0);
    };
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (iface, rest) = l.split_once(':')?;
            if iface.trim() == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

/// One container being watched.
struct Watched {
    id: String,
    name: String,
    /// As the user named it (shown in the `Container` column).
    given: String,
    last: Option<(Instant, StatsSample)>,
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[allow(clippy::cast_precision_loss)] // percentages for display
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64 * 100.0
    }
}

impl Watched {
    /// Takes a reading and renders the row (CPU % against the previous reading).
    fn row(&mut self, engine: &Engine, host_mem: u64, no_trunc: bool) -> Value {
        let now = Instant::now();
        let s = engine.stats(&self.id).unwrap_or_default();
        let (rx, tx) = if s.pids > 0 {
            net_io(engine, &self.id)
        } else {
            (0, 0)
        };
        let cpu = match &self.last {
            Some((t, prev)) => {
                let wall = u64::try_from(now.duration_since(*t).as_nanos()).unwrap_or(u64::MAX);
                percent(s.cpu_total_ns.saturating_sub(prev.cpu_total_ns), wall)
            }
            None => 0.0,
        };
        let limit = if s.memory_limit == 0 || s.memory_limit >= host_mem {
            host_mem
        } else {
            s.memory_limit
        };
        let limit = if s.memory_usage == 0 && s.pids == 0 {
            0
        } else {
            limit
        };
        let row = json!({
            "ID": if no_trunc { self.id.clone() } else { self.id[..12].to_string() },
            "Container": self.given,
            "Name": self.name,
            "CPUPerc": format!("{cpu:.2}%"),
            "MemUsage": format!("{} / {}", bytes_size(s.memory_usage), bytes_size(limit)),
            "MemPerc": format!("{:.2}%", percent(s.memory_usage, limit)),
            "NetIO": format!("{} / {}", human_size(rx), human_size(tx)),
            "BlockIO": format!("{} / {}", human_size(s.block_read), human_size(s.block_write)),
            "PIDs": s.pids.to_string(),
        });
        self.last = Some((now, s));
        row
    }
}

/// The containers to show now: the named ones, else the running (or all) ones.
fn targets(engine: &Engine, a: &StatsArgs) -> Result<Vec<(String, String, String)>> {
    if a.containers.is_empty() {
        return Ok(engine
            .list()
            .map_err(engine_err)?
            .into_iter()
            .filter(|(_, l)| a.all || l.status.is_active())
            .map(|(r, _)| (r.id.clone(), r.name.clone(), r.id[..12].to_string()))
            .collect());
    }
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for c in &a.containers {
        match engine.get(c) {
            Ok(r) => out.push((r.id, r.name, c.clone())),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("{}", failed.join(", "));
    }
    Ok(out)
}

/// `hako stats`.
pub fn run(g: &Global, a: &StatsArgs) -> Result<()> {
    let format = Format::parse(a.format.as_deref().unwrap_or(""), DEFAULT)?;
    let engine = g.open_engine()?;
    let host_mem = host_memory();
    let mut watched: HashMap<String, Watched> = HashMap::new();
    let mut first = true;
    loop {
        let list = targets(&engine, a)?;
        watched.retain(|id, _| list.iter().any(|(i, _, _)| i == id));
        let mut rows = Vec::new();
        for (id, name, given) in &list {
            let w = watched.entry(id.clone()).or_insert_with(|| Watched {
                id: id.clone(),
                name: name.clone(),
                given: given.clone(),
                last: None,
            });
            if w.last.is_none() {
                // The first reading only sets the baseline for CPU %.
                w.row(&engine, host_mem, a.no_trunc);
            }
        }
        std::thread::sleep(if first {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(1)
        });
        first = false;
        for (id, _, _) in &list {
            if let Some(w) = watched.get_mut(id) {
                rows.push(w.row(&engine, host_mem, a.no_trunc));
            }
        }
        let text = format.render(&header(), &rows)?;
        if a.no_stream {
            return crate::commands::print(&text);
        }
        // Docker's live view: clear the screen, home the cursor, draw the table.
        crate::commands::print(&format!("\x1b[2J\x1b[H{text}"))?;
    }
}
