//! The iptables driver, where nftables cannot be used (a kernel without nf_tables, no
//! libnftables and no `nft`: hosts still on iptables-legacy). The same behaviour as the
//! `inet hako` table, in chains of hako's own (Docker's layout):
//!
//! ```text
//! nat     HAKO-DNAT      from PREROUTING and OUTPUT (-m addrtype --dst-type LOCAL):
//!                        one DNAT rule per published port (ip6tables: ::1 returns first:
//!                        the shim relays IPv6 loopback, see firewall/mod.rs)
//!         HAKO-SNAT      from POSTROUTING: per bridge, DNATed from 127/8 or its subnet to
//!                        it (localhost, hairpin) and its subnet out of another interface
//!                        (not multicast) → MASQUERADE
//! filter  HAKO-FILTER    first in FORWARD: → HAKO-ISOLATION-1; per bridge: to it invalid
//!                        drop, established/related accept; internal: in/out drop; else in
//!                        accept, DNATed to it accept (ahead of a FORWARD policy drop, as
//!                        Docker's own rules)
//!         HAKO-ISOLATION-1/-2  between two different hako bridges: drop
//! raw     HAKO-RAW       from PREROUTING: from a bridge to 127/8 drop
//! ```
//!
//! Every rule carries a comment naming it (`hako:BRIDGE:WHAT`, `hako:port:PROTO:IP:PORT`, `[IPv6]`),
//! which is how a later batch finds it: a batch reads the rules (`iptables-save`), adds what
//! is missing and deletes by the saved text what goes, in one `iptables-restore --noflush`
//! per family (atomic per table). Adding twice is once; deleting what is gone is fine. The
//! chains and their jumps stay when the last container goes (as Docker's).
//!
//! Slower than nftables (two processes per family per batch, a rule per published port
//! instead of a map element): a fallback, not the default.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::ports::Mapping;
use crate::store::Network;

/// Published ports (nat).
pub const DNAT: &str = "HAKO-DNAT";
/// Masquerade (nat).
pub const SNAT: &str = "HAKO-SNAT";
/// Forwarding (filter).
pub const FILTER: &str = "HAKO-FILTER";
/// Between bridges, stage 1 (filter).
pub const ISOLATION1: &str = "HAKO-ISOLATION-1";
/// Between bridges, stage 2 (filter).
pub const ISOLATION2: &str = "HAKO-ISOLATION-2";
/// Containers must not reach host loopback (raw).
pub const RAW: &str = "HAKO-RAW";

/// One rule, found again by its `key` (its comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// ip6tables.
    pub v6: bool,
    /// `nat`, `filter`, `raw`.
    pub table: &'static str,
    /// The chain.
    pub chain: &'static str,
    /// The comment naming it.
    pub key: String,
    /// Matches (before the comment), may be empty.
    pub matches: String,
    /// `-j ...`.
    pub target: String,
    /// Inserted first in its chain (else appended).
    pub first: bool,
}

impl Rule {
    fn new(v6: bool, table: &'static str, chain: &'static str, key: String) -> Rule {
        Rule {
            v6,
            table,
            chain,
            key,
            matches: String::new(),
            target: String::new(),
            first: false,
        }
    }

    fn with(mut self, matches: &str, target: &str) -> Rule {
        self.matches = matches.to_string();
        self.target = target.to_string();
        self
    }

    fn line(&self) -> String {
        let op = if self.first {
            format!("-I {} 1", self.chain)
        } else {
            format!("-A {}", self.chain)
        };
        let mut parts = vec![op];
        if !self.matches.is_empty() {
            parts.push(self.matches.clone());
        }
        parts.push(format!("-m comment --comment \"{}\"", self.key));
        parts.push(self.target.clone());
        parts.join(" ")
    }
}

/// The chains of a family, by table.
fn chains(v6: bool) -> Vec<(&'static str, &'static str)> {
    let mut c = vec![
        ("nat", DNAT),
        ("nat", SNAT),
        ("filter", FILTER),
        ("filter", ISOLATION1),
        ("filter", ISOLATION2),
    ];
    if !v6 {
        c.push(("raw", RAW));
    }
    c
}

