//! linux.resources.blockIO: v1 blkio and v2 io.
//!
//! Weights go to the proportional-weight files (`blkio.weight` for CFQ, `blkio.bfq.*`
//! for BFQ on v1; `io.bfq.weight` or `io.weight` on v2); throttles to the throttle files
//! (`blkio.throttle.*` on v1, `io.max` on v2). Which of these exist depends on the
//! kernel and the I/O scheduler, so a missing file is reported as `Unsupported`.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::error::Error;
use crate::fs;

/// 0 means "not set" (dockerd always sends `"weight": 0`), and the kernel rejects it
/// (ERANGE), so it is skipped exactly as runc skips it.
fn nonzero(w: Option<u16>) -> Option<u16> {
    w.filter(|w| *w != 0)
}

pub(super) fn has_any(b: &LinuxBlockIo) -> bool {
    nonzero(b.weight()).is_some()
        || nonzero(b.leaf_weight()).is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || throttles(b).iter().any(|(_, _, v)| !v.is_empty())
}

fn d(v: &Option<Vec<LinuxThrottleDevice>>) -> &[LinuxThrottleDevice] {
    v.as_deref().unwrap_or(&[])
}

type Throttle<'a> = (&'static str, &'static str, &'a [LinuxThrottleDevice]);

/// (v1 file, v2 io.max key, devices)
fn throttles(b: &LinuxBlockIo) -> [Throttle<'_>; 4] {
    [
        (
            "blkio.throttle.read_bps_device",
            "rbps",
            d(b.throttle_read_bps_device()),
        ),
        (
            "blkio.throttle.write_bps_device",
            "wbps",
            d(b.throttle_write_bps_device()),
        ),
        (
            "blkio.throttle.read_iops_device",
            "riops",
            d(b.throttle_read_iops_device()),
        ),
        (
            "blkio.throttle.write_iops_device",
            "wiops",
            d(b.throttle_write_iops_device()),
        ),
    ]
}

/// First of `files` that exists in `dir`.
fn pick<'a>(dir: &Path, files: &[&'a str]) -> Option<&'a str> {
    files.iter().copied().find(|f| dir.join(f).exists())
}

pub(super) fn apply_v1(dir: &Path, b: &LinuxBlockIo) -> Result<(), Error> {
    let w = |file: &str, v: String| fs::write_setting(dir, "blkio", file, &v);
    let weight_file = pick(dir, &["blkio.weight", "blkio.bfq.weight"]);
    if let Some(weight) = nonzero(b.weight()) {
        w(weight_file.unwrap_or("blkio.weight"), weight.to_string())?;
    }
    if let Some(leaf) = nonzero(b.leaf_weight()) {
        w("blkio.leaf_weight", leaf.to_string())?;
    }
    let device_file = pick(dir, &["blkio.weight_device", "blkio.bfq.weight_device"]);
    for wd in b.weight_device().as_deref().unwrap_or(&[]) {
        if let Some(weight) = nonzero(wd.weight()) {
            w(
                device_file.unwrap_or("blkio.weight_device"),
                format!("{}:{} {weight}", wd.major(), wd.minor()),
            )?;
        }
        if let Some(leaf) = nonzero(wd.leaf_weight()) {
            w(
                "blkio.leaf_weight_device",
                format!("{}:{} {leaf}", wd.major(), wd.minor()),
            )?;
        }
    }
    for (file, _, devices) in throttles(b) {
        for t in devices {
            w(file, format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
        }
    }
    Ok(())
}

/// blkio weight (10..=1000) to io.weight (1..=10000), runc's linear map.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

pub(super) fn apply_v2(dir: &Path, b: &LinuxBlockIo) -> Result<(), Error> {
    let w = |file: &str, v: String| fs::write_setting(dir, "io", file, &v);
    // BFQ takes the blkio scale as is; io.weight (iocost) takes its own scale.
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(weight) = nonzero(b.weight()) {
        if bfq {
            w("io.bfq.weight", weight.to_string())?;
        } else {
            w("io.weight", blkio_weight_to_io_weight(weight).to_string())?;
        }
    }
    if nonzero(b.leaf_weight()).is_some() {
        tracing::warn!("blockIO.leafWeight has no cgroup v2 equivalent; ignored");
    }
    for wd in b.weight_device().as_deref().unwrap_or(&[]) {
        if let Some(weight) = nonzero(wd.weight()) {
            let (file, v) = if bfq {
                ("io.bfq.weight", weight.to_string())
            } else {
                ("io.weight", blkio_weight_to_io_weight(weight).to_string())
            };
            w(file, format!("{}:{} {v}", wd.major(), wd.minor()))?;
        }
    }
    for (_, key, devices) in throttles(b) {
        for t in devices {
            w(
                "io.max",
                format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}
