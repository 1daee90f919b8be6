//! A driver for any runtime with runc's command line: `hako-runtime`, `runc` or `crun`.
//!
//! Each [`Runtime`] gets its own `--root` state dir, so tests never see each other's
//! containers, and it tracks every id it created so its Drop can clean up after a failed test.
//!
//! The runtime's stdout and stderr go to files, never pipes: `create` hands its stdio to the
//! container process, and a pipe held open by the container would block a reader forever.

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::leak;

/// Which runtime binary a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// hako's own runtime (`target/{release,debug}/hako-runtime` or `$HAKO_RUNTIME`).
    Hako,
    /// The reference runtime, used as the oracle.
    Runc,
    /// crun (benchmarks; needs cgroup2 out of the way on hybrid hosts).
    Crun,
}

impl RuntimeKind {
    /// Short name used in test names and ids.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Hako => "hako",
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
        }
    }

    /// Find the binary: for hako `$HAKO_RUNTIME`, then `<workspace>/target/release`, then
    /// `target/debug`; for the others, `$PATH` plus the sbin dirs.
    pub fn locate(self) -> Option<PathBuf> {
        match self {
            RuntimeKind::Hako => {
                if let Some(p) = std::env::var_os("HAKO_RUNTIME") {
                    return Some(PathBuf::from(p)).filter(|p| p.is_file());
                }
                let target = crate::workspace_root().join("target");
                ["release", "debug"]
                    .iter()
                    .map(|profile| target.join(profile).join("hako-runtime"))
                    .find(|p| p.is_file())
            }
            RuntimeKind::Runc => find_in_path("runc"),
            RuntimeKind::Crun => find_in_path("crun"),
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// What one runtime invocation did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit status (None when it timed out and was killed).
    pub status: Option<ExitStatus>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Output {
    /// Exit code, if it exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// True when it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Panic with the whole output unless it succeeded.
    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> &Self {
        assert!(self.success(), "{what}: expected success\n{self}");
        self
    }

    /// Panic unless it failed (non-zero exit, not a timeout) with exactly one non-empty
    /// line on stderr; returns that line.
    #[track_caller]
    pub fn expect_clean_failure(&self, what: &str) -> String {
        assert!(self.status.is_some(), "{what}: timed out\n{self}");
        assert!(!self.success(), "{what}: expected failure\n{self}");
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: expected one error line on stderr\n{self}"
        );
        lines[0].to_string()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        match self.status {
            Some(s) => writeln!(f, "status: {s}")?,
            None => writeln!(f, "status: TIMED OUT (killed)")?,
        }
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

/// A runtime binary bound to a private `--root`, plus a janitor for what tests create.
#[derive(Debug)]
pub struct Runtime {
    kind: RuntimeKind,
    bin: PathBuf,
    work: PathBuf,
    root: PathBuf,
    timeout: Duration,
    tracked: Mutex<Vec<(String, Option<PathBuf>)>>,
}

impl Runtime {
    /// A driver for `kind`, or an error when its binary cannot be found.
    pub fn new(kind: RuntimeKind) -> Result<Self> {
        let bin = kind
            .locate()
            .with_context(|| format!("{kind} binary not found"))?;
        Self::with_binary(kind, bin)
    }

    /// A driver for a given binary.
    pub fn with_binary(kind: RuntimeKind, bin: PathBuf) -> Result<Self> {
        let work = tempfile::Builder::new()
            .prefix("hako-e2e-rt-")
            .tempdir()?
            .keep();
        let root = work.join("state");
        Ok(Self {
            kind,
            bin,
            work,
            root,
            timeout: Duration::from_secs(30),
            tracked: Mutex::new(Vec::new()),
        })
    }

    /// Which runtime this is.
    pub fn kind(&self) -> RuntimeKind {
        self.kind
    }

    /// The binary.
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    /// The `--root` state dir (may not exist until the first create).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A scratch dir that lives as long as this driver.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// Run `<bin> --root <root> <args>` with stdin from /dev/null.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let out = self.work.join(format!("cmd-{}.out", crate::unique_id("o")));
        let err = out.with_extension("err");
        self.cmd_to(args, &out, &err)
    }

    /// Like [`Runtime::cmd`], with the runtime's (and so the container's) stdout and stderr
    /// going to the given files.
    pub fn cmd_to(&self, args: &[&str], out: &Path, err: &Path) -> Output {
        let mut full = vec!["--root".to_string(), self.root.display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        let command = format!("{} {}", self.bin.display(), full.join(" "));
        let spawn = || -> Result<std::process::Child> {
            Ok(Command::new(&self.bin)
                .args(&full)
                .stdin(Stdio::null())
                .stdout(File::create(out)?)
                .stderr(File::create(err)?)
                .spawn()?)
        };
        let status = match spawn() {
            Ok(child) => wait_timeout(child, self.timeout),
            Err(e) => {
                return Output {
                    command,
                    status: None,
                    stdout: String::new(),
                    stderr: format!("spawn failed: {e:#}"),
                };
            }
        };
        Output {
            command,
            status,
            stdout: fs::read_to_string(out).unwrap_or_default(),
            stderr: fs::read_to_string(err).unwrap_or_default(),
        }
    }

    fn track(&self, id: &str, bundle: Option<&Path>) {
        let mut t = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        if !t.iter().any(|(i, _)| i == id) {
            t.push((id.to_string(), bundle.map(Path::to_path_buf)));
        }
    }

    /// Files that receive the container's stdout/stderr for a `create`d container.
    pub fn container_stdio(&self, id: &str) -> (PathBuf, PathBuf) {
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        (
            self.work.join(format!("{safe}.stdout")),
            self.work.join(format!("{safe}.stderr")),
        )
    }

    /// What the container `id` wrote to stdout so far (create/start flows).
    pub fn container_stdout(&self, id: &str) -> String {
        fs::read_to_string(self.container_stdio(id).0).unwrap_or_default()
    }

    /// `create --bundle <bundle> [extra...] <id>`; the container's stdio goes to files.
    pub fn create(&self, id: &str, bundle: &Path) -> Output {
        self.create_with(id, bundle, &[])
    }

    /// `create` with extra flags (`--pid-file`, `--console-socket`, ...).
    pub fn create_with(&self, id: &str, bundle: &Path, extra: &[&str]) -> Output {
        self.track(id, Some(bundle));
        let b = bundle.display().to_string();
        let mut args = vec!["create", "--bundle", &b];
        args.extend_from_slice(extra);
        args.push(id);
        let (out, err) = self.container_stdio(id);
        self.cmd_to(&args, &out, &err)
    }

    /// `start <id>`.
    pub fn start(&self, id: &str) -> Output {
        self.cmd(&["start", id])
    }

    /// `run --bundle <bundle> <id>` in the foreground: returns when the container exited.
    pub fn run(&self, id: &str, bundle: &Path) -> Output {
        self.run_with(id, bundle, &[])
    }

    /// `run` with extra flags (`--detach`, `--no-pivot`, `--pid-file`, ...).
    pub fn run_with(&self, id: &str, bundle: &Path, extra: &[&str]) -> Output {
        self.track(id, Some(bundle));
        let b = bundle.display().to_string();
        let mut args = vec!["run", "--bundle", &b];
        args.extend_from_slice(extra);
        args.push(id);
        let (out, err) = self.container_stdio(id);
        self.cmd_to(&args, &out, &err)
    }

    /// Run a fresh container of `bundle` in the foreground and return its output and exit
    /// code (the runtime's exit code is the container's).
    pub fn run_capture(&self, bundle: &Path) -> Output {
        let id = crate::unique_id(self.kind.name());
        self.run(&id, bundle)
    }

    /// `state <id>` as raw output.
    pub fn state_raw(&self, id: &str) -> Output {
        self.cmd(&["state", id])
    }

    /// `state <id>` parsed.
    pub fn state(&self, id: &str) -> Result<Value> {
        let out = self.state_raw(id);
        if !out.success() {
            bail!("state {id} failed\n{out}");
        }
        serde_json::from_str(&out.stdout).with_context(|| format!("state is not JSON\n{out}"))
    }

    /// The `status` field of `state`, or None when state fails.
    pub fn status(&self, id: &str) -> Option<String> {
        let state = self.state(id).ok()?;
        state["status"].as_str().map(str::to_string)
    }

    /// Poll `state` until status is `want` (true) or the timeout passes (false).
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.status(id).as_deref() == Some(want) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill <id> <signal>` (a name like `KILL`/`SIGTERM` or a number).
    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.cmd(&["kill", id, signal])
    }

    /// `kill --all <id> <signal>`.
    pub fn kill_all(&self, id: &str, signal: &str) -> Output {
        self.cmd(&["kill", "--all", id, signal])
    }

    /// `delete <id>`.
    pub fn delete(&self, id: &str) -> Output {
        self.cmd(&["delete", id])
    }

    /// `delete --force <id>`.
    pub fn delete_force(&self, id: &str) -> Output {
        self.cmd(&["delete", "--force", id])
    }

    /// `list` with extra flags.
    pub fn list(&self, extra: &[&str]) -> Output {
        let mut args = vec!["list"];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    /// Assert nothing of these containers is left: no state under `--root`, no cgroup named
    /// after an id, no mount under the bundle, no process of the bundle. Retries for up to
    /// two seconds (processes take a moment to be reaped).
    #[track_caller]
    pub fn assert_no_leaks(&self, ids: &[&str], bundles: &[&Path]) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let report = leak::find_leaks(&self.root, ids, bundles);
            if report.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!("{} left resources behind:\n{report}", self.kind);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let tracked = std::mem::take(self.tracked.get_mut().unwrap_or_else(|e| e.into_inner()));
        self.timeout = Duration::from_secs(10);
        for (id, _) in &tracked {
            if self.root.join(id).exists() || self.status(id).is_some() {
                let _ = self.delete_force(id);
            }
        }
        let ids: Vec<&str> = tracked.iter().map(|(i, _)| i.as_str()).collect();
        let bundles: Vec<&Path> = tracked.iter().filter_map(|(_, b)| b.as_deref()).collect();
        leak::clean_up(&self.root, &ids, &bundles);
        leak::detach_mounts_under(&self.work);
        let _ = fs::remove_dir_all(&self.work);
    }
}

/// Wait for a child up to `timeout`; kill it on timeout and return None.
fn wait_timeout(mut child: std::process::Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
