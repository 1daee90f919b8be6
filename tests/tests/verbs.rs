//! End-to-end tests of the verbs that act on a live container: `ps`, `pause`/`resume`,
//! `update`, `events`, `checkpoint`/`restore`. Real containers, run as root; every scenario
//! runs against hako-runtime and against runc (the oracle) unless runc behaves differently
//! on purpose, and ends with a leak check.
//!
//! Containers never need `exec` here: each one runs a script that waits for a trigger file
//! the test writes into the bundle's rootfs (`/tmp` is not a mount in the default config),
//! and reports through its stdout/stderr files or files in that same `/tmp`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hako_test_support::{
    Bundle, Config, ContainerGuard, Runtime, RuntimeKind, cgroups, in_ci, root_or_skip,
};
use serde_json::Value;

/// `mod <name> { #[test] fn hako(); #[test] fn runc(); }` for scenario fn `<name>`.
macro_rules! scenario {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn hako() {
                $crate::run_scenario($crate::RuntimeKind::Hako, stringify!($name), super::$name);
            }
            #[test]
            fn runc() {
                $crate::run_scenario($crate::RuntimeKind::Runc, stringify!($name), super::$name);
            }
        }
    )*};
}

scenario!(
    pause_freezes_and_resume_continues,
    update_changes_limits_and_behaviour,
    failed_update_changes_nothing,
    ps_lists_container_processes,
    events_stats_is_json_with_memory_usage,
    events_reports_oom,
    every_verb_in_every_state,
    checkpoint_fails_cleanly_or_works,
);

/// Run `f` against `kind`, or say why it is skipped (not root, filtered out by
/// `HAKO_E2E_RUNTIMES=runc,hako`, binary missing: a failure for hako under CI).
fn run_scenario(kind: RuntimeKind, name: &str, f: fn(&Runtime)) {
    if !root_or_skip(&format!("{name} [{kind}]")) {
        return;
    }
    if let Ok(only) = std::env::var("HAKO_E2E_RUNTIMES")
        && !only.split(',').any(|r| r.trim() == kind.name())
    {
        eprintln!("SKIP {name} [{kind}]: not in HAKO_E2E_RUNTIMES={only}");
        return;
    }
    let rt = match Runtime::new(kind) {
        Ok(rt) => rt,
        // runc is a Debian package scripts/test.sh installs: under CI missing is a failure too.
        Err(e) if in_ci() => {
            panic!(
                "{name} [{kind}]: {e:#} (CI=true: hako-runtime must be built first, runc installed)"
            )
        }
        Err(e) => {
            eprintln!("SKIP {name} [{kind}]: {e:#}");
            return;
        }
    };
    f(&rt);
}

/// A started container running `script`, deleted (forcibly) when dropped.
struct Running<'a> {
    rt: &'a Runtime,
    bundle: Bundle,
    guard: ContainerGuard<'a>,
}

impl<'a> Running<'a> {
    fn start(rt: &'a Runtime, script: &str) -> Self {
        Self::start_config(rt, Config::new().readonly_root(false).sh(script))
    }

    fn start_config(rt: &'a Runtime, config: Config) -> Self {
        let c = Self::create_config(rt, config);
        rt.start(c.id()).expect_ok("start");
        c
    }

    fn create_config(rt: &'a Runtime, config: Config) -> Self {
        let bundle = Bundle::new(&config).expect("busybox bundle");
        let id = hako_test_support::unique_id(rt.kind().name());
        let guard = ContainerGuard::new(rt, &id);
        rt.create(&id, bundle.path()).expect_ok("create");
        Running { rt, bundle, guard }
    }

    fn id(&self) -> &str {
        self.guard.id()
    }

    /// `<rootfs>/tmp/<name>`, the container's `/tmp/<name>`.
    fn tmp(&self, name: &str) -> PathBuf {
        self.bundle.rootfs().join("tmp").join(name)
    }

    fn cmd(&self, verb: &[&str]) -> hako_test_support::Output {
        let mut args = verb.to_vec();
        args.push(self.id());
        self.rt.cmd(&args)
    }

