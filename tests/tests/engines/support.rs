//! What every engine harness shares: the skip/fail gate, commands with a deadline, a daemon
//! boxed in its own namespaces, and the teardown checks (no process, mount or cgroup left).
//!
//! A daemon runs as
//!
//! ```text
//!   setpriv --pdeathsig KILL unshare --net --mount --pid --fork --kill-child --mount-proc DAEMON ...
//!      │        (the test dies → unshare gets SIGKILL → --kill-child kills the daemon)
//!      └─ unshare ── DAEMON (pid 1 of a new pid namespace; when it exits the kernel kills
//!                     every containerd, shim and container process left in that namespace)
//! ```
//!
//! so a second dockerd never sees (or deletes) the host's `docker0`, its overlay mounts stay
//! in a private mount namespace, and nothing it started can outlive it.

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hako_test_support::{RuntimeKind, in_ci, root_or_skip};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Which OCI runtime the engine is told to use: ours, or runc as the oracle.
#[derive(Debug, Clone)]
pub struct Oci {
    pub kind: RuntimeKind,
    pub path: PathBuf,
}

/// Decide whether an engine scenario runs: root, the runtime filter, the engine's binaries
/// and the runtime binary. Prints `SKIP <why>` and returns None when it cannot run; under
/// `CI=true` a missing engine package or hako-runtime is a failure instead.
pub fn gate(test: &str, kind: RuntimeKind, engine_bins: &[&str]) -> Option<Oci> {
    if !root_or_skip(&format!("{test} [{kind}]")) {
        return None;
    }
    if let Ok(only) = std::env::var("HAKO_E2E_RUNTIMES")
        && !only.split(',').any(|r| r.trim() == kind.name())
    {
        eprintln!("SKIP {test} [{kind}]: not in HAKO_E2E_RUNTIMES={only}");
        return None;
    }
    let missing: Vec<&str> = engine_bins
        .iter()
        .copied()
        .filter(|b| which(b).is_none())
        .collect();
    if !missing.is_empty() {
        let why = format!(
            "missing {} (Debian packages docker.io containerd podman; scripts/test.sh installs them)",
            missing.join(", ")
        );
        assert!(!in_ci(), "{test}: {why}");
        eprintln!("SKIP {test} [{kind}]: {why}");
        return None;
    }
    match kind.locate() {
        Some(path) => Some(Oci { kind, path }),
        None => {
            let why = format!("no {kind} binary (build it: cargo build --release -p hako-runtime)");
            assert!(!in_ci(), "{test}: {why}");
            eprintln!("SKIP {test} [{kind}]: {why}");
            None
        }
    }
}

/// `name` in `$PATH` or the sbin dirs.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// What one command did (stdout/stderr went through files, never pipes: a container or
/// shim that inherits a pipe would keep a reader waiting forever).
#[derive(Debug)]
pub struct Out {
    pub command: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The exit code; None when killed by a signal or by the deadline.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// True when the command exited 0.
    pub fn success(&self) -> bool {
        self.code() == Some(0)
    }

    /// Panic with the whole output unless the command exited 0.
    #[track_caller]
    pub fn ok(&self, what: &str) -> &Self {
        assert!(self.success(), "{what} failed:\n{self}");
        self
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed at the deadline".to_string(),
        };
        write!(
            f,
            "$ {}\n[{status}]\n--- stdout\n{}--- stderr\n{}",
            self.command, self.stdout, self.stderr
        )
    }
}

/// Run `cmd` to completion (killed after `timeout`), output captured through files in `dir`.
pub fn run(cmd: Command, dir: &Path, timeout: Duration) -> Out {
    run_with_stdin(
        cmd,
        File::open("/dev/null").expect("/dev/null"),
        dir,
        timeout,
    )
}

fn run_with_stdin(mut cmd: Command, stdin: File, dir: &Path, timeout: Duration) -> Out {
    let command = format!("{cmd:?}");
    let out_path = tempfile::NamedTempFile::new_in(dir).expect("stdout file");
    let err_path = tempfile::NamedTempFile::new_in(dir).expect("stderr file");
    cmd.stdin(stdin)
        .stdout(out_path.reopen().expect("reopen stdout"))
        .stderr(err_path.reopen().expect("reopen stderr"));
    let status = match cmd.spawn() {
        Ok(mut child) => wait_deadline(&mut child, timeout),
        Err(e) => {
            return Out {
                command,
                status: None,
                stdout: String::new(),
                stderr: format!("spawn failed: {e}"),
            };
        }
    };
    Out {
        command,
        status,
        stdout: fs::read_to_string(out_path.path()).unwrap_or_default(),
        stderr: fs::read_to_string(err_path.path()).unwrap_or_default(),
    }
}

