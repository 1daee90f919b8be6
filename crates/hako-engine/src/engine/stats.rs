//! `docker stats` / `GET /containers/{id}/stats`: Docker's stats JSON from the container's
//! cgroup, `/proc/stat` (the host's CPU time, for CPU %) and the container's network
//! interfaces (`/proc/<pid>/net/dev`).

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
    ContainerMemoryStats, ContainerNetworkStats, ContainerPidsStats, ContainerStatsResponse,
    ContainerThrottlingData,
};
use hako_cgroups::CgroupManager as _;

use crate::error::{Error, Result};

use super::Engine;

impl Engine {
    /// One reading. `prev` (the reading before, for a stream) becomes `precpu_stats` and
    /// `preread`, from which clients compute CPU %. A container that is not running reads
    /// as zeros, as Docker's do.
    pub fn container_stats(
        &self,
        what: &str,
        prev: Option<&ContainerStatsResponse>,
    ) -> Result<ContainerStatsResponse> {
        let rec = self.get(what)?;
        let live = self.live(&rec);
        let mut out = ContainerStatsResponse {
            id: Some(rec.id.clone()),
            name: Some(format!("/{}", rec.name)),
            os_type: Some("linux".into()),
            read: Some(crate::now_rfc3339()),
            preread: Some(
                prev.and_then(|p| p.read.clone())
                    .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            ),
            precpu_stats: Some(
                prev.and_then(|p| p.cpu_stats.clone())
                    .unwrap_or_else(empty_cpu),
            ),
            num_procs: Some(0),
            cpu_stats: Some(empty_cpu()),
            memory_stats: Some(ContainerMemoryStats::default()),
            pids_stats: Some(ContainerPidsStats::default()),
            blkio_stats: Some(ContainerBlkioStats::default()),
            ..Default::default()
        };
        if !live.status.is_active() {
            return Ok(out);
        }
        let s = self
            .cgroup_manager(&rec)?
            .stats()
            .map_err(|e| Error::InvalidArgument(format!("stats of {}: {e}", &rec.id[..12])))?;
        let online =
            u32::try_from(std::thread::available_parallelism().map_or(1, usize::from)).unwrap_or(1);
        out.cpu_stats = Some(ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(s.cpu.usage.total),
                percpu_usage: Some(s.cpu.usage.percpu.clone()).filter(|p| !p.is_empty()),
                usage_in_kernelmode: Some(s.cpu.usage.kernel),
                usage_in_usermode: Some(s.cpu.usage.user),
            }),
            system_cpu_usage: system_cpu_ns(),
            online_cpus: Some(online),
            throttling_data: Some(ContainerThrottlingData {
                periods: Some(s.cpu.throttling.periods),
                throttled_periods: Some(s.cpu.throttling.throttled_periods),
                throttled_time: Some(s.cpu.throttling.throttled_time),
            }),
        });
        let mut mstats: HashMap<String, u64> = s.memory.raw.clone().into_iter().collect();
        mstats.entry("cache".into()).or_insert(s.memory.cache);
        let limit = match s.memory.usage.limit {
            0 | u64::MAX => host_memory(),
            l if l >= host_memory() => host_memory(),
            l => l,
        };
        out.memory_stats = Some(ContainerMemoryStats {
            usage: Some(s.memory.usage.usage),
            max_usage: Some(s.memory.usage.max).filter(|m| *m > 0),
            failcnt: Some(s.memory.usage.failcnt).filter(|m| *m > 0),
            limit: Some(limit),
            stats: Some(mstats),
            ..Default::default()
        });
        out.pids_stats = Some(ContainerPidsStats {
            current: Some(s.pids.current),
            limit: Some(s.pids.limit).filter(|l| *l > 0 && *l != u64::MAX),
        });
        let entry = |e: &hako_cgroups::stats::BlkioEntry| ContainerBlkioStatEntry {
            major: Some(e.major),
            minor: Some(e.minor),
            op: Some(e.op.clone()),
            value: Some(e.value),
        };
        out.blkio_stats = Some(ContainerBlkioStats {
            io_service_bytes_recursive: Some(
                s.blkio
                    .io_service_bytes_recursive
                    .iter()
                    .map(entry)
                    .collect(),
            ),
            io_serviced_recursive: Some(s.blkio.io_serviced_recursive.iter().map(entry).collect()),
            ..Default::default()
        });
        if rec.host_config.network_mode.as_deref() != Some("host")
            && let Some(pid) = live.pid
        {
            out.networks = Some(net_dev(pid));
        }
        Ok(out)
    }
}

fn empty_cpu() -> ContainerCpuStats {
    ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(0),
            usage_in_kernelmode: Some(0),
            usage_in_usermode: Some(0),
            percpu_usage: None,
        }),
        system_cpu_usage: Some(0),
        online_cpus: Some(0),
        throttling_data: Some(ContainerThrottlingData {
            periods: Some(0),
            throttled_periods: Some(0),
            throttled_time: Some(0),
        }),
    }
}

/// The host's CPU time in nanoseconds (the sum of `/proc/stat`'s cpu line, in USER_HZ).
fn system_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|x| x.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux architecture hako builds for.
    Some(ticks * 10_000_000)
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

/// Counters of the container's interfaces (loopback left out, as Docker counts only its
/// network's interfaces).
fn net_dev(pid: i32) -> HashMap<String, ContainerNetworkStats> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (iface, rest) = l.split_once(':')?;
            let iface = iface.trim();
            if iface == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((
                iface.to_string(),
                ContainerNetworkStats {
                    rx_bytes: f.first().copied(),
                    rx_packets: f.get(1).copied(),
                    rx_errors: f.get(2).copied(),
                    rx_dropped: f.get(3).copied(),
                    tx_bytes: f.get(8).copied(),
                    tx_packets: f.get(9).copied(),
                    tx_errors: f.get(10).copied(),
                    tx_dropped: f.get(11).copied(),
                    ..Default::default()
                },
            ))
        })
        .collect()
}
