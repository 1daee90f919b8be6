//! create → created → start → running → exit → stopped → delete → gone.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

scenario!(
    lifecycle,
    delete_force_running,
    delete_running_needs_force,
    start_twice_fails,
    run_detach_with_pid_file,
    run_no_pivot,
    run_keep,
);

/// A container that runs until the test creates `<rootfs>/tmp/go`.
fn waiting_config() -> Config {
    Config::new()
        .readonly_root(false)
        .sh("echo started; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done")
}

fn lifecycle(rt: &Runtime) {
    let b = bundle(&waiting_config());
    let id = unique_id("life");
    let _guard = ContainerGuard::new(rt, &id);

    rt.create(&id, b.path()).expect_ok("create");
    let state = rt.state(&id).expect("state after create");
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["id"], id.as_str(), "{state}");
    let pid = state["pid"].as_i64().expect("created container has a pid");
    assert!(pid > 0, "{state}");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "init process {pid} is alive"
    );
    assert_eq!(
        Path::new(state["bundle"].as_str().unwrap_or_default()),
        b.path(),
        "{state}"
    );
    assert!(
        rt.container_stdout(&id).is_empty(),
        "the user program must not run before start"
    );

    rt.start(&id).expect_ok("start");
    assert!(
        rt.wait_status(&id, "running", Duration::from_secs(5)),
        "never running"
    );
    assert_eq!(
        rt.state(&id).unwrap()["pid"].as_i64(),
        Some(pid),
        "pid stays the same"
    );

    std::fs::write(b.rootfs().join("tmp/go"), "").unwrap();
    assert!(
        rt.wait_status(&id, "stopped", Duration::from_secs(10)),
        "never stopped"
    );
    assert_eq!(rt.container_stdout(&id), "started\ndone\n");

    rt.delete(&id).expect_ok("delete");
    assert!(!rt.state_raw(&id).success(), "state must fail after delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn delete_force_running(rt: &Runtime) {
    let b = bundle(&waiting_config());
    let id = unique_id("force");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    assert!(rt.wait_status(&id, "running", Duration::from_secs(5)));
    rt.delete_force(&id)
        .expect_ok("delete --force of a running container");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn delete_running_needs_force(rt: &Runtime) {
    let b = bundle(&waiting_config());
    let id = unique_id("nofor");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    assert!(rt.wait_status(&id, "running", Duration::from_secs(5)));
    let line = rt
        .delete(&id)
        .expect_clean_failure("delete of a running container");
    eprintln!("{} says: {line}", rt.kind());
    assert_eq!(
        rt.status(&id).as_deref(),
        Some("running"),
        "a refused delete changes nothing"
    );
    rt.delete_force(&id).expect_ok("delete --force");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn start_twice_fails(rt: &Runtime) {
    let b = bundle(&waiting_config());
    let id = unique_id("twice");
    let _guard = ContainerGuard::new(rt, &id);
    let line = rt
        .start(&id)
        .expect_clean_failure("start of a container that does not exist");
    eprintln!("{} says: {line}", rt.kind());
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    let line = rt
        .start(&id)
        .expect_clean_failure("start of a running container");
    eprintln!("{} says: {line}", rt.kind());
    std::fs::write(b.rootfs().join("tmp/go"), "").unwrap();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    let line = rt
        .start(&id)
        .expect_clean_failure("start of a stopped container");
    eprintln!("{} says: {line}", rt.kind());
    rt.delete(&id).expect_ok("delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn run_detach_with_pid_file(rt: &Runtime) {
    let b = bundle(&waiting_config());
    let id = unique_id("detach");
    let _guard = ContainerGuard::new(rt, &id);
    let pid_file = rt.work_dir().join("detach.pid");
    let pf = pid_file.display().to_string();
    rt.run_with(&id, b.path(), &["--detach", "--pid-file", &pf])
        .expect_ok("run --detach");
    assert_eq!(
        rt.status(&id).as_deref(),
        Some("running"),
        "run --detach returns once running"
    );
    let state_pid = rt.state(&id).unwrap()["pid"].as_i64();
    let file_pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_default()
        .trim()
        .parse::<i64>()
        .ok();
    assert_eq!(file_pid, state_pid, "--pid-file holds the container's pid");
    std::fs::write(b.rootfs().join("tmp/go"), "").unwrap();
    assert!(
        rt.wait_status(&id, "stopped", Duration::from_secs(10)),
        "never stopped"
    );
    assert_eq!(
        rt.container_stdout(&id),
        "started\ndone\n",
        "detached stdio is inherited"
    );
    rt.delete(&id).expect_ok("delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn run_no_pivot(rt: &Runtime) {
    let b = bundle(&Config::new().sh("echo $$; ls /bin/busybox"));
    let id = unique_id("nopiv");
    let out = rt.run_with(&id, b.path(), &["--no-pivot"]);
    out.expect_ok("run --no-pivot");
    assert_eq!(rt.container_stdout(&id), "1\n/bin/busybox\n", "{out}");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

/// `run --keep`: the container stays (stopped) after its process exits, until `delete`.
fn run_keep(rt: &Runtime) {
    let b = bundle(&Config::new().sh("exit 3"));
    let id = unique_id("keep");
    let out = rt.run_with(&id, b.path(), &["--keep"]);
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(rt.status(&id).as_deref(), Some("stopped"), "{out}");
    rt.delete(&id).expect_ok("delete after run --keep");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}