/// The jumps into hako's chains and their fixed rules.
fn fixed(v6: bool) -> Vec<Rule> {
    let r = |table, chain, key: &str| Rule::new(v6, table, chain, format!("hako:{key}"));
    let local = "-m addrtype --dst-type LOCAL";
    let mut v = vec![
        r("nat", "PREROUTING", "jump-dnat").with(local, &format!("-j {DNAT}")),
        r("nat", "OUTPUT", "jump-dnat").with(local, &format!("-j {DNAT}")),
        r("nat", "POSTROUTING", "jump-snat").with("", &format!("-j {SNAT}")),
        Rule {
            first: true,
            ..r("filter", "FORWARD", "jump-filter").with("", &format!("-j {FILTER}"))
        },
        Rule {
            first: true,
            ..r("filter", FILTER, "jump-isolation").with("", &format!("-j {ISOLATION1}"))
        },
    ];
    if v6 {
        v.push(Rule {
            first: true,
            ..r("nat", DNAT, "loopback6").with("-d ::1/128", "-j RETURN")
        });
    } else {
        v.push(r("raw", "PREROUTING", "jump-raw").with("", &format!("-j {RAW}")));
    }
    v
}

/// A network's rules (its bridge exists).
pub fn network_rules(n: &Network) -> Vec<Rule> {
    let br = &n.bridge;
    let mut v = Vec::new();
    let families = [
        (false, n.v4().is_some() || n.v6().is_none()),
        (true, n.v6().is_some()),
    ];
    for (v6, on) in families {
        if !on {
            continue;
        }
        let r = |table, chain, what: &str| Rule::new(v6, table, chain, format!("hako:{br}:{what}"));
        v.push(
            r("filter", ISOLATION1, "isolate")
                .with(&format!("-i {br} ! -o {br}"), &format!("-j {ISOLATION2}")),
        );
        v.push(r("filter", ISOLATION2, "isolated").with(&format!("-o {br}"), "-j DROP"));
        v.push(r("filter", FILTER, "invalid").with(
            &format!("-o {br} -m conntrack --ctstate INVALID"),
            "-j DROP",
        ));
        v.push(r("filter", FILTER, "established").with(
            &format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED"),
            "-j ACCEPT",
        ));
        if n.internal {
            v.push(r("filter", FILTER, "in").with(&format!("-i {br}"), "-j DROP"));
            v.push(r("filter", FILTER, "out").with(&format!("-o {br}"), "-j DROP"));
        } else {
            v.push(r("filter", FILTER, "in").with(&format!("-i {br}"), "-j ACCEPT"));
            v.push(
                r("filter", FILTER, "out")
                    .with(&format!("-o {br} -m conntrack --ctstate DNAT"), "-j ACCEPT"),
            );
        }
        if !v6 {
            v.push(r("nat", SNAT, "localhost").with(
                &format!("-s 127.0.0.0/8 -o {br} -m conntrack --ctstate DNAT"),
                "-j MASQUERADE",
            ));
            v.push(r("raw", RAW, "loopback").with(&format!("-d 127.0.0.0/8 -i {br}"), "-j DROP"));
        }
    }
    for s in &n.subnets {
        let net = s.subnet.trunc();
        let v6 = net.addr().is_ipv6();
        let r = |what: &str| Rule::new(v6, "nat", SNAT, format!("hako:{br}:{what}:{net}"));
        v.push(r("hairpin").with(
            &format!("-s {net} -o {br} -m conntrack --ctstate DNAT"),
            "-j MASQUERADE",
        ));
        if !n.internal {
            let multicast = if v6 { "ff00::/8" } else { "224.0.0.0/4" };
            v.push(r("masquerade").with(
                &format!("-s {net} ! -d {multicast} ! -o {br}"),
                "-j MASQUERADE",
            ));
        }
    }
    v
}

fn port_key(m: &Mapping) -> Rule {
    Rule::new(
        m.host_ip.is_ipv6(),
        "nat",
        DNAT,
        format!(
            "hako:port:{}:{}",
            m.proto.as_str(),
            std::net::SocketAddr::new(m.host_ip, m.host_port)
        ),
    )
}

