//! `linux.resources` to cgroup files, one module per controller.
//!
//! Order of work: validate every field first (pure checks, nothing written), then write
//! controller by controller. Fields that are absent are not touched, so `apply` also
//! serves `update`.

mod blkio;
mod controllers;
mod cpu;
mod devices;
pub mod devices_bpf;
mod hugetlb;
mod memory;
mod network;
mod unified;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use crate::error::Error;

pub use blkio::blkio_weight_to_io_weight;
pub use cpu::shares_to_weight;
#[cfg(test)]
pub(crate) use devices::plan as devices_plan;
pub(crate) use memory::swap_to_v2;

/// Checks that need no filesystem, for every layout.
pub(crate) fn validate(r: &LinuxResources) -> Result<(), Error> {
    if let Some(m) = r.memory() {
        memory::validate(m)?;
    }
    if let Some(h) = r.hugepage_limits() {
        hugetlb::validate(h)?;
    }
    if let Some(u) = r.unified() {
        unified::validate(u)?;
    }
    Ok(())
}

fn pids_value(limit: i64) -> String {
    // 0 or negative: no limit (the kernel's word for it is "max").
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_owned()
    }
}

/// Applies to v1 hierarchies. `dir_of(controller)` is the container's directory in the
/// hierarchy holding that controller; `unified` is the cgroup2 directory on hybrid hosts,
/// where `linux.resources.unified` goes.
pub(crate) fn apply_v1(
    dir_of: &dyn Fn(&str) -> Option<PathBuf>,
    unified: Option<&Path>,
    r: &LinuxResources,
) -> Result<(), Error> {
    validate(r)?;
    let need = |controller: &'static str, setting: &'static str| {
        dir_of(controller).ok_or(Error::ControllerNotMounted {
            controller,
            setting,
        })
    };
    if let Some(m) = r.memory() {
        let any = m.limit().is_some()
            || m.swap().is_some()
            || m.reservation().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true);
        if any {
            memory::apply_v1(&need("memory", "memory")?, m)?;
        }
    }
    if let Some(c) = r.cpu() {
        if cpu::has_cpu(c) {
            cpu::apply_v1(&need("cpu", "cpu")?, c)?;
        }
        if cpu::has_cpuset(c) {
            cpu::apply_cpuset(&need("cpuset", "cpu.cpus/cpu.mems")?, c)?;
        }
    }
    if let Some(p) = r.pids() {
        crate::fs::write_setting(
            &need("pids", "pids.limit")?,
            "pids",
            "pids.max",
            &pids_value(p.limit()),
        )?;
    }
    if let Some(b) = r.block_io().as_ref().filter(|b| blkio::has_any(b)) {
        blkio::apply_v1(&need("blkio", "blockIO")?, b)?;
    }
    if let Some(h) = r.hugepage_limits().as_deref().filter(|h| !h.is_empty()) {
        hugetlb::apply(&need("hugetlb", "hugepageLimits")?, h, false)?;
    }
    if let Some(d) = r.devices() {
        devices::apply_v1(&need("devices", "devices")?, d)?;
    }
    if let Some(n) = r.network() {
        if let Some(id) = network::class_id(n) {
            network::apply_class_id(&need("net_cls", "network.classID")?, id)?;
        }
        if network::has_priorities(n) {
            network::apply_priorities(&need("net_prio", "network.priorities")?, n)?;
        }
    }
    if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        network::apply_rdma(&need("rdma", "rdma")?, rdma)?;
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        match unified {
            Some(dir) => unified::apply(dir, u)?,
            None => {
                let mut keys: Vec<_> = u.keys().cloned().collect();
                keys.sort();
                return Err(Error::UnifiedOnV1 {
                    key: keys.join(", "),
                });
            }
        }
    }
    Ok(())
}

/// Applies to a v2 directory. Device rules cannot be written as files on v2; they are
/// returned so the manager can hand them to the runtime's eBPF program.
pub(crate) fn apply_v2(dir: &Path, r: &LinuxResources) -> Result<Vec<LinuxDeviceCgroup>, Error> {
    validate(r)?;
    controllers::check(dir, r)?;
    if let Some(m) = r.memory() {
        memory::apply_v2(dir, m)?;
    }
    if let Some(c) = r.cpu() {
        if cpu::has_cpu(c) {
            cpu::apply_v2(dir, c)?;
        }
        cpu::apply_cpuset(dir, c)?;
    }
    if let Some(p) = r.pids() {
        crate::fs::write_setting(dir, "pids", "pids.max", &pids_value(p.limit()))?;
    }
    if let Some(b) = r.block_io() {
        blkio::apply_v2(dir, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        hugetlb::apply(dir, h, true)?;
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() {
            return Err(crate::fs::unsupported(dir, "net_cls", "net_cls.classid"));
        }
        if network::has_priorities(n) {
            return Err(crate::fs::unsupported(
                dir,
                "net_prio",
                "net_prio.ifpriomap",
            ));
        }
    }
    if let Some(rdma) = r.rdma() {
        network::apply_rdma(dir, rdma)?;
    }
    if let Some(u) = r.unified() {
        unified::apply(dir, u)?;
    }
    Ok(r.devices().clone().unwrap_or_default())
}

/// The first setting of `r` that limits something (device rules aside, which a
/// container without a cgroup does not need: the runtime binds device nodes from the
/// host), as the OCI name (`memory.limit`), or `None` when nothing is asked.
pub fn first_limit(r: &LinuxResources) -> Option<String> {
    let mut v = serde_json::to_value(r).ok()?;
    let obj = v.as_object_mut()?;
    obj.remove("devices");
    first_set(&v, "")
}

fn first_set(v: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let name = |k: &str| {
        if at.is_empty() {
            k.to_owned()
        } else {
            format!("{at}.{k}")
        }
    };
    match v {
        Value::Null => None,
        Value::Object(m) => m.iter().find_map(|(k, x)| first_set(x, &name(k))),
        Value::Array(a) if a.is_empty() => None,
        // blockIO weight 0 means unset (dockerd sends it), as apply does.
        Value::Number(n) if at.ends_with("weight") && n.as_u64() == Some(0) => None,
        _ => Some(at.to_owned()),
    }
}
