//! `hako info`: storage driver, root, cgroups, kernel, OS, and which of Docker's storage
//! drivers this machine cannot offer.

use std::path::Path;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use hako_engine::Status;

use crate::commands::container::engine_err;
use crate::context::{Global, UNAVAILABLE_DRIVERS};
use crate::error::image_error;
use crate::format::Template;
use crate::units::bytes_size;

/// Arguments of `hako info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Format output using a Go template (e.g. '{{.Driver}}', '{{json .}}')
    #[arg(short, long)]
    pub format: Option<String>,
}

/// Prints the information, Docker's layout, or the template on Docker's field names.
pub fn run(g: &Global, a: &InfoArgs) -> Result<()> {
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let engine = g.open_engine()?;
    let store = engine.images();
    let (mut running, mut paused, mut stopped) = (0, 0, 0);
    let containers = engine.list().map_err(engine_err)?;
    for (_, live) in &containers {
        match live.status {
            Status::Running | Status::Restarting => running += 1,
            Status::Paused => paused += 1,
            _ => stopped += 1,
        }
    }
    let images = store.list().map_err(image_error)?.len();
    let (cgroup_version, cgroup_note) = cgroup_version();
    let unavailable: Vec<Value> = UNAVAILABLE_DRIVERS
        .iter()
        .take(2)
        .map(|(name, _)| json!([name, driver_absence(name)]))
        .collect();
    let info = json!({
        "Containers": containers.len(), "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": stopped,
        "Images": images,
        "Driver": store.driver_name(),
        "DriverStatus": [
            ["Backing Filesystem", backing_fs(store.root())],
            ["Project Quotas (--storage-opt size)", store.quota_supported().to_string()],
        ],
        "UnavailableDrivers": unavailable,
        "DockerRootDir": store.root().display().to_string(),
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "KernelVersion": read_trim("/proc/sys/kernel/osrelease"),
        "OperatingSystem": os_name(),
        "OSType": std::env::consts::OS,
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map_or(1, usize::from),
        "MemTotal": mem_total(),
        "Name": read_trim("/proc/sys/kernel/hostname"),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Debug": g.debug,
    });
    let text = match template {
        Some(t) => format!("{}\n", t.execute(&info)?),
        None => human(&info, &cgroup_note),
    };
    super::super::print(&text)
}

fn human(i: &Value, cgroup_note: &str) -> String {
    let s = |k: &str| match &i[k] {
        Value::String(v) => v.clone(),
        other => other.to_string(),
    };
    let mut out = String::from("Client:\n");
    out.push_str(&format!(" Version:    {}\n", s("ServerVersion")));
    out.push_str(" Context:    in-process (no daemon)\n");
    out.push_str(&format!(" Debug Mode: {}\n\nServer:\n", s("Debug")));
    out.push_str(&format!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n",
        s("Containers"),
        s("ContainersRunning"),
        s("ContainersPaused"),
        s("ContainersStopped")
    ));
    out.push_str(&format!(" Images: {}\n", s("Images")));
    out.push_str(&format!(" Server Version: {}\n", s("ServerVersion")));
    out.push_str(&format!(" Storage Driver: {}\n", s("Driver")));
    for kv in i["DriverStatus"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}: {}\n",
            kv[0].as_str().unwrap_or(""),
            kv[1].as_str().unwrap_or("")
        ));
    }
    out.push_str(" Unavailable Storage Drivers:\n");
    for kv in i["UnavailableDrivers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}: {}\n",
            kv[0].as_str().unwrap_or(""),
            kv[1].as_str().unwrap_or("")
        ));
    }
    out.push_str(&format!(" Cgroup Driver: {}\n", s("CgroupDriver")));
    out.push_str(&format!(
        " Cgroup Version: {}{cgroup_note}\n",
        s("CgroupVersion")
    ));
    out.push_str(&format!(" Kernel Version: {}\n", s("KernelVersion")));
    out.push_str(&format!(" Operating System: {}\n", s("OperatingSystem")));
    out.push_str(&format!(" OSType: {}\n", s("OSType")));
    out.push_str(&format!(" Architecture: {}\n", s("Architecture")));
    out.push_str(&format!(" CPUs: {}\n", s("NCPU")));
    let mem = i["MemTotal"]
        .as_u64()
        .map_or_else(|| "unknown".into(), bytes_size);
    out.push_str(&format!(" Total Memory: {mem}\n"));
    out.push_str(&format!(" Name: {}\n", s("Name")));
    out.push_str(&format!(" Hako Root Dir: {}\n", s("DockerRootDir")));
    out.push_str(&format!(" Debug Mode: {}\n", s("Debug")));
    out
}

/// Why `aufs` / `devicemapper` cannot be used here (checked, not assumed).
fn driver_absence(name: &str) -> String {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    match name {
        "aufs" if filesystems.lines().any(|l| l.trim_end().ends_with("aufs")) => {
            "in this kernel, but hako does not implement it".into()
        }
        "aufs" => "not in this kernel".into(),
        "devicemapper"
            if std::fs::read_to_string("/proc/misc")
                .unwrap_or_default()
                .contains("device-mapper") =>
        {
            "in this kernel, but hako does not implement it".into()
        }
        "devicemapper" => "not in this kernel (no device-mapper)".into(),
        _ => "not implemented by hako".into(),
    }
}

/// ("1"/"2", a note for hybrid hosts).
fn cgroup_version() -> (String, String) {
    match hako_cgroups::detect_layout() {
        Ok(hako_cgroups::Layout::V2) => ("2".into(), String::new()),
        Ok(hako_cgroups::Layout::Hybrid) => (
            "1".into(),
            " (hybrid: an empty cgroup2 hierarchy is mounted too)".into(),
        ),
        Ok(hako_cgroups::Layout::V1) => ("1".into(), String::new()),
        Err(e) => ("unknown".into(), format!(" ({e})")),
    }
}

fn backing_fs(root: &Path) -> String {
    use nix::sys::statfs::{
        BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
        statfs,
    };
    match statfs(root).map(|s| s.filesystem_type()) {
        Ok(t) if t == EXT4_SUPER_MAGIC => "extfs".into(),
        Ok(t) if t == XFS_SUPER_MAGIC => "xfs".into(),
        Ok(t) if t == BTRFS_SUPER_MAGIC => "btrfs".into(),
        Ok(t) if t == TMPFS_MAGIC => "tmpfs".into(),
        Ok(t) if t == OVERLAYFS_SUPER_MAGIC => "overlayfs".into(),
        Ok(t) => format!("{:#x}", t.0),
        Err(e) => format!("unknown ({e})"),
    }
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}
