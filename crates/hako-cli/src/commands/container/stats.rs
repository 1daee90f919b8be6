//! `hako stats [--no-stream] [-a] [--format] [CONTAINER...]`: Docker's live resource
//! table from the engine's stats JSON (the one `GET /containers/{id}/stats` serves). CPU %
//! is Docker's: the container's CPU time over the host's between two readings, times the
//! CPUs (100% = one CPU busy); memory leaves out the inactive page cache; no memory limit
//! shows the host's memory.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use hako_engine::Engine;
use hako_engine::models::ContainerStatsResponse;
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

/// One container being watched.
struct Watched {
    id: String,
    name: String,
    /// As the user named it (shown in the `Container` column).
    given: String,
    last: Option<ContainerStatsResponse>,
}

#[allow(clippy::cast_precision_loss)] // percentages for display
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64 * 100.0
    }
}

/// Docker's CPU %: the container's CPU time over the host's between two readings, times
/// the CPUs (100% = one CPU busy).
fn cpu_percent(s: &ContainerStatsResponse) -> f64 {
    let total = |c: Option<&hako_engine::models::ContainerCpuStats>| {
        c.and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let system = |c: Option<&hako_engine::models::ContainerCpuStats>| {
        c.and_then(|c| c.system_cpu_usage).unwrap_or(0)
    };
    let (now, pre) = (s.cpu_stats.as_ref(), s.precpu_stats.as_ref());
    let cpu = total(now).saturating_sub(total(pre));
    let sys = system(now).saturating_sub(system(pre));
    let cpus = u64::from(now.and_then(|c| c.online_cpus).unwrap_or(1));
    if sys == 0 || cpu == 0 || system(pre) == 0 {
        return 0.0;
    }
    percent(cpu * cpus, sys)
}

/// Docker's memory use: without the inactive page cache.
fn mem_usage(m: &hako_engine::models::ContainerMemoryStats) -> u64 {
    let usage = m.usage.unwrap_or(0);
    let stats = m.stats.clone().unwrap_or_default();
    if let Some(v) = stats.get("total_inactive_file").filter(|v| **v < usage) {
        return usage - v;
    }
    match stats.get("inactive_file") {
        Some(v) if *v < usage => usage - v,
        _ => usage,
    }
}

impl Watched {
    /// Takes a reading and renders the row (CPU % against the previous reading).
    fn row(&mut self, engine: &Engine, no_trunc: bool) -> Value {
        let s = engine
            .container_stats(&self.id, self.last.as_ref())
            .unwrap_or_default();
        let mem = s.memory_stats.clone().unwrap_or_default();
        let usage = mem_usage(&mem);
        let limit = mem.limit.unwrap_or(0);
        let (rx, tx) = s.networks.iter().flatten().fold((0, 0), |(r, t), (_, n)| {
            (r + n.rx_bytes.unwrap_or(0), t + n.tx_bytes.unwrap_or(0))
        });
        let (mut rd, mut wr) = (0, 0);
        for e in s
            .blkio_stats
            .as_ref()
            .and_then(|b| b.io_service_bytes_recursive.as_ref())
            .into_iter()
            .flatten()
        {
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => rd += e.value.unwrap_or(0),
                Some("write") => wr += e.value.unwrap_or(0),
                _ => {}
            }
        }
        let pids = s.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0);
        let row = json!({
            "ID": if no_trunc { self.id.clone() } else { self.id[..12].to_string() },
            "Container": self.given,
            "Name": self.name,
            "CPUPerc": format!("{:.2}%", cpu_percent(&s)),
            "MemUsage": format!("{} / {}", bytes_size(usage), bytes_size(limit)),
            "MemPerc": format!("{:.2}%", percent(usage, limit)),
            "NetIO": format!("{} / {}", human_size(rx), human_size(tx)),
            "BlockIO": format!("{} / {}", human_size(rd), human_size(wr)),
            "PIDs": pids.to_string(),
        });
        self.last = Some(s);
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
                w.row(&engine, a.no_trunc);
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
                rows.push(w.row(&engine, a.no_trunc));
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
