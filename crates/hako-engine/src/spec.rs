//! The OCI bundle for a container: Docker's defaults (moby's `oci.DefaultSpec` and
//! `daemon/oci_linux.go`) with the user's options applied. The spec is assembled as JSON and
//! parsed into `oci_spec::runtime::Spec`, so every field is type-checked before the runtime
//! sees it.

use std::collections::BTreeSet;
use std::path::Path;

use bollard_stubs::models::{ContainerConfig, HostConfig};
use oci_spec::runtime::Spec;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::mounts::{MountKind, ResolvedMount};
use crate::user::User;

/// Where hako-init appears inside a container run with `--init`.
pub const INIT_PATH: &str = "/sbin/hako-init";

/// The default `PATH` when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the spec is made from.
#[derive(Debug)]
pub(crate) struct SpecInput<'a> {
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub host: &'a HostConfig,
    pub rootfs: &'a Path,
    pub container_dir: &'a Path,
    pub mounts: &'a [ResolvedMount],
    pub init: Option<&'a Path>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: &'a User,
    pub hostname: String,
    /// The network namespace to join (bridge networks, `container:`); None: a new one
    /// (or the host's with `--network host`).
    pub netns: Option<&'a Path>,
}

const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default capability set plus `--cap-add`, minus `--cap-drop` (`ALL` works in
/// both), or every capability with `--privileged`.
pub(crate) fn capabilities(host: &HostConfig) -> Result<Vec<String>> {
    let all: BTreeSet<String> = caps::all().iter().map(|c| c.to_string()).collect();
    if host.privileged.unwrap_or(false) {
        return Ok(privileged_capabilities());
    }
    let norm = |c: &str| -> Result<String> {
        let up = c.to_ascii_uppercase();
        let name = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        if name == "CAP_ALL" || all.contains(&name) {
            Ok(name)
        } else {
            Err(Error::InvalidArgument(format!(
                "invalid capability {c:?}: unknown capability"
            )))
        }
    };
    let mut set: BTreeSet<String> = hako_seccomp::DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .map(|s| s.to_string())
        .collect();
    for c in host.cap_drop.iter().flatten() {
        let c = norm(c)?;
        if c == "CAP_ALL" {
            set.clear();
        } else {
            set.remove(&c);
        }
    }
    for c in host.cap_add.iter().flatten() {
        let c = norm(c)?;
        if c == "CAP_ALL" {
            set.extend(all.iter().cloned());
        } else {
            set.insert(c);
        }
    }
    Ok(set.into_iter().collect())
}

/// "All capabilities" for `--privileged`: every one this process may still hand out (its
/// bounding set), not every one the kernel knows: a runtime started from a restricted
/// service or sandbox cannot grant more, and asking makes `capset` fail.
pub(crate) fn privileged_capabilities() -> Vec<String> {
    let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let mut v: Vec<String> = bounding.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// Parsed `--security-opt` values.
#[derive(Debug, Default)]
pub(crate) struct SecurityOpts {
    pub no_new_privileges: bool,
    /// None: Docker's default profile; Some(None): unconfined; Some(Some(json)): a file.
    pub seccomp: Option<Option<String>>,
    pub apparmor: Option<String>,
}

pub(crate) fn security_opts(host: &HostConfig) -> Result<SecurityOpts> {
    let mut out = SecurityOpts::default();
    for opt in host.security_opt.iter().flatten() {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
            ("seccomp", Some("unconfined")) => out.seccomp = Some(None),
            ("seccomp", Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::InvalidArgument(format!("opening seccomp profile ({path}) failed: {e}"))
                })?;
                out.seccomp = Some(Some(text));
            }
            ("apparmor", Some(p)) => out.apparmor = Some(p.to_string()),
            ("label", Some("disable")) => {}
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid --security-opt: {opt:?} (supported: no-new-privileges, seccomp=PROFILE|unconfined, apparmor=PROFILE, label=disable)"
                )));
            }
        }
    }
    Ok(out)
}

