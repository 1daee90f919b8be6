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
    start_fails_when_the_program_cannot_run,
    created_init_is_already_the_user,
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

/// A program that passes every check at create (it exists and is executable) but that
/// execve refuses (not a valid binary): hako's `start` fails with the reason, and `run`
/// too; runc 1.1's `start` returns 0 and the reason only reaches the container's stderr.
fn start_fails_when_the_program_cannot_run(rt: &Runtime) {
    use std::os::unix::fs::PermissionsExt;
    let b = bundle(&Config::new().args(&["/not-a-binary"]));
    let prog = b.rootfs().join("not-a-binary");
    std::fs::write(&prog, b"\x01\x02 neither ELF nor script").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = unique_id("noexec");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    let out = rt.start(&id);
    if rt.kind() == RuntimeKind::Hako {
        let line = out.expect_clean_failure("start of a program execve refuses");
        assert_eq!(
            line,
            "hako-runtime: unable to start container process: exec /not-a-binary: exec format error"
        );
    } else {
        out.expect_ok("runc start");
    }
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(5)));
    rt.delete(&id).expect_ok("delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);

    let id = unique_id("noexec");
    let out = rt.run(&id, b.path());
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains("exec format error"),
        "the reason is on stderr\n{out}"
    );
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

/// Everything that can fail happens before `create` returns: the created (not yet started)
/// init already has the process's uid, gid, groups, capabilities and no_new_privs, as
/// runc's does; only the seccomp filter and execve wait for `start`.
fn created_init_is_already_the_user(rt: &Runtime) {
    let b = bundle(&Config::new().user(1000, 1000, &[1001]).args(&["true"]));
    let id = unique_id("ident");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert_eq!(
        field(&status, "Uid"),
        Some("1000\t1000\t1000\t1000"),
        "{status}"
    );
    assert_eq!(
        field(&status, "Gid"),
        Some("1000\t1000\t1000\t1000"),
        "{status}"
    );
    assert_eq!(field(&status, "Groups"), Some("1001"), "{status}");
    assert_eq!(
        field(&status, "CapEff"),
        Some("0000000020000420"),
        "{status}"
    );
    assert_eq!(
        field(&status, "CapPrm"),
        Some("0000000020000420"),
        "{status}"
    );
    assert_eq!(
        field(&status, "CapBnd"),
        Some("0000000020000420"),
        "{status}"
    );
    assert_eq!(field(&status, "NoNewPrivs"), Some("1"), "{status}");
    assert_eq!(field(&status, "Seccomp"), Some("0"), "{status}");
    rt.start(&id).expect_ok("start");
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(5)));
    rt.delete(&id).expect_ok("delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}
