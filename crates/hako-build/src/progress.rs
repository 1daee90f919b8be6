//! Build progress as events, rendered by the caller: BuildKit's plain and tty views in
//! the CLI, Docker's classic `{"stream": ...}` lines in the API server.
//!
//! A *vertex* is one unit of work BuildKit would show (`[internal] load build context`,
//! `[build 2/4] RUN make`, `exporting to image`). Instructions that only change the
//! config are vertices too, marked `config_only`, so the classic view can number every
//! instruction as `Step N/M` while the BuildKit views leave them out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where an instruction vertex sits in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// 1-based number over every instruction of the needed stages (classic `Step N`).
    pub number: usize,
    /// Instructions in total (classic `/M`).
    pub total: usize,
    /// The instruction as written (`RUN make`).
    pub text: String,
    /// The instruction only changes the image config.
    pub config_only: bool,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Work started.
    Start {
        /// Vertex number (`#5`).
        id: u64,
        /// What BuildKit would print (`[2/3] RUN make`).
        name: String,
        /// For instructions.
        step: Option<StepInfo>,
    },
    /// Output of a RUN (1 = stdout, 2 = stderr).
    Log {
        /// Vertex.
        id: u64,
        /// 1 or 2.
        stream: u8,
        /// The bytes as written.
        data: Vec<u8>,
    },
    /// A status line of a vertex (`transferring context: 2.1kB done`).
    Status {
        /// Vertex.
        id: u64,
        /// The line.
        text: String,
    },
    /// The result came from the cache.
    Cached {
        /// Vertex.
        id: u64,
    },
    /// The vertex finished.
    Done {
        /// Vertex.
        id: u64,
        /// How long it took.
        elapsed: Duration,
    },
    /// The vertex failed.
    Error {
        /// Vertex.
        id: u64,
        /// Why.
        message: String,
    },
    /// Something the user should know that does not stop the build.
    Warning {
        /// The text.
        message: String,
    },
    /// A build check found a violation (shown after the build, as BuildKit does).
    Check(crate::lint::Lint),
    /// The result: the image id (`sha256:...`).
    Image {
        /// Config digest.
        id: String,
    },
    /// A tag now points at the image.
    Tagged {
        /// The reference as the user wrote it, normalized (`docker.io/library/x:latest`).
        name: String,
    },
}

/// Receives events; called from several threads (stages build in parallel).
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, e: Event);
}

/// Drops every event (`-q`).
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _: Event) {}
}

/// Collects events (tests, and the API server's buffer).
#[derive(Debug, Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<Event>>);

impl Progress for Recorder {
    fn event(&self, e: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e);
        }
    }
}

/// A flag that stops a build: set on ctrl-c or when the API client goes away.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    own: Arc<AtomicBool>,
    /// The flag this one was made from ([`Cancel::child`]): setting it stops this one too.
    parent: Option<Arc<AtomicBool>>,
}

impl Cancel {
    /// A flag not set.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A flag set by its own [`Cancel::cancel`] or by this one's, whose own `cancel`
    /// leaves this one alone (a failed stage stops its build, not the caller's flag).
    pub fn child(&self) -> Cancel {
        Cancel {
            own: Arc::new(AtomicBool::new(false)),
            parent: Some(self.own.clone()),
        }
    }

    /// Stops the build at the next check (a running RUN is killed).
    pub fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
    }

    /// Whether the build was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::SeqCst)
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.load(Ordering::SeqCst))
    }
}

/// `1.2kB`, `3.4MB` as BuildKit prints transferred sizes.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_flag_stops_with_its_parent_but_not_the_other_way() {
        let user = Cancel::new();
        let build = user.child();
        build.cancel();
        assert!(build.is_cancelled() && !user.is_cancelled());
        let again = user.child();
        assert!(!again.is_cancelled());
        user.cancel();
        assert!(again.is_cancelled() && build.clone().is_cancelled());
    }
}
