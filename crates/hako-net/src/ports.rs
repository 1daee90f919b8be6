//! Published ports: Docker's `-p` syntax, the expansion of ranges and `-P`, and the host
//! ports reserved by binding sockets that the container's shim then holds (podman hands
//! them to conmon), so that a port taken by any process is refused before the container
//! starts, and no other process can take it while the container runs.
//!
//! The sockets are bound, never listened on or read: traffic to the port is rewritten by
//! the NAT rules before it could reach them (see [`crate::firewall`]).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketFlags, SocketType, ipproto};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `tcp`, `udp` or `sctp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// Docker's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// Parses `tcp`, `udp`, `sctp` (Docker's error otherwise).
    pub fn parse(s: &str) -> Result<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(Error::InvalidArgument(format!("invalid proto: {s}"))),
        }
    }
}

/// One `-p` binding in Docker's `PortBindings` shape: container `"80/tcp"` → host IP and
/// host port (`""` = any, `"8000-8010"` = the first free one in the range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `PORT/PROTO`.
    pub container: String,
    /// `""` (all addresses) or an address.
    pub host_ip: String,
    /// `""`, `PORT` or `LO-HI`.
    pub host_port: String,
}

/// A published port as set up: one address family each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mapping {
    /// Protocol.
    pub proto: Proto,
    /// `0.0.0.0` / `::` for all addresses of that family.
    pub host_ip: IpAddr,
    /// The host port.
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
}

impl Mapping {
    /// Whether it listens on every address of its family.
    pub fn any_address(&self) -> bool {
        self.host_ip.is_unspecified()
    }
}

fn port(s: &str, what: &str) -> Result<u16> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0 || what == "hostPort")
        .ok_or_else(|| Error::InvalidArgument(format!("invalid {what}: {s}")))
}

/// `LO-HI` or `P` → (lo, hi).
fn range(s: &str, what: &str) -> Result<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a, what)?, port(b, what)?);
            if b < a {
                return Err(Error::InvalidArgument(format!(
                    "invalid range specified for {what}: {s}"
                )));
            }
            Ok((a, b))
        }
        None => {
            let p = port(s, what)?;
            Ok((p, p))
        }
    }
}

/// Splits `[ip:]host:container` with IPv6 addresses in brackets.
fn split_spec(spec: &str) -> Result<(String, String, String)> {
    let bad = || Error::InvalidArgument(format!("invalid port format for --publish: {spec}"));
    let (ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, rest) = r.split_once(']').ok_or_else(bad)?;
        let rest = rest.strip_prefix(':').ok_or_else(bad)?;
        (ip.to_string(), rest.to_string())
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 => return Ok((String::new(), String::new(), parts[0].to_string())),
            2 => return Ok((String::new(), parts[0].to_string(), parts[1].to_string())),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => return Err(bad()),
        }
    };
    let (host, ctr) = rest.split_once(':').ok_or_else(bad)?;
    if ctr.contains(':') {
        return Err(bad());
    }
    Ok((ip, host.to_string(), ctr.to_string()))
}

/// Parses one `-p` value (Docker's `nat.ParsePortSpec`): `80`, `8080:80`, `8080:80/udp`,
/// `127.0.0.1:8080:80`, `127.0.0.1::80`, `[::1]:8080:80`, `8000-8010:8000-8010`,
/// `8000-8010:80` (the first free host port of the range), `80-90` (random host ports).
pub fn parse_publish(spec: &str) -> Result<Vec<Binding>> {
    let (ip, host, ctr) = split_spec(spec)?;
    let (ctr, proto) = match ctr.split_once('/') {
        Some((c, p)) => (c.to_string(), Proto::parse(p)?),
        None => (ctr, Proto::Tcp),
    };
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(Error::InvalidArgument(format!("invalid IP address: {ip}")));
    }
    let (clo, chi) = range(&ctr, "containerPort")?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(range(&host, "hostPort")?)
    };
    let n = chi - clo;
    let mut out = Vec::new();
    match host_range {
        Some((hlo, hhi)) if n > 0 && hhi - hlo != n => {
            return Err(Error::InvalidArgument(format!(
                "invalid ranges specified for container and host Ports: {ctr} and {host}"
            )));
        }
        Some((hlo, hhi)) if n == 0 && hhi > hlo => out.push(Binding {
            container: format!("{clo}/{}", proto.as_str()),
            host_ip: ip.clone(),
            host_port: format!("{hlo}-{hhi}"),
        }),
        _ => {
            for i in 0..=n {
                out.push(Binding {
                    container: format!("{}/{}", clo + i, proto.as_str()),
                    host_ip: ip.clone(),
                    host_port: host_range
                        .map(|(hlo, _)| (hlo + i).to_string())
                        .unwrap_or_default(),
                });
            }
        }
    }
    Ok(out)
}

