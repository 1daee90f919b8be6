//! Other tables' FORWARD `policy drop` (dockerd's, a user's firewall).
//!
//! Every base chain at a hook sees the packet: an `accept` in `inet hako` ends only that
//! chain, and a `policy drop` in another table still drops it. So hako's routed traffic
//! (a container reaching beyond the host, a published port reached from outside) dies in
//! a FORWARD chain hako does not own. dockerd sets `ip filter FORWARD` (iptables, through
//! iptables-nft here) to `policy drop` when it turns forwarding on; its documented way for
//! other software is to accept in the iptables filter table ahead of that policy (the
//! `DOCKER-USER` chain; netavark's iptables driver did the same with `NETAVARK_FORWARD`).
//!
//! hako does that through the same mechanism, in a chain of its own: `HAKO-FORWARD` in
//! the `filter` table of `iptables`/`ip6tables`, jumped to first from `FORWARD`, with per
//! bridge
//!
//! ```text
//!   -i BRIDGE -j ACCEPT                                        (from containers)
//!   -o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT
//! ```
//!
//! These only let the packet past *that* table: hako's own `forward` chain still drops
//! what hako's rules drop (isolation between bridges, internal networks). Direct routing
//! into a container from outside stays dropped, as with Docker. The chain and the jump go
//! when the last bridge's rules go. Nothing is added (and no process runs) unless such a
//! drop policy exists.
//!
//! iptables-legacy's FORWARD policy (dockerd on a host still on iptables-legacy, while
//! nftables works and hako uses it) lives in x_tables, invisible to nftables: where
//! `/proc/thread-self/net/ip_tables_names` shows a legacy filter table, `iptables-legacy -S
//! FORWARD` is read, and the same chain is made with `iptables-legacy`.
//!
//! A drop policy in a native nftables table (`inet filter` of `/etc/nftables.conf`,
//! dockerd's nftables backend) cannot be overridden from another table, and hako does not
//! edit tables it does not own: [`blockers`] names it, and the first container on a bridge
//! logs a warning saying what to accept there.

use std::process::{Command, Stdio};

use super::{Backend, TABLE};

/// hako's chain in the iptables filter table.
pub const CHAIN: &str = "HAKO-FORWARD";

/// A base chain at the forward hook whose policy is drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drop {
    /// `ip`, `ip6`, `inet`...
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// iptables-legacy's (x_tables, not in nftables: dockerd on a host still on
    /// iptables-legacy), found with `iptables-legacy -S FORWARD`.
    pub legacy: bool,
}

impl Drop {
    /// iptables' own chain (iptables-nft keeps its tables in nftables; iptables-legacy in
    /// x_tables): hako can accept ahead of its policy with that iptables.
    fn iptables(&self) -> Option<&'static str> {
        match (
            self.family.as_str(),
            self.table.as_str(),
            self.chain.as_str(),
            self.legacy,
        ) {
            ("ip", "filter", "FORWARD", false) => Some("iptables"),
            ("ip6", "filter", "FORWARD", false) => Some("ip6tables"),
            ("ip", "filter", "FORWARD", true) => Some("iptables-legacy"),
            ("ip6", "filter", "FORWARD", true) => Some("ip6tables-legacy"),
            _ => None,
        }
    }
}

/// The legacy (x_tables) variants: `/proc/thread-self/net/ip_tables_names` lists the tables
/// loaded in this thread's namespace (no process runs unless a filter table is there).
const LEGACY: [(&str, &str, &str); 2] = [
    ("ip", "ip_tables_names", "iptables-legacy"),
    ("ip6", "ip6_tables_names", "ip6tables-legacy"),
];

fn legacy_filter_loaded(names: &str) -> bool {
    std::fs::read_to_string(format!("/proc/thread-self/net/{names}"))
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "filter"))
}

/// iptables-legacy's FORWARD drop policies in this namespace.
fn legacy_drops() -> Vec<Drop> {
    let mut out = Vec::new();
    for (family, names, program) in LEGACY {
        if !legacy_filter_loaded(names) {
            continue;
        }
        let policy = iptables_out(program, &args(&["-S", "FORWARD"])).unwrap_or_default();
        if policy.lines().any(|l| l.trim() == "-P FORWARD DROP") {
            out.push(Drop {
                family: family.to_string(),
                table: "filter".into(),
                chain: "FORWARD".into(),
                legacy: true,
            });
        }
    }
    out
}

/// Parses `nft list chains`: the forward-hook base chains with `policy drop`, outside
/// hako's table.
pub fn parse_drops(listing: &str) -> Vec<Drop> {
    let mut out = Vec::new();
    let (mut family, mut table, mut chain) = (String::new(), String::new(), String::new());
    for line in listing.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["table", f, t, ..] => {
                family = (*f).to_string();
                table = (*t).to_string();
            }
            ["chain", c, ..] => chain = (*c).to_string(),
            _ if line.contains("hook forward")
                && line.contains("policy drop")
                && !(family == "inet" && table == TABLE) =>
            {
                out.push(Drop {
                    family: family.clone(),
                    table: table.clone(),
                    chain: chain.clone(),
                    legacy: false,
                });
            }
            _ => {}
        }
    }
    out
}

