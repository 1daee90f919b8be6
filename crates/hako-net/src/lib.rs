//! hako's container networking, under the engine (DESIGN.md "Networking").
//!
//! The engine asks [`Net::setup`] for a container's network before the runtime starts it
//! (in two halves, [`Net::setup_begin`] then [`Wiring::finish`] on a thread beside the
//! shim's start-up) and gives it back with [`Net::teardown`] when the container stops, whoever notices:
//! the CLI that stopped it, the shim's exit command, or any later hako process's
//! housekeeping after a `kill -9`. Everything here is validated before anything changes,
//! undone in reverse on failure, and torn down with every error collected.
//!
//! ```text
//!   netns      <exec-root>/netns/<id>: a bind-mounted namespace, handed to the runtime by
//!              path in config.json; kept across restarts of a --restart container
//!   bridge     hako0 (network `bridge`), hk-<id12> (user networks); made with the first
//!              container on the network; a user network's deleted with its last, hako0
//!              kept (as docker0)
//!   veth       hk<id10><n> on the host ─ eth<n> made directly in the container's namespace
//!   IPAM       net_endpoints in <root>/hako-image.db, one transaction per allocation
//!   firewall   table inet hako: sets and maps, elements per container (firewall.rs)
//!   ports      host ports bound here, held by the container's shim (ports.rs)
//!   DNS        hako-dns, one per exec root, for user networks (dns/)
//! ```
//!
//! One hako root per network namespace: two roots would both call their bridge `hako0`.
//! All changes to the host's network go through one lock (`<exec-root>/network.lock`).

pub mod bridge;
pub mod dns;
pub mod driver;
mod error;
pub mod files;
pub mod firewall;
pub mod ipam;
mod net;
pub mod netlink;
pub mod netns;
pub mod ports;
mod spare;
pub use spare::spare_alive;
pub mod store;
mod subnets;

pub use error::{Error, ErrorList, Result};
pub use net::{
    AttachRequest, ContainerNet, Net, NetOptions, NetSnapshot, NetworkCreate, Setup, SetupRequest,
    Wiring,
};
pub use store::{Attachment, Endpoint, Network, Sandbox, Subnet};

/// `n` random hex digits.
pub fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n.div_ceil(2)];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = u8::try_from((t >> ((i % 16) * 8)) & 0xff).unwrap_or(0);
        }
    }
    let mut s: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(n);
    s
}
