//! `hako port CONTAINER [PRIVATE_PORT[/PROTO]]`, and the PORTS text of `hako ps`.

use std::net::IpAddr;

use anyhow::{Result, bail};
use clap::Args;
use hako_net::ports::Mapping;

use super::engine_err;
use crate::context::Global;

/// Arguments of `hako port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container
    pub container: String,
    /// Only this private port (PORT[/PROTO])
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// `0.0.0.0` → `0.0.0.0`, `::` → `[::]`.
fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v) => format!("[{v}]"),
        IpAddr::V4(v) => v.to_string(),
    }
}

/// `hako port`: `80/tcp -> 0.0.0.0:8080` per mapping (Docker's order: by port).
pub fn run(g: &Global, a: &PortArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let rec = engine.get(&a.container).map_err(engine_err)?;
    let mut ports = engine.ports(&rec.id);
    ports.sort_by_key(|m| (m.container_port, m.proto, m.host_ip.is_ipv6(), m.host_ip));
    let mut out = String::new();
    match &a.port {
        Some(p) => {
            let (port, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            let want: u16 = port
                .parse()
                .map_err(|_| anyhow::anyhow!("Error: invalid port ({port}): invalid syntax"))?;
            let hits: Vec<&Mapping> = ports
                .iter()
                .filter(|m| m.container_port == want && m.proto.as_str() == proto)
                .collect();
            if hits.is_empty() {
                // The port as the user wrote it, as the docker CLI says it.
                bail!("No public port '{p}' published for {}", a.container);
            }
            for m in hits {
                out.push_str(&format!("{}:{}\n", host(m.host_ip), m.host_port));
            }
        }
        None => {
            for m in &ports {
                out.push_str(&format!(
                    "{}/{} -> {}:{}\n",
                    m.container_port,
                    m.proto.as_str(),
                    host(m.host_ip),
                    m.host_port
                ));
            }
        }
    }
    crate::commands::print(&out)
}

/// Docker's PORTS column: `0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 443/tcp`, with
/// consecutive ports folded into ranges (`0.0.0.0:8000-8002->8000-8002/tcp`).
pub fn ports_text(published: &[Mapping], exposed: &[String]) -> String {
    let mut ms: Vec<&Mapping> = published.iter().collect();
    ms.sort_by_key(|m| (m.host_ip.is_ipv6(), m.host_ip, m.proto, m.container_port));
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ms.len() {
        let start = ms[i];
        let mut j = i;
        while j + 1 < ms.len() {
            let (a, b) = (ms[j], ms[j + 1]);
            if b.host_ip == a.host_ip
                && b.proto == a.proto
                && b.container_port == a.container_port + 1
                && b.host_port == a.host_port + 1
            {
                j += 1;
            } else {
                break;
            }
        }
        let end = ms[j];
        let range = |a: u16, b: u16| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        };
        parts.push(format!(
            "{}:{}->{}/{}",
            host(start.host_ip),
            range(start.host_port, end.host_port),
            range(start.container_port, end.container_port),
            start.proto.as_str()
        ));
        i = j + 1;
    }
    for e in exposed {
        let bound = published
            .iter()
            .any(|m| format!("{}/{}", m.container_port, m.proto.as_str()) == *e);
        if !bound {
            parts.push(e.clone());
        }
    }
    parts.join(", ")
}

/// The PORTS column from the engine's `Ports` list (published mappings, then exposed-only
/// ports without an address).
pub fn summary_text(ports: &[hako_engine::models::PortSummary]) -> String {
    let mut published = Vec::new();
    let mut exposed = Vec::new();
    for p in ports {
        let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
        let proto = if proto.is_empty() {
            "tcp".to_string()
        } else {
            proto
        };
        match (
            p.ip.as_deref().and_then(|i| i.parse::<IpAddr>().ok()),
            p.public_port,
        ) {
            (Some(ip), Some(public)) => published.push(Mapping {
                proto: hako_net::ports::Proto::parse(&proto).unwrap_or(hako_net::ports::Proto::Tcp),
                host_ip: ip,
                host_port: public,
                container_port: p.private_port,
            }),
            _ => exposed.push(format!("{}/{proto}", p.private_port)),
        }
    }
    ports_text(&published, &exposed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hako_net::ports::Proto;

    fn m(ip: &str, h: u16, c: u16) -> Mapping {
        Mapping {
            proto: Proto::Tcp,
            host_ip: ip.parse().unwrap(),
            host_port: h,
            container_port: c,
        }
    }

    #[test]
    fn docker_ports_column() {
        assert_eq!(
            ports_text(
                &[m("0.0.0.0", 8080, 80), m("::", 8080, 80)],
                &["443/tcp".into(), "80/tcp".into()]
            ),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 443/tcp"
        );
        assert_eq!(
            ports_text(&[m("0.0.0.0", 8000, 9000), m("0.0.0.0", 8001, 9001)], &[]),
            "0.0.0.0:8000-8001->9000-9001/tcp"
        );
    }
}