/// The FORWARD drop policies of other tables in this namespace (nftables', including
/// iptables-nft's, then iptables-legacy's).
pub fn drops(backend: Backend) -> Vec<Drop> {
    let mut d = backend
        .apply("list chains\n")
        .map(|l| parse_drops(&l))
        .unwrap_or_default();
    d.extend(legacy_drops());
    d
}

/// What would drop `bridge`'s routed traffic that hako cannot accept itself, one sentence
/// each (empty: nothing).
pub fn blockers(backend: Backend, bridge: &str) -> Vec<String> {
    drops(backend)
        .iter()
        .filter(|d| d.iptables().is_none())
        .map(|d| message(d, bridge))
        .collect()
}

fn message(d: &Drop, bridge: &str) -> String {
    format!(
        "table {} {} chain {} drops forwarded packets (policy drop): containers on {bridge} \
         cannot reach beyond the host, nor published ports be reached from outside, until \
         that chain accepts them (iifname \"{bridge}\" accept; oifname \"{bridge}\" ct state \
         established,related accept; oifname \"{bridge}\" ct status dnat accept)",
        d.family, d.table, d.chain
    )
}

/// Lets `bridge`'s traffic past other tables' FORWARD drop policies where that can be
/// done (iptables' filter table); returns a warning for each that cannot.
pub fn open(backend: Backend, bridge: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    if !backend.is_nftables() {
        // The iptables driver accepts in its own HAKO-FILTER, after its isolation rules.
        return warnings;
    }
    for d in drops(backend) {
        let Some(program) = d.iptables() else {
            warnings.push(message(&d, bridge));
            continue;
        };
        // iptables-nft's chains are read in-process (no process per start); legacy ones
        // through the program.
        let (ours, has, jumps) = if d.legacy {
            let ours = iptables_out(program, &args(&["-S", CHAIN])).ok();
            let has = ours
                .as_deref()
                .is_some_and(|l| l.contains(&format!("-i {bridge} -j ACCEPT")));
            let jumps = iptables_out(program, &args(&["-S", "FORWARD"]))
                .is_ok_and(|l| l.contains(&format!("-j {CHAIN}")));
            (ours.is_some(), has, jumps)
        } else {
            let ours = listing(backend, &d.family, CHAIN);
            let has = ours
                .as_deref()
                .is_some_and(|l| l.contains(&format!("iifname \"{bridge}\"")));
            let jumps = listing(backend, &d.family, "FORWARD")
                .is_some_and(|l| l.contains(&format!("jump {CHAIN}")));
            (ours.is_some(), has, jumps)
        };
        if has {
            continue;
        }
        let mut steps: Vec<Vec<String>> = Vec::new();
        if !ours {
            steps.push(args(&["-N", CHAIN]));
        }
        if !jumps {
            steps.push(args(&["-I", "FORWARD", "1", "-j", CHAIN]));
        }
        steps.push(rule("-A", bridge, true));
        steps.push(rule("-A", bridge, false));
        // One `iptables-restore --noflush` for all of them: every iptables-nft process
        // reads the whole ruleset first (dockerd's too: ~5-40 ms each here).
        if let Err(e) = restore(program, &steps) {
            warnings.push(format!(
                "{} (and hako could not accept {bridge}'s traffic ahead of it: {e})",
                message(&d, bridge)
            ));
        }
    }
    warnings
}

/// Takes `bridge`'s rules out of hako's chains (its last container left); the chain and
/// its jump go when no bridge is left in them. Errors are returned, all of them.
pub fn close(backend: Backend, bridge: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if !backend.is_nftables() {
        return errs;
    }
    // iptables-nft's chains are read in-process (nftables); a legacy program runs only
    // where a legacy filter table is loaded. Then one `*-restore` per program.
    // (program, the bridges in its chain, whether FORWARD jumps to it)
    let mut found: Vec<(&str, String, bool)> = Vec::new();
    for (family, program) in [("ip", "iptables"), ("ip6", "ip6tables")] {
        if let Some(l) = listing(backend, family, CHAIN) {
            let jumps = listing(backend, family, "FORWARD")
                .is_some_and(|f| f.contains(&format!("jump {CHAIN}")));
            found.push((program, nft_to_bridges(&l), jumps));
        }
    }
    for (_, names, program) in LEGACY {
        if legacy_filter_loaded(names)
            && let Ok(l) = iptables_out(program, &args(&["-S", CHAIN]))
        {
            let jumps = iptables_out(program, &args(&["-S", "FORWARD"]))
                .is_ok_and(|f| f.contains(&format!("-j {CHAIN}")));
            found.push((program, iptables_to_bridges(&l), jumps));
        }
    }
    for (program, bridges, jumps) in found {
        let mut steps = Vec::new();
        let mine = bridges.lines().any(|b| b == bridge);
        if mine {
            steps.push(rule("-D", bridge, true));
            steps.push(rule("-D", bridge, false));
        }
        if !bridges.lines().any(|b| b != bridge) {
            if jumps {
                steps.push(args(&["-D", "FORWARD", "-j", CHAIN]));
            }
            steps.push(args(&["-X", CHAIN]));
        }
        if steps.is_empty() {
            continue;
        }
        if let Err(e) = restore(program, &steps) {
            errs.push(e);
        }
    }
    errs
}

