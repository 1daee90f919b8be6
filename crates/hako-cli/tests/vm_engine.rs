//! The engine on the hosts most users have, in the VM stage's guests (`scripts/vm`): limits
//! seen from inside, `stats`, `pause`, OOMKilled, a private cgroup namespace by default on
//! pure cgroup v2; with systemd as PID 1, every container in a scope of its own by default
//! (`--cgroup-manager` to choose). nextest's default filter leaves this binary out on the
//! cgroup v1 host.

mod common;

use std::path::Path;
use std::process::Command;

use common::Hako;

fn require_vm() {
    assert!(
        hako_test_support::cgroups::host_is_v2(),
        "these tests need pure cgroup v2: run them with `bash scripts/vm/test.sh`"
    );
    assert!(common::is_root(), "the VM tests run as root");
}

fn systemd() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn show(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", prop, "--value", unit])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The init's cgroup as the host sees it (`/system.slice/hako-<id>.scope`, `/hako/<id>`).
fn host_cgroup(h: &Hako, id: &str) -> String {
    let pid = h.inspect(id)["State"]["Pid"].as_i64().expect("pid");
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    text.trim().strip_prefix("0::").expect("v2 line").to_owned()
}

fn events(h: &Hako, id: &str) -> String {
    let dir = Path::new("/sys/fs/cgroup").join(host_cgroup(h, id).trim_start_matches('/'));
    std::fs::read_to_string(dir.join("cgroup.events")).expect("cgroup.events")
}

#[test]
fn limits_stats_pause_and_oom_on_v2() {
    require_vm();
    let h = Hako::new();
    let id = h
        .ok(&[
            "run",
            "-d",
            "-m",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_owned();
    let inside = h.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max",
    ]);
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(
        lines,
        ["0::/", "67108864", "50", "50000 100000"],
        "private cgroupns rooted at the container, limits in its files"
    );
    assert_eq!(h.inspect(&id)["HostConfig"]["CgroupnsMode"], "private");

    let cg = host_cgroup(&h, &id);
    if systemd() {
        let unit = format!("hako-{id}.scope");
        assert_eq!(
            cg,
            format!("/system.slice/{unit}"),
            "systemd is the default driver"
        );
        assert_eq!(show(&unit, "ActiveState"), "active");
        assert_eq!(show(&unit, "MemoryMax"), "67108864");
        assert_eq!(show(&unit, "TasksMax"), "50");
    } else {
        assert_eq!(cg, format!("/hako/{id}"));
    }

    let usage = h.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &id]);
    assert!(usage.trim().ends_with("/ 64MiB"), "{usage}");

    h.ok(&["pause", &id]);
    assert_eq!(h.inspect(&id)["State"]["Status"], "paused");
    assert!(events(&h, &id).contains("frozen 1"), "{}", events(&h, &id));
    h.ok(&["unpause", &id]);
    assert!(events(&h, &id).contains("frozen 0"), "{}", events(&h, &id));

    // dd's 64 MiB buffer under 16 MiB: the kernel kills it, Docker says OOMKilled.
    let out = h.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let hog = h.inspect("hog");
    assert_eq!(hog["State"]["OOMKilled"], true, "{:#}", hog["State"]);
    let hog_id = hog["Id"].as_str().expect("id").to_owned();

    h.finish(&[&id, &hog_id]);
    if systemd() {
        for c in [&id, &hog_id] {
            let unit = format!("hako-{c}.scope");
            h.wait_for(&format!("{unit} to go"), || {
                show(&unit, "LoadState") == "not-found"
            });
        }
    }
}

#[test]
fn cgroup_manager_and_cgroupns_choices() {
    require_vm();
    let h = Hako::new();
    let own = h.ok(&[
        "run",
        "--rm",
        "--cgroupns",
        "host",
        "busybox",
        "cat",
        "/proc/self/cgroup",
    ]);
    assert_ne!(own.trim(), "0::/", "--cgroupns host shows the host's path");
    if systemd() {
        let id = h
            .ok(&[
                "--cgroup-manager",
                "cgroupfs",
                "run",
                "-d",
                "busybox",
                "sleep",
                "1000",
            ])
            .trim()
            .to_owned();
        assert_eq!(host_cgroup(&h, &id), format!("/hako/{id}"));
        let line = h.fails(
            125,
            &["run", "--cgroup-parent", "/custom", "busybox", "true"],
        );
        assert!(line.contains("should be a valid slice"), "{line}");
        let own = h.ok(&[
            "run",
            "--rm",
            "--cgroupns",
            "host",
            "--cgroup-parent",
            "hakotest.slice",
            "busybox",
            "cat",
            "/proc/self/cgroup",
        ]);
        assert!(
            own.trim().starts_with("0::/hakotest.slice/hako-"),
            "a slice as --cgroup-parent: {own}"
        );
        h.finish(&[&id]);
    } else {
        let line = h.fails(
            125,
            &["--cgroup-manager", "systemd", "run", "busybox", "true"],
        );
        assert!(line.contains("needs systemd as PID 1"), "{line}");
        h.assert_clean(&[]);
    }
}
