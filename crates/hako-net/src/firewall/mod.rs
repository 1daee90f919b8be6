//! Kernel NAT and filtering in hako's own nftables table, `inet hako` (where nftables is
//! unusable, the same behaviour in iptables chains of hako's own: `iptables.rs`; which
//! driver: `backend.rs`).
//!
//! The rules never change with containers: they look up sets and maps, and a container or
//! a network only adds and removes *elements*. So a start is one small batch, a port range
//! of a thousand ports is a thousand map elements looked up in one hash (never a thousand
//! rules or processes), and the rules read the same whatever runs.
//!
//! ```text
//! table inet hako
//!   sets    bridges (ifname)          every hako bridge
//!           internal (ifname)         bridges of --internal networks
//!           pairs (ifname . ifname)   br . br: routed traffic that may stay on a bridge
//!           nets4/nets6 (interval)    every hako subnet
//!           masq4/masq6 (interval)    subnets masqueraded on the way out (not internal)
//!   maps    ports4/ports6             daddr . proto . port  → container addr . port
//!           anyports4/anyports6       proto . port          → container addr . port
//!   raw_prerouting  (raw)       iifname @bridges daddr 127/8 drop  (route_localnet is on
//!                               for bridges; containers must not reach host loopback)
//!   prerouting / output (dnat)  fib daddr type local → hostports
//!   hostports                   dnat through ports4, anyports4, ports6, anyports6
//!   postrouting (srcnat)        DNATed from 127/8 or a hako subnet to a bridge → masquerade
//!                               (localhost and hairpin); from @masq out of a non-hako
//!                               interface, not multicast → masquerade
//!   forward (filter)            to a bridge: ct invalid drop, established/related accept;
//!                               internal bridges: drop routed traffic in or out;
//!                               between two different bridges: drop (isolation)
//! ```
//!
//! The first rule of `hostports` carries a mark, `comment "hako-rules-HASH"` (HASH: of the
//! rules' text, so a hako with other rules sees an older table as stale). A batch that adds
//! is first tried as one command: list `hostports`, add the elements. When the listing
//! shows the mark, that was all: the chains stay as they are (no rule is deleted, so the
//! kernel has nothing to destroy, see `hako_sys::nftables`). Otherwise (no table: `nft
//! flush ruleset`, a firewall reload; flushed chains; another hako's rules) the batch is
//! applied again with the table, sets and maps re-declared (`add` is a no-op for what
//! exists) and the chains rebuilt (flush + add) in the same transaction as its elements:
//! the rules are never half there. A batch that only deletes is just its deletions. The
//! *elements* of running containers are put back by the housekeeping pass
//! (`Net::reconcile`, which checks the same mark).
//!
//! IPv6 loopback: the kernel refuses `::1` as a source or destination on any interface
//! but `lo`, so a DNAT of `[::1]:P` cannot work (the SYN-ACK is dropped after de-NAT).
//! `hostports` lets `::1` through untouched to the port's own socket, on which the shim
//! relays TCP to the container (`hako-shim`'s `--proxy`); no map element is made for it.

mod backend;
pub mod foreign;
pub mod generation;
pub mod iptables;

pub use backend::Backend;

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::error::Result;
use crate::ports::Mapping;
use crate::store::Network;

/// hako's table (family `inet`).
pub const TABLE: &str = "hako";

/// What marks hako's rules as this hako writes them: `hako-rules-` and an FNV-1a hash of
/// their text (without the mark).
fn mark() -> &'static str {
    static MARK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARK.get_or_init(|| {
        let h = ruleset_marked("")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        format!("hako-rules-{h:016x}")
    })
}

/// The table, sets, maps and chains, the first `hostports` rule marked; rules are
/// rebuilt, elements are kept.
fn ruleset() -> String {
    ruleset_marked(&format!(" comment \"{}\"", mark()))
}