/// A published port's rule (none for IPv6 loopback: the shim relays it).
pub fn port_rule(m: &Mapping, target: IpAddr) -> Option<Rule> {
    if m.host_ip.is_loopback() && m.host_ip.is_ipv6() {
        return None;
    }
    let proto = m.proto.as_str();
    let mut matches = String::new();
    if !m.any_address() {
        let bits = if m.host_ip.is_ipv6() { 128 } else { 32 };
        matches = format!("-d {}/{bits} ", m.host_ip);
    }
    matches.push_str(&format!("-p {proto} -m {proto} --dport {}", m.host_port));
    let to = match target {
        IpAddr::V4(a) => format!("{a}:{}", m.container_port),
        IpAddr::V6(a) => format!("[{a}]:{}", m.container_port),
    };
    Some(port_key(m).with(&matches, &format!("-j DNAT --to-destination {to}")))
}

/// What deletes a published port's rule (found by its key).
pub fn port_del(m: &Mapping) -> Option<Rule> {
    if m.host_ip.is_loopback() && m.host_ip.is_ipv6() {
        return None;
    }
    Some(port_key(m))
}

/// The program of a family: `iptables-save`, `ip6tables-legacy-restore`...
fn program(legacy: bool, v6: bool, what: &str) -> String {
    format!(
        "{}{}-{what}",
        if v6 { "ip6tables" } else { "iptables" },
        if legacy { "-legacy" } else { "" }
    )
}

/// A family's rules as `iptables-save` prints them: per table, the chains and the rules.
#[derive(Debug, Default)]
struct Saved {
    chains: HashMap<String, Vec<String>>,
    rules: HashMap<String, Vec<String>>,
}

