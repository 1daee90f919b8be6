//! `/etc/hosts` and `/etc/resolv.conf` for a container, as Docker writes them.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// DNS settings of a container (`--dns`, `--dns-search`, `--dns-option`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// `--dns`.
    pub servers: Vec<String>,
    /// `--dns-search`.
    pub search: Vec<String>,
    /// `--dns-option`.
    pub options: Vec<String>,
}

/// Docker's fallback when the host has no usable resolver.
const FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The parts of a resolv.conf that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolv {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// `search` (or `domain`) entries.
    pub search: Vec<String>,
    /// `options` entries.
    pub options: Vec<String>,
}

/// Parses resolv.conf text.
pub fn parse_resolv(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.servers.extend(words.next().map(str::to_string)),
            Some("search" | "domain") => r.search = words.map(str::to_string).collect(),
            Some("options") => r.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    r
}

/// The host's resolv.conf (systemd-resolved's upstream list when the stub is in use, as
/// Docker does).
pub fn host_resolv() -> Resolv {
    let main = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let r = parse_resolv(&main);
    if r.servers.iter().any(|s| s == "127.0.0.53")
        && let Ok(up) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf")
    {
        return parse_resolv(&up);
    }
    r
}

fn is_loopback(s: &str) -> bool {
    s.split('%')
        .next()
        .and_then(|a| a.parse::<IpAddr>().ok())
        .is_some_and(|a| a.is_loopback())
}

/// Checks `--dns` values (addresses).
pub fn validate_dns(c: &DnsConfig) -> Result<()> {
    for s in &c.servers {
        if s.parse::<IpAddr>().is_err() {
            return Err(Error::InvalidArgument(format!("{s} is not an ip address")));
        }
    }
    for s in &c.search {
        if s.is_empty() || s.len() > 255 || s.contains(char::is_whitespace) {
            return Err(Error::InvalidArgument(format!("{s} is not a valid domain")));
        }
    }
    Ok(())
}

/// A container's resolv.conf. `resolver`: the network's DNS server address (user
/// networks), which then takes the host's servers as its upstreams. Otherwise the host's
/// servers without loopback ones (they would be the container's own loopback), else
/// Docker's public fallback.
pub fn resolv_conf(host: &Resolv, c: &DnsConfig, resolver: Option<IpAddr>) -> String {
    let mut out = String::new();
    let servers: Vec<String> = if !c.servers.is_empty() && resolver.is_none() {
        c.servers.clone()
    } else if let Some(r) = resolver {
        vec![r.to_string()]
    } else {
        let usable: Vec<String> = host
            .servers
            .iter()
            .filter(|s| !is_loopback(s))
            .cloned()
            .collect();
        if usable.is_empty() {
            FALLBACK.iter().map(|s| s.to_string()).collect()
        } else {
            usable
        }
    };
    let search = if c.search.is_empty() {
        &host.search
    } else {
        &c.search
    };
    let search: Vec<&String> = search.iter().filter(|s| s.as_str() != ".").collect();
    let options = if c.options.is_empty() {
        &host.options
    } else {
        &c.options
    };
    if !search.is_empty() {
        let _ = writeln!(
            out,
            "search {}",
            search
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    for s in servers {
        let _ = writeln!(out, "nameserver {s}");
    }
    if !options.is_empty() {
        let _ = writeln!(out, "options {}", options.join(" "));
    }
    out
}

/// One `--add-host NAME:IP` (`host-gateway` becomes `gateway`); Docker's checks.
pub fn parse_add_host(s: &str, gateway: Option<IpAddr>) -> Result<(String, String)> {
    // NAME:IP, NAME=IP (newer Docker), IPv6 possibly in brackets.
    let (name, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| Error::InvalidArgument(format!("bad format for add-host: {s:?}")))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::InvalidArgument(format!(
            "bad format for add-host: {s:?}"
        )));
    }
    if ip == "host-gateway" {
        let gw = gateway.ok_or_else(|| {
            Error::InvalidArgument(
                "unable to derive the IP value for host-gateway: the container has no network gateway"
                    .into(),
            )
        })?;
        return Ok((name.to_string(), gw.to_string()));
    }
    ip.parse::<IpAddr>()
        .map_err(|_| Error::InvalidArgument(format!("invalid IP address in add-host: {ip:?}")))?;
    Ok((name.to_string(), ip.to_string()))
}

/// A container's /etc/hosts: localhost lines, `--add-host` entries, then its own
/// addresses with its host name (and short names on user networks: Docker writes
/// `IP hostname` and, with aliases, those too).
pub fn hosts(extra: &[(String, String)], own: &[(IpAddr, Vec<String>)], hostname: &str) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, ip) in extra {
        let _ = writeln!(s, "{ip}\t{name}");
    }
    if own.is_empty() {
        let _ = writeln!(s, "127.0.1.1\t{hostname}");
    }
    for (ip, names) in own {
        let mut all = vec![hostname.to_string()];
        all.extend(names.iter().filter(|n| n.as_str() != hostname).cloned());
        let _ = writeln!(s, "{ip}\t{}", all.join(" "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_are_dropped_as_docker_does() {
        let host = parse_resolv(
            "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp\noptions edns0\n",
        );
        let r = resolv_conf(&host, &DnsConfig::default(), None);
        assert_eq!(r, "search corp\nnameserver 10.0.0.2\noptions edns0\n");
        let only_lo = parse_resolv("nameserver 127.0.0.1\n");
        assert!(resolv_conf(&only_lo, &DnsConfig::default(), None).contains("8.8.8.8"));
        let own = DnsConfig {
            servers: vec!["1.1.1.1".into()],
            search: vec!["a.example".into()],
            options: vec!["ndots:2".into()],
        };
        assert_eq!(
            resolv_conf(&host, &own, None),
            "search a.example\nnameserver 1.1.1.1\noptions ndots:2\n"
        );
        let user = resolv_conf(&host, &own, Some("10.78.0.1".parse().unwrap()));
        assert!(user.contains("nameserver 10.78.0.1\n") && !user.contains("1.1.1.1"));
    }

    #[test]
    fn add_host_forms() {
        let gw = Some("10.77.0.1".parse().unwrap());
        assert_eq!(
            parse_add_host("db:10.0.0.9", gw).unwrap(),
            ("db".to_string(), "10.0.0.9".to_string())
        );
        assert_eq!(parse_add_host("h:host-gateway", gw).unwrap().1, "10.77.0.1");
        assert_eq!(parse_add_host("v6:[::1]", gw).unwrap().1, "::1");
        assert!(parse_add_host("nope", gw).is_err());
        assert!(parse_add_host("x:1.2.3", gw).is_err());
        assert!(parse_add_host("h:host-gateway", None).is_err());
    }

    #[test]
    fn hosts_file_has_the_container_address() {
        let h = hosts(
            &[("db".into(), "10.0.0.9".into())],
            &[("10.77.0.2".parse().unwrap(), vec!["web".into()])],
            "abc",
        );
        assert!(h.contains("10.0.0.9\tdb\n"));
        assert!(h.ends_with("10.77.0.2\tabc web\n"));
        assert!(hosts(&[], &[], "abc").ends_with("127.0.1.1\tabc\n"));
    }
}
