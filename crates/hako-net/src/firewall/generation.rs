//! The kernel's nftables ruleset generation, and which networks' elements are known to be
//! in place at a given one.
//!
//! Every committed nftables transaction, whoever makes it (`nft flush ruleset`, dockerd's
//! iptables-nft, hako's own batches), moves the generation on (`NFT_MSG_GETGEN`). So a
//! network whose elements hako added at generation G still has them while the generation
//! is G: its next container's start skips the batch, and with it loading libnftables,
//! listing the table and committing a no-op (~2 ms of a ~30 ms `run --rm`, once the default
//! bridge stays with its elements between containers).
//!
//! The request is one 20-byte nfnetlink message; no crate of the rust-netlink family
//! encodes nf_tables' generation messages, so the header is written here.

use std::path::Path;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN`, and the answer's `NFT_MSG_NEWGEN`.
const GETGEN: u16 = (10 << 8) | 16;
const NEWGEN: u16 = (10 << 8) | 15;
/// `NFTA_GEN_ID`.
const GEN_ID: u16 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;

/// Which ruleset, and which version of it: the boot, the network namespace (its cookie,
/// never reused within a boot) and the generation. A generation alone restarts from zero
/// after a reboot or in another namespace, and an exec root can outlive both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `<boot id>:<netns cookie>`.
    pub ruleset: String,
    /// The generation.
    pub generation: u32,
}

/// The [`Stamp`] of the calling thread's network namespace's ruleset; `None` where the
/// kernel has no nf_tables (or no `SO_NETNS_COOKIE`) or the answer is not understood.
pub fn stamp() -> Option<Stamp> {
    let mut sock = Socket::new(NETLINK_NETFILTER).ok()?;
    sock.bind_auto().ok()?;
    sock.connect(&SocketAddr::new(0, 0)).ok()?;
    let cookie = hako_sys::fd::netns_cookie(std::os::fd::AsFd::as_fd(&sock)).ok()?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let generation = ask(&mut sock)?;
    Some(Stamp {
        ruleset: format!("{}:{cookie}", boot.trim()),
        generation,
    })
}

/// The ruleset generation of the calling thread's network namespace.
pub fn generation() -> Option<u32> {
    stamp().map(|s| s.generation)
}

fn ask(sock: &mut Socket) -> Option<u32> {
    let mut req = [0u8; 20];
    req[0..4].copy_from_slice(&20u32.to_ne_bytes());
    req[4..6].copy_from_slice(&GETGEN.to_ne_bytes());
    req[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0.
    sock.send(&req, 0).ok()?;
    let mut buf = vec![0u8; 8192];
    let n = sock.recv(&mut &mut buf[..], 0).ok()?;
    parse(buf.get(..n)?)
}

/// The generation in an `NFT_MSG_NEWGEN` answer.
fn parse(msg: &[u8]) -> Option<u32> {
    let u16_at = |b: &[u8], i: usize| Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?));
    let len = usize::try_from(u32::from_ne_bytes(msg.get(0..4)?.try_into().ok()?)).ok()?;
    let kind = u16_at(msg, 4)?;
    if kind == NLMSG_ERROR || kind != NEWGEN {
        return None;
    }
    // After the 16-byte header and the 4-byte nfgenmsg: attributes, 4-byte aligned.
    let body = msg.get(20..len.min(msg.len()))?;
    let mut off = 0;
    while off + 4 <= body.len() {
        let alen = usize::from(u16_at(body, off)?);
        let atype = u16_at(body, off + 2)? & 0x3fff;
        if alen < 4 {
            return None;
        }
        if atype == GEN_ID && alen >= 8 {
            return Some(u32::from_be_bytes(
                body.get(off + 4..off + 8)?.try_into().ok()?,
            ));
        }
        off += (alen + 3) & !3;
    }
    None
}

/// Whether the work named `key` (a network id: its elements; `forward:BRIDGE`: the
/// accepts ahead of other tables' drops) was recorded in place at `now` in `state`
/// (`<exec-root>/firewall.verified`: ruleset, generation, then keys, one line).
pub fn verified(state: &Path, now: &Stamp, key: &str) -> bool {
    read(state).is_some_and(|(at, keys)| at == *now && keys.iter().any(|k| k == key))
}

fn read(state: &Path) -> Option<(Stamp, Vec<String>)> {
    let text = std::fs::read_to_string(state).ok()?;
    let mut w = text.split_whitespace();
    let ruleset = w.next()?.to_string();
    let generation = w.next()?.parse().ok()?;
    Some((
        Stamp {
            ruleset,
            generation,
        },
        w.map(str::to_string).collect(),
    ))
}

/// Records that the work named by `keys` is in place at `after`, reached from `before` by
/// this process's own work alone (same ruleset; the generation unchanged, or one on: its
/// one batch): what was recorded at `before` still holds. Any other step between the two
/// is somebody else's change, and nothing is recorded (the next start checks again).
/// Written whole and renamed into place.
pub fn record(state: &Path, before: &Stamp, after: &Stamp, keys: &[&str]) {
    let ours = after.generation == before.generation
        || after.generation == before.generation.wrapping_add(1);
    if after.ruleset != before.ruleset || !ours {
        let _ = std::fs::remove_file(state);
        return;
    }
    let mut all = match read(state) {
        Some((at, known)) if at == *before => known,
        _ => Vec::new(),
    };
    for k in keys {
        if !all.iter().any(|n| n == k) {
            all.push((*k).to_string());
        }
    }
    let tmp = state.with_extension("tmp");
    let text = format!("{} {} {}\n", after.ruleset, after.generation, all.join(" "));
    if std::fs::write(&tmp, text).is_err() || std::fs::rename(&tmp, state).is_err() {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newgen(generation: u32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NEWGEN.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0, 0, 0, 0]);
        // NFTA_GEN_PROC_PID first (type 2), then NFTA_GEN_ID.
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&77u32.to_be_bytes());
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&GEN_ID.to_ne_bytes());
        m.extend_from_slice(&generation.to_be_bytes());
        m
    }

    #[test]
    fn an_answer_is_parsed_and_nonsense_is_not() {
        assert_eq!(parse(&newgen(4242)), Some(4242));
        assert_eq!(parse(&newgen(4242)[..24]), None, "cut off");
        let mut err = newgen(1);
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(parse(&err), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn the_record_holds_for_its_ruleset_and_generation_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("firewall.verified");
        let at = |r: &str, g: u32| Stamp {
            ruleset: r.to_string(),
            generation: g,
        };
        assert!(!verified(&s, &at("x", 7), "a"));
        record(&s, &at("x", 6), &at("x", 7), &["a"]);
        assert!(verified(&s, &at("x", 7), "a"));
        assert!(!verified(&s, &at("x", 8), "a"), "another generation");
        assert!(!verified(&s, &at("y", 7), "a"), "another boot or namespace");
        assert!(!verified(&s, &at("x", 7), "b"));
        record(&s, &at("x", 7), &at("x", 8), &["b"]);
        assert!(
            verified(&s, &at("x", 8), "a") && verified(&s, &at("x", 8), "b"),
            "carried"
        );
        record(&s, &at("x", 8), &at("x", 10), &["c"]);
        assert!(!s.exists(), "somebody else's step between");
        record(&s, &at("x", 3), &at("y", 4), &["c"]);
        assert!(!s.exists(), "another ruleset");
        record(&s, &at("x", 3), &at("x", 4), &["c"]);
        assert!(verified(&s, &at("x", 4), "c") && !verified(&s, &at("x", 4), "a"));
        record(&s, &at("x", 4), &at("x", 4), &["d", "e"]);
        assert!(
            verified(&s, &at("x", 4), "c") && verified(&s, &at("x", 4), "e"),
            "no commit"
        );
    }
}
