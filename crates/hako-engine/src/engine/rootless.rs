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
use crate::error::{Error, Result};
use crate::records::Record;

/// The program that connects a rootless container's network namespace to the host.
const PASTA: &str = "pasta";

impl Engine {
    /// Refuses cgroup limits in rootless mode: there is no cgroup to set them in.
    pub(crate) fn check_rootless_resources(&self, oci: &Spec) -> Result<()> {
        if !self.opts.rootless {
            return Ok(());
        }
        let resources = oci
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        match hako_cgroups::resources::first_limit(&resources) {
            Some(setting) => Err(Error::InvalidArgument(format!(
                "rootless hako cannot set {setting}: this host delegates no cgroup to the user (cgroup v2 with systemd --user delegation is needed, and hako does not use it yet): drop the limit or run as root"
            ))),
            None => Ok(()),
        }
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
        let args = pasta_port_args(&wanted_ports(&rec.host_config, &exposed)?)?;
        let path = self.net.netns_path(&rec.id);
        let _ = hako_net::netns::remove(&path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::InvalidArgument(format!("make {}: {e}", dir.display())))?;
        }
        hako_net::netns::Netns::create(&path)?;
        match run_pasta(&path, &args) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = hako_net::netns::remove(&path);
                Err(e)
            }
        }
    }

    /// Removes a rootless container's network namespace file; its pasta exits with it.
    pub(crate) fn release_rootless_network(&self, id: &str) -> Result<()> {
        let path = self.net.netns_path(id);
        if path.exists() {
            hako_net::netns::remove(&path)?;
        }
        Ok(())
    }
}

/// pasta's `-t`/`-u` specs for the wanted ports (`[addr/]hostport:containerport`); a port
/// left to hako (`-p 80`, `-P`) gets a free one of the host now.
fn pasta_port_args(wanted: &[hako_net::ports::Wanted]) -> Result<Vec<String>> {
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for w in wanted {
        let udp_port = matches!(w.proto, hako_net::ports::Proto::Udp);
        let host_port = match w.host_ports {
            (0, _) => free_port(udp_port)?,
            (lo, _) => lo,
        };
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
    Ok(vec![
        "-t".into(),
        list(tcp),
        "-u".into(),
        list(udp),
        // Nothing from the container's side to the host's ports.
        "-T".into(),
        "none".into(),
        "-U".into(),
        "none".into(),
    ])
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
        let args = super::pasta_port_args(&[
            w(Proto::Tcp, 80, Some("127.0.0.1"), 8080),
            w(Proto::Tcp, 443, None, 8443),
            w(Proto::Udp, 53, None, 5353),
        ])
        .unwrap();
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
        let none = super::pasta_port_args(&[]).unwrap();
        assert_eq!(none[1], "none");
        assert_eq!(none[3], "none");
    }
}
