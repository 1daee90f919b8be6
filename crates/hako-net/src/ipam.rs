//! Address allocation: the next free address after the last one handed out (podman's
//! allocator: addresses are not reused at once), skipping the network address, the
//! gateway and the IPv4 broadcast address; or the address the user asked for (`--ip`).
//!
//! Uniqueness does not rest on this search: `net_endpoints` has `UNIQUE (network, ipv4)`,
//! and the search + insert is one `BEGIN IMMEDIATE` transaction (see [`crate::Net`]).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::store::Subnet;

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(0)))
    }
}

/// Whether `a` may be given to a container on `s`.
pub fn usable(s: &Subnet, a: IpAddr) -> bool {
    let range = s.ip_range.unwrap_or(s.subnet);
    if !s.subnet.contains(&a) || !range.contains(&a) || a == s.gateway {
        return false;
    }
    // The network address of the subnet, and of the range (x.x.x.0 looks like one).
    if a == s.subnet.network() || (a.is_ipv4() && a == range.network()) {
        return false;
    }
    !(a.is_ipv4() && a == s.subnet.broadcast())
}

/// The first usable address after `last` (wrapping), not in `used`.
pub fn next_free(s: &Subnet, used: &HashSet<IpAddr>, last: Option<IpAddr>) -> Option<IpAddr> {
    let range: IpNet = s.ip_range.unwrap_or(s.subnet);
    let v6 = range.addr().is_ipv6();
    let lo = to_u128(range.network());
    let hi = to_u128(range.broadcast());
    let size = hi - lo + 1;
    let start = last
        .filter(|l| range.contains(l))
        .map(|l| to_u128(l) + 1)
        .unwrap_or(lo);
    // Enough tries for any IPv4 range; an IPv6 /64 is never that full.
    let tries = size.min(1 << 20);
    for i in 0..tries {
        let v = lo + (start - lo + i) % size;
        let a = from_u128(v, v6);
        if usable(s, a) && !used.contains(&a) {
            return Some(a);
        }
    }
    None
}

/// Picks an address on `s`: `wanted` if given (checked), else the next free one.
pub fn allocate(
    s: &Subnet,
    network_name: &str,
    used: &HashSet<IpAddr>,
    last: Option<IpAddr>,
    wanted: Option<IpAddr>,
) -> Result<IpAddr> {
    if let Some(w) = wanted {
        if !s.subnet.contains(&w) {
            return Err(Error::InvalidArgument(format!(
                "no configured subnet or ip-range contain the IP address {w}"
            )));
        }
        if !usable(s, w) || used.contains(&w) {
            return Err(Error::Conflict(format!("Address already in use: {w}")));
        }
        return Ok(w);
    }
    next_free(s, used, last).ok_or_else(|| {
        Error::Conflict(format!(
            "no available IPv{} addresses on network {network_name}",
            if s.subnet.addr().is_ipv6() { 6 } else { 4 }
        ))
    })
}

/// Docker's MAC for an IPv4 address: `02:42` then the four address bytes.
pub fn mac_for(v4: Option<IpAddr>) -> [u8; 6] {
    match v4 {
        Some(IpAddr::V4(a)) => {
            let o = a.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        _ => {
            let mut b = [0u8; 6];
            let r = crate::random_hex(12);
            for (i, byte) in b.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&r[i * 2..i * 2 + 2], 16).unwrap_or(0);
            }
            b[0] = (b[0] & 0xfe) | 0x02;
            b
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (a unicast address).
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || Error::InvalidArgument(format!("{s} is not a valid mac address"));
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        m[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if m[0] & 1 == 1 {
        return Err(bad());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(s: &str, gw: &str) -> Subnet {
        Subnet {
            subnet: s.parse().unwrap(),
            gateway: gw.parse().unwrap(),
            ip_range: None,
        }
    }

    #[test]
    fn skips_network_gateway_broadcast_and_used() {
        let s = sub("10.1.2.0/29", "10.1.2.1");
        let mut used = HashSet::new();
        let a = next_free(&s, &used, None).unwrap();
        assert_eq!(a.to_string(), "10.1.2.2");
        used.insert(a);
        let b = next_free(&s, &used, Some(a)).unwrap();
        assert_eq!(b.to_string(), "10.1.2.3");
        for i in 3..=6 {
            used.insert(format!("10.1.2.{i}").parse().unwrap());
        }
        assert_eq!(
            next_free(&s, &used, Some(b)),
            None,
            "broadcast .7 is never given"
        );
    }

    #[test]
    fn wraps_after_the_last_and_honours_ranges() {
        let s = sub("10.1.2.0/24", "10.1.2.1");
        let used = HashSet::new();
        let a = next_free(&s, &used, Some("10.1.2.254".parse().unwrap())).unwrap();
        assert_eq!(a.to_string(), "10.1.2.2");
        let mut r = sub("10.1.0.0/16", "10.1.0.1");
        r.ip_range = Some("10.1.5.0/24".parse().unwrap());
        assert_eq!(next_free(&r, &used, None).unwrap().to_string(), "10.1.5.1");
    }

    #[test]
    fn wanted_addresses_are_checked() {
        let s = sub("10.1.2.0/24", "10.1.2.1");
        let mut used = HashSet::new();
        used.insert("10.1.2.9".parse().unwrap());
        let a = allocate(&s, "n", &used, None, Some("10.1.2.8".parse().unwrap())).unwrap();
        assert_eq!(a.to_string(), "10.1.2.8");
        assert!(allocate(&s, "n", &used, None, Some("10.1.2.9".parse().unwrap())).is_err());
        assert!(allocate(&s, "n", &used, None, Some("10.1.2.1".parse().unwrap())).is_err());
        let e = allocate(&s, "n", &used, None, Some("10.9.9.9".parse().unwrap())).unwrap_err();
        assert!(e.to_string().contains("no configured subnet"), "{e}");
    }

    #[test]
    fn ipv6_and_macs() {
        let s = sub("fd00:1::/64", "fd00:1::1");
        assert_eq!(
            next_free(&s, &HashSet::new(), None).unwrap().to_string(),
            "fd00:1::2"
        );
        assert_eq!(
            mac_text(mac_for(Some("172.17.0.2".parse().unwrap()))),
            "02:42:ac:11:00:02"
        );
        assert!(parse_mac("02:42:ac:11:00:02").is_ok());
        assert!(parse_mac("01:42:ac:11:00:02").is_err(), "multicast");
        assert!(parse_mac("zz").is_err());
    }
}
