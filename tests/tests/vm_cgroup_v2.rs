//! Pure cgroup v2, for real: every `linux.resources` field read back from inside the
//! container, device rules enforced by the eBPF program, the cgroup namespace rooted at the
//! container, nested delegation inside it, CLONE_INTO_CGROUP, memory.peak and PSI in
//! `events --stats`, and a controller the cgroup lacks refused in one line.
//!
//! The CI host is cgroup v1 (hybrid): these run in the pure v2 guest of `scripts/vm`
//! (`bash scripts/vm/test.sh v2`); nextest's default filter leaves this binary out on the
//! host, and run anywhere else every test fails saying so.

#[allow(dead_code, unused_imports)]
#[path = "e2e/common.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Config, Runtime, RuntimeKind, bundle, inside, scenario, unique_id};
use hako_test_support::cgroups::host_is_v2;
use serde_json::{Value, json};

#[track_caller]
fn require_v2() {
    assert!(
        host_is_v2(),
        "these tests need a pure cgroup v2 host: run them with `bash scripts/vm/test.sh v2`"
    );
}

fn resources(config: Config, r: Value) -> Config {
    config.edit(|j| j["linux"]["resources"] = r)
}

/// The value after `name=` on a line of `out`.
fn value<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in\n{out}"))
        .trim()
}

/// A cgroup the test makes directly under the v2 root, removed (children first) at the end.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new(prefix: &str) -> TestCgroup {
        let dir = Path::new("/sys/fs/cgroup").join(unique_id(prefix));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TestCgroup(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, rel: &str, value: &str) {
        let p = self.0.join(rel);
        fs::write(&p, value).unwrap_or_else(|e| panic!("write {value} to {}: {e}", p.display()));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        fn rm(dir: &Path) {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rm(&e.path());
                }
            }
            let _ = fs::remove_dir(dir);
        }
        rm(&self.0);
    }
}

fn every_resource_field_reaches_its_v2_file(rt: &Runtime) {
    require_v2();
    let mib = 1024 * 1024;
    let config = resources(
        Config::new(),
        json!({
            "memory": {"limit": 64 * mib, "reservation": 32 * mib, "swap": 96 * mib},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 42},
            "blockIO": {"weight": 300},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * mib}],
            "unified": {"memory.high": (48 * mib).to_string(), "memory.oom.group": "1"}
        }),
    )
    .sh(
        "cd /sys/fs/cgroup && for f in memory.max memory.low memory.swap.max memory.high \
         memory.oom.group cpu.weight cpu.max cpuset.cpus cpuset.mems pids.max \
         hugetlb.2MB.max; do echo \"$f=$(cat $f)\"; done; \
         echo \"io=$(cat io.bfq.weight 2>/dev/null || cat io.weight)\"",
    );
    let out = inside(rt, config);
    for (file, want) in [
        ("memory.max", (64 * mib).to_string()),
        ("memory.low", (32 * mib).to_string()),
        // OCI swap is memory+swap; v2's memory.swap.max is swap alone.
        ("memory.swap.max", (32 * mib).to_string()),
        ("memory.high", (48 * mib).to_string()),
        ("memory.oom.group", "1".into()),
        // shares 512 on runc's linear map onto 1..10000.
        ("cpu.weight", "20".into()),
        ("cpu.max", "50000 100000".into()),
        ("cpuset.cpus", "0".into()),
        ("cpuset.mems", "0".into()),
        ("pids.max", "42".into()),
        ("hugetlb.2MB.max", (4 * mib).to_string()),
    ] {
        assert_eq!(value(&out, file), want, "{file}\n{out}");
    }
    // BFQ takes the blkio scale as it is; io.weight (iocost) gets 1 + (300-10)*9999/990.
    let io = value(&out, "io");
    assert!(
        io == "default 300" || io == "default 2930",
        "io weight {io:?}\n{out}"
    );
}

