//! Healthchecks (Docker's `HEALTHCHECK`): the shim runs the probe in the container every
//! interval with `RUNTIME exec --detach`, reaps it (it is the probe's subreaper), kills it
//! at the timeout, and keeps Docker's `State.Health` in `<state-dir>/health.json`:
//!
//! ```text
//!   started ──interval (start interval while in the start period)──▶ probe
//!   probe: exit 0 ─▶ healthy, streak 0
//!          else / timeout ─▶ streak+1 (not while starting inside the start period)
//!                            streak >= retries ─▶ unhealthy
//!   a status change ─▶ `health_status: <status>` event; last 5 results kept
//! ```
//!
//! The runtime call is short and blocks the loop as `start` does; the probe itself runs
//! detached and its output (first 4 KiB) is read in the main poll.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::logfile::now;
use crate::runtime::{CreateStdio, Runtime};

/// The file with Docker's `State.Health`.
pub const HEALTH_FILE: &str = "health.json";
/// Output kept per probe (Docker's limit).
const MAX_OUTPUT: usize = 4096;
/// Results kept (Docker's limit).
const MAX_LOG: usize = 5;

/// How to probe (the container's `Healthcheck`, durations resolved).
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// The OCI process of the probe (`--health-process`).
    pub process: PathBuf,
    /// Between probes.
    pub interval: Duration,
    /// A probe running longer fails.
    pub timeout: Duration,
    /// Consecutive failures that make the container unhealthy.
    pub retries: u32,
    /// Failures in this time after the start do not count while starting.
    pub start_period: Duration,
    /// Between probes during the start period.
    pub start_interval: Duration,
}

/// One result, as Docker logs it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Result {
    start: String,
    end: String,
    exit_code: i64,
    output: String,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct State {
    status: &'static str,
    failing_streak: u32,
    log: VecDeque<Result>,
}

/// A probe that runs.
#[derive(Debug)]
struct Probe {
    pid: i32,
    started_at: String,
    deadline: Instant,
    output: Vec<u8>,
    out: Option<OwnedFd>,
}

/// The healthcheck of one container run.
#[derive(Debug)]
pub struct Health {
    cfg: HealthConfig,
    state: State,
    started: Instant,
    next: Instant,
    probe: Option<Probe>,
    pid_file: PathBuf,
    file: PathBuf,
}

impl Health {
    /// A healthcheck for a run that starts now (status `starting`).
    pub fn new(cfg: HealthConfig, state_dir: &Path) -> Health {
        let now = Instant::now();
        let h = Health {
            next: now + first_delay(&cfg),
            cfg,
            state: State {
                status: "starting",
                failing_streak: 0,
                log: VecDeque::new(),
            },
            started: now,
            probe: None,
            pid_file: state_dir.join("health.pid"),
            file: state_dir.join(HEALTH_FILE),
        };
        h.save();
        h
    }

    /// When the loop must wake up for the healthcheck.
    pub fn deadline(&self) -> Instant {
        self.probe.as_ref().map_or(self.next, |p| p.deadline)
    }

    /// The probe's output pipe, to poll.
    pub fn output_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.probe.as_ref()?.out.as_ref().map(AsFd::as_fd)
    }

    /// Reads what the probe wrote.
    pub fn read_output(&mut self) {
        let Some(p) = self.probe.as_mut() else { return };
        let Some(fd) = p.out.as_ref() else { return };
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    p.out = None;
                    return;
                }
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(p.output.len());
                    p.output.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    p.out = None;
                    return;
                }
            }
        }
    }

    /// Starts a probe when one is due, or fails the running one at its timeout. Returns
    /// a `health_status` change to report.
    pub fn tick(&mut self, runtime: &Runtime) -> Option<&'static str> {
        let now = Instant::now();
        if let Some(p) = &self.probe {
            if now < p.deadline {
                return None;
            }
            self.kill_probe();
            let secs = self.cfg.timeout.as_secs_f64();
            let output = format!("Health check exceeded timeout ({secs}s)");
            return self.finish(-1, output.into_bytes());
        }
        if now < self.next {
            return None;
        }
        match self.start_probe(runtime) {
            Ok(p) => {
                self.probe = Some(p);
                None
            }
            Err(message) => {
                let started_at = now_string();
                self.probe = Some(Probe {
                    pid: 0,
                    started_at,
                    deadline: now,
                    output: Vec::new(),
                    out: None,
                });
                self.finish(-1, message.into_bytes())
            }
        }
    }

    /// The probe with `pid` ended with `code`; `Some(status)` when the status changed.
    pub fn reaped(&mut self, pid: i32, code: i32) -> Option<&'static str> {
        if self.probe.as_ref().is_none_or(|p| p.pid != pid) {
            return None;
        }
        self.read_output();
        let output = self
            .probe
            .as_mut()
            .map(|p| std::mem::take(&mut p.output))
            .unwrap_or_default();
        self.finish(code, output)
    }

    fn start_probe(&self, runtime: &Runtime) -> std::result::Result<Probe, String> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("creating a pipe: {e}"))?;
        crate::stdio::set_nonblocking(&r).map_err(|e| format!("creating a pipe: {e}"))?;
        let w2 = w.try_clone().map_err(|e| format!("creating a pipe: {e}"))?;
        let stdio = CreateStdio {
            stdin: None,
            stdout: w,
            stderr: w2,
        };
        let started_at = now_string();
        let pid = runtime.exec_with_pid_file(&self.cfg.process, &self.pid_file, stdio, &r)?;
        Ok(Probe {
            pid,
            started_at,
            deadline: Instant::now() + self.cfg.timeout,
            output: Vec::new(),
            out: Some(r),
        })
    }

    fn kill_probe(&self) {
        if let Some(p) = &self.probe
            && p.pid > 0
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Records a result (Docker's rules) and schedules the next probe.
    fn finish(&mut self, code: i32, output: Vec<u8>) -> Option<&'static str> {
        let probe = self.probe.take();
        let now = Instant::now();
        let before = self.state.status;
        let in_start_period = now.duration_since(self.started) < self.cfg.start_period;
        if code == 0 {
            self.state.status = "healthy";
            self.state.failing_streak = 0;
        } else if !(self.state.status == "starting" && in_start_period) {
            self.state.failing_streak += 1;
            if self.state.failing_streak >= self.cfg.retries.max(1) {
                self.state.status = "unhealthy";
            }
        }
        self.state.log.push_back(Result {
            start: probe.map(|p| p.started_at).unwrap_or_else(now_string),
            end: now_string(),
            exit_code: i64::from(code),
            output: String::from_utf8_lossy(&output).into_owned(),
        });
        while self.state.log.len() > MAX_LOG {
            self.state.log.pop_front();
        }
        let starting = self.state.status == "starting" && in_start_period;
        self.next = now
            + if starting && !self.cfg.start_interval.is_zero() {
                self.cfg.start_interval
            } else {
                self.cfg.interval
            };
        self.save();
        (self.state.status != before).then_some(self.state.status)
    }

    /// Writes health.json atomically.
    fn save(&self) {
        let tmp = self.file.with_extension("json.tmp");
        if let Ok(text) = serde_json::to_vec(&self.state)
            && std::fs::write(&tmp, text).is_ok()
        {
            let _ = std::fs::rename(&tmp, &self.file);
        }
    }
}

fn first_delay(cfg: &HealthConfig) -> Duration {
    if !cfg.start_period.is_zero() && !cfg.start_interval.is_zero() {
        cfg.start_interval
    } else {
        cfg.interval
    }
}

fn now_string() -> String {
    now()
}