fn seccomp(host: &HostConfig, sec: &SecurityOpts, caps: &[String]) -> Result<Value> {
    if host.privileged.unwrap_or(false) {
        return Ok(Value::Null);
    }
    match &sec.seccomp {
        Some(None) => Ok(Value::Null),
        Some(Some(text)) => {
            let profile = hako_seccomp::parse_profile(text)
                .map_err(|e| Error::InvalidArgument(format!("seccomp profile: {e}")))?;
            Ok(serde_json::to_value(profile).unwrap_or(Value::Null))
        }
        None => Ok(
            serde_json::to_value(hako_seccomp::docker_default_profile(caps)).unwrap_or(Value::Null),
        ),
    }
}

fn rlimits(host: &HostConfig) -> Result<Value> {
    let mut out = Vec::new();
    for u in host.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        let soft = u.soft.unwrap_or(0);
        let hard = u.hard.unwrap_or(soft);
        if soft > hard {
            return Err(Error::InvalidArgument(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        out.push(json!({
            "type": format!("RLIMIT_{}", name.to_ascii_uppercase()),
            "soft": u64::try_from(soft).unwrap_or(u64::MAX),
            "hard": u64::try_from(hard).unwrap_or(u64::MAX),
        }));
    }
    Ok(Value::Array(out))
}

pub(crate) fn resources(host: &HostConfig) -> Value {
    let mut r = serde_json::Map::new();
    let privileged = host.privileged.unwrap_or(false);
    let mut devices = vec![json!({"allow": privileged, "access": "rwm"})];
    if !privileged {
        for (t, major, minor, access) in [
            ("c", None, None, "m"),
            ("b", None, None, "m"),
            ("c", Some(1), Some(3), "rwm"),
            ("c", Some(1), Some(8), "rwm"),
            ("c", Some(1), Some(7), "rwm"),
            ("c", Some(5), Some(0), "rwm"),
            ("c", Some(1), Some(5), "rwm"),
            ("c", Some(1), Some(9), "rwm"),
            ("c", Some(5), Some(1), "rwm"),
            ("c", Some(136), None, "rwm"),
            ("c", Some(5), Some(2), "rwm"),
            ("c", Some(10), Some(200), "rwm"),
        ] {
            let mut d = json!({"allow": true, "type": t, "access": access});
            if let Some(m) = major {
                d["major"] = json!(m);
            }
            if let Some(m) = minor {
                d["minor"] = json!(m);
            }
            devices.push(d);
        }
    }
    r.insert("devices".into(), Value::Array(devices));
    let mut mem = serde_json::Map::new();
    if let Some(m) = host.memory.filter(|m| *m > 0) {
        mem.insert("limit".into(), json!(m));
        match host.memory_swap {
            Some(s) if s != 0 => {
                mem.insert("swap".into(), json!(s));
            }
            _ => {
                mem.insert("swap".into(), json!(m.saturating_mul(2)));
            }
        }
    }
    if let Some(m) = host.memory_reservation.filter(|m| *m > 0) {
        mem.insert("reservation".into(), json!(m));
    }
    if host.oom_kill_disable == Some(true) {
        mem.insert("disableOOMKiller".into(), json!(true));
    }
    if let Some(s) = host.memory_swappiness.filter(|s| (0..=100).contains(s)) {
        mem.insert("swappiness".into(), json!(s));
    }
    if !mem.is_empty() {
        r.insert("memory".into(), Value::Object(mem));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(n) = host.nano_cpus.filter(|n| *n > 0) {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(n * period / 1_000_000_000));
    }
    if let Some(q) = host.cpu_quota.filter(|q| *q != 0) {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = host.cpu_period.filter(|p| *p > 0) {
        cpu.insert("period".into(), json!(p));
    }
    if let Some(s) = host.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(c) = host.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = host.cpuset_mems.as_deref().filter(|c| !c.is_empty()) {
        cpu.insert("mems".into(), json!(m));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = host.pids_limit.filter(|p| *p > 0) {
        r.insert("pids".into(), json!({"limit": p}));
    }
    // Checked at create (validate.rs): a device gone since is left out.
    let mut bio = crate::devices::block_io(host).unwrap_or_default();
    if let Some(w) = host.blkio_weight.filter(|w| *w > 0) {
        bio.insert("weight".into(), json!(w));
    }
    if !bio.is_empty() {
        r.insert("blockIO".into(), Value::Object(bio));
    }
    Value::Object(r)
}

fn mount_json(m: &ResolvedMount) -> Value {
    match &m.kind {
        MountKind::Tmpfs => json!({
            "destination": m.destination,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": m.options,
        }),
        MountKind::Bind | MountKind::Volume { .. } | MountKind::Init => {
            let mut options = vec!["rbind".to_string()];
            options.extend(m.options.iter().cloned());
            if !m.rw && !options.iter().any(|o| o == "ro") {
                options.push("ro".into());
            }
            if !options
                .iter()
                .any(|o| o.ends_with("private") || o.ends_with("shared") || o.ends_with("slave"))
            {
                options.push("rprivate".into());
            }
            json!({
                "destination": m.destination,
                "type": "bind",
                "source": m.source,
                "options": options,
            })
        }
    }
}

/// Builds the container's `config.json`.
pub(crate) fn build(input: &SpecInput<'_>) -> Result<Spec> {
    let host = input.host;
    let privileged = host.privileged.unwrap_or(false);
    let caps = capabilities(host)?;
    let sec = security_opts(host)?;
    let tty = input.config.tty.unwrap_or(false);
    let shm = host.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20);
    let ro = if privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", ro]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", ro]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
    ];
    let user_dests: BTreeSet<&str> = input
        .mounts
        .iter()
        .map(|m| m.destination.as_str())
        .collect();
    for file in ["resolv.conf", "hostname", "hosts"] {
        let dest = format!("/etc/{file}");
        if user_dests.contains(dest.as_str()) {
            continue;
        }
        let mut options = vec!["rbind", "rprivate"];
        if host.readonly_rootfs == Some(true) {
            options.push("ro");
        }
        mounts.push(json!({
            "destination": dest,
            "type": "bind",
            "source": input.container_dir.join(file),
            "options": options,
        }));
    }
    mounts.retain(|m| {
        m["destination"]
            .as_str()
            .is_none_or(|d| !user_dests.contains(d))
    });
    let mut user_mounts: Vec<&ResolvedMount> = input.mounts.iter().collect();
    user_mounts.sort_by_key(|m| m.destination.matches('/').count());
    mounts.extend(user_mounts.into_iter().map(mount_json));

    let mut process = json!({
        "terminal": tty,
        "user": {
            "uid": input.user.uid,
            "gid": input.user.gid,
            "additionalGids": input.user.additional_gids,
        },
        "args": input.args,
        "env": input.env,
        "cwd": input.cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "noNewPrivileges": sec.no_new_privileges,
        "rlimits": rlimits(host)?,
    });
    if let Some(adj) = host.oom_score_adj.filter(|a| *a != 0) {
        process["oomScoreAdj"] = json!(adj);
    }
    if let Some(p) = &sec.apparmor {
        process["apparmorProfile"] = json!(p);
    }
    // `--pid/--ipc/--uts host`, `--cgroupns host`: that namespace is the host's (left out).
    let host_ns = |mode: Option<&str>| mode == Some("host");
    let namespaces: Vec<Value> = [
        ("pid", host_ns(host.pid_mode.as_deref())),
        ("ipc", host_ns(host.ipc_mode.as_deref())),
        ("uts", host_ns(host.uts_mode.as_deref())),
        ("mount", false),
        (
            "cgroup",
            host.cgroupns_mode == Some(bollard_stubs::models::HostConfigCgroupnsModeEnum::HOST),
        ),
    ]
    .into_iter()
    .filter(|(_, on_host)| !on_host)
    .map(|(t, _)| json!({"type": t}))
    .collect();
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources(host),
        "cgroupsPath": format!("{}/{}", host.cgroup_parent.as_deref().filter(|p| !p.is_empty()).unwrap_or("/hako"), input.id),
    });
    if host.network_mode.as_deref() != Some("host")
        && let Some(a) = linux["namespaces"].as_array_mut()
    {
        match input.netns {
            Some(p) => a.push(json!({"type": "network", "path": p})),
            None => a.push(json!({"type": "network"})),
        }
    }
    let (devs, rules) = crate::devices::from_host(host)?;
    if !devs.is_empty() {
        linux["devices"] = Value::Array(devs);
    }
    if let Some(a) = linux["resources"]["devices"].as_array_mut() {
        a.extend(rules);
    }
    if !privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(s) = host.sysctls.as_ref().filter(|s| !s.is_empty()) {
        linux["sysctl"] = json!(s);
    }
    let sc = seccomp(host, &sec, &caps)?;
    if !sc.is_null() {
        linux["seccomp"] = sc;
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": input.rootfs, "readonly": host.readonly_rootfs.unwrap_or(false)},
        "mounts": mounts,
        "linux": linux,
    });
    // `--annotation`: for the runtime (Docker passes them into the OCI spec).
    if let Some(a) = host.annotations.as_ref().filter(|a| !a.is_empty()) {
        spec["annotations"] = json!(a);
    }
    // A hostname needs a UTS namespace of its own.
    if host.uts_mode.as_deref() != Some("host") {
        spec["hostname"] = json!(input.hostname);
    }
    if let Some(d) = input.config.domainname.as_deref().filter(|d| !d.is_empty()) {
        spec["domainname"] = json!(d);
    }
    if let Some(init) = input.init {
        let _ = init; // mounted through `mounts` (MountKind::Init)
    }
    serde_json::from_value(spec)
        .map_err(|e| Error::InvalidArgument(format!("container spec is not valid OCI: {e}")))
}

