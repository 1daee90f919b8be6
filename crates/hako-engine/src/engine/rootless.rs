//! Rootless mode: what the engine does differently when it runs in a user namespace of
//! its own (the CLI joins the one its pause process keeps, see hako-cli's rootless.rs).
//!
//! - cgroups: the host delegates this user no cgroup (v1, or v2 without systemd --user
//!   delegation), so a container runs without one (the runtime does as runc's rootless
//!   mode) and any limit is refused at create, in one line naming it.
//! - network: no bridge, veth or nftables outside the user's reach: the default network
//!   is a namespace of the container's own that `pasta` (package passt) connects to the
//!   host's, with `-p` ports forwarded by pasta from the host. pasta exits by itself when
//!   the namespace file is removed (it watches its directory).

use std::path::Path;
use std::process::{Command, Stdio};

use bollard_stubs::models::HostConfig;
use oci_spec::runtime::Spec;

use super::Engine;
use super::network::{Mode, mode_of, wanted_ports};
use crate::error::{Error, IoContext as _, Result};
use crate::records::Record;

/// The program that connects a rootless container's network namespace to the host.
const PASTA: &str = "pasta";

impl Engine {
    /// Refuses the cgroup limits a rootless container cannot have, in one line: all of
    /// them without a delegated cgroup (cgroupfs driver), those of a controller the user's
    /// systemd was not delegated with the systemd driver.
    pub(crate) fn check_rootless_resources(&self, oci: &Spec) -> Result<()> {
        if !self.opts.rootless {
            return Ok(());
        }
        let resources = oci
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        if self.opts.cgroup_driver != crate::CgroupDriver::Systemd {
            return match hako_cgroups::resources::first_limit(&resources) {
                Some(setting) => Err(Error::InvalidArgument(format!(
                    "rootless hako cannot set {setting}: no cgroup is delegated to the user here (it needs pure cgroup v2 with the user's systemd, and the systemd cgroup manager): drop the limit or run as root"
                ))),
                None => Ok(()),
            };
        }
        let delegated = hako_cgroups::systemd::user_controllers().map_err(|e| {
            Error::InvalidArgument(format!("rootless hako: the user's systemd: {e}"))
        })?;
        for (setting, controller) in limit_controllers(&resources) {
            if !delegated.iter().any(|c| c == controller) {
                return Err(Error::InvalidArgument(format!(
                    "rootless hako cannot set {setting}: the user's systemd is not delegated the {controller} controller (it has: {}; see Delegate= of user@.service)",
                    delegated.join(" ")
                )));
            }
        }
        Ok(())
    }

    /// Rootless networks other than the default one are refused before anything is made.
    pub(crate) fn check_rootless_network(&self, host: &HostConfig) -> Result<()> {
        if !self.opts.rootless {
            return Ok(());
        }
        match mode_of(host) {
            Mode::Bridge(n) if n != "bridge" => Err(Error::InvalidArgument(format!(
                "rootless hako has only the default network (pasta), host and none: network {n} cannot be used"
            ))),
            _ => Ok(()),
        }
    }

    /// The default network of a rootless container: a namespace bound at the path the
    /// spec names, connected by pasta, its `-p` ports forwarded from the host.
    pub(crate) fn setup_rootless_network(&self, rec: &Record) -> Result<()> {
        if !matches!(mode_of(&rec.host_config), Mode::Bridge(_)) {
            return Ok(());
        }
        let exposed = rec.config.exposed_ports.clone().unwrap_or_default();
        let (args, mappings) = pasta_port_args(&wanted_ports(&rec.host_config, &exposed)?)?;
        let path = self.net.netns_path(&rec.id);
        let ports = self.rootless_ports_file(&rec.id);
        let json = serde_json::to_vec(&mappings)
            .map_err(|e| Error::InvalidArgument(format!("write {}: {e}", ports.display())))?;
        let done = crate::files::write(&ports, &json, crate::files::PRIVATE)
            .ctx(|| format!("write {}", ports.display()))
            .and_then(|()| pasta_netns(&path, &args));
        if done.is_err() {
            let _ = std::fs::remove_file(&ports);
        }
        done
    }

