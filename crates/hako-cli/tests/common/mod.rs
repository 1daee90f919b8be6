//! The harness of the container tests (`containers.rs`, `container_extra.rs`): the built
//! `hako` binary with a throwaway `--root` and a short `--exec-root`, a `busybox` image from
//! `hako import`, and a leak check for the end of each test.

#![allow(dead_code)]

pub mod pty;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const HAKO: &str = env!("CARGO_BIN_EXE_hako");

/// The status a failing `hako ARGS` leaves with, as the docker CLI's: 125 when `run`
/// fails (Docker keeps 1-124 for the container's own statuses), 1 for any other command.
/// (Usage errors are 125 for every command.)
pub fn failure_code(args: &[&str]) -> i32 {
    const GLOBALS_WITH_VALUE: &[&str] = &[
        "--root",
        "--exec-root",
        "--storage-driver",
        "--cgroup-manager",
        "--runtime",
        "--host",
        "-H",
        "--log-level",
        "-l",
    ];
    let mut it = args.iter();
    let mut words = Vec::new();
    while let Some(a) = it.next() {
        if GLOBALS_WITH_VALUE.contains(a) {
            it.next();
        } else if !a.starts_with('-') {
            words.push(*a);
            if words.len() == 2 {
                break;
            }
        }
    }
    match words.as_slice() {
        ["run", ..] | ["container", "run"] => 125,
        _ => 1,
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[macro_export]
macro_rules! need_root {
    () => {
        if !$crate::common::is_root() {
            // CI runs as root: there a missing prerequisite is a failure, not a skip.
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "this test needs root"
            );
            eprintln!("SKIP: needs root");
            return;
        }
    };
}

/// A tar of the busybox rootfs fixture (cached in the fixtures dir, shared by all tests).
pub fn rootfs_tar() -> &'static Path {
    hako_test_support::busybox_tar().expect("busybox tar fixture")
}

/// The static hako-init: `HAKO_INIT` (`scripts/test.sh` exports the release one), else the
/// one built next to `hako` (static in every profile: `.cargo/config.toml`).
pub fn static_init() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HAKO_INIT") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(HAKO).with_file_name("hako-init");
    p.exists().then_some(p)
}

/// One hako installation (data root + exec root) with a `busybox` image, in a network
/// namespace of its own: its `hako0` bridge, nftables table, published ports and resolver
/// never meet another test's, and the host's network is never touched.
pub struct Hako {
    /// `--root`.
    pub root: tempfile::TempDir,
    /// `--exec-root` (removed at the end).
    pub exec: tempfile::TempDir,
    /// A directory under `exec` to use as `--exec-root` instead of `exec` itself.
    pub exec_override: Option<PathBuf>,
    /// The test's network "host".
    pub net: hako_test_support::NetSandbox,
}

impl Hako {
    /// An installation without images.
    pub fn new_empty() -> Hako {
        Hako {
            root: tempfile::Builder::new()
                .prefix("hako-ctr-")
                .tempdir()
                .expect("tempdir"),
            exec: tempfile::Builder::new()
                .prefix("hk")
                .tempdir_in("/tmp")
                .expect("tempdir"),
            exec_override: None,
            net: hako_test_support::NetSandbox::new().expect("a network namespace for the test"),
        }
    }

    /// The `--exec-root` given to hako.
    pub fn exec_root(&self) -> &Path {
        self.exec_override.as_deref().unwrap_or(self.exec.path())
    }

    pub fn new() -> Hako {
        let h = Hako::new_empty();
        h.ok(&[
            "import",
            rootfs_tar().to_str().expect("utf-8"),
            "busybox",
            "--change",
            "CMD [\"sh\"]",
        ]);
        h
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.net.command(HAKO);
        if let Some(init) = static_init() {
            c.env("HAKO_INIT", init);
        }
        c.arg("--root")
            .arg(self.root.path())
            .arg("--exec-root")
            .arg(self.exec_root())
            .args(args);
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run hako")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "hako {args:?} failed ({:?}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf-8 stdout")
    }

    /// Runs, asserts exit `code` and one `Error:` line on stderr; returns that line.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "hako {args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("Error")).collect();
        assert_eq!(
            lines.len(),
            1,
            "hako {args:?}: expected one error line, got: {err}"
        );
        lines[0].to_string()
    }

