//! Tests against the real cgroupfs of this machine. They need root and a v1 memory
//! hierarchy (the hybrid CI machines); elsewhere they print why and pass.
//!
//! Each test creates `/hako-test-<pid>-<n>` and a guard destroys it even when the test
//! fails; the last check of several tests is that nothing is left in any hierarchy.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hako_cgroups::{CgroupManager, FreezerState, Layout, Manager};
use oci_spec::runtime::LinuxResources;

fn skip_reason() -> Option<&'static str> {
    if !nix::unistd::Uid::effective().is_root() {
        // CI runs the tests as root: there a skip would pass tests that never ran.
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "needs root");
        return Some("not root");
    }
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        return Some("/sys/fs/cgroup/memory is absent (not a v1/hybrid host)");
    }
    None
}

macro_rules! require_host {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("skipping real cgroup test: {reason}");
            return;
        }
    };
}

fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/hako-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Destroys the cgroup when the test ends, however it ends.
struct Guard(Manager);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.0.destroy() {
            eprintln!("cleanup of {}: {e}", self.0.resolved_path());
        }
    }
}

impl std::ops::Deref for Guard {
    type Target = Manager;
    fn deref(&self) -> &Manager {
        &self.0
    }
}

/// A child process that is killed and reaped when the test ends.
struct Proc(Child);

impl Proc {
    fn sleep() -> Proc {
        Proc(Command::new("sleep").arg("1000").spawn().unwrap())
    }

    /// `sh -c script` that first waits for a line on stdin, so it can be moved into a
    /// cgroup before it does anything.
    fn sh(script: &str) -> Proc {
        let script = format!("read x; {script}");
        Proc(
            Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    fn go(&mut self) {
        let mut stdin = self.0.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < timeout, "pid {} did not exit", self.pid());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn output(&mut self) -> (String, String) {
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut s) = self.0.stdout.take() {
            s.read_to_string(&mut out).unwrap();
        }
        if let Some(mut s) = self.0.stderr.take() {
            s.read_to_string(&mut err).unwrap();
        }
        (out, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn res(json: serde_json::Value) -> LinuxResources {
    serde_json::from_value(json).unwrap()
}

/// Directories named `resolved` left in any hierarchy under /sys/fs/cgroup.
fn leftovers(resolved: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path().join(resolved.trim_start_matches('/')))
        .filter(|p| p.exists())
        .collect()
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn v1_manager() -> Guard {
    Guard(Manager::with_root(
        Path::new("/sys/fs/cgroup"),
        Layout::V1,
        &unique(),
    ))
}

#[test]
fn host_is_detected_as_hybrid() {
    require_host!();
    let layout = hako_cgroups::detect_layout().unwrap();
    if Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        assert_eq!(layout, Layout::Hybrid);
    } else {
        assert_eq!(layout, Layout::V1);
    }
    // Relative and default paths resolve below our own cgroup.
    let r = hako_cgroups::resolve_path(None, "abc").unwrap();
    assert!(r.starts_with('/') && r.ends_with("/abc"), "{r}");
    assert!(matches!(
        hako_cgroups::resolve_path(Some("system.slice:docker:abc"), "abc"),
        Err(hako_cgroups::Error::SystemdUnsupported { .. })
    ));
}

#[test]
fn v1_memory_limit_of_512k() {
    require_host!();
    let m = v1_manager();
    m.create().unwrap();
    let mut child = Proc::sleep();
    m.add_task(child.pid()).unwrap();
    m.apply(&res(serde_json::json!({"memory": {"limit": 524288}})))
        .unwrap();
    let dir = Path::new("/sys/fs/cgroup/memory").join(m.resolved_path().trim_start_matches('/'));
    let limit = std::fs::read_to_string(dir.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), "524288");
    assert!(procs(&dir).contains(&child.pid()));
    assert_eq!(m.pids().unwrap(), [child.pid()]);
    let stats = m.stats().unwrap();
    assert_eq!(stats.memory.usage.limit, 524288);
    m.destroy().unwrap();
    assert_eq!(child.wait(Duration::from_secs(5)).signal(), Some(9));
    assert_eq!(leftovers(m.resolved_path()), Vec::<PathBuf>::new());
}

#[test]
fn v1_pids_limit_of_1_stops_fork() {
    require_host!();
    let m = v1_manager();
    m.create().unwrap();
    m.apply(&res(serde_json::json!({"pids": {"limit": 1}})))
        .unwrap();
    let mut sh = Proc::sh("/bin/true && echo FORKED");
    m.add_task(sh.pid()).unwrap();
    sh.go();
    sh.wait(Duration::from_secs(10));
    let (out, err) = sh.output();
    assert!(
        !out.contains("FORKED"),
        "fork succeeded under pids.max=1: {out}"
    );
    assert!(err.to_lowercase().contains("fork"), "stderr: {err}");
    let dir = Path::new("/sys/fs/cgroup/pids").join(m.resolved_path().trim_start_matches('/'));
    let events = std::fs::read_to_string(dir.join("pids.events")).unwrap();
    assert_ne!(events.trim(), "max 0", "pids.events: {events}");
}

#[test]
fn v1_device_rules_are_accepted_by_the_kernel() {
    require_host!();
    let m = v1_manager();
    m.create().unwrap();
    m.apply(&res(serde_json::json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "w"}
    ]})))
    .unwrap();
    let dir = Path::new("/sys/fs/cgroup/devices").join(m.resolved_path().trim_start_matches('/'));
    let list = std::fs::read_to_string(dir.join("devices.list")).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert!(!lines.contains(&"a *:* rwm"), "{list}");
    assert!(lines.contains(&"c 1:3 rwm"), "{list}");
    assert!(lines.contains(&"c *:* m"), "{list}");
    // The later deny took "w" away from the earlier allow.
    assert!(lines.contains(&"c 1:5 rm"), "{list}");
}

