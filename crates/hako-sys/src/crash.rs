//! Crash points: named steps of multi-step operations where a crash test can kill the
//! process, to prove that whatever moment a `kill -9` (or a power cut) hits, the store stays
//! consistent and the next command cleans up.
//!
//! ```text
//! HAKO_CRASH_AT=create.rootfs        SIGKILL itself the first time `create.rootfs` is reached
//! HAKO_CRASH_AT=pull.blob:3          ... the third time
//! HAKO_CRASH_TRACE=/tmp/steps        append every step reached to the file (one per line),
//!                                    so a test learns an operation's steps before killing
//!                                    it at each one
//! ```
//!
//! Unset (always, outside tests) a point costs one load of a cached `OnceLock`. The engine
//! removes both variables from the environment of the processes it starts (shims and their
//! exit commands), so a test kills only the command it ran.
//!
//! ```text
//! HAKO_STOP_AT=rm.claimed            SIGSTOP itself each time `rm.claimed` is reached, so
//!                                    that a test looks at the store in the middle of an
//!                                    operation (then SIGCONT)
//! ```
//!
//! ```text
//! HAKO_CRASH_IN_CHILD=1              the command itself ignores both variables and hands
//!                                    them to the shims it starts, so that a container's
//!                                    exit command (`container cleanup`, the network's
//!                                    teardown) is the one that dies
//! ```

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable naming the step to die at (`STEP` or `STEP:N`).
pub const CRASH_AT: &str = "HAKO_CRASH_AT";
/// The environment variable naming a file to append each step reached to.
pub const CRASH_TRACE: &str = "HAKO_CRASH_TRACE";
/// The environment variable naming a step to stop (SIGSTOP) at.
pub const STOP_AT: &str = "HAKO_STOP_AT";
/// The environment variable that hands the others to the processes started (one level).
pub const CRASH_IN_CHILD: &str = "HAKO_CRASH_IN_CHILD";

fn in_child() -> bool {
    std::env::var_os(CRASH_IN_CHILD).is_some_and(|v| !v.is_empty())
}

struct Plan {
    at: Option<(String, u32)>,
    trace: Option<String>,
    stop: Option<String>,
    seen: AtomicU32,
}

fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        if in_child() {
            return Plan {
                at: None,
                trace: None,
                stop: None,
                seen: AtomicU32::new(0),
            };
        }
        let at = std::env::var(CRASH_AT)
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| {
                match s
                    .rsplit_once(':')
                    .and_then(|(n, c)| Some((n, c.parse().ok()?)))
                {
                    Some((name, count)) => (name.to_string(), count),
                    None => (s, 1),
                }
            });
        let trace = std::env::var(CRASH_TRACE).ok().filter(|s| !s.is_empty());
        let stop = std::env::var(STOP_AT).ok().filter(|s| !s.is_empty());
        Plan {
            at,
            trace,
            stop,
            seen: AtomicU32::new(0),
        }
    })
}

/// Marks step `name`: dies here with SIGKILL if `HAKO_CRASH_AT` says so, stops here if
/// `HAKO_STOP_AT` does.
pub fn point(name: &str) {
    let p = plan();
    if p.at.is_none() && p.trace.is_none() && p.stop.is_none() {
        return;
    }
    if p.stop.as_deref() == Some(name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
    if let Some(path) = &p.trace
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{name}");
    }
    if let Some((step, count)) = &p.at
        && step == name
        && p.seen.fetch_add(1, Ordering::SeqCst) + 1 == *count
    {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Removes the crash variables from a command's environment (for processes the caller
/// starts but the test does not mean to kill), unless `HAKO_CRASH_IN_CHILD` says they are
/// meant for it (then only that one goes).
pub fn scrub(cmd: &mut std::process::Command) {
    if in_child() {
        cmd.env_remove(CRASH_IN_CHILD);
    } else {
        cmd.env_remove(CRASH_AT)
            .env_remove(CRASH_TRACE)
            .env_remove(STOP_AT);
    }
}