    pub fn inspect(&self, c: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", c])).expect("inspect json");
        v[0].clone()
    }

    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Nothing of any container may remain: records, dirs, mounts, cgroups, processes.
    pub fn assert_clean(&self, ids: &[&str]) {
        let ps = self.ok(&["ps", "-aq"]);
        assert!(ps.trim().is_empty(), "containers left: {ps}");
        let dir = self.root.path().join("containers");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
        let left: Vec<_> = std::fs::read_dir(self.exec_root().join("containers"))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "shim state left: {left:?}");
        let report = hako_test_support::find_leaks(
            &self.exec_root().join("runtime/hako-runtime"),
            ids,
            &[self.root.path()],
        );
        assert!(report.is_empty(), "leaks:\n{report}");
        let left: Vec<_> = std::fs::read_dir(self.exec_root().join("netns"))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "network namespaces left: {left:?}");
        // The resolver exits on its own shortly after the last container on a user network.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut leaks = self.net.leaks();
        while !leaks.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            leaks = self.net.leaks();
        }
        assert!(leaks.is_empty(), "network leaks: {leaks:?}");
    }

    /// A program run in the test's network namespace (`nc`, `ip`, `nft`...).
    pub fn host(&self, program: &str) -> Command {
        let mut c = self.net.command(program);
        c.stdin(Stdio::null());
        c
    }

    /// Runs with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn hako");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("wait hako")
    }

    /// `run -d ARGS...` and waits until `ready` (a path) exists inside; returns the id.
    pub fn start(&self, args: &[&str], ready: Option<&str>) -> String {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        let id = self.ok(&all).trim().to_string();
        if let Some(p) = ready {
            self.wait_for(p, || {
                self.run(&["exec", &id, "test", "-e", p]).status.success()
            });
        }
        id
    }

    /// `rm -f -v` of every container, then the leak check for them.
    pub fn finish(&self, ids: &[&str]) {
        for id in ids {
            let _ = self.run(&["rm", "-f", "-v", id]);
        }
        self.assert_clean(ids);
    }
}

impl Drop for Hako {
    fn drop(&mut self) {
        if let Ok(out) = self.cmd(&["ps", "-aq", "--no-trunc"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.cmd(&["rm", "-f", "-v", id]).output();
            }
        }
        // What `rm -f` could not reach (a failed test left a store that no longer opens,
        // say on a full disk): the containers' processes (found by their cgroups) and the
        // shims (their command lines name the roots), killed by hand; then the cgroups.
        let roots = [self.root.path(), self.exec.path()];
        let ids: Vec<String> = std::fs::read_dir(self.root.path().join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut cgroups =
            hako_test_support::find_leaks(Path::new("/nonexistent"), &ids, &[]).cgroups;
        let in_cgroups = || {
            cgroups
                .iter()
                .flat_map(|c| {
                    std::fs::read_to_string(c.join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.parse::<i32>().ok())
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<i32>>()
        };
        let left: Vec<i32> = in_cgroups()
            .into_iter()
            .chain(hako_test_support::processes_under(&roots))
            .collect();
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !left.is_empty()
            && (!in_cgroups().is_empty() || !hako_test_support::processes_under(&roots).is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Deepest first.
        cgroups.sort_by_key(|c| std::cmp::Reverse(c.components().count()));
        for c in cgroups {
            let _ = std::fs::remove_dir(c);
        }
        // Mounts under either root: the rootfs under `--root`, a container's network
        // namespace file under `--exec-root` (left when the store no longer opens).
        for m in hako_test_support::find_leaks(Path::new("/nonexistent"), &[], &roots).mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Whether `p` is a mount point in this (the host's) mount namespace.
pub fn mounted(p: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p))
}