    /// The network of a build's `RUN` in rootless mode: a namespace of its own connected by
    /// pasta (no ports), gone with the returned guard.
    pub(crate) fn rootless_run_network(&self, id: &str) -> Result<RootlessRunNet> {
        let path = self.net.netns_path(id);
        pasta_netns(&path, &pasta_port_args(&[])?.0)?;
        Ok(RootlessRunNet { path })
    }

    /// Where a rootless container's published ports are kept while pasta forwards them
    /// (`hako port`, `inspect`, `ps` read them; the bridge's live in the network store).
    fn rootless_ports_file(&self, id: &str) -> std::path::PathBuf {
        self.container_dir(id).join("rootless-ports.json")
    }

    /// The ports pasta forwards for a running rootless container.
    pub(crate) fn rootless_ports(&self, id: &str) -> Vec<hako_net::ports::Mapping> {
        std::fs::read(self.rootless_ports_file(id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Removes a rootless container's network namespace file; its pasta exits with it.
    pub(crate) fn release_rootless_network(&self, id: &str) -> Result<()> {
        let _ = std::fs::remove_file(self.rootless_ports_file(id));
        let path = self.net.netns_path(id);
        if path.exists() {
            hako_net::netns::remove(&path)?;
        }
        Ok(())
    }
}

/// A build `RUN`'s rootless network namespace: dropping it removes the namespace file,
/// and pasta, which watches it, exits.
#[derive(Debug)]
pub(crate) struct RootlessRunNet {
    /// The bound namespace (for the spec).
    pub(crate) path: std::path::PathBuf,
}

impl Drop for RootlessRunNet {
    fn drop(&mut self) {
        if let Err(e) = hako_net::netns::remove(&self.path) {
            tracing::warn!(netns = %self.path.display(), error = %e, "remove a RUN's namespace");
        }
    }
}

/// A network namespace bound at `path`, connected by pasta with `args`; on failure nothing
/// is left.
fn pasta_netns(path: &Path, args: &[String]) -> Result<()> {
    let _ = hako_net::netns::remove(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::InvalidArgument(format!("make {}: {e}", dir.display())))?;
    }
    hako_net::netns::Netns::create(path)?;
    run_pasta(path, args).inspect_err(|_| {
        let _ = hako_net::netns::remove(path);
    })
}

/// pasta's `-t`/`-u` specs for the wanted ports (`[addr/]hostport:containerport`), and the
/// mappings they make as Docker shows them (no address: `0.0.0.0` and `::`, pasta listens
/// on both); a port left to hako (`-p 80`, `-P`) gets a free one of the host now.
fn pasta_port_args(
    wanted: &[hako_net::ports::Wanted],
) -> Result<(Vec<String>, Vec<hako_net::ports::Mapping>)> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let (mut tcp, mut udp, mut mappings) = (Vec::new(), Vec::new(), Vec::new());
    for w in wanted {
        let udp_port = matches!(w.proto, hako_net::ports::Proto::Udp);
        let host_port = match w.host_ports {
            (0, _) => free_port(udp_port)?,
            (lo, _) => lo,
        };
        let addrs = match w.host_ip {
            Some(ip) => vec![ip],
            None => vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
        };
        mappings.extend(addrs.into_iter().map(|host_ip| hako_net::ports::Mapping {
            proto: w.proto,
            host_ip,
            host_port,
            container_port: w.container_port,
        }));
        let spec = match w.host_ip {
            Some(ip) => format!("{ip}/{host_port}:{}", w.container_port),
            None => format!("{host_port}:{}", w.container_port),
        };
        if udp_port {
            udp.push(spec)
        } else {
            tcp.push(spec)
        }
    }
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(",")
        }
    };
    let args = vec![
        "-t".into(),
        list(tcp),
        "-u".into(),
        list(udp),
        // Nothing from the container's side to the host's ports.
        "-T".into(),
        "none".into(),
        "-U".into(),
        "none".into(),
    ];
    Ok((args, mappings))
}

/// A port of the host that is free now (the kernel's pick).
fn free_port(udp: bool) -> Result<u16> {
    let any = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let port = if udp {
        std::net::UdpSocket::bind(any).and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind(any).and_then(|s| s.local_addr())
    };
    port.map(|a| a.port())
        .map_err(|e| Error::InvalidArgument(format!("find a free host port: {e}")))
}