/// The bridges accepted in hako's chain, one per line, from nft's listing of it
/// (`iifname "hako0" ... accept`).
fn nft_to_bridges(listing: &str) -> String {
    let mut out = String::new();
    for l in listing.lines() {
        if let Some(rest) = l.split("iifname \"").nth(1)
            && let Some((name, _)) = rest.split_once('"')
        {
            out.push_str(name);
            out.push('\n');
        }
    }
    out
}

/// The same from `iptables -S HAKO-FORWARD` (`-A HAKO-FORWARD -i hako0 -j ACCEPT`).
fn iptables_to_bridges(listing: &str) -> String {
    let mut out = String::new();
    for l in listing.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let Some(i) = w.iter().position(|x| *x == "-i")
            && let Some(name) = w.get(i + 1)
        {
            out.push_str(name);
            out.push('\n');
        }
    }
    out
}

/// Runs `PROGRAM-restore -w --noflush` with `steps` (iptables argument lists) in the
/// filter table, as one transaction.
fn restore(program: &str, steps: &[Vec<String>]) -> Result<(), String> {
    use std::io::Write;
    let mut text = String::from("*filter\n");
    for s in steps {
        text.push_str(&s.join(" "));
        text.push('\n');
    }
    text.push_str("COMMIT\n");
    let cmd = format!("{program}-restore");
    let mut child = Command::new(&cmd)
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let written = child.stdin.take().map(|mut i| i.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() && !matches!(written, Some(Err(_))) {
        Ok(())
    } else {
        Err(format!(
            "{cmd} ({}): {}",
            steps
                .iter()
                .map(|s| s.join(" "))
                .collect::<Vec<_>>()
                .join("; "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_string()).collect()
}

fn rule(op: &str, bridge: &str, from_bridge: bool) -> Vec<String> {
    if from_bridge {
        args(&[op, CHAIN, "-i", bridge, "-j", "ACCEPT"])
    } else {
        args(&[
            op,
            CHAIN,
            "-o",
            bridge,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED,DNAT",
            "-j",
            "ACCEPT",
        ])
    }
}

/// `nft list chain FAMILY filter CHAIN`, None when it does not exist.
fn listing(backend: Backend, family: &str, chain: &str) -> Option<String> {
    backend
        .apply(&format!("list chain {family} filter {chain}\n"))
        .ok()
}

fn iptables_out(program: &str, a: &[String]) -> Result<String, String> {
    let out = Command::new(program)
        .arg("-w")
        .args(a)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            a.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridges_in_hakos_chain_are_read_from_either_listing() {
        let nft = "table ip filter {\n\tchain HAKO-FORWARD {\n\t\tiifname \"hako0\" counter packets 0 bytes 0 accept\n\t\toifname \"hako0\" ct state related,established,dnat counter accept\n\t\tiifname \"hk-app\" counter accept\n\t}\n}\n";
        assert_eq!(nft_to_bridges(nft), "hako0\nhk-app\n");
        let ipt = "-N HAKO-FORWARD\n-A HAKO-FORWARD -i hako0 -j ACCEPT\n-A HAKO-FORWARD -o hako0 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n";
        assert_eq!(iptables_to_bridges(ipt), "hako0\n");
    }

    #[test]
    fn drop_policies_of_other_tables_are_found() {
        let l = "table inet hako {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n\
                 table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n\
                 \tchain DOCKER-USER {\n\t}\n}\n\
                 table inet fw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n\
                 \tchain fwd {\n\t\ttype filter hook forward priority 10; policy drop;\n\t}\n\
                 \tchain fwd2 {\n\t\ttype filter hook forward priority 10; policy accept;\n\t}\n}\n";
        let d = parse_drops(l);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0].iptables(), Some("iptables"));
        assert_eq!((d[1].table.as_str(), d[1].chain.as_str()), ("fw", "fwd"));
        assert_eq!(d[1].iptables(), None);
        assert!(message(&d[1], "hako0").contains("table inet fw chain fwd"));
    }
}
