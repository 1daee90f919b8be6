//! linux.resources.network (v1 net_cls / net_prio) and linux.resources.rdma.
//!
//! net_cls and net_prio exist only on cgroup v1; on v2 the same jobs are done by eBPF
//! socket programs, so the settings are refused there.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{LinuxNetwork, LinuxRdma};

use crate::error::Error;
use crate::fs;

pub(super) fn class_id(n: &LinuxNetwork) -> Option<u32> {
    n.class_id()
}

pub(super) fn has_priorities(n: &LinuxNetwork) -> bool {
    n.priorities().as_ref().is_some_and(|p| !p.is_empty())
}

pub(super) fn apply_class_id(dir: &Path, class_id: u32) -> Result<(), Error> {
    fs::write_setting(dir, "net_cls", "net_cls.classid", &class_id.to_string())
}

pub(super) fn apply_priorities(dir: &Path, n: &LinuxNetwork) -> Result<(), Error> {
    for p in n.priorities().as_deref().unwrap_or(&[]) {
        fs::write_setting(
            dir,
            "net_prio",
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

/// rdma.max lines: "mlx4_0 hca_handle=2 hca_object=2000" (same on v1 and v2).
pub(super) fn apply_rdma(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<(), Error> {
    let mut devices: Vec<_> = rdma.iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    for (device, limits) in devices {
        let mut line = device.clone();
        if let Some(h) = limits.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = limits.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line != *device {
            fs::write_setting(dir, "rdma", "rdma.max", &line)?;
        }
    }
    Ok(())
}
