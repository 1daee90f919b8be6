//! Which signals hako-init takes over, and signal names.
//!
//! Like tini, every signal is blocked and read synchronously (here from a signalfd), except
//! the synchronous fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT):
//! blocking those would turn a crash of hako-init into an endless loop.
//!
//! SIGTTIN and SIGTTOU differ from tini: tini *ignores* them (SIG_IGN) so that it can touch
//! the terminal from the background. Setting a disposition is `unsafe` in nix, so hako-init
//! *blocks* them instead, which has the same effect on terminal access (the kernel does not
//! stop a process that blocks SIGTTOU), and drops them when read instead of forwarding them.

use std::str::FromStr;

use nix::sys::signal::{SigSet, Signal};

/// The signals that stay deliverable the normal way (faults).
const SYNCHRONOUS: [Signal; 7] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Signals that are read but never forwarded (SIGCHLD means "reap", the tty signals are
/// tini's ignored ones).
pub const NOT_FORWARDED: [i32; 3] = [
    Signal::SIGCHLD as i32,
    Signal::SIGTTIN as i32,
    Signal::SIGTTOU as i32,
];

/// The set hako-init blocks and reads from its signalfd: all but the fault signals.
pub fn handled() -> SigSet {
    let mut set = SigSet::all();
    for sig in SYNCHRONOUS {
        set.remove(sig);
    }
    set
}

/// Parse a signal given as `SIGTERM`, `TERM`, `sigterm` or a number (1..=64).
pub fn parse(text: &str) -> Option<i32> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).ok().map(|s| s as i32)
}

/// A printable name for messages.
pub fn name(sig: i32) -> String {
    match Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("SIGKILL"), Some(9));
        assert_eq!(parse("term"), Some(15));
        assert_eq!(parse("15"), Some(15));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("SIGFOO"), None);
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(name(40), "signal 40");
    }

    #[test]
    fn faults_stay_unblocked() {
        let set = handled();
        assert!(set.contains(Signal::SIGTERM));
        assert!(set.contains(Signal::SIGCHLD));
        assert!(!set.contains(Signal::SIGSEGV));
    }
}
