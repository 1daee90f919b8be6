//! Choosing subnets: defaults that avoid the host's routes and addresses and the other
//! networks, and the checks of user-given ones.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::error::{Error, Result};
use crate::netlink::Socket;
use crate::store::Subnet;

/// The default bridge's candidates, in order (Docker takes 172.17.0.0/16 for docker0;
/// hako stays clear of it so both can run on one host).
pub const BRIDGE_POOL: [&str; 4] = [
    "10.77.0.0/16",
    "10.76.0.0/16",
    "172.29.0.0/16",
    "192.168.177.0/24",
];

/// User networks get /24s from here.
pub const USER_POOLS: [&str; 2] = ["10.78.0.0/16", "10.79.0.0/16"];

/// What is already routed or addressed here: prefixes that a new subnet must not overlap.
pub fn host_prefixes(nl: &mut Socket) -> Result<Vec<IpNet>> {
    let mut out = Vec::new();
    for r in nl.routes()? {
        if r.prefix == 0 {
            continue;
        }
        if let Ok(n) = IpNet::new(r.dst, r.prefix) {
            out.push(n.trunc());
        }
    }
    for (_, a, p) in nl.addrs()? {
        if a.is_loopback() || matches!(a, IpAddr::V6(v) if v.segments()[0] == 0xfe80) {
            continue;
        }
        if let Ok(n) = IpNet::new(a, p) {
            out.push(n.trunc());
        }
    }
    Ok(out)
}

/// Whether two prefixes share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first candidate that overlaps nothing in `taken`.
pub fn pick(candidates: impl IntoIterator<Item = IpNet>, taken: &[IpNet]) -> Option<IpNet> {
    candidates
        .into_iter()
        .find(|c| !taken.iter().any(|t| overlaps(c, t)))
}

/// /24s of the user pools.
pub fn user_candidates() -> impl Iterator<Item = IpNet> {
    USER_POOLS.into_iter().flat_map(|p| {
        p.parse::<Ipv4Net>()
            .ok()
            .and_then(|n| n.subnets(24).ok())
            .into_iter()
            .flatten()
            .map(IpNet::V4)
    })
}

/// A unique-local IPv6 /64 (`fdXX:XXXX:XXXX:XXXX::/64`, random global id and subnet id).
pub fn random_ula() -> IpNet {
    let h = crate::random_hex(14);
    let word = |i: usize| u16::from_str_radix(&h[i..i + 4], 16).unwrap_or(0);
    let first = 0xfd00 | u16::from_str_radix(&h[12..14], 16).unwrap_or(0);
    let a = Ipv6Addr::new(first, word(0), word(4), word(8), 0, 0, 0, 0);
    IpNet::V6(Ipv6Net::new(a, 64).unwrap_or_default())
}

/// The first host address of a subnet (the default gateway).
pub fn first_host(n: &IpNet) -> IpAddr {
    match n {
        IpNet::V4(v) => IpAddr::V4((u32::from(v.network()) + 1).into()),
        IpNet::V6(v) => IpAddr::V6((u128::from(v.network()) + 1).into()),
    }
}

/// Checks and completes a user-given subnet (`--subnet --gateway --ip-range`).
pub fn user_subnet(subnet: &str, gateway: Option<&str>, ip_range: Option<&str>) -> Result<Subnet> {
    let net: IpNet = subnet
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("invalid CIDR address: {subnet}")))?;
    if net != net.trunc() {
        return Err(Error::InvalidArgument(format!(
            "invalid subnet {subnet}: it should be {}",
            net.trunc()
        )));
    }
    let max = if net.addr().is_ipv4() { 30 } else { 126 };
    if net.prefix_len() > max {
        return Err(Error::InvalidArgument(format!(
            "invalid subnet {subnet}: too small for a network"
        )));
    }
    let gateway = match gateway {
        Some(g) => {
            let g: IpAddr = g
                .parse()
                .map_err(|_| Error::InvalidArgument(format!("invalid gateway address: {g}")))?;
            if !net.contains(&g) || g == net.network() || (g.is_ipv4() && g == net.broadcast()) {
                return Err(Error::InvalidArgument(format!(
                    "no matching subnet for gateway {g}"
                )));
            }
            g
        }
        None => first_host(&net),
    };
    let ip_range = match ip_range {
        Some(r) => {
            let r: IpNet = r
                .parse()
                .map_err(|_| Error::InvalidArgument(format!("invalid CIDR address: {r}")))?;
            if !net.contains(&r) {
                return Err(Error::InvalidArgument(format!(
                    "no matching subnet for range {r}"
                )));
            }
            Some(r.trunc())
        }
        None => None,
    };
    Ok(Subnet {
        subnet: net,
        gateway,
        ip_range,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_around_what_is_taken() {
        let taken: Vec<IpNet> = vec!["10.78.0.0/23".parse().unwrap()];
        assert_eq!(
            pick(user_candidates(), &taken).unwrap().to_string(),
            "10.78.2.0/24"
        );
        let all: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(
            pick(BRIDGE_POOL.iter().map(|s| s.parse().unwrap()), &all)
                .unwrap()
                .to_string()
                .starts_with("172.29")
        );
    }

    #[test]
    fn user_subnets_are_checked() {
        let s = user_subnet("10.5.0.0/16", None, None).unwrap();
        assert_eq!(s.gateway.to_string(), "10.5.0.1");
        for (sub, gw, r, msg) in [
            ("10.5.0.0/33", None, None, "invalid CIDR"),
            ("nope", None, None, "invalid CIDR"),
            ("10.5.0.1/16", None, None, "it should be 10.5.0.0/16"),
            (
                "10.5.0.0/16",
                Some("10.6.0.1"),
                None,
                "no matching subnet for gateway",
            ),
            (
                "10.5.0.0/16",
                None,
                Some("10.6.0.0/24"),
                "no matching subnet for range",
            ),
        ] {
            let e = user_subnet(sub, gw, r).unwrap_err().to_string();
            assert!(e.contains(msg), "{sub}: {e}");
        }
        let u = random_ula();
        assert!(u.to_string().starts_with("fd"), "{u}");
        assert_eq!(u.prefix_len(), 64);
    }
}