    fn pid(&self) -> i32 {
        let st = self.rt.state(self.id()).expect("state");
        st["pid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .expect("pid")
    }

    fn status(&self) -> String {
        self.rt.status(self.id()).unwrap_or_default()
    }

    /// A file of the container's cgroup: `file` in v1 hierarchy `controller`, or its v2
    /// counterpart on a pure v2 host (`memory.max` for `memory.limit_in_bytes`), found from
    /// the init's /proc/<pid>/cgroup (so it works for either runtime's cgroup naming).
    fn cgroup_file(&self, controller: &str, file: &str) -> PathBuf {
        cgroups::cgroup_file(self.pid(), controller, file)
            .unwrap_or_else(|| panic!("no {controller} cgroup for pid {}", self.pid()))
    }

    fn read_cgroup(&self, controller: &str, file: &str) -> String {
        let p = self.cgroup_file(controller, file);
        fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            .trim()
            .to_string()
    }

    fn stdout(&self) -> String {
        self.rt.container_stdout(self.id())
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.rt.container_stdio(self.id()).1).unwrap_or_default()
    }

    /// Kill, delete and check nothing is left.
    fn finish(mut self) {
        let id = self.id().to_string();
        self.rt.kill(&id, "KILL");
        self.rt.wait_status(&id, "stopped", Duration::from_secs(5));
        // (A successful checkpoint has already removed the container.)
        if self.rt.status(&id).is_some() {
            self.rt.delete(&id).expect_ok("delete");
        }
        self.guard.disarm();
        self.rt.assert_no_leaks(&[&id], &[self.bundle.path()]);
    }
}

/// Poll `f` until it returns Some or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SEC: Duration = Duration::from_secs(1);

/// Wait for the trigger file, then run `then`.
fn on_go(then: &str) -> String {
    format!("while [ ! -e /tmp/go ]; do sleep 0.05; done; {then}")
}

fn go(c: &Running) {
    fs::write(c.tmp("go"), "").expect("write trigger");
}

