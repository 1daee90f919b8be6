//! `exec` end to end: a new process joins every namespace and the cgroup of a running
//! container, with the container's security settings; each scenario also runs against runc.

// Shared with the e2e target; not every helper is used here.
#[allow(dead_code, unused_imports)]
#[path = "e2e/common.rs"]
mod common;

use common::{Config, ContainerGuard, Runtime, bundle, field, scenario, unique_id};

/// Start a container that sleeps; returns its guard (force-deleted on drop).
fn sleeper<'a>(rt: &'a Runtime, config: Config) -> (ContainerGuard<'a>, hako_test_support::Bundle) {
    let b = bundle(&config.args(&["sleep", "1000"]));
    let id = unique_id("exec");
    let guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    (guard, b)
}

fn exec_joins_every_namespace(rt: &Runtime) {
    let (c, b) = sleeper(rt, Config::new().hostname("exec-host"));
    let script = "for n in mnt uts ipc net pid cgroup; do \
                    [ \"$(readlink /proc/self/ns/$n)\" = \"$(readlink /proc/1/ns/$n)\" ] || echo differ $n; \
                  done; hostname; echo pid=$$";
    let out = rt.cmd(&["exec", c.id(), "sh", "-c", script]);
    out.expect_ok("exec");
    assert!(!out.stdout.contains("differ"), "{out}");
    assert!(out.stdout.contains("exec-host"), "{out}");
    let pid: i32 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(pid > 1, "exec'd process is not the init: {out}");
    // It was in the container's cgroup: the init's cgroup file equals the exec's.
    let out = rt.cmd(&[
        "exec",
        c.id(),
        "sh",
        "-c",
        "cmp /proc/self/cgroup /proc/1/cgroup && echo same",
    ]);
    assert!(out.stdout.contains("same"), "{out}");
    drop(c);
    rt.assert_no_leaks(&[], &[b.path()]);
}

fn exec_exit_code_and_flags(rt: &Runtime) {
    let (c, _b) = sleeper(rt, Config::new());
    let out = rt.cmd(&["exec", c.id(), "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), Some(7), "{out}");
    let out = rt.cmd(&[
        "exec",
        "--env",
        "HAKO_X=42",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        c.id(),
        "sh",
        "-c",
        "echo $HAKO_X; pwd; id -u; id -g",
    ]);
    out.expect_ok("exec with flags");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["42", "/tmp", "1000", "1000"],
        "{out}"
    );
}

fn exec_keeps_container_caps(rt: &Runtime) {
    let (c, _b) = sleeper(rt, Config::new());
    let init = rt.cmd(&["exec", c.id(), "cat", "/proc/1/status"]);
    let me = rt.cmd(&["exec", c.id(), "cat", "/proc/self/status"]);
    init.expect_ok("read init status");
    me.expect_ok("read own status");
    for key in ["CapBnd", "CapEff", "NoNewPrivs"] {
        assert_eq!(
            field(&init.stdout, key),
            field(&me.stdout, key),
            "{key}\n{init}\n{me}"
        );
    }
    // --cap adds a capability (CAP_SYS_ADMIN is bit 21).
    let more = rt.cmd(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        c.id(),
        "cat",
        "/proc/self/status",
    ]);
    more.expect_ok("exec --cap");
    let eff = u64::from_str_radix(field(&more.stdout, "CapEff").unwrap(), 16).unwrap();
    assert!(eff & (1 << 21) != 0, "{more}");
}

fn exec_detached_pid_file(rt: &Runtime) {
    let (c, _b) = sleeper(rt, Config::new());
    let pid_file = rt.work_dir().join(format!("{}.pid", c.id()));
    let pf = pid_file.display().to_string();
    rt.cmd(&[
        "exec",
        "--detach",
        "--pid-file",
        &pf,
        c.id(),
        "sleep",
        "100",
    ])
    .expect_ok("exec -d");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let init_pid = rt.state(c.id()).unwrap()["pid"].as_i64().unwrap();
    let init_cg = std::fs::read_to_string(format!("/proc/{init_pid}/cgroup")).unwrap();
    assert_eq!(
        cg, init_cg,
        "detached exec process is in the container's cgroup"
    );
}

fn exec_bad_input(rt: &Runtime) {
    let (c, _b) = sleeper(rt, Config::new());
    let out = rt.cmd(&["exec", c.id(), "no-such-program"]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("no-such-program"), "{out}");
    // Nothing but the init is left in the container.
    let ps = rt.cmd(&["exec", c.id(), "ps", "-o", "pid,args"]);
    assert!(!ps.stdout.contains("no-such"), "{ps}");
    let out = rt.cmd(&["exec", "no-such-container", "true"]);
    assert!(!out.success(), "{out}");
    // Into a stopped container: a clear error.
    rt.kill(c.id(), "KILL").expect_ok("kill");
    assert!(rt.wait_status(c.id(), "stopped", std::time::Duration::from_secs(5)));
    let out = rt.cmd(&["exec", c.id(), "true"]);
    let line = out.expect_clean_failure("exec into stopped container");
    assert!(
        line.contains("stopped") || line.contains("not running"),
        "{line}"
    );
}

fn exec_in_user_namespace(rt: &Runtime) {
    let (c, _b) = sleeper(rt, Config::new().userns(200_000, 200_000, 65536));
    let out = rt.cmd(&["exec", c.id(), "sh", "-c", "cat /proc/self/uid_map; id -u"]);
    out.expect_ok("exec in userns");
    assert!(out.stdout.contains("200000"), "{out}");
    assert!(out.stdout.trim_end().ends_with('0'), "{out}");
}

scenario!(
    exec_joins_every_namespace,
    exec_exit_code_and_flags,
    exec_keeps_container_caps,
    exec_detached_pid_file,
    exec_bad_input,
    exec_in_user_namespace,
);