#[test]
fn v1_freezer_and_destroy_with_a_live_process() {
    require_host!();
    let m = v1_manager();
    m.create().unwrap();
    let mut child = Proc::sleep();
    m.add_task(child.pid()).unwrap();
    m.freeze().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    m.thaw().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    // Destroy while frozen, with the process alive: it must die and nothing remain.
    m.freeze().unwrap();
    m.destroy().unwrap();
    assert_eq!(child.wait(Duration::from_secs(5)).signal(), Some(9));
    assert_eq!(leftovers(m.resolved_path()), Vec::<PathBuf>::new());
    // Destroying again is fine.
    m.destroy().unwrap();
}

/// The hybrid unified tree is a real (controller-less) cgroup2 hierarchy, so the pure v2
/// code runs on it unchanged.
#[test]
fn unified_tree_as_pure_v2() {
    require_host!();
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.procs").exists() {
        eprintln!("skipping: no cgroup2 at /sys/fs/cgroup/unified");
        return;
    }
    let m = Guard(Manager::with_root(unified, Layout::V2, &unique()));
    m.create().unwrap();
    let dir = m.v2_dir().unwrap();
    let mut child = Proc::sleep();
    m.add_task(child.pid()).unwrap();
    assert_eq!(m.pids().unwrap(), [child.pid()]);
    m.freeze().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
    assert!(events.contains("frozen 1"), "{events}");
    m.thaw().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    // SIGKILL goes through cgroup.kill.
    m.kill_all(nix::libc::SIGKILL).unwrap();
    assert_eq!(child.wait(Duration::from_secs(5)).signal(), Some(9));
    // Destroy with a live process inside.
    let mut second = Proc::sleep();
    m.add_task(second.pid()).unwrap();
    m.destroy().unwrap();
    assert_eq!(second.wait(Duration::from_secs(5)).signal(), Some(9));
    assert!(!dir.exists());
}

#[test]
fn hybrid_manager_end_to_end() {
    require_host!();
    let path = unique();
    let m = Guard(Manager::new(Some(&path), "ignored").unwrap());
    assert_eq!(m.resolved_path(), path);
    m.create().unwrap();
    let mut child = Proc::sleep();
    m.add_task(child.pid()).unwrap();
    let mounts = m.mounts();
    assert!(mounts.iter().any(|c| c.name == "memory"));
    for c in &mounts {
        assert!(
            procs(&c.host_dir).contains(&child.pid()),
            "pid not in {}",
            c.host_dir.display()
        );
    }
    // A later process rebuilds the same manager from the saved path.
    let again = Manager::from_resolved(m.resolved_path()).unwrap();
    assert_eq!(again.mounts(), mounts);
    assert_eq!(again.layout(), m.layout());

    m.freeze().unwrap();
    assert_eq!(again.freezer_state().unwrap(), FreezerState::Frozen);
    m.thaw().unwrap();
    m.kill_all(nix::libc::SIGTERM).unwrap();
    assert_eq!(child.wait(Duration::from_secs(5)).signal(), Some(15));

    let mut second = Proc::sleep();
    m.add_task(second.pid()).unwrap();
    m.kill_all(nix::libc::SIGKILL).unwrap();
    assert_eq!(second.wait(Duration::from_secs(5)).signal(), Some(9));

    let mut third = Proc::sleep();
    m.add_task(third.pid()).unwrap();
    again.destroy().unwrap();
    assert_eq!(third.wait(Duration::from_secs(5)).signal(), Some(9));
    assert_eq!(leftovers(&path), Vec::<PathBuf>::new());
}

