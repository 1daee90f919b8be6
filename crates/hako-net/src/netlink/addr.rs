//! Addresses.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Socket, nl_err};
use crate::error::Result;

impl Socket {
    /// Adds `ip/prefix` to link `index`. IPv6 addresses skip duplicate address detection
    /// (`IFA_F_NODAD`): the address is ours by IPAM, and a tentative address would make
    /// the first second of a container's life fail to bind or route.
    pub fn add_addr(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        let mut m = AddressMessage::default();
        m.header.index = index;
        m.header.prefix_len = prefix;
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.attributes.push(AddressAttribute::Local(ip));
        m.attributes.push(AddressAttribute::Address(ip));
        if ip.is_ipv6() {
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        // REPLACE: a bridge that already has its gateway address keeps it (idempotent).
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map_err(nl_err(format!("add address {ip}/{prefix}")))
    }

    /// Every address in this namespace: (ifindex, address, prefix).
    pub fn addrs(&mut self) -> Result<Vec<(u32, IpAddr, u8)>> {
        let all = self
            .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
            .map_err(nl_err("list addresses"))?;
        let mut out = Vec::new();
        for m in all {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                for attr in &a.attributes {
                    if let AddressAttribute::Address(ip) = attr {
                        out.push((a.header.index, *ip, a.header.prefix_len));
                    }
                }
            }
        }
        Ok(out)
    }
}