fn ruleset_marked(mark: &str) -> String {
    format!(
        "add table inet {TABLE}
add set inet {TABLE} bridges {{ type ifname; }}
add set inet {TABLE} internal {{ type ifname; }}
add set inet {TABLE} pairs {{ type ifname . ifname; }}
add set inet {TABLE} nets4 {{ type ipv4_addr; flags interval; }}
add set inet {TABLE} nets6 {{ type ipv6_addr; flags interval; }}
add set inet {TABLE} masq4 {{ type ipv4_addr; flags interval; }}
add set inet {TABLE} masq6 {{ type ipv6_addr; flags interval; }}
add map inet {TABLE} ports4 {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
add map inet {TABLE} ports6 {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}
add map inet {TABLE} anyports4 {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
add map inet {TABLE} anyports6 {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}
add chain inet {TABLE} raw_prerouting {{ type filter hook prerouting priority -300; policy accept; }}
add chain inet {TABLE} prerouting {{ type nat hook prerouting priority -100; policy accept; }}
add chain inet {TABLE} output {{ type nat hook output priority -100; policy accept; }}
add chain inet {TABLE} hostports
add chain inet {TABLE} postrouting {{ type nat hook postrouting priority 100; policy accept; }}
add chain inet {TABLE} forward {{ type filter hook forward priority 0; policy accept; }}
flush chain inet {TABLE} raw_prerouting
flush chain inet {TABLE} prerouting
flush chain inet {TABLE} output
flush chain inet {TABLE} hostports
flush chain inet {TABLE} postrouting
flush chain inet {TABLE} forward
add rule inet {TABLE} raw_prerouting iifname @bridges ip daddr 127.0.0.0/8 drop
add rule inet {TABLE} prerouting fib daddr type local jump hostports
add rule inet {TABLE} output fib daddr type local jump hostports
add rule inet {TABLE} hostports meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @ports4{mark}
add rule inet {TABLE} hostports meta nfproto ipv4 dnat ip to meta l4proto . th dport map @anyports4
add rule inet {TABLE} hostports ip6 daddr ::1 return
add rule inet {TABLE} hostports meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6
add rule inet {TABLE} hostports meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @anyports6
add rule inet {TABLE} postrouting ct status dnat oifname @bridges ip saddr 127.0.0.0/8 masquerade
add rule inet {TABLE} postrouting ct status dnat oifname @bridges ip saddr @nets4 masquerade
add rule inet {TABLE} postrouting ct status dnat oifname @bridges ip6 saddr @nets6 masquerade
add rule inet {TABLE} postrouting oifname != @bridges ip saddr @masq4 ip daddr != 224.0.0.0/4 masquerade
add rule inet {TABLE} postrouting oifname != @bridges ip6 saddr @masq6 ip6 daddr != ff00::/8 masquerade
add rule inet {TABLE} forward oifname @bridges ct state invalid drop
add rule inet {TABLE} forward oifname @bridges ct state related,established accept
add rule inet {TABLE} forward iifname @internal drop
add rule inet {TABLE} forward oifname @internal drop
add rule inet {TABLE} forward iifname @bridges oifname @bridges iifname . oifname != @pairs drop
"
    )
}

/// Element changes, applied as one batch with the rules (the iptables driver: the
/// same changes as rules, `iptables::Rule`).
#[derive(Debug, Default)]
pub struct Batch {
    add: Vec<(String, String)>,
    del: Vec<(String, String)>,
    rules_add: Vec<iptables::Rule>,
    rules_del: Vec<iptables::Rule>,
}

fn port_key(m: &Mapping) -> (String, String) {
    let v6 = m.host_ip.is_ipv6();
    let set = match (m.any_address(), v6) {
        (true, false) => "anyports4",
        (true, true) => "anyports6",
        (false, false) => "ports4",
        (false, true) => "ports6",
    };
    let key = if m.any_address() {
        format!("{} . {}", m.proto.as_str(), m.host_port)
    } else {
        format!("{} . {} . {}", m.host_ip, m.proto.as_str(), m.host_port)
    };
    (set.to_string(), key)
}

impl Batch {
    /// A network's elements (its bridge exists).
    pub fn add_network(&mut self, n: &Network) {
        self.add.extend(network_elements(n));
        self.rules_add.extend(iptables::network_rules(n));
    }

    /// Removes a network's elements.
    pub fn del_network(&mut self, n: &Network) {
        self.del.extend(network_elements(n));
        self.rules_del.extend(iptables::network_rules(n));
    }

    /// A published port to `target` (the container's address of the mapping's family).
    pub fn add_port(&mut self, m: &Mapping, target: IpAddr) {
        if m.host_ip.is_loopback() && m.host_ip.is_ipv6() {
            return;
        }
        let (set, key) = port_key(m);
        self.add
            .push((set, format!("{key} : {target} . {}", m.container_port)));
        self.rules_add.extend(iptables::port_rule(m, target));
    }

    /// Removes a published port.
    pub fn del_port(&mut self, m: &Mapping) {
        if m.host_ip.is_loopback() && m.host_ip.is_ipv6() {
            return;
        }
        self.del.push(port_key(m));
        self.rules_del.extend(iptables::port_del(m));
    }

    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.del.is_empty()
    }

    fn text(&self, with_rules: bool) -> String {
        let mut s = if with_rules { ruleset() } else { String::new() };
        for (set, e) in &self.del {
            let _ = writeln!(s, "delete element inet {TABLE} {set} {{ {e} }}");
        }
        for (set, e) in &self.add {
            let _ = writeln!(s, "add element inet {TABLE} {set} {{ {e} }}");
        }
        s
    }

    /// Applies the batch atomically. A batch that adds: its elements alone when hako's
    /// rules are in place (the mark, checked in the same command), else again with the
    /// table and the chains rebuilt. A batch that only deletes needs no chains: a teardown
    /// is one small transaction. A deletion of an element that is already gone fails a
    /// whole nft transaction; then each deletion is retried on its own (gone is fine) and
    /// the additions applied after: teardown must not stop there.
    pub fn apply(&self, backend: Backend) -> Result<()> {
        if let Backend::Iptables { legacy } = backend {
            return iptables::apply(legacy, &self.rules_add, &self.rules_del);
        }
        let with_rules = !self.add.is_empty();
        if with_rules
            && backend
                .apply(&format!(
                    "list chain inet {TABLE} hostports\n{}",
                    self.text(false)
                ))
                .is_ok_and(|listing| listing.contains(mark()))
        {
            return Ok(());
        }
        match backend.apply(&self.text(with_rules)) {
            Ok(_) => Ok(()),
            Err(e) if self.del.is_empty() => Err(e),
            Err(_) => {
                for (set, el) in &self.del {
                    let _ =
                        backend.apply(&format!("delete element inet {TABLE} {set} {{ {el} }}\n"));
                }
                if !with_rules {
                    return Ok(());
                }
                let adds = Batch {
                    add: self.add.clone(),
                    ..Batch::default()
                };
                backend.apply(&adds.text(true)).map(|_| ())
            }
        }
    }
}

fn network_elements(n: &Network) -> Vec<(String, String)> {
    let br = &n.bridge;
    let mut v = vec![
        ("bridges".to_string(), format!("\"{br}\"")),
        ("pairs".to_string(), format!("\"{br}\" . \"{br}\"")),
    ];
    if n.internal {
        v.push(("internal".into(), format!("\"{br}\"")));
    }
    for s in &n.subnets {
        let net = s.subnet.trunc();
        let fam = if net.addr().is_ipv6() { "6" } else { "4" };
        v.push((format!("nets{fam}"), net.to_string()));
        if !n.internal {
            v.push((format!("masq{fam}"), net.to_string()));
        }
    }
    v
}

/// Lists the table (`nft list table inet hako`; the iptables driver: hako's chains and
/// rules as `iptables-save` prints them), empty when there is none.
pub fn list(backend: Backend) -> String {
    match backend {
        Backend::Iptables { legacy } => iptables::list(legacy),
        _ => backend
            .apply(&format!("list table inet {TABLE}\n"))
            .unwrap_or_default(),
    }
}

/// Whether hako's rules are in place (a flushed ruleset or a firewall reload removes them:
/// then `Net::reconcile` puts back the elements of running containers).
pub fn intact(backend: Backend) -> bool {
    match backend {
        Backend::Iptables { legacy } => iptables::intact(legacy),
        // One chain, not the whole table: a listing of the table dumps every element of
        // every map (every published port), and each engine open asks this. The mark:
        // rules of this hako (an older hako's table is rebuilt).
        _ => backend
            .apply(&format!("list chain inet {TABLE} hostports\n"))
            .is_ok_and(|l| l.contains(mark())),
    }
}
