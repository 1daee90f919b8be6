//! Bad input: one clear line on stderr, a non-zero exit, and nothing left behind.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

scenario!(
    config_missing,
    config_not_json,
    root_path_missing,
    unknown_namespace,
    unknown_mount_type,
    args0_not_found,
    invalid_ids,
    duplicate_id,
    host_sysctls,
);

/// `create` must fail cleanly and leave nothing; returns the error line.
#[track_caller]
fn create_fails(rt: &Runtime, b: &Bundle, what: &str) -> String {
    let id = unique_id("bad");
    let _guard = ContainerGuard::new(rt, &id);
    let line = rt.create(&id, b.path()).expect_clean_failure(what);
    eprintln!("{} on {what}: {line}", rt.kind());
    assert!(rt.status(&id).is_none(), "{what}: no container may exist");
    rt.assert_no_leaks(&[&id], &[b.path()]);
    line
}

fn config_missing(rt: &Runtime) {
    let b = Bundle::empty().unwrap();
    create_fails(rt, &b, "config.json missing");
}

fn config_not_json(rt: &Runtime) {
    let b = bundle(&Config::new());
    b.write_raw("this is { not json").unwrap();
    create_fails(rt, &b, "config.json not JSON");
}

fn root_path_missing(rt: &Runtime) {
    let config = Config::new().edit(|j| {
        j["root"].as_object_mut().unwrap().remove("path");
    });
    create_fails(rt, &bundle(&config), "root.path missing");
}

fn unknown_namespace(rt: &Runtime) {
    let config = Config::new().edit(|j| {
        j["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogus"}));
    });
    create_fails(rt, &bundle(&config), "unknown namespace type");
}

fn unknown_mount_type(rt: &Runtime) {
    let config = Config::new().mount("/mnt", "hakonosuchfs", "none", &[]);
    create_fails(rt, &bundle(&config), "mount of an unknown filesystem type");
}

/// A sysctl the container's namespaces do not hold is the host's: create refuses it, as
/// runc does, and the host's value stays.
fn host_sysctls(rt: &Runtime) {
    /// Puts the host's values back if a runtime wrote them (a failing run must not leave
    /// the host changed).
    struct Restore(Vec<(&'static str, String)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            for (p, v) in &self.0 {
                if std::fs::read_to_string(p).ok().as_ref() != Some(v) {
                    let _ = std::fs::write(p, v);
                }
            }
        }
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap();
    let forward = read("/proc/sys/net/ipv4/ip_forward");
    let flipped = if forward.trim() == "1" { "0" } else { "1" };
    let swappiness = read("/proc/sys/vm/swappiness");
    let _restore = Restore(vec![
        ("/proc/sys/net/ipv4/ip_forward", forward.clone()),
        ("/proc/sys/vm/swappiness", swappiness.clone()),
    ]);
    let cases = [
        (
            Config::new()
                .without_namespace("network")
                .sysctl("net.ipv4.ip_forward", flipped),
            "host network namespace",
        ),
        (
            Config::new().sysctl("vm.swappiness", "7"),
            "not in a separate kernel namespace",
        ),
        (
            Config::new()
                .without_namespace("ipc")
                .sysctl("kernel.shmmax", "4096"),
            "ipc namespace",
        ),
    ];
    for (config, want) in cases {
        let line = create_fails(rt, &bundle(&config), want);
        assert!(line.contains(want), "{}: {line}", rt.kind());
    }
    assert_eq!(read("/proc/sys/net/ipv4/ip_forward"), forward);
    assert_eq!(read("/proc/sys/vm/swappiness"), swappiness);
}

fn args0_not_found(rt: &Runtime) {
    let exit_code = |rt: &Runtime, args: &[&str]| {
        let b = bundle(&Config::new().args(args));
        let id = unique_id("noexe");
        let _guard = ContainerGuard::new(rt, &id);
        let out = rt.run(&id, b.path());
        let line = out.expect_clean_failure("args[0] not found");
        eprintln!("{} on {args:?}: {line} (exit {:?})", rt.kind(), out.code());
        rt.assert_no_leaks(&[&id], &[b.path()]);
        out.code()
    };
    for args in [&["/no/such/program"][..], &["no-such-program-in-path"][..]] {
        let code = exit_code(rt, args);
        if rt.kind() != RuntimeKind::Runc
            && let Ok(runc) = Runtime::new(RuntimeKind::Runc)
        {
            assert_eq!(
                code,
                exit_code(&runc, args),
                "exit code must match runc's for {args:?}"
            );
        }
    }
}

fn invalid_ids(rt: &Runtime) {
    let b = bundle(&Config::new());
    // Unique names: parallel tests (the hako and runc runs) must not share ids.
    let x = unique_id("x");
    let a = unique_id("a");
    let up = format!("../{x}");
    let slash = format!("{a}/b");
    for id in [up.as_str(), slash.as_str(), "", ".."] {
        let line = rt
            .create(id, b.path())
            .expect_clean_failure(&format!("invalid id {id:?}"));
        eprintln!("{} on id {id:?}: {line}", rt.kind());
    }
    // Nothing may appear beside or above the state dir either.
    let stray: Vec<_> = std::fs::read_dir(rt.work_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| *n == x || *n == a)
        .collect();
    assert!(
        stray.is_empty(),
        "invalid ids escaped the state dir: {stray:?}"
    );
    rt.assert_no_leaks(&[&x, &a], &[b.path()]);
}

fn duplicate_id(rt: &Runtime) {
    let b = bundle(&Config::new().sh("sleep 5"));
    let id = unique_id("dup");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("first create");
    let pid = rt.state(&id).unwrap()["pid"].as_i64();
    let line = rt
        .create(&id, b.path())
        .expect_clean_failure("duplicate id");
    eprintln!("{} on duplicate id: {line}", rt.kind());
    let state = rt.state(&id).expect("the first container is intact");
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"].as_i64(), pid);
    rt.start(&id).expect_ok("the first container still starts");
    assert!(rt.wait_status(&id, "running", Duration::from_secs(5)));
    rt.delete_force(&id).expect_ok("delete --force");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}
