//! The runc command line: kill, list, state, spec, features, output to a closed pipe.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

scenario!(
    kill_by_name,
    kill_by_number,
    kill_all,
    list_formats,
    state_shape,
    spec_output,
    spec_rootless,
    features_json,
    closed_stdout_is_a_quiet_exit,
);

/// pid 1 ignores signals it has no handler for, so trap TERM and exit.
fn trapping_config() -> Config {
    Config::new().sh("trap 'exit 0' TERM; echo ready; while true; do sleep 0.05; done")
}

fn kill_with(rt: &Runtime, signal: &str) {
    let b = bundle(&trapping_config());
    let id = unique_id("kill");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    assert!(rt.wait_status(&id, "running", Duration::from_secs(5)));
    // Wait for the trap to be installed.
    for _ in 0..100 {
        if rt.container_stdout(&id).contains("ready") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.kill(&id, signal).expect_ok(&format!("kill {signal}"));
    assert!(
        rt.wait_status(&id, "stopped", Duration::from_secs(10)),
        "{signal} did not stop it"
    );
    rt.delete(&id).expect_ok("delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn kill_by_name(rt: &Runtime) {
    kill_with(rt, "TERM");
    kill_with(rt, "SIGTERM");
    kill_with(rt, "KILL");
}

fn kill_by_number(rt: &Runtime) {
    kill_with(rt, "15");
    kill_with(rt, "9");
}

fn kill_all(rt: &Runtime) {
    // A background child that ignores TERM too: --all must reach it.
    let config =
        Config::new().sh("(trap '' TERM; while true; do sleep 0.05; done) & echo ready; wait");
    let b = bundle(&config);
    let id = unique_id("kall");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    assert!(rt.wait_status(&id, "running", Duration::from_secs(5)));
    rt.kill_all(&id, "KILL").expect_ok("kill --all KILL");
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    rt.delete(&id).expect_ok("delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn list_formats(rt: &Runtime) {
    let b = bundle(&trapping_config());
    let ids = [unique_id("lsa"), unique_id("lsb")];
    let _guards: Vec<_> = ids.iter().map(|id| ContainerGuard::new(rt, id)).collect();
    for id in &ids {
        rt.create(id, b.path()).expect_ok("create");
    }
    rt.start(&ids[1]).expect_ok("start");
    assert!(rt.wait_status(&ids[1], "running", Duration::from_secs(5)));

    let table = rt.list(&[]);
    table.expect_ok("list");
    let mut lines = table.stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    for (id, status) in [(&ids[0], "created"), (&ids[1], "running")] {
        let row = rows
            .iter()
            .find(|r| r.first() == Some(&id.as_str()))
            .expect("row");
        assert_eq!(row[2], status, "{table}");
        assert_eq!(row[3], b.path().display().to_string(), "{table}");
    }

    let json = rt.list(&["--format", "json"]);
    json.expect_ok("list --format json");
    let parsed: Value = serde_json::from_str(&json.stdout).expect("list json parses");
    let arr = parsed.as_array().expect("an array");
    assert_eq!(arr.len(), 2, "{json}");
    for item in arr {
        assert!(ids.iter().any(|id| item["id"] == id.as_str()), "{json}");
        assert!(item["pid"].as_i64().is_some_and(|p| p > 0), "{json}");
        assert!(
            item["status"].is_string() && item["bundle"].is_string(),
            "{json}"
        );
    }

    let quiet = rt.list(&["-q"]);
    quiet.expect_ok("list -q");
    let mut got: Vec<&str> = quiet.stdout.lines().collect();
    got.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want, "{quiet}");

    for id in &ids {
        rt.delete_force(id).expect_ok("delete --force");
    }
    let empty = rt.list(&["-q"]);
    empty.expect_ok("list -q after delete");
    assert_eq!(empty.stdout.trim(), "", "{empty}");
    rt.assert_no_leaks(&[&ids[0], &ids[1]], &[b.path()]);
}

fn state_shape(rt: &Runtime) {
    let b = bundle(&trapping_config());
    let id = unique_id("state");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    let state = rt.state(&id).expect("state");
    // OCI runtime spec, "State": ociVersion, id, status, pid, bundle are required;
    // annotations optional.
    assert!(
        state["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{state}"
    );
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "created");
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
    assert_eq!(state["bundle"], b.path().display().to_string());
    // And it parses as the typed State.
    let typed: oci_spec::runtime::State =
        serde_json::from_value(state.clone()).expect("typed state");
    assert_eq!(typed.id(), &id);
    rt.delete_force(&id).expect_ok("delete --force");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn spec_output(rt: &Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    rt.cmd(&["spec", "--bundle", &d]).expect_ok("spec");
    let spec = oci_spec::runtime::Spec::load(dir.path().join("config.json")).expect("spec parses");
    assert_eq!(
        spec.root().as_ref().map(|r| r.path().display().to_string()),
        Some("rootfs".into())
    );
    let raw: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        raw["process"]["args"],
        serde_json::json!(["sh"]),
        "runc spec runs sh"
    );
    let line = rt
        .cmd(&["spec", "--bundle", &d])
        .expect_clean_failure("spec over an existing config.json");
    eprintln!("{} says: {line}", rt.kind());
}

fn spec_rootless(rt: &Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    rt.cmd(&["spec", "--rootless", "--bundle", &d])
        .expect_ok("spec --rootless");
    let raw: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    oci_spec::runtime::Spec::load(dir.path().join("config.json")).expect("rootless spec parses");
    let ns = raw["linux"]["namespaces"].as_array().expect("namespaces");
    assert!(
        ns.iter().any(|n| n["type"] == "user"),
        "user namespace:\n{raw:#}"
    );
    assert!(
        !ns.iter().any(|n| n["type"] == "network"),
        "no network namespace:\n{raw:#}"
    );
    assert!(
        raw["linux"]["uidMappings"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(
        raw["linux"]["gidMappings"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
}

fn features_json(rt: &Runtime) {
    let out = rt.cmd(&["features"]);
    out.expect_ok("features");
    let f: Value = serde_json::from_str(&out.stdout).expect("features is JSON");
    assert!(
        f["ociVersionMin"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{f:#}"
    );
    assert!(
        f["ociVersionMax"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{f:#}"
    );
    let hooks = f["hooks"].as_array().expect("hooks list");
    assert!(hooks.iter().any(|h| h == "createRuntime"), "{f:#}");
    let ns = f["linux"]["namespaces"]
        .as_array()
        .expect("namespaces list");
    for want in ["mount", "pid", "network", "uts", "ipc", "user", "cgroup"] {
        assert!(ns.iter().any(|n| n == want), "{want}: {f:#}");
    }
    assert!(
        f["mountOptions"]
            .as_array()
            .is_some_and(|m| m.iter().any(|o| o == "ro")),
        "{f:#}"
    );
}

/// `state ID | head -c 10`: the reader goes away, and every command that prints must end
/// quietly on EPIPE (hako: exit 0, nothing on stderr; runc, in Go, dies of SIGPIPE), never
/// with a panic ("failed printing to stdout") or an error line.
fn closed_stdout_is_a_quiet_exit(rt: &Runtime) {
    use std::os::unix::process::ExitStatusExt;
    let b = bundle(&Config::new().args(&["sleep", "1000"]));
    let id = unique_id("epipe");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    let root = rt.root().display().to_string();
    for verb in [
        &["state", id.as_str()][..],
        &["list"],
        &["list", "--format", "json"],
        &["list", "-q"],
        &["ps", id.as_str()],
        &["events", "--stats", id.as_str()],
        &["features"],
        &["--help"],
    ] {
        // A pipe whose read end is closed before the command starts: the first write
        // gets EPIPE every time.
        let (read, write) = nix::unistd::pipe().expect("pipe");
        drop(read);
        let out = std::process::Command::new(rt.binary())
            .args(["--root", &root])
            .args(verb)
            .stdout(write)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("spawn");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{verb:?}: {}: {stderr}", out.status);
        match rt.kind() {
            RuntimeKind::Hako => assert!(out.status.success(), "{verb:?}: {}", out.status),
            _ => assert!(
                out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
                "{verb:?}: {}",
                out.status
            ),
        }
    }
    rt.delete_force(&id).expect_ok("delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}
