//! Routes: the container's default route, and the host's routes (a new subnet must not
//! overlap any of them).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Socket, nl_err};
use crate::error::Result;

/// A route's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network address.
    pub dst: IpAddr,
    /// Its prefix length (0: default route).
    pub prefix: u8,
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn raddr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

impl Socket {
    /// The default route via `gateway` (on link `index`).
    pub fn add_default_route(&mut self, gateway: IpAddr, index: u32) -> Result<()> {
        let mut m = RouteMessage::default();
        m.header = RouteHeader {
            address_family: family(gateway),
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Boot,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..m.header
        };
        m.attributes.push(RouteAttribute::Gateway(raddr(gateway)));
        m.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map_err(nl_err(format!("add default route via {gateway}")))
    }

    /// The destinations of the main table's IPv4 and IPv6 routes.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let mut out = Vec::new();
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut m = RouteMessage::default();
            m.header.address_family = fam;
            let all = self
                .dump(RouteNetlinkMessage::GetRoute(m))
                .map_err(nl_err("list routes"))?;
            for r in all {
                let RouteNetlinkMessage::NewRoute(r) = r else {
                    continue;
                };
                if r.header.table != RouteHeader::RT_TABLE_MAIN {
                    continue;
                }
                for a in &r.attributes {
                    let dst = match a {
                        RouteAttribute::Destination(RouteAddress::Inet(v)) => IpAddr::V4(*v),
                        RouteAttribute::Destination(RouteAddress::Inet6(v)) => IpAddr::V6(*v),
                        _ => continue,
                    };
                    out.push(Route {
                        dst,
                        prefix: r.header.destination_prefix_length,
                    });
                }
            }
        }
        Ok(out)
    }
}
