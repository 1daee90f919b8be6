//! The network driver seam (netavark's shape): `validate` checks a request and changes
//! nothing, `setup` makes the container's interface on one network, `teardown` undoes it
//! and keeps going after errors.
//!
//! ```text
//!   Net::setup(container)                       for each attachment, in order:
//!     lock ─ netns ─ IPAM (one transaction) ─┬─ driver.validate(req)   (all first)
//!                                            └─ driver.setup(req)      (then each; a failure
//!                                                tears down those already set up, in reverse)
//!     ─ firewall batch (ports + networks) ─ /etc files ─ DNS resolver ─ unlock
//!   Net::teardown(container)                    firewall ─ driver.teardown (each) ─ IPAM ─
//!                                               netns ─ bridges without endpoints; every
//!                                               error collected
//! ```
//!
//! [`crate::bridge::Bridge`] is the one driver today. A rootless driver (pasta or
//! slirp4netns: a user-mode stack attached to the container's namespace, which also
//! forwards published ports itself) plugs in here: it takes the same [`Request`], sets
//! the namespace up its own way, and reports `publishes_ports() == true` so the nftables
//! maps are left alone.

use std::net::IpAddr;

use crate::error::Result;
use crate::netns::Netns;
use crate::store::Network;

/// One container's interface on one network, addresses already allocated.
#[derive(Debug)]
pub struct Request<'a> {
    /// The network.
    pub network: &'a Network,
    /// The container id.
    pub container: &'a str,
    /// Its namespace.
    pub netns: &'a Netns,
    /// `eth0`, `eth1`...
    pub ifname: &'a str,
    /// The host end's name.
    pub host_veth: &'a str,
    /// Its IPv4 address.
    pub ipv4: Option<IpAddr>,
    /// Its IPv6 address.
    pub ipv6: Option<IpAddr>,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Whether this interface carries the default route (the first network).
    pub default_route: bool,
}

/// How a container's interface goes at teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Deleted now (`network disconnect` of a running container; a namespace that
    /// another container shares).
    Delete,
    /// Its namespace dies right after, with nobody in it: the host end is only taken out
    /// of service (down: no forwarding, its learned addresses flushed) and the kernel
    /// removes the pair when it cleans the dead namespace up, in a worker of its own.
    /// Unregistering a device waits for every pending RCU callback (`rcu_barrier`,
    /// ~20 ms here, the biggest part of a teardown), and that wait is then not the
    /// caller's.
    WithNamespace,
}

/// A network driver.
pub trait Driver {
    /// Checks that `req` can be set up; changes nothing.
    fn validate(&self, req: &Request<'_>) -> Result<()>;
    /// Makes the interface; on error leaves nothing of it behind.
    fn setup(&self, req: &Request<'_>) -> Result<()>;
    /// Removes the interface; gone is not an error. `release`: how (see [`Release`]).
    /// `remove_network`: network-wide pieces (a bridge) go too.
    fn teardown(
        &self,
        network: &Network,
        host_veth: &str,
        release: Release,
        remove_network: bool,
    ) -> Result<()>;
    /// Whether the driver forwards published ports itself (no nftables maps then).
    fn publishes_ports(&self) -> bool {
        false
    }
}