/// Runs pasta on the namespace at `netns`: it configures the namespace from the host's
/// addresses and routes, then goes to the background (our wait ends then).
fn run_pasta(netns: &Path, ports: &[String]) -> Result<()> {
    let out = Command::new(PASTA)
        .args(["--config-net", "--quiet", "--netns"])
        .arg(netns)
        .args(ports)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::InvalidArgument(
                "rootless networking needs pasta, which is not installed (Debian/Ubuntu: apt-get install passt); or use --network none".into(),
            ),
            _ => Error::InvalidArgument(format!("run pasta: {e}")),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    let why = why
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let hint = if why.contains("tun") {
        " (pasta needs /dev/net/tun readable and writable by this user: most distributions make it 0666)"
    } else {
        ""
    };
    Err(Error::InvalidArgument(format!(
        "rootless network: pasta failed ({}): {why}{hint}",
        out.status
    )))
}

/// Each limit set in `r` (as [`hako_cgroups::resources::first_limit`] names them) with the
/// cgroup v2 controller that enforces it.
fn limit_controllers(r: &oci_spec::runtime::LinuxResources) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let mut add = |set: bool, setting: &str, controller: &'static str| {
        if set {
            out.push((setting.to_owned(), controller));
        }
    };
    if let Some(m) = r.memory() {
        add(
            hako_cgroups::resources::first_limit(
                &oci_spec::runtime::LinuxResourcesBuilder::default()
                    .memory(*m)
                    .build()
                    .unwrap_or_default(),
            )
            .is_some(),
            "memory",
            "memory",
        );
    }
    if let Some(c) = r.cpu() {
        let quota = c.quota().is_some() || c.period().is_some() || c.shares().is_some();
        add(quota, "cpu", "cpu");
        add(c.cpus().is_some() || c.mems().is_some(), "cpuset", "cpuset");
    }
    add(r.pids().is_some(), "pids.limit", "pids");
    if let Some(b) = r.block_io() {
        add(
            b.weight().is_some_and(|w| w != 0)
                || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
                || b.throttle_read_bps_device()
                    .as_ref()
                    .is_some_and(|v| !v.is_empty())
                || b.throttle_write_bps_device()
                    .as_ref()
                    .is_some_and(|v| !v.is_empty())
                || b.throttle_read_iops_device()
                    .as_ref()
                    .is_some_and(|v| !v.is_empty())
                || b.throttle_write_iops_device()
                    .as_ref()
                    .is_some_and(|v| !v.is_empty()),
            "blockIO",
            "io",
        );
    }
    add(
        r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()),
        "hugepageLimits",
        "hugetlb",
    );
    out
}

#[cfg(test)]
mod tests {
    use hako_net::ports::{Proto, Wanted};

    #[test]
    fn ports_become_pasta_specs() {
        let w = |proto, container_port, host_ip: Option<&str>, lo| Wanted {
            proto,
            container_port,
            host_ip: host_ip.map(|a| a.parse().unwrap()),
            host_ports: (lo, lo),
        };
        let (args, maps) = super::pasta_port_args(&[
            w(Proto::Tcp, 80, Some("127.0.0.1"), 8080),
            w(Proto::Tcp, 443, None, 8443),
            w(Proto::Udp, 53, None, 5353),
        ])
        .unwrap();
        let shown: Vec<String> = maps
            .iter()
            .map(|m| {
                format!(
                    "{}:{}->{}/{}",
                    m.host_ip,
                    m.host_port,
                    m.container_port,
                    m.proto.as_str()
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "127.0.0.1:8080->80/tcp",
                "0.0.0.0:8443->443/tcp",
                ":::8443->443/tcp",
                "0.0.0.0:5353->53/udp",
                ":::5353->53/udp"
            ]
        );
        assert_eq!(
            args,
            [
                "-t",
                "127.0.0.1/8080:80,8443:443",
                "-u",
                "5353:53",
                "-T",
                "none",
                "-U",
                "none"
            ]
        );
        let (none, _) = super::pasta_port_args(&[]).unwrap();
        assert_eq!(none[1], "none");
        assert_eq!(none[3], "none");
    }
}
