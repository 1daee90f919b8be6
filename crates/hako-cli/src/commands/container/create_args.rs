//! The flags of `hako run` and `hako create` (Docker's names), turned into the engine's
//! [`CreateOptions`] (Docker's `ContainerConfig` + `HostConfig`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use hako_engine::CreateOptions;

use super::resource_args::ResourceArgs;
use hako_engine::models::{
    ContainerConfig, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig,
    HostConfigCgroupnsModeEnum, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountTmpfsOptions, MountType, MountVolumeOptions,
    NetworkingConfig, PortBinding, ResourcesBlkioWeightDevice, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum, ThrottleDevice,
};

/// Flags shared by `run` and `create`.
#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "LIST", value_parser = parse_attach)]
    pub attach: Vec<String>,
    /// Set environment variables (KEY=VALUE, or KEY to take it from this environment)
    #[arg(short, long = "env", value_name = "LIST", value_parser = env_var)]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image ("" clears it)
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Bind mount a volume (SRC:DST[:OPTS], NAME:DST[:OPTS] or DST)
    #[arg(short = 'v', long = "volume", value_name = "LIST")]
    pub volumes: Vec<String>,
    /// Mount volumes from the specified container(s) (CONTAINER[:ro|:rw])
    #[arg(long = "volumes-from", value_name = "LIST")]
    pub volumes_from: Vec<String>,
    /// Attach a filesystem mount (type=bind|volume|tmpfs,source=..,target=..,readonly)
    #[arg(long = "mount", value_name = "MOUNT")]
    pub mounts: Vec<String>,
    /// Mount a tmpfs directory (DST[:OPTIONS])
    #[arg(long = "tmpfs", value_name = "DST")]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune container memory swappiness (0 to 100; -1: the host's)
    #[arg(
        long = "memory-swappiness",
        value_name = "INT",
        allow_hyphen_values = true,
        value_parser = swappiness
    )]
    pub memory_swappiness: Option<i64>,
    /// Block IO weight (relative device weight) (DEVICE:WEIGHT)
    #[arg(long = "blkio-weight-device", value_name = "LIST")]
    pub blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device (DEVICE:RATE, e.g. /dev/sda:1mb)
    #[arg(long = "device-read-bps", value_name = "LIST")]
    pub device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device (DEVICE:RATE)
    #[arg(long = "device-write-bps", value_name = "LIST")]
    pub device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device (DEVICE:RATE)
    #[arg(long = "device-read-iops", value_name = "LIST")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device (DEVICE:RATE)
    #[arg(long = "device-write-iops", value_name = "LIST")]
    pub device_write_iops: Vec<String>,
    /// Add an annotation to the container, passed through to the OCI runtime (KEY=VALUE)
    #[arg(long = "annotation", value_name = "MAP")]
    pub annotations: Vec<String>,
    /// Ulimit options (NAME=SOFT[:HARD])
    #[arg(long = "ulimit", value_name = "ULIMIT")]
    pub ulimits: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "LIST")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "LIST")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Security options (seccomp=PROFILE|unconfined, no-new-privileges)
    #[arg(long = "security-opt", value_name = "LIST")]
    pub security_opt: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Restart policy to apply when a container exits (no, on-failure[:N], always, unless-stopped)
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Automatically remove the container and its anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set meta data on a container (KEY=VALUE)
    #[arg(short, long = "label", value_name = "LIST")]
    pub labels: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_files: Vec<PathBuf>,
    /// Set platform if server is multi-platform capable (only this machine's: linux/amd64
    /// here)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMISSIONS]])
    #[arg(long = "device", value_name = "LIST")]
    pub devices: Vec<String>,
    /// Add a rule to the cgroup allowed devices list ('c 1:3 rwm')
    #[arg(long = "device-cgroup-rule", value_name = "LIST")]
    pub device_cgroup_rules: Vec<String>,
    /// GPU devices to add to the container (refused: hako has no GPU support)
    #[arg(long, value_name = "GPU-REQUEST")]
    pub gpus: Option<String>,
    /// Logging driver for the container (json-file)
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options (max-size=10m, max-file=3)
    #[arg(long = "log-opt", value_name = "LIST")]
    pub log_opts: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "STRING")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "INT")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval", value_name = "DURATION")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Runtime to use for this container (hako-runtime, runc, crun or a path)
    #[arg(long)]
    pub runtime: Option<String>,
    /// Run a plain directory as the root filesystem instead of an image (Gocker's -rootfs)
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Storage driver options for the container (size=10G)
    #[arg(long = "storage-opt", value_name = "LIST")]
    pub storage_opt: Vec<String>,
    /// Connect a container to a network (bridge, none, host, container:NAME|ID, or a network
    /// made with `hako network create`)
    #[arg(long = "network", alias = "net", value_name = "NETWORK")]
    pub network: Option<String>,
    /// Add a network-scoped alias for the container (user-defined networks)
    #[arg(long = "network-alias", alias = "net-alias", value_name = "LIST")]
    pub network_aliases: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104; user-defined networks)
    #[arg(long = "ip", value_name = "IP")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33; user-defined networks)
    #[arg(long = "ip6", value_name = "IP")]
    pub ip6: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", value_name = "MAC")]
    pub mac_address: Option<String>,
    /// Publish a container's port(s) to the host ([IP:][HOST_PORT:]CONTAINER_PORT[/PROTO])
    #[arg(short = 'p', long = "publish", value_name = "LIST")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose", value_name = "LIST")]
    pub expose: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "LIST")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "LIST")]
    pub dns_options: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Sysctl options (KEY=VALUE; namespaced ones only: kernel.msg*/sem/shm*, fs.mqueue.*, net.*)
    #[arg(long = "sysctl", value_name = "MAP", value_parser = sysctl)]
    pub sysctls: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "LIST")]
    pub add_hosts: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns", value_name = "LIST")]
    pub dns: Vec<String>,
    /// Tune the host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "LIST")]
    pub group_add: Vec<String>,
    /// PID namespace to use (host, or container:NAME to join that container's)
    #[arg(long = "pid", value_name = "string")]
    pub pid: Option<String>,
    /// IPC mode to use (host, private, shareable, or container:NAME to join that container's)
    #[arg(long = "ipc", value_name = "string")]
    pub ipc: Option<String>,
    /// UTS namespace to use (host: the host's)
    #[arg(long = "uts", value_name = "string")]
    pub uts: Option<String>,
    /// User namespace to use (host: the only one hako has)
    #[arg(long = "userns", value_name = "string")]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host or private)
    #[arg(long = "cgroupns", value_name = "string", value_parser = ["host", "private"])]
    pub cgroupns: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Write the container ID to the file
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    /// Pull image before running (always, missing, never)
    #[arg(long, default_value = "missing", value_parser = ["always", "missing", "never"])]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
    /// Allow plain http to the image's registry when pulling (loopback registries always may)
    #[arg(long = "insecure-registry")]
    pub insecure_registry: bool,

    /// The image, then the command and its arguments (with --rootfs: only the command).
    /// Everything after the image belongs to the container, flags included
    /// (`run IMAGE -V` passes `-V` to it), as Docker's.
    #[arg(value_name = "IMAGE", trailing_var_arg = true)]
    pub args: Vec<String>,
}