fn pause_freezes_and_resume_continues(rt: &Runtime) {
    // A counter that advances every 20 ms, published by rename so a read never sees a
    // half-written file.
    let c = Running::start(
        rt,
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/n.tmp; mv /tmp/n.tmp /tmp/n; sleep 0.02; done",
    );
    let count = || {
        fs::read_to_string(c.tmp("n"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    wait_for(5 * SEC, || count().filter(|&n| n > 2)).expect("counter never advanced");

    c.cmd(&["pause"]).expect_ok("pause");
    assert_eq!(c.status(), "paused");
    let frozen = count().expect("counter");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(count(), Some(frozen), "counter advanced while paused");
    assert_eq!(c.status(), "paused");

    c.cmd(&["resume"]).expect_ok("resume");
    assert_eq!(c.status(), "running");
    wait_for(5 * SEC, || count().filter(|&n| n > frozen + 2))
        .expect("counter did not continue after resume");
    c.finish();
}

fn update_changes_limits_and_behaviour(rt: &Runtime) {
    // After the trigger, a subshell tries to start 8 sleeps: only as many as the pids
    // limit allows fork, then busybox sh gives up on the subshell; the init reports and
    // becomes a sleep itself (exec: no fork).
    let c = Running::start(
        rt,
        &on_go("(for i in 1 2 3 4 5 6 7 8; do sleep 100 & done); echo forked; exec sleep 1000"),
    );
    c.cmd(&["update", "--memory", "64m"])
        .expect_ok("update --memory");
    assert_eq!(
        c.read_cgroup("memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    let json = rt.work_dir().join("resources.json");
    fs::write(
        &json,
        r#"{"memory":{"limit":50331648},"pids":{"limit":50}}"#,
    )
    .unwrap();
    c.cmd(&["update", "-r", json.to_str().unwrap()])
        .expect_ok("update -r");
    assert_eq!(
        c.read_cgroup("memory", "memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    assert_eq!(c.read_cgroup("pids", "pids.max"), "50");

    c.cmd(&["update", "--pids-limit", "5"])
        .expect_ok("update --pids-limit");
    assert_eq!(c.read_cgroup("pids", "pids.max"), "5");
    go(&c);
    wait_for(10 * SEC, || c.stdout().contains("forked").then_some(()))
        .unwrap_or_else(|| panic!("script did not finish forking; stderr:\n{}", c.stderr()));
    // The init, the subshell and 3 sleeps filled the limit; the 4th fork failed and the
    // subshell is gone.
    let current = c.read_cgroup("pids", "pids.current");
    assert_eq!(current, "4", "pids.current");
    assert!(
        c.stderr().contains("can't fork"),
        "no fork failure reported; stderr:\n{}",
        c.stderr()
    );
    c.finish();
}

fn failed_update_changes_nothing(rt: &Runtime) {
    let c = Running::start(rt, "sleep 1000");
    let before = c.read_cgroup("memory", "memory.limit_in_bytes");
    let out = c.cmd(&["update", "--memory", "lots"]);
    let line = out.expect_clean_failure("update --memory lots");
    assert!(line.contains("lots"), "{line}");
    // The memory write would succeed; the cpuset write is refused by the kernel (no cpu 99),
    // and the memory limit must be put back.
    let out = c.cmd(&["update", "--memory", "64m", "--cpuset-cpus", "0-99"]);
    assert!(!out.success(), "cpuset 0-99 accepted\n{out}");
    if rt.kind() == RuntimeKind::Hako {
        out.expect_clean_failure("update --cpuset-cpus 0-99");
    }
    assert_eq!(c.read_cgroup("memory", "memory.limit_in_bytes"), before);
    assert_eq!(c.status(), "running");
    c.finish();
}

fn ps_lists_container_processes(rt: &Runtime) {
    let c = Running::start(rt, "sleep 1000 & sleep 1001 & wait");
    let pids = wait_for(5 * SEC, || {
        let out = c.cmd(&["ps", "--format", "json"]);
        out.expect_ok("ps --format json");
        let pids: Vec<i64> = serde_json::from_str(out.stdout.trim()).expect("JSON array");
        (pids.len() == 3).then_some(pids)
    })
    .expect("ps --format json never listed 3 processes");
    assert!(pids.contains(&i64::from(c.pid())), "{pids:?}");
    for pid in &pids {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert!(
            ["sh", "sleep"].contains(&comm.trim()),
            "pid {pid} is {comm:?}"
        );
    }

    let out = c.cmd(&["ps"]);
    out.expect_ok("ps");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "header + 3 processes\n{out}");
    assert!(lines[0].split_whitespace().any(|f| f == "PID"), "{out}");
    assert!(lines.iter().any(|l| l.ends_with("sleep 1000")), "{out}");
    assert!(lines.iter().any(|l| l.ends_with("sleep 1001")), "{out}");

    // ps(1) options go after the id.
    let id = c.id().to_string();
    let out = rt.cmd(&["ps", &id, "-o", "pid,comm"]);
    out.expect_ok("ps -o pid,comm");
    let mut rows: Vec<String> = out.stdout.lines().skip(1).map(str::to_string).collect();
    rows.sort();
    let mut want: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    want.sort();
    let got: Vec<String> = rows
        .iter()
        .map(|r| r.split_whitespace().next().unwrap_or_default().to_string())
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want, "{out}");
    c.finish();
}

fn events_stats_is_json_with_memory_usage(rt: &Runtime) {
    let c = Running::start(rt, "sleep 1000");
    let out = c.cmd(&["events", "--stats"]);
    out.expect_ok("events --stats");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line\n{out}");
    let v: Value = serde_json::from_str(lines[0]).expect("stats JSON");
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], c.id(), "{v}");
    let usage = v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(usage > 0, "no memory usage in {v}");
    assert!(v["data"]["pids"]["current"].as_u64() >= Some(1), "{v}");
    c.finish();
}

/// A child process we started, killed if the test fails before it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn events_reports_oom(rt: &Runtime) {
    // After the trigger, dd allocates (and fills) a 64 MiB buffer under a 16 MiB limit.
    let c = Running::start(
        rt,
        &on_go(
            "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd-done; while :; do sleep 1; done",
        ),
    );
    c.cmd(&["update", "--memory", "16m", "--memory-swap", "16m"])
        .expect_ok("update --memory 16m");
    let out_path = rt.work_dir().join("events.out");
    let mut events = ChildGuard(
        Command::new(rt.binary())
            .arg("--root")
            .arg(rt.root())
            .args(["events", "--interval", "200ms", c.id()])
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).unwrap())
            .stderr(File::create(out_path.with_extension("err")).unwrap())
            .spawn()
            .expect("spawn events"),
    );
    let read = || fs::read_to_string(&out_path).unwrap_or_default();
    // One stats line first: events is running before the hog starts.
    wait_for(10 * SEC, || read().contains("\"stats\"").then_some(()))
        .unwrap_or_else(|| panic!("no stats event; got:\n{}", read()));
    go(&c);
    wait_for(15 * SEC, || {
        read()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["type"] == "oom" && v["id"] == c.id())
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no oom event; events printed:\n{}\ncontainer stderr:\n{}",
            read(),
            c.stderr()
        )
    });
    for line in read().lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    }
    assert_eq!(c.status(), "running", "the hog, not the init, was killed");

    // hako's events ends (status 0) when the container stops; runc's when it is deleted.
    let id = c.id().to_string();
    rt.kill(&id, "KILL").expect_ok("kill");
    let ended = wait_for(5 * SEC, || events.0.try_wait().ok().flatten());
    match (rt.kind(), ended) {
        (RuntimeKind::Hako, Some(status)) => assert!(status.success(), "events: {status}"),
        (RuntimeKind::Hako, None) => panic!("events did not end when the container stopped"),
        _ => {}
    }
    drop(events);
    c.finish();
}

