//! The bridge driver: a Linux bridge per network (made with its first container; a
//! user-defined network's deleted with its last, the default network's kept, as Docker
//! keeps `docker0`), one veth pair per container, the container end made directly in its
//! namespace and the pair removed by the kernel with that namespace.

use std::net::IpAddr;
use std::sync::Mutex;

use crate::driver::{Driver, Release, Request};
use crate::error::{Error, Result};
use crate::netlink::{Socket, VethSpec};
use crate::netns::sysctl;
use crate::store::Network;

/// The bridge driver, with a netlink socket in the host's namespace.
#[derive(Debug)]
pub struct Bridge {
    nl: Mutex<Socket>,
}

impl Bridge {
    /// A driver talking to the calling thread's network namespace.
    pub fn new() -> Result<Bridge> {
        Ok(Bridge {
            nl: Mutex::new(Socket::new()?),
        })
    }

    fn nl(&self) -> std::sync::MutexGuard<'_, Socket> {
        self.nl.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the network's bridge if it is missing: addresses (the gateways), up, and the
    /// sysctls that routing and published ports need. Returns its ifindex.
    pub fn ensure(&self, n: &Network) -> Result<u32> {
        let mut nl = self.nl();
        let link = match nl.link(&n.bridge)? {
            Some(l) => l,
            None => {
                match nl.add_bridge(&n.bridge, n.mtu, crate::ipam::mac_for(None)) {
                    Ok(()) => {}
                    Err(Error::Netlink { source, .. })
                        if source.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                nl.link(&n.bridge)?.ok_or_else(|| Error::Netlink {
                    context: format!("create bridge {}", n.bridge),
                    source: std::io::Error::from_raw_os_error(libc::ENODEV),
                })?
            }
        };
        let made = (|| {
            if n.v6().is_some() {
                // Before the address: a v6 bridge address must not wait for DAD.
                sysctl(&format!("net/ipv6/conf/{}/accept_dad", n.bridge), "0")?;
                sysctl(&format!("net/ipv6/conf/{}/disable_ipv6", n.bridge), "0")?;
            }
            for s in &n.subnets {
                nl.add_addr(link.index, s.gateway, s.subnet.prefix_len())?;
            }
            if !link.up {
                nl.set_up(link.index, &n.bridge)?;
            }
            sysctl("net/ipv4/ip_forward", "1")?;
            // 127.0.0.1:PORT → container: the DNATed packet keeps its loopback source
            // until masquerade, which the kernel allows on this bridge only with this.
            sysctl(&format!("net/ipv4/conf/{}/route_localnet", n.bridge), "1")?;
            if n.v6().is_some() {
                sysctl("net/ipv6/conf/all/forwarding", "1")?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            let _ = nl.del_link(&n.bridge);
            return Err(e);
        }
        Ok(link.index)
    }
}

fn gateway(n: &Network, v6: bool) -> Option<IpAddr> {
    if v6 { n.v6() } else { n.v4() }.map(|s| s.gateway)
}

impl Driver for Bridge {
    fn validate(&self, req: &Request<'_>) -> Result<()> {
        if req.network.driver != "bridge" {
            return Err(Error::InvalidArgument(format!(
                "network {} has driver {}, not bridge",
                req.network.name, req.network.driver
            )));
        }
        if req.host_veth.len() > 15 || req.network.bridge.len() > 15 {
            return Err(Error::InvalidArgument(format!(
                "interface name {} is longer than 15 characters",
                req.host_veth
            )));
        }
        Ok(())
    }

    fn setup(&self, req: &Request<'_>) -> Result<()> {
        let n = req.network;
        let br = self.ensure(n)?;
        {
            let mut nl = self.nl();
            let spec = VethSpec {
                host: req.host_veth,
                peer: req.ifname,
                netns: std::os::fd::AsFd::as_fd(req.netns.file()),
                mtu: n.mtu,
                peer_mac: Some(req.mac),
            };
            match nl.add_veth(&spec) {
                // The pair of this container's last run, released with its namespace
                // (Release::WithNamespace) and not yet removed by the kernel: a restart
                // right after its stop. Deleted now, then made again.
                Err(Error::Netlink { source, .. })
                    if source.raw_os_error() == Some(libc::EEXIST) =>
                {
                    nl.del_link(req.host_veth)?;
                    nl.add_veth(&spec)?;
                }
                r => r?,
            }
        }
        let done = (|| {
            let mut nl = self.nl();
            let host = nl.link(req.host_veth)?.ok_or_else(|| Error::Netlink {
                context: format!("find {}", req.host_veth),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            })?;
            nl.enslave(host.index, req.host_veth, br)?;
            drop(nl);
            let (ifname, v4, v6, route) = (req.ifname, req.ipv4, req.ipv6, req.default_route);
            let (gw4, gw6) = (gateway(n, false), gateway(n, true));
            let prefix4 = n.v4().map(|s| s.subnet.prefix_len());
            let prefix6 = n.v6().map(|s| s.subnet.prefix_len());
            req.netns.run(move || {
                if v6.is_some() {
                    sysctl(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0")?;
                    sysctl(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "0")?;
                } else {
                    // No IPv6 on an interface of an IPv4-only network, as Docker (26 and
                    // later; `lo` keeps ::1): no link-local address, no duplicate address
                    // detection or MLD reports for it (their work came with every start).
                    // Best effort: a kernel without IPv6 has nothing to disable.
                    let _ = sysctl(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "1");
                }
                let mut c = Socket::new()?;
                let link = c.link(ifname)?.ok_or_else(|| Error::Netlink {
                    context: format!("find {ifname} in the container"),
                    source: std::io::Error::from_raw_os_error(libc::ENODEV),
                })?;
                if let (Some(a), Some(p)) = (v4, prefix4) {
                    c.add_addr(link.index, a, p)?;
                }
                if let (Some(a), Some(p)) = (v6, prefix6) {
                    c.add_addr(link.index, a, p)?;
                }
                c.set_up(link.index, ifname)?;
                if route && !n.internal {
                    if let (Some(_), Some(g)) = (v4, gw4) {
                        c.add_default_route(g, link.index)?;
                    }
                    if let (Some(_), Some(g)) = (v6, gw6) {
                        c.add_default_route(g, link.index)?;
                    }
                }
                Ok(())
            })
        })();
        if let Err(e) = done {
            let _ = self.nl().del_link(req.host_veth);
            return Err(e);
        }
        Ok(())
    }

    fn teardown(
        &self,
        network: &Network,
        host_veth: &str,
        release: Release,
        remove_network: bool,
    ) -> Result<()> {
        let mut nl = self.nl();
        if remove_network {
            // The bridge and its last port in one unregistration (Socket::del_links).
            return nl.del_links(&[host_veth, &network.bridge]);
        }
        if host_veth.is_empty() {
            return Ok(());
        }
        if release == Release::WithNamespace && nl.set_down(host_veth).is_ok() {
            return Ok(());
        }
        nl.del_link(host_veth)
    }
}
