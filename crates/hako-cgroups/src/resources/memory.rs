//! linux.resources.memory.
//!
//! OCI `swap` is memory+swap, which is exactly v1's memory.memsw.limit_in_bytes; v2's
//! memory.swap.max counts swap alone, so it gets `swap - limit` (runc's conversion).
//!
//! `kernelTCP` is written to v1's memory.kmem.tcp.limit_in_bytes where the kernel has it (as
//! crun does; runc ignores it); where it does not (v2, or a kernel built without kmem
//! accounting) a warning says so and the container runs without it, as under runc.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::error::Error;
use crate::fs;

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";
const KMEM_TCP: &str = "memory.kmem.tcp.limit_in_bytes";

/// Pure checks, done before anything is written.
pub(super) fn validate(m: &LinuxMemory) -> Result<(), Error> {
    if let Some(s) = m.swappiness()
        && s > 100
    {
        return Err(Error::InvalidResource {
            setting: "memory.swappiness",
            value: s.to_string(),
            reason: "must be between 0 and 100",
        });
    }
    if let (Some(limit), Some(swap)) = (m.limit(), m.swap())
        && limit > 0
        && swap > 0
        && swap < limit
    {
        return Err(Error::InvalidResource {
            setting: "memory.swap",
            value: swap.to_string(),
            reason: "memory.swap is memory+swap and must be >= memory.limit (or -1)",
        });
    }
    for (setting, v) in [
        ("memory.limit", m.limit()),
        ("memory.swap", m.swap()),
        ("memory.reservation", m.reservation()),
        ("memory.kernelTCP", m.kernel_tcp()),
    ] {
        if let Some(v) = v
            && v < -1
        {
            return Err(Error::InvalidResource {
                setting,
                value: v.to_string(),
                reason: "must be a byte count or -1 for unlimited",
            });
        }
    }
    Ok(())
}

fn warn_kernel_ignored(m: &LinuxMemory) {
    if let Some(k) = m.kernel() {
        tracing::warn!(
            kernel = k,
            "memory.kernel is deprecated by the kernel and ignored"
        );
    }
}

/// `kernelTCP` where v1 has memory.kmem.tcp.limit_in_bytes (0 means unset).
fn apply_kernel_tcp_v1(dir: &Path, m: &LinuxMemory) -> Result<(), Error> {
    let Some(tcp) = m.kernel_tcp().filter(|&t| t != 0) else {
        return Ok(());
    };
    if !dir.join(KMEM_TCP).exists() {
        warn_kernel_tcp_missing(
            tcp,
            &format!("{KMEM_TCP} does not exist in {}", dir.display()),
        );
        return Ok(());
    }
    fs::write_setting(dir, "memory", KMEM_TCP, &tcp.to_string())
}

fn warn_kernel_tcp_missing(tcp: i64, why: &str) {
    tracing::warn!(
        "memory.kernelTCP {tcp} not applied: {why} (this kernel cannot limit TCP buffer memory per cgroup)"
    );
}