/// What a verb must answer: exit code and, on failure, runc's message (engines parse them:
/// containerd takes "container not running" after a kill as "already gone").
#[derive(Debug, Clone, Copy)]
enum Want {
    Ok,
    Fails(i32, &'static str),
}

/// Run `verb` on `id` and check the answer against `want`: the same table for runc (the
/// oracle: proves the table is runc's behaviour) and for hako-runtime.
#[track_caller]
fn expect(rt: &Runtime, state: &str, id: &str, verb: &[&str], want: Want) {
    let mut args = verb.to_vec();
    // kill's signal and exec's command come after the id.
    let last = if matches!(verb[0], "kill" | "exec") {
        args.pop()
    } else {
        None
    };
    args.push(id);
    args.extend(last);
    let out = rt.cmd(&args);
    let what = format!("{verb:?} of a {state} container");
    match want {
        Want::Ok => {
            out.expect_ok(&what);
        }
        Want::Fails(code, msg) => {
            let line = out.expect_clean_failure(&what);
            assert_eq!(out.code(), Some(code), "{what}: exit code\n{out}");
            let msg = msg.replace("{id}", id);
            match rt.kind() {
                RuntimeKind::Hako => assert_eq!(line, format!("hako-runtime: {msg}"), "{what}"),
                _ => assert!(line.contains(&format!("msg=\"{msg}\"")), "{what}: {line}"),
            }
        }
    }
}

/// Every verb in every state (created, running, paused, stopped, missing): runc 1.1's exit
/// codes and messages, checked against runc itself. Newer runc keeps these (it only made
/// `kill --all` of a stopped container a no-op everywhere, as 1.1 already does here).
fn every_verb_in_every_state(rt: &Runtime) {
    use Want::{Fails, Ok};
    const NOT_RUNNING: Want = Fails(1, "container not running");
    const NOT_PAUSED: Want = Fails(1, "container not paused");
    const NO_SUCH: Want = Fails(1, "container does not exist");
    let update: &[&str] = &["update", "--memory", "64m"];

    // created: everything but resume works; a frozen created container is paused.
    let c = Running::create_config(rt, Config::new().args(&["sleep", "1000"]));
    let id = c.id().to_string();
    for (verb, want) in [
        (&["state"][..], Ok),
        (&["kill", "0"], Ok),
        (&["kill", "--all", "0"], Ok),
        (&["resume"], NOT_PAUSED),
        (&["exec", "true"], Ok),
        (update, Ok),
        (&["events", "--stats"], Ok),
        (&["ps"], Ok),
        (&["pause"], Ok),
        (
            &["start"],
            Fails(1, "cannot start a container in the paused state"),
        ),
        (&["resume"], Ok),
    ] {
        expect(rt, "created", &id, verb, want);
    }
    assert_eq!(c.status(), "created");
    expect(rt, "created", &id, &["delete"], Ok);
    assert!(
        rt.status(&id).is_none(),
        "delete of a created container left it"
    );
    c.finish();

    let c = Running::start(rt, "sleep 1000");
    let id = c.id().to_string();
    for (verb, want) in [
        (&["state"][..], Ok),
        (
            &["start"],
            Fails(1, "cannot start an already running container"),
        ),
        (&["kill", "0"], Ok),
        (&["kill", "--all", "0"], Ok),
        (&["resume"], NOT_PAUSED),
        (&["exec", "true"], Ok),
        (update, Ok),
        (&["events", "--stats"], Ok),
        (&["ps"], Ok),
        (
            &["delete"],
            Fails(
                1,
                "cannot delete container {id} that is not stopped: running",
            ),
        ),
        (&["pause"], Ok),
    ] {
        expect(rt, "running", &id, verb, want);
    }
    assert_eq!(c.status(), "paused");
    // (No `kill --all` here: runc 1.1 thaws the cgroup after signalling every process.)
    for (verb, want) in [
        (&["state"][..], Ok),
        (
            &["start"],
            Fails(1, "cannot start a container in the paused state"),
        ),
        (&["kill", "0"], Ok),
        (&["pause"], NOT_RUNNING),
        (
            &["exec", "true"],
            Fails(
                255,
                "exec failed: cannot exec in a paused container (use --ignore-paused to override)",
            ),
        ),
        (update, Ok),
        (&["events", "--stats"], Ok),
        (&["ps"], Ok),
        (
            &["delete"],
            Fails(
                1,
                "cannot delete container {id} that is not stopped: paused",
            ),
        ),
        // SIGKILL thaws: frozen processes could not die otherwise.
        (&["kill", "KILL"], Ok),
    ] {
        expect(rt, "paused", &id, verb, want);
    }
    assert!(
        rt.wait_status(&id, "stopped", 5 * SEC),
        "SIGKILL did not stop a paused container: {:?}",
        rt.status(&id)
    );
    for (verb, want) in [
        (&["state"][..], Ok),
        (
            &["start"],
            Fails(1, "cannot start a container that has stopped"),
        ),
        (&["kill", "KILL"], NOT_RUNNING),
        (&["kill", "0"], NOT_RUNNING),
        // What containerd's shim runs after every exit: must succeed, or it retries forever.
        (&["kill", "--all", "KILL"], Ok),
        (&["pause"], NOT_RUNNING),
        (&["resume"], NOT_PAUSED),
        (
            &["exec", "true"],
            Fails(255, "exec failed: cannot exec in a stopped container"),
        ),
        (update, NOT_RUNNING),
        (
            &["events", "--stats"],
            Fails(1, "container with id {id} is not running"),
        ),
        (&["ps"], Ok),
    ] {
        expect(rt, "stopped", &id, verb, want);
    }
    c.finish();

    let id = hako_test_support::unique_id("missing");
    for (verb, want) in [
        (&["state"][..], NO_SUCH),
        (&["start"], NO_SUCH),
        (&["kill", "KILL"], NO_SUCH),
        (&["kill", "--all", "KILL"], NO_SUCH),
        (&["pause"], NO_SUCH),
        (&["resume"], NO_SUCH),
        (
            &["exec", "true"],
            Fails(255, "exec failed: container does not exist"),
        ),
        (update, NO_SUCH),
        (&["events", "--stats"], NO_SUCH),
        (&["ps"], NO_SUCH),
        (&["delete"], NO_SUCH),
        (&["delete", "--force"], Ok),
    ] {
        expect(rt, "missing", &id, verb, want);
    }
}

/// CRIU 3.17 (Debian 12) cannot work on Linux >= 6.13; on such a host both runtimes must
/// fail and leave the container running, and hako must say what CRIU reported in one line.
/// Where CRIU works the checkpoint must produce an image.
fn checkpoint_fails_cleanly_or_works(rt: &Runtime) {
    let c = Running::start(rt, "sleep 1000");
    let images = rt.work_dir().join("ckpt");
    let images_arg = images.to_str().unwrap().to_string();
    let out = c.cmd(&["checkpoint", "--image-path", &images_arg]);
    if out.success() {
        assert!(images.join("inventory.img").exists(), "no image\n{out}");
        let id = c.id().to_string();
        assert_ne!(rt.status(&id).as_deref(), Some("running"));
        c.finish();
        return;
    }
    assert_eq!(
        c.status(),
        "running",
        "a failed checkpoint stopped the container"
    );
    if rt.kind() == RuntimeKind::Hako {
        let line = out.expect_clean_failure("checkpoint");
        assert!(line.contains("criu dump failed"), "{line}");
        assert!(line.contains("CRIU reported \"Error ("), "{line}");
        let log = line.rsplit("full log: ").next().unwrap_or_default();
        assert!(Path::new(log).is_file(), "log {log:?} missing: {line}");

        // restore: no image is a usage error; with one, CRIU's own failure is quoted.
        let b = c.bundle.path().to_str().unwrap().to_string();
        let restore = |id: &str| {
            rt.cmd(&[
                "restore",
                "--image-path",
                &images_arg,
                "--bundle",
                &b,
                "--detach",
                id,
            ])
        };
        let new_id = format!("{}-r", c.id());
        let line = restore(&new_id).expect_clean_failure("restore without an image");
        assert!(line.contains("inventory.img"), "{line}");
        fs::write(images.join("inventory.img"), "").unwrap();
        let line = restore(&new_id).expect_clean_failure("restore");
        assert!(line.contains("criu check failed"), "{line}");
        assert!(line.contains("restore.log"), "{line}");
        assert!(rt.status(&new_id).is_none(), "restore left a container");
    }
    c.finish();
}
