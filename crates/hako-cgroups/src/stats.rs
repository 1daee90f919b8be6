//! Resource usage, shaped like the "data" of `runc events --stats` so that tools
//! reading runc's JSON read ours. Missing files (a controller that is not there)
//! leave zeros rather than failing: stats are best effort by nature.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;

use crate::error::Error;
use crate::fs;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// All statistics of one container cgroup.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
    /// cgroup v2 cpu.pressure, when the kernel has PSI (runc 1.2's `psi`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiStats>,
}

/// Pressure stall information of one resource (cpu.pressure, memory.pressure,
/// io.pressure): the share of time some (or all) tasks waited for it.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PsiStats {
    pub some: PsiData,
    pub full: PsiData,
}

/// One line of a pressure file: averages in percent over 10, 60 and 300 seconds, and the
/// total stall time in microseconds.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PsiData {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

/// CPU time in nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

/// CFS bandwidth throttling; `throttled_time` in nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    pub event_count: MemoryEventCount,
    /// cgroup v2 memory.pressure, when the kernel has PSI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiStats>,
}

/// Bytes; a limit of `u64::MAX` means unlimited.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Counters from v2 memory.events; on v1 only `oom_kill` is known.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct MemoryEventCount {
    #[serde(skip_serializing_if = "is_zero")]
    pub low: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlkioStats {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// cgroup v2 io.pressure, when the kernel has PSI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiStats>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// cpuacct.stat counts in USER_HZ, which Linux fixes at 100 for userspace.
const NS_PER_USER_HZ_TICK: u64 = 10_000_000;

fn num(dir: &Path, file: &str) -> Result<u64, Error> {
    Ok(fs::read_u64_optional(dir, file)?.unwrap_or(0))
}

fn entry_v1(dir: &Path, prefix: &str) -> Result<MemoryEntry, Error> {
    Ok(MemoryEntry {
        limit: num(dir, &format!("{prefix}.limit_in_bytes"))?,
        usage: num(dir, &format!("{prefix}.usage_in_bytes"))?,
        max: num(dir, &format!("{prefix}.max_usage_in_bytes"))?,
        failcnt: num(dir, &format!("{prefix}.failcnt"))?,
    })
}

fn get(map: &HashMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

/// v1: each controller from its own hierarchy directory, when mounted.
pub(crate) fn v1(dir_of: &dyn Fn(&str) -> Option<std::path::PathBuf>) -> Result<Stats, Error> {
    let mut s = Stats::default();
    if let Some(dir) = dir_of("memory") {
        let m = &mut s.memory;
        m.usage = entry_v1(&dir, "memory")?;
        m.swap = entry_v1(&dir, "memory.memsw")?;
        m.kernel = entry_v1(&dir, "memory.kmem")?;
        m.kernel_tcp = entry_v1(&dir, "memory.kmem.tcp")?;
        m.raw = fs::read_flat_keyed(&dir, "memory.stat")?
            .into_iter()
            .collect();
        m.cache = m
            .raw
            .get("total_cache")
            .or(m.raw.get("cache"))
            .copied()
            .unwrap_or(0);
        m.event_count.oom_kill = get(
            &fs::read_flat_keyed(&dir, "memory.oom_control")?,
            "oom_kill",
        );
    }
    if let Some(dir) = dir_of("cpuacct") {
        let u = &mut s.cpu.usage;
        u.total = num(&dir, "cpuacct.usage")?;
        u.percpu = fs::read_optional(&dir, "cpuacct.usage_percpu")?
            .map(|p| {
                p.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let stat = fs::read_flat_keyed(&dir, "cpuacct.stat")?;
        u.user = get(&stat, "user") * NS_PER_USER_HZ_TICK;
        u.kernel = get(&stat, "system") * NS_PER_USER_HZ_TICK;
    }
    if let Some(dir) = dir_of("cpu") {
        let stat = fs::read_flat_keyed(&dir, "cpu.stat")?;
        s.cpu.throttling = Throttling {
            periods: get(&stat, "nr_periods"),
            throttled_periods: get(&stat, "nr_throttled"),
            throttled_time: get(&stat, "throttled_time"),
        };
    }
    if let Some(dir) = dir_of("pids") {
        s.pids = pids(&dir)?;
    }
    if let Some(dir) = dir_of("blkio") {
        let entries = |file: &str| -> Result<Vec<BlkioEntry>, Error> {
            Ok(fs::read_optional(&dir, file)?
                .map(|c| parse_blkio_v1(&c))
                .unwrap_or_default())
        };
        s.blkio.io_service_bytes_recursive = entries("blkio.throttle.io_service_bytes_recursive")?;
        s.blkio.io_serviced_recursive = entries("blkio.throttle.io_serviced_recursive")?;
    }
    Ok(s)
}

fn pids(dir: &Path) -> Result<PidsStats, Error> {
    let limit = num(dir, "pids.max")?;
    Ok(PidsStats {
        current: num(dir, "pids.current")?,
        limit: if limit == u64::MAX { 0 } else { limit },
    })
}

/// "8:0 Read 4096" lines; the "Total" line has no device and is skipped.
fn parse_blkio_v1(content: &str) -> Vec<BlkioEntry> {
    content
        .lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let (dev, op, value) = (it.next()?, it.next()?, it.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_owned(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." lines of v2 io.stat.
fn parse_io_stat(content: &str, blkio: &mut BlkioStats) {
    for line in content.lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_owned(),
                value,
            });
        }
    }
}

/// v2: everything from the one directory.
pub(crate) fn v2(dir: &Path) -> Result<Stats, Error> {
    let mut s = Stats::default();
    let events = fs::read_flat_keyed(dir, "memory.events")?;
    let m = &mut s.memory;
    m.usage = MemoryEntry {
        limit: num(dir, "memory.max")?,
        usage: num(dir, "memory.current")?,
        max: num(dir, "memory.peak")?,
        failcnt: get(&events, "max"),
    };
    // runc reports swap as memory+swap, like v1's memsw.
    if let Some(swap) = fs::read_u64_optional(dir, "memory.swap.current")? {
        m.swap = MemoryEntry {
            limit: num(dir, "memory.swap.max")?.saturating_add(m.usage.limit),
            usage: swap + m.usage.usage,
            max: 0,
            failcnt: 0,
        };
    }
    m.raw = fs::read_flat_keyed(dir, "memory.stat")?
        .into_iter()
        .collect();
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    m.event_count = MemoryEventCount {
        low: get(&events, "low"),
        high: get(&events, "high"),
        max: get(&events, "max"),
        oom: get(&events, "oom"),
        oom_kill: get(&events, "oom_kill"),
    };
    // cpu.stat's usage fields exist even without the cpu controller.
    let cpu = fs::read_flat_keyed(dir, "cpu.stat")?;
    s.cpu.usage = CpuUsage {
        total: get(&cpu, "usage_usec") * 1000,
        percpu: Vec::new(),
        kernel: get(&cpu, "system_usec") * 1000,
        user: get(&cpu, "user_usec") * 1000,
    };
    s.cpu.throttling = Throttling {
        periods: get(&cpu, "nr_periods"),
        throttled_periods: get(&cpu, "nr_throttled"),
        throttled_time: get(&cpu, "throttled_usec") * 1000,
    };
    s.pids = pids(dir)?;
    if let Some(io) = fs::read_optional(dir, "io.stat")? {
        parse_io_stat(&io, &mut s.blkio);
    }
    s.cpu.psi = psi(dir, "cpu.pressure")?;
    s.memory.psi = psi(dir, "memory.pressure")?;
    s.blkio.psi = psi(dir, "io.pressure")?;
    Ok(s)
}

/// A v2 pressure file, `None` where the kernel has no PSI (built without it, or booted
/// with psi=0: then reading the file fails with EOPNOTSUPP).
fn psi(dir: &Path, file: &str) -> Result<Option<PsiStats>, Error> {
    match fs::read_optional(dir, file) {
        Ok(Some(text)) => Ok(Some(parse_psi(&text))),
        Ok(None) => Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" and the same for "full" (cpu.pressure
/// has a full line too since 5.13, all zeros at the root).
fn parse_psi(text: &str) -> PsiStats {
    let mut out = PsiStats::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let target = match it.next() {
            Some("some") => &mut out.some,
            Some("full") => &mut out.full,
            _ => continue,
        };
        for kv in it {
            match kv.split_once('=') {
                Some(("avg10", v)) => target.avg10 = v.parse().unwrap_or(0.0),
                Some(("avg60", v)) => target.avg60 = v.parse().unwrap_or(0.0),
                Some(("avg300", v)) => target.avg300 = v.parse().unwrap_or(0.0),
                Some(("total", v)) => target.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    out
}

/// v1 memory.oom_control "oom_kill N" (kernel 4.13+).
pub(crate) fn oom_kill_v1(dir: &Path) -> Result<u64, Error> {
    let ctl = fs::read(dir, "memory.oom_control")?;
    fs::flat_keyed(&ctl)
        .get("oom_kill")
        .copied()
        .ok_or_else(|| fs::unsupported(dir, "memory", "memory.oom_control oom_kill"))
}

/// v2 memory.events "oom_kill N" (hierarchical: includes nested cgroups).
pub(crate) fn oom_kill_v2(dir: &Path) -> Result<u64, Error> {
    match fs::read_optional(dir, "memory.events")? {
        Some(e) => Ok(get(&fs::flat_keyed(&e), "oom_kill")),
        None => Err(fs::unsupported(dir, "memory", "memory.events")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_lines() {
        let p = parse_psi(
            "some avg10=1.50 avg60=0.25 avg300=0.00 total=12345\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        );
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(p.some.avg60, 0.25);
        assert_eq!(p.some.total, 12345);
        assert_eq!(p.full.total, 7);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["some"]["avg10"], 1.5, "{json}");
    }

    #[test]
    fn blkio_parsers() {
        let v1 = parse_blkio_v1("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(v1.len(), 2);
        assert_eq!(
            (v1[0].major, v1[0].op.as_str(), v1[0].value),
            (8, "Read", 4096)
        );
        let mut b = BlkioStats::default();
        parse_io_stat("259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0\n", &mut b);
        assert_eq!(b.io_service_bytes_recursive.len(), 2);
        assert_eq!(b.io_serviced_recursive[1].value, 2);
    }
}
