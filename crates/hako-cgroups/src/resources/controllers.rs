//! Which cgroup v2 controllers a `linux.resources` needs, checked against the container's
//! `cgroup.controllers` before anything is written: a delegated subtree (a systemd user
//! session delegates only memory and pids, a container hands down what it was given) can
//! lack a controller the kernel has, and the user should learn which one, in one line,
//! instead of reading about a missing file halfway through.

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use crate::error::Error;
use crate::fs;

/// (controller, the setting that needs it) for every field that will be written.
pub(crate) fn needed(r: &LinuxResources) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut need = |c: &str, s: &'static str| {
        if !out.iter().any(|(have, _)| have == c) {
            out.push((c.to_owned(), s));
        }
    };
    if let Some(m) = r.memory() {
        let set = |v: Option<i64>| v.is_some_and(|v| v != 0);
        if set(m.limit()) || set(m.reservation()) || set(m.swap()) {
            need("memory", "memory");
        }
    }
    if let Some(c) = r.cpu() {
        let cpu = c.shares().is_some_and(|s| s != 0)
            || c.quota().is_some_and(|q| q != 0)
            || c.period().is_some_and(|p| p != 0)
            || c.burst().is_some()
            || c.idle().is_some();
        if cpu {
            need("cpu", "cpu");
        }
        if super::cpu::has_cpuset(c) {
            need("cpuset", "cpu.cpus/cpu.mems");
        }
    }
    if r.pids().is_some() {
        need("pids", "pids.limit");
    }
    if r.block_io().as_ref().is_some_and(super::blkio::has_any) {
        need("io", "blockIO");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        need("hugetlb", "hugepageLimits");
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        need("rdma", "rdma");
    }
    if let Some(u) = r.unified() {
        let mut keys: Vec<&String> = u.keys().collect();
        keys.sort();
        for key in keys {
            let controller = key.split('.').next().unwrap_or(key);
            // cgroup.* files belong to the core, not to a controller.
            if controller != "cgroup" {
                need(controller, "unified");
            }
        }
    }
    out
}

/// Fails with [`Error::ControllerMissing`] if `dir` lacks a controller `r` needs. A
/// directory without `cgroup.controllers` (a fake tree in tests) is not checked.
pub(crate) fn check(dir: &Path, r: &LinuxResources) -> Result<(), Error> {
    let Some(available) = fs::read_optional(dir, "cgroup.controllers")? else {
        return Ok(());
    };
    for (controller, setting) in needed(r) {
        if !available.split_whitespace().any(|c| c == controller) {
            return Err(Error::ControllerMissing {
                controller,
                setting,
                dir: dir.to_owned(),
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.clone()
                },
            });
        }
    }
    Ok(())
}