/// `DEVICE:VALUE` of the blkio flags: an absolute device path and its value.
fn device_value(s: &str, flag: &str) -> Result<(String, String)> {
    match s.rsplit_once(':') {
        Some((p, v)) if p.starts_with('/') && !v.is_empty() => Ok((p.to_string(), v.to_string())),
        _ => bail!(
            "invalid argument \"{s}\" for \"--{flag}\" flag: want DEVICE:VALUE with an absolute DEVICE"
        ),
    }
}

/// `--device-{read,write}-{bps,iops}`: rates per device (sizes for bps, counts for iops).
fn throttle(list: &[String], flag: &str, bytes: bool) -> Result<Option<Vec<ThrottleDevice>>> {
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .map(|d| {
            let (path, v) = device_value(d, flag)?;
            let rate = if bytes {
                parse_bytes(&v)?
            } else {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .with_context(|| format!("invalid rate for device: {v}"))?
            };
            Ok(ThrottleDevice {
                path: Some(path),
                rate: Some(rate),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// `-a/--attach`: a stream name, any case (Docker's `ValidateAttach`).
fn parse_attach(s: &str) -> Result<String, String> {
    let l = s.to_ascii_lowercase();
    match l.as_str() {
        "stdin" | "stdout" | "stderr" => Ok(l),
        _ => Err("valid streams are STDIN, STDOUT and STDERR".into()),
    }
}

/// Docker's `RAMInBytes`: a number with an optional unit b, k, m, g, t, p (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|r| !r.is_empty() && r.chars().last().is_some_and(|c| c.is_ascii_alphabetic()))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .with_context(|| format!("invalid size: '{s}'"))?;
    #[allow(clippy::cast_possible_truncation)]
    Ok((n * mult as f64) as i64)
}

/// `--cpus`: a rational number of CPUs, as Docker's NanoCPUs.
pub fn parse_cpus(c: &str) -> Result<i64> {
    let v: f64 = c.parse().with_context(|| {
        format!(
            "invalid argument \"{c}\" for \"--cpus\" flag: failed to parse {c} as a rational number"
        )
    })?;
    if v < 0.0 || !v.is_finite() {
        bail!(
            "Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available",
            n = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        );
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok((v * 1e9).round() as i64)
}

/// `--restart`: Docker's policy syntax (`no`, `always`, `unless-stopped`, `on-failure[:N]`).
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    let name = match name {
        "" | "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => bail!(
            "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        ),
    };
    let maximum_retry_count = match count {
        None => None,
        Some(c) => {
            if name != RestartPolicyNameEnum::ON_FAILURE {
                bail!(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                );
            }
            Some(
                c.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .with_context(|| format!("invalid restart policy: invalid count '{c}'"))?,
            )
        }
    };
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count,
    })
}

fn parse_ulimit(s: &str) -> Result<ResourcesUlimits> {
    let (name, vals) = s
        .split_once('=')
        .with_context(|| format!("invalid ulimit argument: {s}"))?;
    const NAMES: &[&str] = &[
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    if !NAMES.contains(&name) {
        bail!("invalid ulimit type: {name}");
    }
    let (soft, hard) = match vals.split_once(':') {
        Some((s, h)) => (s, h),
        None => (vals, vals),
    };
    let num = |v: &str| {
        v.parse::<i64>()
            .with_context(|| format!("invalid ulimit value {v:?} in {s}"))
    };
    let (soft, hard) = (num(soft)?, num(hard)?);
    if soft > hard {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

fn parse_mount(s: &str) -> Result<Mount> {
    let mut m = Mount::default();
    let mut typ = MountType::VOLUME;
    let mut read_only = false;
    let mut propagation = None;
    let mut nocopy = false;
    let mut tmpfs = MountTmpfsOptions::default();
    for field in s.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        match (k, v) {
            ("type", Some(t)) => {
                typ = match t {
                    "bind" => MountType::BIND,
                    "volume" => MountType::VOLUME,
                    "tmpfs" => MountType::TMPFS,
                    other => bail!("invalid mount type {other:?} (bind, volume, tmpfs)"),
                }
            }
            ("source" | "src", Some(v)) => m.source = Some(v.to_string()),
            ("target" | "destination" | "dst", Some(v)) => m.target = Some(v.to_string()),
            ("readonly" | "ro", None | Some("true" | "1")) => read_only = true,
            ("readonly" | "ro", Some("false" | "0")) => read_only = false,
            ("bind-propagation", Some(p)) => {
                propagation = Some(match p {
                    "private" => MountBindOptionsPropagationEnum::PRIVATE,
                    "rprivate" => MountBindOptionsPropagationEnum::RPRIVATE,
                    "shared" => MountBindOptionsPropagationEnum::SHARED,
                    "rshared" => MountBindOptionsPropagationEnum::RSHARED,
                    "slave" => MountBindOptionsPropagationEnum::SLAVE,
                    "rslave" => MountBindOptionsPropagationEnum::RSLAVE,
                    other => bail!("invalid bind-propagation {other:?}"),
                })
            }
            ("volume-nocopy", None | Some("true" | "1")) => nocopy = true,
            ("tmpfs-size", Some(v)) => tmpfs.size_bytes = Some(parse_bytes(v)?),
            ("tmpfs-mode", Some(v)) => {
                tmpfs.mode = Some(
                    i64::from_str_radix(v, 8)
                        .with_context(|| format!("invalid tmpfs-mode {v:?}"))?,
                )
            }
            _ => bail!("invalid field '{field}' in --mount {s:?}"),
        }
    }
    if m.target.is_none() {
        bail!("invalid argument \"{s}\" for \"--mount\" flag: target is required");
    }
    m.typ = Some(typ);
    m.read_only = Some(read_only);
    match typ {
        MountType::BIND => {
            if m.source.is_none() {
                bail!(
                    "invalid argument \"{s}\" for \"--mount\" flag: source is required for bind mounts"
                );
            }
            m.bind_options = Some(MountBindOptions {
                propagation,
                ..Default::default()
            });
        }
        MountType::VOLUME => {
            m.volume_options = Some(MountVolumeOptions {
                no_copy: Some(nocopy),
                ..Default::default()
            })
        }
        MountType::TMPFS => m.tmpfs_options = Some(tmpfs),
        _ => {}
    }
    Ok(m)
}

/// `-v ./rel:/data` and `-v rel/dir:/data` bind that path relative to here (the engine may
/// serve from elsewhere, so it gets an absolute one); a bare name stays a volume name.
fn absolute_bind(spec: &str) -> Result<String> {
    match spec.split_once(':') {
        Some((src, rest))
            if !src.starts_with('/') && (src.starts_with('.') || src.contains('/')) =>
        {
            let here = std::env::current_dir()
                .with_context(|| format!("invalid volume specification: '{spec}'"))?;
            // Lexically clean, as Docker's filepath.Abs: `.` dropped, `..` pops.
            let mut abs = PathBuf::from("/");
            for c in here.join(src).components() {
                match c {
                    std::path::Component::ParentDir => {
                        abs.pop();
                    }
                    std::path::Component::Normal(n) => abs.push(n),
                    _ => {}
                }
            }
            Ok(format!("{}:{rest}", abs.display()))
        }
        _ => Ok(spec.to_string()),
    }
}

/// The lines of an `--env-file` / `--label-file`: blank lines and `#` comments left out.
fn lines_of(path: &PathBuf) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `--device HOST[:CONTAINER[:PERMISSIONS]]`, as Docker reads it (`HOST:rw` is
/// permissions, not a path).
fn parse_device(s: &str) -> hako_engine::models::DeviceMapping {
    let parts: Vec<&str> = s.splitn(3, ':').collect();
    let perms = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (src, dst, p) = match parts[..] {
        [src, dst, p] => (src, dst, p),
        [src, p] if perms(p) => (src, src, p),
        [src, dst] => (src, dst, "rwm"),
        _ => (s, s, "rwm"),
    };
    hako_engine::models::DeviceMapping {
        path_on_host: Some(src.to_string()),
        path_in_container: Some(dst.to_string()),
        cgroup_permissions: Some(p.to_string()),
    }
}

pub(crate) fn env_file(path: &PathBuf) -> Result<Vec<String>> {
    Ok(lines_of(path)?
        .iter()
        .filter_map(|l| expand_env(l))
        .collect())
}

/// This machine's platform as Docker names it (`linux/amd64`).
fn host_platform() -> String {
    format!("linux/{}", hako_engine::version::go_arch())
}

/// `--platform`: hako runs images for this machine only (no emulation).
fn check_platform(p: &str) -> Result<()> {
    let host = host_platform();
    let want = p.to_ascii_lowercase();
    let ok = want == "linux" || want == host || want.starts_with(&format!("{host}/"));
    if !ok {
        bail!(
            "--platform {p}: hako runs this machine's platform only ({host}); it has no emulation"
        );
    }
    Ok(())
}

/// `KEY=VALUE` as is; a bare `KEY` takes this process's value (and is dropped if unset).
pub(crate) fn expand_env(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

fn key_values(list: &[String], what: &str) -> Result<HashMap<String, String>> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if what == "label" && !kv.is_empty() => Ok((kv.to_string(), String::new())),
            _ => bail!("invalid {what} {kv:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// `-e`: Docker's CLI refuses a variable without a name (`-e =x`).
pub(crate) fn env_var(s: &str) -> Result<String, String> {
    match s.split_once('=').map_or(s, |(k, _)| k) {
        "" => Err(format!("invalid environment variable: {s}")),
        _ => Ok(s.to_string()),
    }
}

/// `--sysctl`: Docker's CLI allows only the sysctls a container's own namespaces hold (its
/// IPC namespace's `kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`; its network
/// namespace's `net.*`): any other would be the host's own setting.
fn sysctl(s: &str) -> Result<String, String> {
    let allowed = s.split_once('=').is_some_and(|(k, _)| {
        hako_sys::sysctl::in_ipc_namespace(k) || hako_sys::sysctl::in_net_namespace(k)
    });
    if allowed {
        Ok(s.to_string())
    } else {
        Err(format!("sysctl '{s}' is not allowed"))
    }
}

/// `--memory-swappiness`: checked as Docker's CLI checks it, before anything is asked of
/// the engine (so a bad value is a flag error, status 125).
fn swappiness(s: &str) -> Result<i64, String> {
    let n: i64 = s.parse().map_err(|e| format!("{s}: {e}"))?;
    if n != -1 && !(0..=100).contains(&n) {
        return Err(format!(
            "invalid value: {n}, valid memory swappiness range is 0-100"
        ));
    }
    Ok(n)
}

impl CreateArgs {
    /// Docker's `--health-*` and `--no-healthcheck` (durations of 0 mean "the image's,
    /// else the default").
    fn healthcheck(&self) -> Result<Option<HealthConfig>> {
        let dur = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
            let Some(s) = v.as_deref() else {
                return Ok(None);
            };
            let d = humantime::parse_duration(s).with_context(|| {
                format!(
                    "invalid argument \"{s}\" for \"--{flag}\" flag: time: invalid duration \"{s}\""
                )
            })?;
            let n = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
            if n != 0 && n < 1_000_000 {
                bail!("--{flag} cannot be less than 1ms");
            }
            Ok(Some(n))
        };
        let given = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
            || self.health_start_interval.is_some();
        if self.no_healthcheck {
            if given {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }));
        }
        if !given {
            return Ok(None);
        }
        if self.health_retries.is_some_and(|r| r < 0) {
            bail!("--health-retries cannot be negative");
        }
        Ok(Some(HealthConfig {
            test: self
                .health_cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_string(), c.clone()]),
            interval: dur("health-interval", &self.health_interval)?,
            timeout: dur("health-timeout", &self.health_timeout)?,
            retries: self.health_retries,
            start_period: dur("health-start-period", &self.health_start_period)?,
            start_interval: dur("health-start-interval", &self.health_start_interval)?,
        }))
    }

    /// The engine's options for these flags; `verb` (`run`, `create`) names the command in
    /// errors.
    pub fn to_options(&self, verb: &str) -> Result<CreateOptions> {
        let (image, mut command) = match (&self.rootfs, self.args.split_first()) {
            (Some(_), _) => (None, self.args.clone()),
            (None, Some((i, rest))) => (Some(i.clone()), rest.to_vec()),
            (None, None) => {
                // A missing argument fails with 1 (not 125) even for `run`, as Docker's.
                return Err(super::EngineError::with_code(
                    format!("'hako {verb}' requires at least 1 argument; see 'hako {verb} --help'"),
                    1,
                ));
            }
        };
        if let Some(g) = &self.gpus {
            bail!("--gpus {g}: hako has no GPU support (no device requests, no NVIDIA hooks)");
        }
        if let Some(p) = &self.platform {
            check_platform(p)?;
        }
        let mut labels = Vec::new();
        for f in &self.label_files {
            labels.extend(lines_of(f)?);
        }
        labels.extend(self.labels.iter().cloned());
        let mut env = Vec::new();
        for f in &self.env_file {
            env.extend(env_file(f)?);
        }
        env.extend(self.env.iter().filter_map(|e| expand_env(e)));
        let entrypoint = self.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![String::new()]
            } else {
                vec![e.clone()]
            }
        });
        if self.rootfs.is_some() && command.is_empty() && entrypoint.is_none() {
            command = vec!["/bin/sh".into()];
        }
        let network_mode = self.network.clone().unwrap_or_else(|| "bridge".into());
        let mut exposed: Vec<String> = Vec::new();
        for e in &self.expose {
            for k in hako_net::ports::parse_expose(e)? {
                if !exposed.contains(&k) {
                    exposed.push(k);
                }
            }
        }
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        if network_mode == "host" && !self.publish.is_empty() {
            eprintln!("WARNING: Published ports are discarded when using host network mode");
        } else {
            for p in &self.publish {
                for b in hako_net::ports::parse_publish(p)? {
                    if !exposed.contains(&b.container) {
                        exposed.push(b.container.clone());
                    }
                    port_bindings
                        .entry(b.container.clone())
                        .or_insert(None)
                        .get_or_insert_with(Vec::new)
                        .push(PortBinding {
                            host_ip: Some(b.host_ip),
                            host_port: Some(b.host_port),
                        });
                }
            }
        }
        let endpoint = EndpointSettings {
            aliases: (!self.network_aliases.is_empty()).then(|| self.network_aliases.clone()),
            ipam_config: (self.ip.is_some() || self.ip6.is_some()).then(|| EndpointIpamConfig {
                ipv4_address: self.ip.clone(),
                ipv6_address: self.ip6.clone(),
                ..Default::default()
            }),
            mac_address: self.mac_address.clone(),
            ..Default::default()
        };
        let special = matches!(network_mode.as_str(), "host" | "none")
            || network_mode.starts_with("container:");
        let wants_endpoint = endpoint.aliases.is_some()
            || endpoint.ipam_config.is_some()
            || endpoint.mac_address.is_some();
        if special && wants_endpoint {
            bail!(
                "conflicting options: --ip, --ip6, --network-alias and --mac-address need a bridge network, not --network {network_mode}"
            );
        }
        let networking = wants_endpoint.then(|| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network_mode.clone(), endpoint)])),
        });
        let attached = |stream: &str| self.attach.iter().any(|a| a == stream);
        let config = ContainerConfig {
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            image,
            hostname: self.hostname.clone(),
            domainname: self.domainname.clone(),
            user: self.user.clone(),
            tty: Some(self.tty),
            open_stdin: Some(self.interactive),
            stdin_once: Some(self.interactive),
            // Without -a: stdout and stderr (and stdin with -i), as Docker's.
            attach_stdin: Some(self.interactive || attached("stdin")),
            attach_stdout: Some(self.attach.is_empty() || attached("stdout")),
            attach_stderr: Some(self.attach.is_empty() || attached("stderr")),
            env: Some(env),
            cmd: (!command.is_empty()).then_some(command),
            entrypoint,
            working_dir: self.workdir.clone(),
            labels: Some(key_values(&labels, "label")?),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            healthcheck: self.healthcheck()?,
            ..Default::default()
        };
        let r = self.resources.parse()?;
        let mut tmpfs = HashMap::new();
        for t in &self.tmpfs {
            let (dst, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
            tmpfs.insert(dst.to_string(), opts.to_string());
        }
        let mut log_config = HostConfigLogConfig {
            typ: self.log_driver.clone(),
            config: None,
        };
        if !self.log_opts.is_empty() {
            log_config.config = Some(key_values(&self.log_opts, "log-opt")?);
        }
        let host = HostConfig {
            binds: Some(
                self.volumes
                    .iter()
                    .map(|v| absolute_bind(v))
                    .collect::<Result<_>>()?,
            ),
            mounts: Some(
                self.mounts
                    .iter()
                    .map(|m| parse_mount(m))
                    .collect::<Result<_>>()?,
            ),
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            volumes_from: (!self.volumes_from.is_empty()).then(|| self.volumes_from.clone()),
            readonly_rootfs: Some(self.read_only),
            devices: Some(self.devices.iter().map(|d| parse_device(d)).collect()),
            device_cgroup_rules: Some(self.device_cgroup_rules.clone()),
            ulimits: Some(
                self.ulimits
                    .iter()
                    .map(|u| parse_ulimit(u))
                    .collect::<Result<_>>()?,
            ),
            cap_add: Some(self.cap_add.clone()),
            cap_drop: Some(self.cap_drop.clone()),
            privileged: Some(self.privileged),
            security_opt: Some(self.security_opt.clone()),
            init: Some(self.init),
            restart_policy: Some(parse_restart(&self.restart)?),
            auto_remove: Some(self.rm),
            log_config: Some(log_config),
            runtime: self.runtime.clone(),
            storage_opt: Some(key_values(&self.storage_opt, "storage-opt")?),
            network_mode: Some(network_mode.clone()),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            publish_all_ports: Some(self.publish_all),
            dns_search: Some(self.dns_search.clone()),
            dns_options: Some(self.dns_options.clone()),
            shm_size: self.shm_size.as_deref().map(parse_bytes).transpose()?,
            sysctls: Some(key_values(&self.sysctls, "sysctl")?),
            extra_hosts: Some(self.add_hosts.clone()),
            dns: Some(self.dns.clone()),
            oom_score_adj: self.oom_score_adj,
            oom_kill_disable: self.oom_kill_disable.then_some(true),
            memory_swappiness: self.memory_swappiness,
            blkio_weight_device: (!self.blkio_weight_device.is_empty())
                .then(|| {
                    self.blkio_weight_device
                        .iter()
                        .map(|d| {
                            let (path, w) = device_value(d, "blkio-weight-device")?;
                            let weight = w.parse::<u16>().ok().filter(|w| (10..=1000).contains(w));
                            let weight = weight.with_context(|| {
                                format!("invalid weight for device: {w} (10 to 1000)")
                            })?;
                            Ok(ResourcesBlkioWeightDevice {
                                path: Some(path),
                                weight: Some(usize::from(weight)),
                            })
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .transpose()?,
            blkio_device_read_bps: throttle(&self.device_read_bps, "device-read-bps", true)?,
            blkio_device_write_bps: throttle(&self.device_write_bps, "device-write-bps", true)?,
            blkio_device_read_iops: throttle(&self.device_read_iops, "device-read-iops", false)?,
            blkio_device_write_iops: throttle(&self.device_write_iops, "device-write-iops", false)?,
            annotations: (!self.annotations.is_empty())
                .then(|| key_values(&self.annotations, "annotation"))
                .transpose()?,
            cgroup_parent: self.cgroup_parent.clone(),
            group_add: (!self.group_add.is_empty()).then(|| self.group_add.clone()),
            pid_mode: self.pid.clone(),
            ipc_mode: self.ipc.clone(),
            uts_mode: self.uts.clone(),
            userns_mode: self.userns.clone(),
            cgroupns_mode: self.cgroupns.as_deref().map(|m| {
                if m == "host" {
                    HostConfigCgroupnsModeEnum::HOST
                } else {
                    HostConfigCgroupnsModeEnum::PRIVATE
                }
            }),
            ..r.to_host_config()
        };
        Ok(CreateOptions {
            name: self.name.clone(),
            config,
            host_config: host,
            rootfs: self.rootfs.clone(),
            networking,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1GB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("abc").is_err());
        assert!(parse_bytes("-5m").is_err());
    }

    #[test]
    fn restart_policies() {
        assert_eq!(
            parse_restart("on-failure:3").unwrap().maximum_retry_count,
            Some(3)
        );
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("sometimes").is_err());
    }

    #[test]
    fn platforms() {
        let host = host_platform();
        assert!(check_platform(&host).is_ok());
        assert!(check_platform("linux").is_ok());
        assert!(check_platform(&host.to_uppercase()).is_ok());
        assert!(check_platform("windows/amd64").is_err());
        assert!(check_platform("linux/s390x").is_err());
    }

    #[test]
    fn relative_binds_become_absolute() {
        let here = std::env::current_dir().unwrap();
        let abs = |p: &std::path::Path| format!("{}:/d", p.display());
        assert_eq!(absolute_bind("./rel:/d").unwrap(), abs(&here.join("rel")));
        assert_eq!(
            absolute_bind("rel/dir:/d").unwrap(),
            abs(&here.join("rel/dir"))
        );
        assert_eq!(
            absolute_bind("..:/d").unwrap(),
            abs(here.parent().unwrap_or(&here))
        );
        assert_eq!(absolute_bind("name:/d").unwrap(), "name:/d");
        assert_eq!(absolute_bind("/abs:/d:ro").unwrap(), "/abs:/d:ro");
        assert_eq!(absolute_bind("/anon").unwrap(), "/anon");
    }

    #[test]
    fn mounts_and_ulimits() {
        let m = parse_mount("type=bind,source=/srv,target=/data,readonly").unwrap();
        assert_eq!((m.typ, m.read_only), (Some(MountType::BIND), Some(true)));
        assert!(parse_mount("type=bind,target=/x").is_err());
        assert!(parse_mount("type=nfs,target=/x").is_err());
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (Some(1024), Some(2048)));
        assert!(parse_ulimit("nofile=10:5").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
    }
}