/// The files every container gets bind-mounted from its directory.
pub(crate) fn write_etc_files(
    dir: &Path,
    hostname: &str,
    host: &HostConfig,
) -> std::io::Result<()> {
    use crate::files::{PUBLIC, write};
    write(
        &dir.join("hostname"),
        format!("{hostname}\n").as_bytes(),
        PUBLIC,
    )?;
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for extra in host.extra_hosts.iter().flatten() {
        if let Some((name, ip)) = extra.split_once(':') {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    if host.network_mode.as_deref() != Some("host") {
        hosts.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    write(&dir.join("hosts"), hosts.as_bytes(), PUBLIC)?;
    let resolv = match (&host.dns, std::fs::read_to_string("/etc/resolv.conf")) {
        (Some(servers), _) if !servers.is_empty() => servers
            .iter()
            .map(|s| format!("nameserver {s}\n"))
            .collect::<String>(),
        (_, Ok(text)) => text
            .lines()
            .filter(|l| !(l.starts_with("nameserver 127.") || l.starts_with("nameserver ::1")))
            .map(|l| format!("{l}\n"))
            .collect(),
        (_, Err(_)) => String::new(),
    };
    write(&dir.join("resolv.conf"), resolv.as_bytes(), PUBLIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_follow_add_and_drop() {
        let mut h = HostConfig::default();
        let def = capabilities(&h).unwrap();
        assert!(def.contains(&"CAP_CHOWN".to_string()));
        assert!(!def.contains(&"CAP_SYS_ADMIN".to_string()));
        h.cap_add = Some(vec!["sys_admin".into()]);
        h.cap_drop = Some(vec!["CHOWN".into()]);
        let c = capabilities(&h).unwrap();
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        h.cap_drop = Some(vec!["ALL".into()]);
        h.cap_add = Some(vec!["NET_ADMIN".into()]);
        assert_eq!(capabilities(&h).unwrap(), vec!["CAP_NET_ADMIN".to_string()]);
        h.cap_add = Some(vec!["NOPE".into()]);
        assert!(capabilities(&h).is_err());
    }

    #[test]
    fn security_opts_parse() {
        let mut h = HostConfig {
            security_opt: Some(vec![
                "no-new-privileges".into(),
                "seccomp=unconfined".into(),
            ]),
            ..Default::default()
        };
        let s = security_opts(&h).unwrap();
        assert!(s.no_new_privileges);
        assert_eq!(s.seccomp, Some(None));
        h.security_opt = Some(vec!["bogus".into()]);
        assert!(security_opts(&h).is_err());
        h.security_opt = Some(vec!["seccomp=/nonexistent.json".into()]);
        assert!(
            security_opts(&h)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent.json")
        );
    }
}
