//! Logs for when it breaks: `hako --debug` shows the engine's steps, and the shim's own
//! failure log (restart decisions with timestamps) shows through `--debug inspect`.

#[macro_use]
mod common;

use common::Hako;

#[test]
fn debug_shows_the_engine_steps_of_a_run() {
    need_root!();
    let h = Hako::new();
    let o = h.run(&["--debug", "run", "--rm", "busybox", "true"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for step in [
        "create: record inserted",
        "create: root filesystem mounted",
        "create: bundle written",
        "create: complete",
        "start: shim up",
        "start: running",
        "rm: removal claimed",
        "rm: directories and record gone",
    ] {
        assert!(err.contains(step), "no {step:?} in:\n{err}");
    }
    // Without --debug: nothing of it.
    let o = h.run(&["run", "--rm", "busybox", "true"]);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    h.assert_clean(&[]);
}

#[test]
fn the_shim_logs_its_restart_decisions_with_timestamps() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&["run", "-d", "--restart", "on-failure:2", "busybox", "false"])
        .trim()
        .to_string();
    h.wait_for("two restarts and the end", || {
        h.ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", &id])
            .trim()
            == "2 exited"
    });
    let o = h.run(&["--debug", "inspect", "-f", "{{.Id}}", &id]);
    let err = String::from_utf8_lossy(&o.stderr);
    let shim: Vec<&str> = err.lines().filter(|l| l.contains("shim: ")).collect();
    assert_eq!(shim.len(), 3, "{err}");
    assert!(
        shim[0].contains("exited with 1") && shim[0].contains("restarting in 100ms (restart 1)"),
        "{err}"
    );
    assert!(shim[2].contains("not restarting"), "{err}");
    // Timestamps: RFC 3339, increasing.
    let stamps: Vec<&str> = shim
        .iter()
        .map(|l| l.split("shim: ").nth(1).unwrap().split(' ').next().unwrap())
        .collect();
    for s in &stamps {
        humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    h.ok(&["rm", &id]);
    h.assert_clean(&[&id]);
}

/// A test that fails with its store unusable (its disk full, say) leaves no shim or
/// container process behind: when `rm -f` cannot run, the harness kills what runs from its
/// roots and removes the containers' cgroups.
#[test]
fn a_store_that_no_longer_opens_leaves_nothing_running_behind_a_test() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["busybox", "sleep", "1000"], None);
    let roots = [h.root.path().to_path_buf(), h.exec.path().to_path_buf()];
    let roots: Vec<&std::path::Path> = roots.iter().map(|p| p.as_path()).collect();
    let shim = hako_test_support::processes_under(&roots);
    assert!(!shim.is_empty(), "no shim names the roots");
    let cgroup =
        hako_test_support::find_leaks(std::path::Path::new("/nonexistent"), &[&id], &[]).cgroups;
    let procs: Vec<i32> = cgroup
        .iter()
        .flat_map(|c| {
            std::fs::read_to_string(c.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    assert!(!procs.is_empty(), "the container's processes in {cgroup:?}");
    let mut left: Vec<i32> = shim.into_iter().chain(procs).collect();
    left.sort_unstable();
    left.dedup();
    std::fs::write(h.root.path().join("hako-image.db"), b"not a database").unwrap();
    for sidecar in ["hako-image.db-wal", "hako-image.db-shm"] {
        let _ = std::fs::remove_file(h.root.path().join(sidecar));
    }
    assert!(
        !h.run(&["ps", "-a"]).status.success(),
        "the store still opens"
    );
    let exec = h.exec.path().to_string_lossy().into_owned();
    drop(h);
    // Nothing mounted under the roots either (the container's network namespace file).
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounted: Vec<&str> = mounts
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(4)
                .is_some_and(|m| m.starts_with(&exec))
        })
        .collect();
    assert!(mounted.is_empty(), "mounts left: {mounted:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let alive = |pid: &i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        })
    };
    while left.iter().any(alive) {
        assert!(
            std::time::Instant::now() < deadline,
            "still running: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let cgroups =
        hako_test_support::find_leaks(std::path::Path::new("/nonexistent"), &[&id], &[]).cgroups;
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

/// `run` starts what it created without unmounting its root filesystem and mounting it
/// again in between (an overlay's unmount syncs the host filesystem under it); `create`
/// leaves a container unmounted, and its `start` mounts it.
#[test]
fn run_keeps_the_root_filesystem_mounted_from_create_to_start() {
    need_root!();
    let h = Hako::new();
    let o = h.run(&["--debug", "run", "--rm", "busybox", "true"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("create: root filesystem mounted"), "{err}");
    assert!(!err.contains("start: root filesystem mounted"), "{err}");
    let id = h.ok(&["create", "busybox", "true"]).trim().to_string();
    let o = h.run(&["--debug", "start", "-a", &id]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("start: root filesystem mounted"), "{err}");
    h.finish(&[&id]);
}

#[test]
fn a_shim_that_dies_before_answering_says_why() {
    need_root!();
    let h = Hako::new();
    let tmp = tempfile::tempdir().unwrap();
    // A shim that cannot start: it says so on stderr and exits, as one given an argument
    // it does not know would (a hako newer than its shim).
    let shim = tmp.path().join("hako-shim");
    std::fs::write(
        &shim,
        "#!/bin/sh\necho 'starting' >&2\necho \"error: unexpected argument '--stop-signal' found\" >&2\nexit 2\n",
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let id = h
        .ok(&["create", "--network", "none", "busybox", "true"])
        .trim()
        .to_string();
    let o = h
        .cmd(&["start", &id])
        .env("HAKO_SHIM", &shim)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "the shim ended (exit status: 2) without an answer: error: unexpected argument '--stop-signal' found"
        ),
        "{err}"
    );
    // Nothing of the attempt stays; the real shim starts it.
    assert_eq!(h.ok(&["start", "-a", &id]), "");
    h.ok(&["rm", &id]);
    h.assert_clean(&[&id]);
}