/// v1: memory.limit_in_bytes, memory.memsw.limit_in_bytes, soft limit, swappiness,
/// oom_control.
pub(super) fn apply_v1(dir: &Path, m: &LinuxMemory) -> Result<(), Error> {
    warn_kernel_ignored(m);
    let has_memsw = dir.join(MEMSW).exists();
    let limit = m.limit().filter(|&l| l != 0);
    let mut swap = m.swap().filter(|&s| s != 0);
    // "memory -1, swap unset" means both unlimited (runc), if swap accounting exists.
    if limit == Some(-1) && swap.is_none() && has_memsw {
        swap = Some(-1);
    }
    if swap.is_some() && !has_memsw {
        if swap == Some(-1) {
            // Unlimited swap without swap accounting is what we already have.
            swap = None;
        } else {
            return Err(Error::SwapAccountingDisabled {
                file: MEMSW,
                dir: dir.to_owned(),
            });
        }
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // The kernel keeps limit <= memsw at every moment. Raising: memsw first;
            // lowering below the current limit: limit first (same rule as runc).
            let current = fs::read_u64(dir, LIMIT)?;
            let swap_first = s == -1 || i64::try_from(current).is_ok_and(|c| c < s);
            if swap_first {
                fs::write_setting(dir, "memory", MEMSW, &s.to_string())?;
                set_limit(dir, l)?;
            } else {
                set_limit(dir, l)?;
                fs::write_setting(dir, "memory", MEMSW, &s.to_string())?;
            }
        }
        (Some(l), None) => set_limit(dir, l)?,
        (None, Some(s)) => fs::write_setting(dir, "memory", MEMSW, &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|&r| r != 0) {
        fs::write_setting(dir, "memory", "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        fs::write_setting(dir, "memory", "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        fs::write_setting(dir, "memory", "memory.oom_control", "1")?;
    }
    apply_kernel_tcp_v1(dir, m)
}

/// Writes the v1 limit; EBUSY means the cgroup already uses more, which deserves a
/// message with the numbers.
fn set_limit(dir: &Path, limit: i64) -> Result<(), Error> {
    fs::write_setting(dir, "memory", LIMIT, &limit.to_string()).map_err(|e| {
        if e.raw_os_error() == Some(nix::libc::EBUSY) {
            let usage = fs::read_u64(dir, "memory.usage_in_bytes").unwrap_or(0);
            Error::MemoryLimitBelowUsage {
                dir: dir.to_owned(),
                limit,
                usage,
            }
        } else {
            e
        }
    })
}

/// v2 value for a v1-style number: 0 = unset, -1 = "max".
fn v2_value(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".into()),
        v => Some(v.to_string()),
    }
}

/// OCI memory+swap to v2 memory.swap.max (swap only), as runc converts it.
pub(crate) fn swap_to_v2(swap: i64, limit: i64) -> Result<i64, Error> {
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == 0 || limit == -1 {
        return Err(Error::InvalidResource {
            setting: "memory.swap",
            value: swap.to_string(),
            reason: "a swap limit needs a memory limit on cgroup v2",
        });
    }
    Ok(swap - limit)
}

/// v2: memory.swap.max, memory.max, memory.low.
pub(super) fn apply_v2(dir: &Path, m: &LinuxMemory) -> Result<(), Error> {
    warn_kernel_ignored(m);
    if let Some(tcp) = m.kernel_tcp().filter(|&t| t != 0) {
        warn_kernel_tcp_missing(tcp, "cgroup v2 has no per-cgroup TCP memory limit");
    }
    let limit = m.limit().unwrap_or(0);
    let asked = m.swap().unwrap_or(0);
    let swap = swap_to_v2(asked, limit)?;
    let swap_value = match v2_value(swap) {
        // swap == limit: no swap at all.
        None if asked > 0 => Some("0".to_owned()),
        v => v,
    };
    if let Some(v) = swap_value {
        match fs::write(dir, "memory.swap.max", &v) {
            Ok(()) => {}
            // Without swap accounting, "max" and "0" are what we have anyway.
            Err(e) if e.is_not_found() && (v == "max" || v == "0") => {}
            Err(e) if e.is_not_found() => {
                return Err(Error::SwapAccountingDisabled {
                    file: "memory.swap.max",
                    dir: dir.to_owned(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(v) = v2_value(limit) {
        fs::write_setting(dir, "memory", "memory.max", &v)?;
    }
    if let Some(v) = m.reservation().and_then(v2_value) {
        fs::write_setting(dir, "memory", "memory.low", &v)?;
    }
    if m.swappiness().is_some() {
        tracing::warn!("memory.swappiness has no cgroup v2 equivalent; ignored");
    }
    if m.disable_oom_killer() == Some(true) {
        tracing::warn!("memory.disableOOMKiller has no cgroup v2 equivalent; ignored");
    }
    Ok(())
}
