//! linux.resources.cpu: the cpu controller and cpuset (cpus, mems).

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::error::Error;
use crate::fs;

/// v1 cpu.shares to v2 cpu.weight, the linear map runc uses:
/// shares 2..=262144 onto weight 1..=10000 (1024 shares -> weight 39).
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

pub(super) fn has_cpu(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
}

pub(super) fn has_cpuset(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

/// v1 cpu controller: shares, CFS quota/period/burst, idle, realtime.
pub(super) fn apply_v1(dir: &Path, c: &LinuxCpu) -> Result<(), Error> {
    let w = |file: &str, v: String| fs::write_setting(dir, "cpu", file, &v);
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        w("cpu.shares", s.to_string())?;
    }
    let quota = c.quota().filter(|&q| q != 0);
    if let Some(p) = c.period().filter(|&p| p != 0) {
        // Lowering the period below the current quota/period ratio can be refused;
        // then set the quota first and the period again (runc does the same).
        match w("cpu.cfs_period_us", p.to_string()) {
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) && quota.is_some() => {
                w("cpu.cfs_quota_us", quota.unwrap_or(-1).to_string())?;
                w("cpu.cfs_period_us", p.to_string())?;
            }
            r => r?,
        }
    }
    if let Some(q) = quota {
        w("cpu.cfs_quota_us", q.to_string())?;
    }
    if let Some(b) = c.burst() {
        w("cpu.cfs_burst_us", b.to_string())?;
    }
    if let Some(i) = c.idle() {
        w("cpu.idle", i.to_string())?;
    }
    // Period before runtime: the runtime must fit into the period.
    if let Some(p) = c.realtime_period().filter(|&p| p != 0) {
        w("cpu.rt_period_us", p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|&r| r != 0) {
        w("cpu.rt_runtime_us", r.to_string())?;
    }
    Ok(())
}

/// v1 cpuset controller, or the v2 cpuset files (same names).
pub(super) fn apply_cpuset(dir: &Path, c: &LinuxCpu) -> Result<(), Error> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write_setting(dir, "cpuset", "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write_setting(dir, "cpuset", "cpuset.mems", mems)?;
    }
    Ok(())
}

/// v2 cpu.max value: "quota period", "max" when there is no quota, default period 100ms.
fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.filter(|&q| q != 0);
    let period = period.filter(|&p| p != 0);
    if quota.is_none() && period.is_none() {
        return None;
    }
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".to_owned(),
    };
    Some(format!("{q} {}", period.unwrap_or(100_000)))
}

/// v2 cpu controller: cpu.weight, cpu.max, cpu.max.burst, cpu.idle.
pub(super) fn apply_v2(dir: &Path, c: &LinuxCpu) -> Result<(), Error> {
    if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
        // cgroup v2 has no realtime group scheduling.
        return Err(fs::unsupported(dir, "cpu", "cpu.rt_runtime_us"));
    }
    let w = |file: &str, v: String| fs::write_setting(dir, "cpu", file, &v);
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        w("cpu.weight", shares_to_weight(s).to_string())?;
    }
    if let Some(v) = cpu_max(c.quota(), c.period()) {
        w("cpu.max", v)?;
    }
    if let Some(b) = c.burst() {
        w("cpu.max.burst", b.to_string())?;
    }
    if let Some(i) = c.idle() {
        w("cpu.idle", i.to_string())?;
    }
    Ok(())
}
