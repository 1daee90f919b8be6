//! `spec`: write a starter `config.json`, the same shape `runc spec` writes, so the seed's
//! walk-through (`runc spec && runc run busybox`) works with hako-runtime unchanged.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::{Context, Error, Result};

/// The default config (runc's defaults, hostname "hako").
pub fn default_spec() -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "hako",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// The rootless variant: a user namespace mapping the caller, no network namespace,
/// /sys bound from the host, no gid= mount options (what `runc spec --rootless` does).
pub fn rootless_spec(uid: u32, gid: u32) -> Value {
    let mut v = default_spec();
    let linux = &mut v["linux"];
    linux.as_object_mut().expect("object").remove("resources");
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    let ns = linux["namespaces"].as_array_mut().expect("array");
    ns.retain(|n| n["type"] != "network");
    ns.push(json!({"type": "user"}));
    for m in v["mounts"].as_array_mut().expect("array") {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        } else if let Some(opts) = m["options"].as_array_mut() {
            opts.retain(|o| !o.as_str().is_some_and(|s| s.starts_with("gid=")));
        }
    }
    v
}

pub fn write_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Usage(format!(
            "File {} exists. Remove it first",
            path.display()
        )));
    }
    let v = if rootless {
        rootless_spec(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        default_spec()
    };
    let mut text = serde_json::to_string_pretty(&v).expect("json");
    text.push('\n');
    std::fs::write(&path, text).context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_rootless_parse_as_oci_specs() {
        let s: oci_spec::runtime::Spec = serde_json::from_value(default_spec()).unwrap();
        assert_eq!(s.hostname().as_deref(), Some("hako"));
        let r: oci_spec::runtime::Spec = serde_json::from_value(rootless_spec(1000, 1000)).unwrap();
        let ns = r.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        );
        assert!(
            !ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
        );
    }
}