/// Parses `--expose 80`, `--expose 80/udp`, `--expose 8000-8010`: `PORT/PROTO` keys.
pub fn parse_expose(spec: &str) -> Result<Vec<String>> {
    let (p, proto) = match spec.split_once('/') {
        Some((p, pr)) => (p, Proto::parse(pr)?),
        None => (spec, Proto::Tcp),
    };
    let (lo, hi) = range(p, "containerPort").map_err(|_| {
        Error::InvalidArgument(format!("invalid range format for --expose: {spec}"))
    })?;
    Ok((lo..=hi)
        .map(|x| format!("{x}/{}", proto.as_str()))
        .collect())
}

/// `80/tcp` → (80, tcp).
pub fn parse_key(key: &str) -> Result<(u16, Proto)> {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    Ok((port(p, "containerPort")?, Proto::parse(proto)?))
}

/// What to publish, before host ports are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Protocol.
    pub proto: Proto,
    /// Container port.
    pub container_port: u16,
    /// None: all addresses (of the container's families).
    pub host_ip: Option<IpAddr>,
    /// Host port range to pick from; (0, 0) = any.
    pub host_ports: (u16, u16),
}

/// Expands `PortBindings` and, with `-P`, every exposed port without a binding.
pub fn wanted(bindings: &[Binding], publish_all: bool, exposed: &[String]) -> Result<Vec<Wanted>> {
    let mut out = Vec::new();
    let mut bound = BTreeSet::new();
    for b in bindings {
        let (container_port, proto) = parse_key(&b.container)?;
        bound.insert((container_port, proto));
        let host_ip = if b.host_ip.is_empty() {
            None
        } else {
            Some(
                b.host_ip
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| {
                        Error::InvalidArgument(format!("invalid IP address: {}", b.host_ip))
                    })?,
            )
        };
        let host_ports = if b.host_port.is_empty() {
            (0, 0)
        } else {
            range(&b.host_port, "hostPort")?
        };
        out.push(Wanted {
            proto,
            container_port,
            host_ip,
            host_ports,
        });
    }
    if publish_all {
        for key in exposed {
            let (container_port, proto) = parse_key(key)?;
            if bound.insert((container_port, proto)) {
                out.push(Wanted {
                    proto,
                    container_port,
                    host_ip: None,
                    host_ports: (0, 0),
                });
            }
        }
    }
    Ok(out)
}

fn sock_type(p: Proto) -> (SocketType, Option<rustix::net::Protocol>) {
    match p {
        Proto::Tcp => (SocketType::STREAM, None),
        Proto::Udp => (SocketType::DGRAM, None),
        Proto::Sctp => (SocketType::STREAM, Some(ipproto::SCTP)),
    }
}

/// Binds `ip:port` (port 0: the kernel picks); returns the socket and the port.
fn bind_one(proto: Proto, ip: IpAddr, port: u16) -> std::io::Result<(OwnedFd, u16)> {
    let (ty, pr) = sock_type(proto);
    let fam = if ip.is_ipv6() {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    };
    let fd = rustix::net::socket_with(fam, ty, SocketFlags::CLOEXEC, pr)?;
    if ip.is_ipv6() {
        // [::]:P reserves the IPv6 port only; 0.0.0.0:P is a socket of its own.
        rustix::net::sockopt::set_ipv6_v6only(&fd, true)?;
    }
    rustix::net::bind(&fd, &SocketAddr::new(ip, port))?;
    let got = SocketAddr::try_from(rustix::net::getsockname(&fd)?)
        .map(|a| a.port())
        .unwrap_or(port);
    Ok((fd, got))
}