impl Saved {
    fn parse(text: &str) -> Saved {
        let mut s = Saved::default();
        let mut table = String::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix('*') {
                table = t.trim().to_string();
            } else if let Some(c) = line.strip_prefix(':') {
                let name = c.split_whitespace().next().unwrap_or_default().to_string();
                s.chains.entry(table.clone()).or_default().push(name);
            } else if line.starts_with("-A ") {
                s.rules
                    .entry(table.clone())
                    .or_default()
                    .push(line.to_string());
            }
        }
        s
    }

    fn has_chain(&self, table: &str, chain: &str) -> bool {
        self.chains
            .get(table)
            .is_some_and(|c| c.iter().any(|x| x == chain))
    }

    /// The saved lines of `r`'s chain carrying its key as their comment.
    fn find(&self, r: &Rule) -> Vec<&String> {
        let quoted = format!("\"{}\"", r.key);
        let chain = format!("-A {} ", r.chain);
        self.rules
            .get(r.table)
            .map(|lines| {
                lines
                    .iter()
                    .filter(|l| {
                        l.starts_with(&chain)
                            && l.split_whitespace().any(|w| w == quoted || w == r.key)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Iptables(format!("{program}: {e} (install iptables)")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Iptables(format!("{program}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(Error::Iptables(format!(
            "{program}: {}",
            err.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed")
        )))
    }
}

/// What `iptables-save` (both families) shows of hako: its chains and rules.
pub fn list(legacy: bool) -> String {
    let mut out = String::new();
    for v6 in [false, true] {
        if let Ok(text) = run(&program(legacy, v6, "save"), &[], None) {
            for l in text
                .lines()
                .filter(|l| l.contains("HAKO") || l.contains("hako:"))
            {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

/// Whether hako's chains are there (a flush of every table removes them).
pub fn intact(legacy: bool) -> bool {
    run(&program(legacy, false, "save"), &["-t", "nat"], None)
        .is_ok_and(|t| Saved::parse(&t).has_chain("nat", DNAT))
}

/// Adds `add` (what is missing of it, with hako's chains and jumps) and deletes `del`
/// (what is there of it), one `iptables-restore --noflush` per family.
pub fn apply(legacy: bool, add: &[Rule], del: &[Rule]) -> Result<()> {
    for v6 in [false, true] {
        let add: Vec<&Rule> = add.iter().filter(|r| r.v6 == v6).collect();
        let del: Vec<&Rule> = del.iter().filter(|r| r.v6 == v6).collect();
        if add.is_empty() && del.is_empty() {
            continue;
        }
        let saved = Saved::parse(&run(&program(legacy, v6, "save"), &[], None)?);
        let text = restore_text(&saved, v6, &add, &del);
        if text.is_empty() {
            continue;
        }
        run(
            &program(legacy, v6, "restore"),
            &["--noflush", "-w"],
            Some(&text),
        )?;
    }
    Ok(())
}

/// The `iptables-restore --noflush` input for one family.
fn restore_text(saved: &Saved, v6: bool, add: &[&Rule], del: &[&Rule]) -> String {
    let mut tables: Vec<(&str, Vec<String>)> = ["raw", "nat", "filter"]
        .iter()
        .map(|t| (*t, Vec::new()))
        .collect();
    let mut push = |table: &str, line: String| {
        if let Some((_, lines)) = tables.iter_mut().find(|(t, _)| *t == table) {
            lines.push(line);
        }
    };
    if !add.is_empty() {
        for (table, chain) in chains(v6) {
            if !saved.has_chain(table, chain) {
                push(table, format!(":{chain} - [0:0]"));
            }
        }
        for r in fixed(v6) {
            if saved.find(&r).is_empty() {
                push(r.table, r.line());
            }
        }
    }
    for r in del {
        for line in saved.find(r) {
            push(r.table, format!("-D{}", &line[2..]));
        }
    }
    for r in add {
        let deleted = del.iter().any(|d| d.key == r.key);
        if deleted || saved.find(r).is_empty() {
            push(r.table, r.line());
        }
    }
    let mut text = String::new();
    for (table, lines) in tables {
        if lines.is_empty() {
            continue;
        }
        text.push_str(&format!("*{table}\n"));
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_adds_what_is_missing_and_deletes_by_the_saved_text() {
        let saved = Saved::parse(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:HAKO-DNAT - [0:0]\n\
             -A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment \"hako:jump-dnat\" -j HAKO-DNAT\n\
             -A HAKO-DNAT -p tcp -m tcp --dport 8080 -m comment --comment \"hako:port:tcp:0.0.0.0:8080\" -j DNAT --to-destination 10.77.0.2:80\n\
             COMMIT\n",
        );
        let m = |port| Mapping {
            proto: crate::ports::Proto::Tcp,
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: port,
            container_port: 80,
        };
        let target: IpAddr = "10.77.0.3".parse().unwrap();
        let add = [
            port_rule(&m(8080), target).unwrap(),
            port_rule(&m(8081), target).unwrap(),
        ];
        let del = [port_del(&m(8080)).unwrap(), port_del(&m(9000)).unwrap()];
        let text = restore_text(
            &saved,
            false,
            &add.iter().collect::<Vec<_>>(),
            &del.iter().collect::<Vec<_>>(),
        );
        let nat = text
            .split("*nat\n")
            .nth(1)
            .and_then(|t| t.split("COMMIT").next())
            .unwrap();
        // Chains missing are declared, existing ones never (a declaration flushes).
        assert!(!nat.contains(":HAKO-DNAT"), "{text}");
        assert!(nat.contains(":HAKO-SNAT - [0:0]"), "{text}");
        assert!(!nat.contains("-A PREROUTING"), "the jump is there: {text}");
        assert!(nat.contains("-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment \"hako:jump-dnat\" -j HAKO-DNAT"), "{text}");
        // The old 8080 goes by its saved text, the new one is added, 9000 was not there.
        assert!(nat.contains("-D HAKO-DNAT -p tcp -m tcp --dport 8080 -m comment --comment \"hako:port:tcp:0.0.0.0:8080\" -j DNAT --to-destination 10.77.0.2:80"), "{text}");
        assert!(nat.contains("-A HAKO-DNAT -p tcp -m tcp --dport 8080 -m comment --comment \"hako:port:tcp:0.0.0.0:8080\" -j DNAT --to-destination 10.77.0.3:80"), "{text}");
        assert!(nat.contains("--dport 8081"), "{text}");
        assert!(!text.contains("9000"), "{text}");
        assert!(text.contains("*filter\n:HAKO-FILTER - [0:0]"), "{text}");
        assert!(
            text.contains("-I FORWARD 1 -m comment --comment \"hako:jump-filter\" -j HAKO-FILTER"),
            "{text}"
        );
        // Nothing to do is nothing run.
        assert_eq!(restore_text(&saved, false, &[], &[]), "");
        let v6 = Mapping {
            host_ip: "::1".parse().unwrap(),
            ..m(8080)
        };
        assert!(port_rule(&v6, "fd00::2".parse().unwrap()).is_none());
    }
}