/// Run a command line under a pseudo-terminal (`script -qec`), as a person at a shell would;
/// `script` relays the pty output to its stdout.
/// `input` is typed into the terminal (it goes through `script`'s stdin).
pub fn run_in_pty(
    line: &str,
    env: &[(&str, &str)],
    input: &str,
    dir: &Path,
    timeout: Duration,
) -> Out {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", line, "/dev/null"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stdin = tempfile::NamedTempFile::new_in(dir).expect("stdin file");
    fs::write(stdin.path(), input).expect("writing pty input");
    let mut out = run_with_stdin(cmd, File::open(stdin.path()).expect("stdin"), dir, timeout);
    // A pty turns "\n" into "\r\n" and may echo a NUL on close.
    out.stdout = out.stdout.replace(['\r', '\0'], "");
    out
}

/// Wait for `child` until `timeout`, then SIGKILL it. None when it had to be killed.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Poll `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A unique short name `hako-e2e-<pid>-<n>` (netns, cgroup parent, image tags).
pub fn unique(prefix: &str) -> String {
    hako_test_support::unique_id(&format!("hako-e2e-{prefix}"))
}

/// A world-traversable temp dir for one harness (paths stay short: unix sockets have a
/// 108-byte limit and containerd nests `<state>/io.containerd.runtime.v2.task/<ns>/<id>`).
pub fn harness_dir(engine: &str) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(&format!("hako-{engine}-"))
        .tempdir_in("/tmp")
        .expect("harness temp dir")
        .keep();
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod harness dir");
    dir
}

/// A daemon in its own net, mount and pid namespaces (see the module doc).
#[derive(Debug)]
pub struct Daemon {
    name: &'static str,
    unshare: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Start `argv` boxed in new namespaces; its stdout and stderr go to `log`.
    pub fn spawn(name: &'static str, argv: &[String], log: PathBuf) -> Self {
        let file = File::create(&log).expect("daemon log");
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "unshare"])
            .args([
                "--net",
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
            ])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Self {
            name,
            unshare: Some(child),
            log,
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's host pid: the one child of `unshare --fork`.
    pub fn pid(&self) -> Option<i32> {
        let u = self.unshare.as_ref()?.id();
        fs::read_to_string(format!("/proc/{u}/task/{u}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// True while `unshare` (and so the daemon) runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.unshare.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Wait until `ready()` says the daemon answers; panic with its log otherwise.
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let ok = wait_until(timeout, || ready() || !self.alive());
        if !ok || !self.alive() {
            let log = self.log();
            self.stop();
            panic!(
                "{} did not come up within {timeout:?}; its log:\n{log}",
                self.name
            );
        }
    }

    /// SIGTERM the daemon, give it 15 s to shut down, then SIGKILL (which, as pid 1 of its
    /// pid namespace, takes every process in there with it). Idempotent.
    pub fn stop(&mut self) {
        let daemon_pid = self.pid();
        let Some(mut unshare) = self.unshare.take() else {
            return;
        };
        if let Some(pid) = daemon_pid {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let stopped = wait_until(Duration::from_secs(15), || {
            matches!(unshare.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            eprintln!("{}: no exit 15 s after SIGTERM, killing it", self.name);
            if let Some(pid) = daemon_pid {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let reaped = wait_until(Duration::from_secs(5), || {
                matches!(unshare.try_wait(), Ok(Some(_)))
            });
            if !reaped {
                let _ = unshare.kill();
            }
        }
        let _ = unshare.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Processes whose command line or environment mentions `marker` (the harness dir): after
/// teardown there must be none. Returns `pid: cmdline` for each.
pub fn processes_mentioning(marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let environ = fs::read(entry.path().join("environ"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if cmdline.contains(marker) || environ.contains(marker) {
            found.push(format!("{name}: {}", cmdline.trim()));
        }
    }
    found
}

/// SIGKILL every process that mentions `marker` (last-resort cleanup).
pub fn kill_mentioning(marker: &str) {
    for line in processes_mentioning(marker) {
        if let Some(pid) = line.split(':').next().and_then(|p| p.parse().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Detach every mount under `dir` (lazily), then remove the tree.
pub fn remove_tree(dir: &Path) {
    for m in mounts_under(dir) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = fs::remove_dir_all(dir);
}

/// Every mounted cgroup hierarchy (`/sys/fs/cgroup/<controller>` on v1 and hybrid hosts,
/// plus the v2 tree, or just `/sys/fs/cgroup` on a pure v2 host).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter(|l| {
            let fstype = l.split(" - ").nth(1).and_then(|r| r.split(' ').next());
            matches!(fstype, Some("cgroup") | Some("cgroup2"))
        })
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .collect()
}

/// The dirs named `parent` in every hierarchy that still exist.
pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    cgroup_roots()
        .into_iter()
        .map(|r| r.join(parent))
        .filter(|p| p.is_dir())
        .collect()
}

/// Remove the per-harness cgroup parent in every hierarchy; return the container cgroups
/// still inside it (a leak: the runtime's delete should have removed them).
pub fn remove_cgroup_parent(parent: &str) -> Vec<PathBuf> {
    let mut leaked = Vec::new();
    for dir in cgroup_dirs(parent) {
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    leaked.push(e.path());
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
        let _ = fs::remove_dir(&dir);
    }
    leaked
}