fn shown(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// Host ports bound for one container, held until the container's shim exits.
#[derive(Debug, Default)]
pub struct Reserved {
    /// The mappings, host ports chosen.
    pub mappings: Vec<Mapping>,
    /// The bound sockets.
    pub sockets: Vec<OwnedFd>,
}

/// Chooses and binds host ports for `wanted`, for the families the container has.
pub fn reserve(wanted: &[Wanted], v4: bool, v6: bool) -> Result<Reserved> {
    let mut r = Reserved::default();
    for w in wanted {
        let ips: Vec<IpAddr> = match w.host_ip {
            Some(ip) => {
                if (ip.is_ipv4() && !v4) || (ip.is_ipv6() && !v6) {
                    return Err(Error::InvalidArgument(format!(
                        "cannot publish {}/{} on {ip}: the container has no IPv{} address",
                        w.container_port,
                        w.proto.as_str(),
                        if ip.is_ipv6() { 6 } else { 4 }
                    )));
                }
                vec![ip]
            }
            None => {
                let mut v = Vec::new();
                if v4 {
                    v.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                }
                if v6 {
                    v.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
                }
                v
            }
        };
        let candidates: Vec<u16> = if w.host_ports == (0, 0) {
            vec![0; 8]
        } else {
            (w.host_ports.0..=w.host_ports.1).collect()
        };
        let mut last_err = None;
        let mut done = false;
        for cand in candidates {
            match bind_all(w.proto, &ips, cand) {
                Ok((port, fds)) => {
                    for ip in &ips {
                        r.mappings.push(Mapping {
                            proto: w.proto,
                            host_ip: *ip,
                            host_port: port,
                            container_port: w.container_port,
                        });
                    }
                    r.sockets.extend(fds);
                    done = true;
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if !done {
            let (ip, port, e) = last_err.unwrap_or((
                ips.first()
                    .copied()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                w.host_ports.0,
                std::io::Error::from_raw_os_error(libc::EADDRINUSE),
            ));
            return Err(if e.raw_os_error() == Some(libc::EADDRINUSE) {
                Error::Conflict(format!(
                    "Bind for {} failed: port is already allocated",
                    shown(ip, port)
                ))
            } else if w.proto == Proto::Sctp && e.raw_os_error() == Some(libc::EPROTONOSUPPORT) {
                Error::InvalidArgument(format!(
                    "cannot publish {}/sctp: this kernel has no SCTP (load the sctp module)",
                    w.container_port
                ))
            } else {
                Error::Io {
                    context: format!("bind {}/{}", shown(ip, port), w.proto.as_str()),
                    source: e,
                }
            });
        }
    }
    Ok(r)
}

/// Binds `port` (0: one the kernel picks for the first address) on every address.
fn bind_all(
    proto: Proto,
    ips: &[IpAddr],
    port: u16,
) -> std::result::Result<(u16, Vec<OwnedFd>), (IpAddr, u16, std::io::Error)> {
    let mut fds = Vec::new();
    let mut port = port;
    for ip in ips {
        match bind_one(proto, *ip, port) {
            Ok((fd, p)) => {
                port = p;
                fds.push(fd);
            }
            Err(e) => return Err((*ip, port, e)),
        }
    }
    Ok((port, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(c: &str, ip: &str, h: &str) -> Binding {
        Binding {
            container: c.into(),
            host_ip: ip.into(),
            host_port: h.into(),
        }
    }

    /// SCTP ports are held like the others (nobody else can take them), where the
    /// kernel has SCTP; where it has not, a clear refusal.
    #[test]
    fn sctp_ports_are_reserved_or_refused_clearly() {
        let w = Wanted {
            proto: Proto::Sctp,
            container_port: 9000,
            host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            host_ports: (0, 0),
        };
        let sctp =
            rustix::net::socket(AddressFamily::INET, SocketType::STREAM, Some(ipproto::SCTP));
        match reserve(std::slice::from_ref(&w), true, false) {
            Ok(r) => {
                assert!(sctp.is_ok());
                assert_eq!(r.sockets.len(), 1);
                let port = r.mappings[0].host_port;
                let again = Wanted {
                    host_ports: (port, port),
                    ..w
                };
                let e = reserve(&[again], true, false).unwrap_err().to_string();
                assert!(e.contains("port is already allocated"), "{e}");
            }
            Err(e) => {
                assert!(sctp.is_err(), "{e}");
                assert!(e.to_string().contains("this kernel has no SCTP"), "{e}");
            }
        }
    }

    #[test]
    fn publish_forms() {
        assert_eq!(parse_publish("80").unwrap(), vec![b("80/tcp", "", "")]);
        assert_eq!(
            parse_publish("8080:80/udp").unwrap(),
            vec![b("80/udp", "", "8080")]
        );
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            vec![b("80/tcp", "127.0.0.1", "")]
        );
        assert_eq!(
            parse_publish("[::1]:8080:80").unwrap(),
            vec![b("80/tcp", "::1", "8080")]
        );
        assert_eq!(
            parse_publish("8000-8001:9000-9001").unwrap(),
            vec![b("9000/tcp", "", "8000"), b("9001/tcp", "", "8001")]
        );
        assert_eq!(
            parse_publish("8000-8010:80").unwrap(),
            vec![b("80/tcp", "", "8000-8010")]
        );
        assert_eq!(parse_publish("80-81").unwrap().len(), 2);
    }

    #[test]
    fn bad_publish_specs() {
        for (spec, msg) in [
            ("8000-8002:80-81", "invalid ranges specified"),
            ("8080:80/icmp", "invalid proto"),
            ("1.2.3:8080:80", "invalid IP address"),
            ("8080:0", "invalid containerPort"),
            ("x:80", "invalid hostPort"),
            ("1:2:3:4", "invalid port format"),
        ] {
            let e = parse_publish(spec).unwrap_err().to_string();
            assert!(e.contains(msg), "{spec}: {e}");
        }
        assert!(parse_expose("80-81/udp").unwrap().len() == 2);
        assert!(parse_expose("x").is_err());
    }

    #[test]
    fn publish_all_adds_exposed_ports_without_bindings() {
        let w = wanted(
            &[b("80/tcp", "", "8080")],
            true,
            &["80/tcp".into(), "53/udp".into()],
        )
        .unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!((w[1].container_port, w[1].proto), (53, Proto::Udp));
    }

    #[test]
    fn taken_ports_are_refused() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = held.local_addr().unwrap().port();
        let w = Wanted {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_ports: (p, p),
        };
        let e = reserve(std::slice::from_ref(&w), true, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("port is already allocated"), "{e}");
        let any = Wanted {
            host_ports: (0, 0),
            ..w
        };
        let r = reserve(&[any], true, false).unwrap();
        assert_eq!(r.sockets.len(), 1);
        let got = r.mappings[0].host_port;
        assert!(got != 0);
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", got)).is_err(),
            "a reserved port cannot be taken"
        );
    }
}
