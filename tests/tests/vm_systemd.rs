//! The systemd cgroup driver with systemd as PID 1 (the `systemd` guest of `scripts/vm`):
//! the container's scope exists with the resources as unit properties and in its files,
//! `update` changes both, the limits hold, and the scope is gone after `delete`, also after
//! an OOM kill left it failed. Each scenario runs against runc's systemd driver too.
//! A cgroupsPath that does not fit the driver is one line and leaves nothing.

#[allow(dead_code, unused_imports)]
#[path = "e2e/common.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Config, Runtime, RuntimeKind, bundle, scenario, unique_id};
use hako_test_support::ContainerGuard;
use serde_json::json;

#[track_caller]
fn require_systemd() {
    assert!(
        Path::new("/run/systemd/system").is_dir(),
        "these tests need systemd as PID 1: run them with `bash scripts/vm/test.sh systemd`"
    );
}

/// `systemctl show -p NAME --value UNIT`.
fn show(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", prop, "--value", unit])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The scope of a container id under the test prefix, and its cgroupsPath.
fn scope(id: &str) -> (String, String) {
    (
        format!("hakotest-{id}.scope"),
        format!("system.slice:hakotest:{id}"),
    )
}

fn wait(f: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn scope_has_the_container_and_its_limits(rt: &Runtime) {
    require_systemd();
    let id = unique_id(rt.kind().name());
    let (unit, path) = scope(&id);
    let b = bundle(
        &Config::new()
            .cgroups_path(&path)
            .edit(|j| {
                j["linux"]["resources"] = json!({
                    "memory": {"limit": 67108864},
                    "pids": {"limit": 50},
                    "cpu": {"quota": 50000, "period": 100000}
                })
            })
            .sh("cat /proc/self/cgroup; sleep 100"),
    );
    let mut guard = ContainerGuard::new(rt, &id);
    rt.cmd(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        "--bundle",
        &b.path().to_string_lossy(),
        &id,
    ])
    .expect_ok("run --detach with --systemd-cgroup");
    assert_eq!(show(&unit, "ActiveState"), "active", "{unit}");
    assert_eq!(show(&unit, "ControlGroup"), format!("/system.slice/{unit}"));
    assert_eq!(show(&unit, "MemoryMax"), "67108864");
    assert_eq!(show(&unit, "TasksMax"), "50");
    assert_eq!(show(&unit, "CPUQuotaPerSecUSec"), "500ms");
    if rt.kind() == RuntimeKind::Hako {
        assert_eq!(show(&unit, "Delegate"), "yes");
    }
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| panic!("{f} of {unit}: {e}"))
            .trim()
            .to_owned()
    };
    assert_eq!(read("memory.max"), "67108864");
    assert_eq!(read("pids.max"), "50");
    assert_eq!(read("cpu.max"), "50000 100000");
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup of init");
    assert_eq!(own.trim(), format!("0::/system.slice/{unit}"));

    rt.cmd(&["update", "--memory", "32m", "--pids-limit", "20", &id])
        .expect_ok("update");
    assert_eq!(read("memory.max"), "33554432");
    assert_eq!(read("pids.max"), "20");
    if rt.kind() == RuntimeKind::Hako {
        // runc 1.1 writes the files only on update.
        assert_eq!(show(&unit, "MemoryMax"), "33554432");
        assert_eq!(show(&unit, "TasksMax"), "20");
    }

    rt.kill(&id, "KILL").expect_ok("kill");
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(20)));
    rt.delete(&id).expect_ok("delete");
    guard.disarm();
    assert!(
        wait(|| show(&unit, "LoadState") == "not-found"),
        "{unit} is still loaded: {}",
        show(&unit, "ActiveState")
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

/// A memory hog is OOM-killed inside the scope (the limit holds); systemd marks such a
/// scope failed and keeps it loaded, so `delete` must reset it: the same name works again.
fn oom_killed_scope_is_gone_after_delete(rt: &Runtime) {
    require_systemd();
    let id = unique_id(rt.kind().name());
    let (unit, path) = scope(&id);
    let config = Config::new()
        .cgroups_path(&path)
        .edit(|j| {
            j["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}})
        })
        // dd's one 64 MiB buffer is anonymous memory: freed when dd is killed, so the shell
        // that reports lives on.
        .sh(
            "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?; \
             grep oom_kill /sys/fs/cgroup/memory.events",
        );
    for round in 0..2 {
        let b = bundle(&config);
        let out = rt.cmd(&[
            "--systemd-cgroup",
            "run",
            "--bundle",
            &b.path().to_string_lossy(),
            &id,
        ]);
        let killed = out.stdout.contains("dd=137") && !out.stdout.contains("oom_kill 0");
        assert!(killed, "round {round}: 64 MiB fit under 16 MiB\n{out}");
        rt.delete_force(&id);
        assert!(
            wait(|| show(&unit, "LoadState") == "not-found"),
            "round {round}: {unit} still loaded ({})",
            show(&unit, "ActiveState")
        );
        rt.assert_no_leaks(&[&id], &[b.path()]);
    }
}

scenario!(
    scope_has_the_container_and_its_limits,
    oom_killed_scope_is_gone_after_delete,
);

#[test]
fn cgroups_path_must_match_the_driver() {
    require_systemd();
    let rt = Runtime::new(RuntimeKind::Hako).expect("hako-runtime");
    let id = unique_id("mismatch");
    let b = bundle(&Config::new().cgroups_path(&format!("/hako/{id}")));
    let line = rt
        .cmd(&[
            "--systemd-cgroup",
            "run",
            "--bundle",
            &b.path().to_string_lossy(),
            &id,
        ])
        .expect_clean_failure("cgroupfs path with --systemd-cgroup");
    assert!(line.contains("slice:prefix:name"), "{line}");
    rt.assert_no_leaks(&[&id], &[b.path()]);

    let (unit, path) = scope(&id);
    let b = bundle(&Config::new().cgroups_path(&path));
    let line = rt
        .run(&id, b.path())
        .expect_clean_failure("systemd path without --systemd-cgroup");
    assert!(line.contains("--systemd-cgroup"), "{line}");
    assert_eq!(show(&unit, "LoadState"), "not-found");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}