/// `head -c1` of a device node made in the container: the default rules deny block 7:0
/// (loop0), an explicit rule allows it for reading; mknod itself is allowed ("c/b *:* m").
fn device_rules_are_an_ebpf_program(rt: &Runtime) {
    require_v2();
    let script = "echo x > /dev/null && echo null-ok; \
        mknod /tmp/loop b 7 0 && echo mknod-ok; \
        if head -c1 /tmp/loop > /dev/null 2>/tmp/err; then echo loop-ok; \
        else echo \"loop-denied $(cat /tmp/err)\"; fi";
    let base = Config::new()
        .readonly_root(false)
        .all_caps(&["CAP_MKNOD", "CAP_DAC_OVERRIDE"])
        .sh(script);
    let out = inside(rt, base.clone());
    assert!(out.contains("null-ok") && out.contains("mknod-ok"), "{out}");
    assert!(
        out.contains("loop-denied") && out.contains("Operation not permitted"),
        "loop0 must be denied by the default rules\n{out}"
    );
    let allowed = resources(
        base,
        json!({"devices": [{"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]}),
    );
    let out = inside(rt, allowed);
    assert!(
        out.contains("loop-ok"),
        "an allow rule must open loop0\n{out}"
    );
}

fn cgroup_namespace_is_rooted_at_the_container(rt: &Runtime) {
    require_v2();
    let config = resources(Config::new(), json!({"memory": {"limit": 33554432}})).sh(
        "cat /proc/self/cgroup; echo procs=$(cat /sys/fs/cgroup/cgroup.procs | tr '\\n' ' '); \
             echo max=$(cat /sys/fs/cgroup/memory.max); grep ' /sys/fs/cgroup ' /proc/mounts",
    );
    let out = inside(rt, config);
    assert_eq!(out.lines().next(), Some("0::/"), "{out}");
    assert!(value(&out, "procs").split(' ').any(|p| p == "1"), "{out}");
    assert_eq!(value(&out, "max"), "33554432", "{out}");
    assert!(out.contains(" /sys/fs/cgroup cgroup2 "), "{out}");
}

/// With a writable cgroup mount, the container's root manages its own subtree (what
/// systemd or dockerd in a container do): moves itself into a leaf, delegates pids and
/// memory to children, limits a child. `delete` must remove the nested cgroups too (the
/// leak check looks for the container's directory).
fn nested_delegation_inside_the_container(rt: &Runtime) {
    require_v2();
    let config = Config::new()
        .readonly_root(false)
        .edit(|j| {
            for m in j["mounts"].as_array_mut().into_iter().flatten() {
                if m["destination"] == "/sys/fs/cgroup"
                    && let Some(opts) = m["options"].as_array_mut()
                {
                    opts.retain(|o| o != "ro");
                }
            }
        })
        .sh(
            "cd /sys/fs/cgroup && mkdir init && echo $$ > init/cgroup.procs && \
             echo '+pids +memory' > cgroup.subtree_control && mkdir child && \
             echo 2 > child/pids.max && echo 16777216 > child/memory.max && \
             sh -c 'echo $$ > /sys/fs/cgroup/child/cgroup.procs; \
                    for i in 1 2 3; do sleep 2 & done; wait' 2>/tmp/err; \
             echo subtree=$(cat cgroup.subtree_control); \
             echo child-max=$(grep '^max' child/pids.events | cut -d' ' -f2); \
             echo forkfail=$(grep -c \"can't fork\" /tmp/err)",
        );
    let out = inside(rt, config);
    assert_eq!(value(&out, "subtree"), "memory pids", "{out}");
    assert_ne!(
        value(&out, "child-max"),
        "0",
        "the child's pids.max held\n{out}"
    );
    assert_ne!(value(&out, "forkfail"), "0", "{out}");
}

/// Events carry v2's extras: memory.peak as usage.max, and pressure (PSI) for cpu, memory
/// and io (runc 1.2's `psi` fields).
fn stats_have_memory_peak_and_pressure(rt: &Runtime) {
    require_v2();
    let b = bundle(&Config::new().sh("head -c 4000000 /dev/zero | tail -c1 >/dev/null; sleep 100"));
    let id = unique_id(rt.kind().name());
    let mut guard = hako_test_support::ContainerGuard::new(rt, &id);
    rt.run_with(&id, b.path(), &["--detach"])
        .expect_ok("run --detach");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = rt.cmd(&["events", "--stats", &id]);
    out.expect_ok("events --stats");
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON line");
    let data = &v["data"];
    // (runc 1.1 reads neither memory.peak nor the pressure files.)
    if rt.kind() == RuntimeKind::Hako {
        assert!(
            data["memory"]["usage"]["max"].as_u64() > Some(0),
            "memory.peak missing\n{v:#}"
        );
        for part in ["cpu", "memory", "blkio"] {
            let psi = &data[part]["psi"];
            assert!(
                psi["some"]["avg10"].is_number() && psi["full"]["total"].is_u64(),
                "{part}.psi\n{v:#}"
            );
        }
    }
    rt.kill(&id, "KILL");
    rt.wait_status(&id, "stopped", std::time::Duration::from_secs(10));
    rt.delete(&id).expect_ok("delete");
    guard.disarm();
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

scenario!(
    every_resource_field_reaches_its_v2_file,
    device_rules_are_an_ebpf_program,
    cgroup_namespace_is_rooted_at_the_container,
    nested_delegation_inside_the_container,
    stats_have_memory_peak_and_pressure,
);

fn hako() -> Runtime {
    require_v2();
    assert!(
        hako_test_support::is_root(),
        "the v2 tests run as root (in the VM)"
    );
    Runtime::new(RuntimeKind::Hako).expect("hako-runtime (HAKO_RUNTIME)")
}

/// The runtime runs in a cgroup that allows exactly one task (itself): a plain fork of the
/// container's init would fail with EAGAIN there, a clone straight into the container's own
/// cgroup (CLONE_INTO_CGROUP) counts against that cgroup instead. runc 1.1 forks first and
/// moves the child afterwards, so it cannot start here.
#[test]
fn clone_into_cgroup_never_runs_the_init_in_the_callers_cgroup() {
    let rt = hako();
    let tight = TestCgroup::new("hako-tight");
    tight.write("pids.max", "1");
    let id = unique_id("cic");
    let b = bundle(
        &Config::new()
            .cgroups_path(&format!("/{id}"))
            .sh("echo started; cat /proc/self/cgroup"),
    );
    let procs = tight.path().join("cgroup.procs");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\"",
            procs.display()
        ))
        .arg(rt.binary())
        .arg(rt.root())
        .arg(b.path())
        .arg(&id)
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("started"),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0::/"), "{stdout}");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

/// The runtime works inside a delegated subtree whose parent did not hand down hugetlb (as
/// a systemd user session, or a container, would): hugepageLimits fails before anything
/// runs, in one line that names the controller, and leaves no cgroup behind.
#[test]
fn a_controller_the_subtree_lacks_is_one_clear_line() {
    let rt = hako();
    let deleg = TestCgroup::new("hako-deleg");
    deleg.write("cgroup.subtree_control", "+memory +pids");
    fs::create_dir(deleg.path().join("box")).expect("mkdir box");
    let id = unique_id("noh");
    let b = bundle(
        &resources(
            Config::new().cgroups_path(&format!("/{id}")),
            json!({"memory": {"limit": 33554432},
                   "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}),
        )
        .args(&["true"]),
    );
    // Enter box, make it the root of a new cgroup namespace and a fresh cgroup2 mount, move
    // into a leaf (box itself must hold no process to delegate), then run the runtime.
    let script = format!(
        "echo $$ > {box_}/cgroup.procs && exec unshare --cgroup --mount sh -c '\
         umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && mkdir /sys/fs/cgroup/self && \
         echo $$ > /sys/fs/cgroup/self/cgroup.procs && exec \"$0\" \"$@\"' \
         \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\"",
        box_ = deleg.path().join("box").display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(rt.binary())
        .arg(rt.root())
        .arg(b.path())
        .arg(&id)
        .output()
        .expect("run sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!out.status.success(), "hugetlb without the controller ran");
    assert_eq!(lines.len(), 1, "one line\n{stderr}");
    assert!(
        lines[0].contains("hugepageLimits needs the hugetlb cgroup controller"),
        "{stderr}"
    );
    assert!(
        !deleg.path().join("box").join(&id).exists(),
        "the container's cgroup was left behind"
    );
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

/// net_cls and net_prio have no v2 counterpart (eBPF does their job there): refused in one
/// line, nothing left.
#[test]
fn v1_only_resources_are_refused_on_v2() {
    let rt = hako();
    let b = bundle(&resources(
        Config::new(),
        json!({"network": {"classID": 1048577}}),
    ));
    let id = unique_id("v1only");
    let line = rt
        .run(&id, b.path())
        .expect_clean_failure("network.classID on v2");
    assert!(line.contains("net_cls"), "{line}");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

/// `--systemd-cgroup` where systemd is not PID 1 (this guest): one line, nothing made.
#[test]
fn systemd_driver_without_systemd_is_one_line() {
    let rt = hako();
    let id = unique_id("nosd");
    let b = bundle(&Config::new().cgroups_path(&format!("system.slice:hako:{id}")));
    let line = rt
        .cmd(&[
            "--systemd-cgroup",
            "run",
            "--bundle",
            &b.path().to_string_lossy(),
            &id,
        ])
        .expect_clean_failure("--systemd-cgroup without systemd");
    assert!(line.contains("systemd is not PID 1"), "{line}");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}