/// A single-threaded process writing `0` to the v1 `tasks` files moves itself into every
/// v1 hierarchy (without the kernel's global rwsem and its grace period); the unified tree
/// is left to CLONE_INTO_CGROUP or `add_task_rest`.
#[test]
fn hybrid_self_join_and_the_rest() {
    require_host!();
    let path = unique();
    let m = Guard(Manager::new(Some(&path), "ignored").unwrap());
    m.create().unwrap();
    let unified = m.clone_into_dir().expect("hybrid: the unified tree");
    assert!(
        unified.starts_with("/sys/fs/cgroup/unified"),
        "{}",
        unified.display()
    );
    let files = m.self_join_files().unwrap();
    let v1: Vec<_> = m
        .mounts()
        .into_iter()
        .filter(|c| !c.host_dir.starts_with("/sys/fs/cgroup/unified"))
        .collect();
    assert_eq!(files.len(), v1.len(), "one tasks file per v1 hierarchy");
    // Inheritable copies, so the shell can write to them.
    let fds: Vec<std::os::fd::OwnedFd> =
        files.iter().map(|f| nix::unistd::dup(f).unwrap()).collect();
    let list: Vec<String> = fds
        .iter()
        .map(|f| std::os::fd::AsRawFd::as_raw_fd(f).to_string())
        .collect();
    // (bash: dash redirects single-digit descriptors only.)
    let mut child = Proc(
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "for fd in {}; do echo 0 >&$fd || exit 1; done; exec sleep 1000",
                list.join(" ")
            ))
            .spawn()
            .unwrap(),
    );
    drop(fds);
    let pid = child.pid();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !v1.iter().all(|c| procs(&c.host_dir).contains(&pid)) {
        assert!(Instant::now() < deadline, "not in every v1 hierarchy");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !procs(&unified).contains(&pid),
        "the unified tree is not joined this way"
    );
    m.add_task_rest(pid, false, true).unwrap();
    assert!(procs(&unified).contains(&pid));
    m.destroy().unwrap();
    assert_eq!(child.wait(Duration::from_secs(5)).signal(), Some(9));
    assert_eq!(leftovers(&path), Vec::<PathBuf>::new());
}

#[test]
fn memory_hog_is_oom_killed_and_counted() {
    require_host!();
    let m = v1_manager();
    m.create().unwrap();
    let before = m.oom_kill_count().unwrap();
    assert_eq!(before, 0);
    // memory.swap = limit: no swap, so the hog cannot escape into it.
    let memsw = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    let limit = 16 * 1024 * 1024;
    let memory = if memsw {
        serde_json::json!({"limit": limit, "swap": limit})
    } else {
        serde_json::json!({"limit": limit})
    };
    m.apply(&res(serde_json::json!({ "memory": memory })))
        .unwrap();
    // tail must hold the whole "line" (100M of zeros, no newline) in memory.
    let mut hog = Proc::sh("head -c 100M /dev/zero | tail; echo tail=$?");
    m.add_task(hog.pid()).unwrap();
    hog.go();
    hog.wait(Duration::from_secs(60));
    let (out, _) = hog.output();
    assert!(out.contains("tail=137"), "tail was not SIGKILLed: {out}");
    let count = m.oom_kill_count().unwrap();
    assert!(count >= 1, "oom_kill count {count}");
    let stats = m.stats().unwrap();
    assert!(stats.memory.event_count.oom_kill >= 1);
    // The peak reached the limit (failcnt stays 0 on recent kernels' v1 memcg).
    assert_eq!(stats.memory.usage.max, limit, "{:?}", stats.memory.usage);
}

/// v2 device control through the eBPF program, on the unified tree used as pure v2. The
/// process's v1 devices cgroup allows everything, so a denial can only come from the
/// program.
#[test]
fn v2_device_program_denies_and_allows() {
    require_host!();
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.procs").exists() {
        eprintln!("skipping: no cgroup2 at /sys/fs/cgroup/unified");
        return;
    }
    let m = Guard(Manager::with_root(unified, Layout::V2, &unique()));
    m.create().unwrap();
    m.apply(&res(serde_json::json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "r"}
    ]})))
    .unwrap();
    let mut sh = Proc::sh(
        "head -c1 /dev/zero >/dev/null 2>&1 && echo zero-ok || echo zero-denied; \
         echo x >/dev/null && echo null-ok; \
         head -c1 /dev/urandom >/dev/null && echo urandom-read-ok; \
         (echo x >/dev/urandom) 2>/dev/null && echo urandom-write-ok || echo urandom-write-denied",
    );
    m.add_task(sh.pid()).unwrap();
    sh.go();
    sh.wait(Duration::from_secs(5));
    let (out, _) = sh.output();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "zero-denied",
            "null-ok",
            "urandom-read-ok",
            "urandom-write-denied"
        ],
        "{out}"
    );
}
