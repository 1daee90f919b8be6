//! Hooks: each kind writes the state it received on stdin to a marker file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

scenario!(hooks_order_and_state, hook_timeout_fails_create);

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

fn hooks_order_and_state(rt: &Runtime) {
    let marks = rt.work_dir().join(unique_id("hooks"));
    fs::create_dir(&marks).unwrap();
    fs::set_permissions(&marks, fs::Permissions::from_mode(0o777)).unwrap();
    let host = marks.display().to_string();
    let mut config = Config::new()
        .bind(&host, "/hookmarks", false)
        .sh("echo main >> /hookmarks/order");
    for kind in KINDS {
        // startContainer runs inside the container (after pivot_root) and sees /hookmarks;
        // the others run where the host path is visible.
        let script = format!(
            "d=/hookmarks; [ -d $d ] || d={host}; cat > $d/{kind}.json; echo {kind} >> $d/order"
        );
        config = config.hook(kind, "/bin/sh", &["sh", "-c", &script], Some(10));
    }
    let b = bundle(&config);
    let id = unique_id("hook");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    rt.delete(&id).expect_ok("delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);

    let order = fs::read_to_string(marks.join("order")).unwrap_or_default();
    let order: Vec<&str> = order.lines().collect();
    eprintln!("{} hook order: {order:?}", rt.kind());
    let pos = |k: &str| {
        let hits: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, x)| **x == k)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(hits.len(), 1, "{k} must run exactly once: {order:?}");
        hits[0]
    };
    assert!(pos("createRuntime") < pos("createContainer"), "{order:?}");
    assert!(pos("prestart") < pos("startContainer"), "{order:?}");
    assert!(pos("createContainer") < pos("startContainer"), "{order:?}");
    assert!(pos("startContainer") < pos("main"), "{order:?}");
    // Spec: poststart runs after the user process was executed, so after startContainer.
    // runc 1.1 runs them concurrently (seen: poststart before startContainer), so the
    // oracle is exempt from this one check.
    if rt.kind() != RuntimeKind::Runc {
        assert!(pos("startContainer") < pos("poststart"), "{order:?}");
    }
    assert_eq!(order.last(), Some(&"poststop"), "{order:?}");

    for kind in KINDS {
        let text = fs::read_to_string(marks.join(format!("{kind}.json"))).unwrap_or_default();
        let state: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{kind} got no state JSON on stdin ({e}): {text:?}"));
        assert_eq!(state["id"], id.as_str(), "{kind}: {state}");
        assert_eq!(
            state["bundle"],
            b.path().display().to_string(),
            "{kind}: {state}"
        );
        assert!(state["ociVersion"].is_string(), "{kind}: {state}");
        let status = state["status"].as_str().unwrap_or_default();
        eprintln!("{} {kind}: status {status}", rt.kind());
        let allowed: &[&str] = match kind {
            "prestart" | "createRuntime" | "createContainer" => &["creating"],
            "startContainer" => &["created", "creating"],
            // runc 1.1 hands poststart the state from before the status update: "created".
            "poststart" => &["running", "created"],
            _ => &["stopped"],
        };
        assert!(
            allowed.contains(&status),
            "{kind} saw status {status}: {state}"
        );
        if kind != "poststop" {
            assert!(
                state["pid"].as_i64().is_some_and(|p| p > 0),
                "{kind}: {state}"
            );
        }
    }
}

fn hook_timeout_fails_create(rt: &Runtime) {
    let config = Config::new().hook("prestart", "/bin/sleep", &["sleep", "20"], Some(1));
    let b = bundle(&config);
    let id = unique_id("hto");
    let _guard = ContainerGuard::new(rt, &id);
    let started = Instant::now();
    let out = rt.create(&id, b.path());
    let took = started.elapsed();
    let line = out.expect_clean_failure("create with a hook past its timeout");
    eprintln!("{} says: {line}", rt.kind());
    assert!(
        took < Duration::from_secs(10),
        "the timeout must cut the hook short ({took:?})"
    );
    rt.assert_no_leaks(&[&id], &[b.path()]);
}
