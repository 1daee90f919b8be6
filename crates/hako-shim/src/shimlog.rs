//! The shim's own log, for when something breaks: `<state-dir>/shim.log`, one line per
//! event, each with an RFC 3339 timestamp:
//!
//! ```text
//! 2026-12-05T14:02:11.123456789Z exited with 1 after 0.2s; restart policy on-failure: restarting in 100ms (restart 3)
//! 2026-12-05T14:02:11.224000000Z restart failed: OCI runtime create: ...
//! 2026-12-05T14:02:15.000000000Z writing the log /var/lib/hako/containers/ID/ID-json.log failed: No space left on device (os error 28); output is dropped until it works again
//! 2026-12-05T14:03:40.000000000Z writing the log works again; 1234 chunks were dropped
//! ```
//!
//! It lives in the state directory (under the exec root, a tmpfs normally), so it can be
//! written when the data root's disk is full; `hako --debug inspect` and `hako --debug logs`
//! show its last lines. It is capped at 256 KiB: past that, it starts over (the previous
//! one becomes `shim.log.1`). Writing it never fails the shim.

use std::io::Write;
use std::path::{Path, PathBuf};

/// File name in the state directory.
pub const SHIM_LOG: &str = "shim.log";

const MAX: u64 = 256 << 10;

/// The shim's failure log (see the module docs).
#[derive(Debug)]
pub struct ShimLog {
    path: PathBuf,
    /// Log writes that failed since the last one that worked.
    dropped: u64,
}

impl ShimLog {
    /// The log of the shim whose state directory is `state_dir`.
    pub fn new(state_dir: &Path) -> ShimLog {
        ShimLog {
            path: state_dir.join(SHIM_LOG),
            dropped: 0,
        }
    }

    /// Appends one line, timestamped.
    pub fn note(&self, what: &str) {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() > MAX) {
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
        }
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = writeln!(f, "{} {}", crate::logfile::now(), what.replace('\n', " "));
        }
    }

    /// Records how a write to the container's json-file log went: the first failure of a
    /// run of failures, and the first success after one (with how many were dropped).
    pub fn log_write(&mut self, log: &Path, r: &std::io::Result<()>) {
        match r {
            Ok(()) if self.dropped > 0 => {
                self.note(&format!(
                    "writing the log works again; {} chunks of output were dropped",
                    self.dropped
                ));
                self.dropped = 0;
            }
            Ok(()) => {}
            Err(e) => {
                if self.dropped == 0 {
                    self.note(&format!(
                        "writing the log {} failed: {e}; output is dropped until it works again",
                        log.display()
                    ));
                }
                self.dropped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_timestamped_and_log_failures_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = ShimLog::new(dir.path());
        l.note("one");
        let err: std::io::Result<()> = Err(std::io::Error::from_raw_os_error(28));
        l.log_write(Path::new("/x.log"), &err);
        l.log_write(Path::new("/x.log"), &err);
        l.log_write(Path::new("/x.log"), &Ok(()));
        let text = std::fs::read_to_string(dir.path().join(SHIM_LOG)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].ends_with(" one") && lines[0].contains('T'),
            "{text}"
        );
        assert!(lines[1].contains("No space left on device"), "{text}");
        assert!(lines[2].contains("2 chunks"), "{text}");
    }
}
