//! `docker info` and `docker system df` on the engine side: what the host and the store
//! hold, in Docker's shapes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard_stubs::models::{
    ContainerSummary, ImageSummary, PluginsInfo, Runtime, SwarmInfo, SystemInfo,
    SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum, Volume, VolumeUsageData,
};
use serde::Serialize;

use crate::error::Result;
use crate::state::Status;

use super::Engine;
use super::list::ContainerListOptions;

/// `GET /system/df` in the shape Docker's API had up to 1.51 (what the docker CLI of
/// this machine reads), and `hako system df`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage {
    /// Bytes of all layers (shared ones once).
    pub layers_size: i64,
    /// Images, with `SharedSize` and `Containers`.
    pub images: Vec<ImageSummary>,
    /// Containers, with `SizeRw` and `SizeRootFs`.
    pub containers: Vec<ContainerSummary>,
    /// Volumes, with `UsageData`.
    pub volumes: Vec<Volume>,
    /// Build cache records (Docker's `CacheRecord`, least recently used first).
    pub build_cache: Vec<serde_json::Value>,
}

impl Engine {
    /// The runtimes a container may name: hako-runtime (the default), and runc and crun
    /// when they are installed. The API accepts only these names, never a path.
    pub fn runtimes(&self) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        out.insert("hako-runtime".to_string(), self.opts.runtime.clone());
        for name in ["runc", "crun"] {
            if let Ok(p) = self.runtime_path(name) {
                out.insert(name.to_string(), p);
            }
        }
        out
    }

    /// `docker info`.
    pub fn info(&self) -> Result<SystemInfo> {
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        let containers = self.list()?;
        for (_, live) in &containers {
            match live.status {
                Status::Running | Status::Restarting => running += 1,
                Status::Paused => paused += 1,
                _ => stopped += 1,
            }
        }
        let images = self.images.list()?.len();
        let cgroup_version = match hako_cgroups::detect_layout() {
            Ok(hako_cgroups::Layout::V2) => SystemInfoCgroupVersionEnum::_2,
            Ok(_) => SystemInfoCgroupVersionEnum::_1,
            Err(_) => SystemInfoCgroupVersionEnum::EMPTY,
        };
        let runtimes: HashMap<String, Runtime> = self
            .runtimes()
            .into_iter()
            .map(|(n, p)| {
                (
                    n,
                    Runtime {
                        path: Some(p.display().to_string()),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let n = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
        Ok(SystemInfo {
            id: Some(self.engine_id()),
            containers: Some(n(containers.len())),
            containers_running: Some(running),
            containers_paused: Some(paused),
            containers_stopped: Some(stopped),
            images: Some(n(images)),
            driver: Some(self.images.driver_name().to_string()),
            driver_status: Some(vec![
                vec!["Backing Filesystem".into(), backing_fs(self.images.root())],
                vec![
                    "Project Quotas (--storage-opt size)".into(),
                    self.images.quota_supported().to_string(),
                ],
            ]),
            docker_root_dir: Some(self.images.root().display().to_string()),
            plugins: Some(PluginsInfo {
                volume: Some(vec!["local".into()]),
                network: Some(vec!["bridge".into(), "host".into(), "null".into()]),
                authorization: None,
                log: Some(vec!["json-file".into()]),
            }),
            memory_limit: Some(true),
            swap_limit: Some(true),
            cpu_cfs_period: Some(true),
            cpu_cfs_quota: Some(true),
            cpu_shares: Some(true),
            cpu_set: Some(true),
            pids_limit: Some(true),
            oom_kill_disable: Some(false),
            ipv4_forwarding: Some(read_trim("/proc/sys/net/ipv4/ip_forward") == "1"),
            debug: Some(false),
            nfd: Some(0),
            n_goroutines: Some(0),
            system_time: Some(crate::now_rfc3339()),
            logging_driver: Some("json-file".into()),
            cgroup_driver: Some(match self.opts.cgroup_driver {
                crate::CgroupDriver::Cgroupfs => SystemInfoCgroupDriverEnum::CGROUPFS,
                crate::CgroupDriver::Systemd => SystemInfoCgroupDriverEnum::SYSTEMD,
            }),
            cgroup_version: Some(cgroup_version),
            n_events_listener: Some(0),
            kernel_version: Some(read_trim("/proc/sys/kernel/osrelease")),
            operating_system: Some(os_name()),
            os_version: Some(os_field("VERSION_ID")),
            os_type: Some("linux".into()),
            architecture: Some(std::env::consts::ARCH.into()),
            ncpu: Some(n(
                std::thread::available_parallelism().map_or(1, usize::from)
            )),
            mem_total: mem_total().and_then(|m| i64::try_from(m).ok()),
            index_server_address: Some("https://index.docker.io/v1/".into()),
            name: Some(read_trim("/proc/sys/kernel/hostname")),
            labels: Some(Vec::new()),
            experimental_build: Some(false),
            server_version: Some(env!("CARGO_PKG_VERSION").into()),
            runtimes: Some(runtimes),
            default_runtime: Some("hako-runtime".into()),
            swarm: Some(SwarmInfo {
                local_node_state: Some(bollard_stubs::models::LocalNodeState::INACTIVE),
                ..Default::default()
            }),
            live_restore_enabled: Some(true),
            init_binary: Some(self.opts.init.display().to_string()),
            security_options: Some(vec!["name=seccomp,profile=builtin".into()]),
            warnings: Some(Vec::new()),
            ..Default::default()
        })
    }

    /// An id for this engine root (Docker's `ID`), kept in `<root>/engine-id`.
    fn engine_id(&self) -> String {
        let path = self.opts.root.join("engine-id");
        if let Ok(id) = std::fs::read_to_string(&path)
            && !id.trim().is_empty()
        {
            return id.trim().to_string();
        }
        let id = crate::random_id();
        let _ = std::fs::write(&path, &id);
        id
    }

    /// `docker system df`: images with their shared bytes, containers with their
    /// writable layers, volumes with their size and users.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut images = self.image_list(&Default::default())?;
        let usage = self.images.layer_usage()?;
        for img in &mut images {
            let s = usage
                .shared
                .get(&img.id)
                .or_else(|| usage.shared.get(img.id.trim_start_matches("sha256:")))
                .copied()
                .unwrap_or(0);
            img.shared_size = i64::try_from(s).unwrap_or(0);
        }
        let layers = i64::try_from(usage.layers_size).unwrap_or(i64::MAX);
        let containers = self.containers(&ContainerListOptions {
            all: true,
            size: true,
            ..Default::default()
        })?;
        let mut volumes = Vec::new();
        for (mut v, _) in self.volume_list()? {
            let users = self.volume_users(&v.name)?.len();
            v.usage_data = Some(VolumeUsageData {
                size: i64::try_from(crate::units::dir_size(&v.mountpoint)).unwrap_or(0),
                ref_count: i64::try_from(users).unwrap_or(0),
            });
            volumes.push(v);
        }
        // Docker's `CacheRecord`s: nothing is in use between builds here.
        let build_cache = self
            .images
            .build_cache_records()?
            .into_iter()
            .map(|r| {
                let last_used = std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(r.last_used.max(0).unsigned_abs());
                serde_json::json!({
                    "ID": r.key, "Parents": [], "Type": "regular", "Description": "",
                    "InUse": false, "Shared": r.shared, "Size": r.size, "CreatedAt": r.created,
                    "LastUsedAt": humantime::format_rfc3339_seconds(last_used).to_string(),
                    "UsageCount": r.uses,
                })
            })
            .collect();
        Ok(DiskUsage {
            layers_size: layers,
            images,
            containers,
            volumes,
            build_cache,
        })
    }
}

/// Docker's name of the filesystem under the data root.
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

fn os_field(key: &str) -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default()
}

fn os_name() -> String {
    Some(os_field("PRETTY_NAME"))
        .filter(|s| !s.is_empty())
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
