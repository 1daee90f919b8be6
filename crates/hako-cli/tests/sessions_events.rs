//! Exec sessions (a monitor per exec, nothing tied to the caller) and the event log that
//! the CLI and the shims share.

mod common;

use std::time::Duration;

use common::Hako;
use serde_json::Value;

fn exec_dirs(h: &Hako) -> Vec<String> {
    std::fs::read_dir(h.exec.path().join("exec"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn events(h: &Hako, filters: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "events", "--since", "0", "--until", "0s", "--format", "json",
    ];
    for f in filters {
        args.push("--filter");
        args.push(f);
    }
    h.ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event json"))
        .collect()
}

#[test]
fn exec_sessions_do_not_depend_on_the_caller() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["--name", "ex", "busybox", "sleep", "1000"], None);
    // Attached: stdout and stderr kept apart, the exit code comes back.
    let o = h.run(&["exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // Input reaches the process and its end closes it (`-i`).
    let o = h.run_stdin(&["exec", "-i", "ex", "sh", "-c", "cat; echo end"], b"in\n");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "in\nend\n");
    let e = h.fails(127, &["exec", "ex", "nope"]);
    assert!(e.contains("executable file not found"), "{e}");
    // Detached: runs on after the CLI returned.
    h.ok(&["exec", "-d", "ex", "sh", "-c", "sleep 0.3; echo done > /f"]);
    h.wait_for("the detached exec", || {
        h.run(&["exec", "ex", "cat", "/f"]).stdout == b"done\n"
    });
    // The CLI killed mid-exec: the process and its monitor carry on and record the exit.
    let mut child = h
        .cmd(&[
            "exec",
            "ex",
            "sh",
            "-c",
            "sleep 0.5; echo late > /g; exit 4",
        ])
        .spawn()
        .expect("spawn");
    h.wait_for("the exec to start", || {
        events(&h, &["event=exec_start"])
            .iter()
            .any(|e| e["Action"].as_str().is_some_and(|a| a.contains("late")))
    });
    child.kill().expect("kill the CLI");
    let _ = child.wait();
    h.wait_for("the orphaned exec", || {
        h.run(&["exec", "ex", "cat", "/g"]).stdout == b"late\n"
    });
    h.wait_for("its exec_die", || {
        events(&h, &["event=exec_die"])
            .iter()
            .any(|e| e["Actor"]["Attributes"]["exitCode"] == "4")
    });
    assert!(!exec_dirs(&h).is_empty());
    // A stopped container takes no exec, and its sessions go with it.
    h.ok(&["stop", "-t", "0", "ex"]);
    let e = h.fails(1, &["exec", "ex", "true"]);
    assert!(e.contains("is not running"), "{e}");
    h.ok(&["rm", "ex"]);
    assert_eq!(exec_dirs(&h), Vec::<String>::new(), "exec sessions left");
    h.assert_clean(&[&id]);
}

#[test]
fn events_come_from_the_cli_and_the_shims() {
    need_root!();
    let h = Hako::new();
    let o = h.run(&[
        "run", "--name", "ev", "--label", "team=a", "busybox", "sh", "-c", "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let id = h.inspect("ev")["Id"].as_str().expect("id").to_string();
    h.ok(&["rename", "ev", "ev2"]);
    h.ok(&["rm", "ev2"]);
    let evs = events(&h, &["type=container"]);
    let actions: Vec<&str> = evs
        .iter()
        .filter(|e| e["Actor"]["ID"] == id.as_str())
        .map(|e| e["Action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        ["create", "attach", "start", "die", "rename", "destroy"],
        "{evs:?}"
    );
    // `die` is written by the shim, with the exit code and the container's labels.
    let die = evs.iter().find(|e| e["Action"] == "die").expect("die");
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "3");
    assert_eq!(die["Actor"]["Attributes"]["team"], "a");
    assert_eq!(die["Actor"]["Attributes"]["name"], "ev");
    assert_eq!(die["status"], "die", "legacy fields for old clients");
    assert_eq!(die["id"], id.as_str());
    let rename = evs
        .iter()
        .find(|e| e["Action"] == "rename")
        .expect("rename");
    assert_eq!(rename["Actor"]["Attributes"]["oldName"], "/ev");
    assert_eq!(rename["Actor"]["Attributes"]["name"], "ev2");
    // Filters: by name, by label, by event; time windows.
    assert_eq!(events(&h, &["container=ev2", "event=destroy"]).len(), 1);
    assert_eq!(events(&h, &["label=team=a", "event=die"]).len(), 1);
    assert_eq!(events(&h, &["label=team=b"]).len(), 0);
    assert!(
        h.ok(&["events", "--since", "0", "--until", "1"])
            .trim()
            .is_empty()
    );
    let e = h.fails(1, &["events", "--filter", "colour=red"]);
    assert!(e.contains("invalid filter 'colour'"), "{e}");
    let e = h.fails(1, &["events", "--since", "yesterday"]);
    assert!(e.contains("invalid time value"), "{e}");
    // A live follower sees what another process does.
    let mut follower = h
        .cmd(&[
            "events",
            "--filter",
            "event=create",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn events");
    std::thread::sleep(Duration::from_millis(300));
    h.ok(&["create", "--name", "late", "busybox", "true"]);
    std::thread::sleep(Duration::from_millis(800));
    follower.kill().expect("kill events");
    let out = follower.wait_with_output().expect("events output");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "late\n");
    h.finish(&["late"]);
}

#[test]
fn healthchecks_run_in_the_shim() {
    need_root!();
    let h = Hako::new();
    let id = h.start(
        &[
            "--name",
            "hc",
            "--health-cmd",
            "test -e /ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "busybox",
            "sleep",
            "1000",
        ],
        None,
    );
    let status = || h.ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"]);
    h.wait_for("unhealthy", || status().trim() == "unhealthy");
    assert!(
        h.ok(&["ps", "--format", "{{.Status}}"])
            .contains("(unhealthy)"),
        "ps shows the health"
    );
    h.ok(&["exec", "hc", "touch", "/ok"]);
    h.wait_for("healthy", || status().trim() == "healthy");
    assert_eq!(
        h.ok(&["ps", "-q", "--filter", "health=healthy"]).trim(),
        &id[..12]
    );
    assert!(
        h.ok(&["ps", "-q", "--filter", "health=unhealthy"])
            .trim()
            .is_empty()
    );
    let info = h.inspect("hc");
    let log = info["State"]["Health"]["Log"].as_array().expect("log");
    assert!(!log.is_empty() && log.len() <= 5, "{log:?}");
    assert_eq!(log.last().expect("last")["ExitCode"], 0);
    let changes: Vec<String> = events(&h, &["event=health_status"])
        .iter()
        .map(|e| e["Action"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        changes,
        ["health_status: unhealthy", "health_status: healthy"]
    );
    // A timeout counts as a failure, with Docker's message.
    let slow = h.start(
        &[
            "--name",
            "slow",
            "--health-cmd",
            "sleep 5",
            "--health-interval",
            "100ms",
            "--health-timeout",
            "200ms",
            "--health-retries",
            "1",
            "busybox",
            "sleep",
            "1000",
        ],
        None,
    );
    h.wait_for("the timeout", || {
        h.ok(&["inspect", "-f", "{{.State.Health.Status}}", "slow"])
            .trim()
            == "unhealthy"
    });
    let log = h.inspect("slow")["State"]["Health"]["Log"].clone();
    assert!(
        log[0]["Output"]
            .as_str()
            .is_some_and(|o| o.contains("Health check exceeded timeout")),
        "{log}"
    );
    // --no-healthcheck and no healthcheck: no Health at all.
    h.start(
        &[
            "--name",
            "none",
            "--no-healthcheck",
            "busybox",
            "sleep",
            "1000",
        ],
        None,
    );
    assert!(h.inspect("none")["State"]["Health"].is_null());
    h.finish(&[&id, &slow, "none"]);
}

/// A start right after an exit: the last run's shim may still be deleting the runtime's
/// container and its files when `wait` has already answered. The new run waits for it
/// (here the runtime's `delete` is slowed down to a second, as a loaded machine does);
/// before, it failed with "container ... already exists", or had its files unlinked.
#[test]
fn a_new_run_waits_for_the_last_shim_to_finish() {
    need_root!();
    let h = Hako::new();
    let real = std::env::var_os("HAKO_RUNTIME").map_or_else(
        || std::path::Path::new(common::HAKO).with_file_name("hako-runtime"),
        std::path::PathBuf::from,
    );
    let wrapper = h.root.path().join("slow-delete-runtime");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = delete ] && sleep 1; done\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the wrapper");
    let slow = |args: &[&str]| {
        let o = h
            .cmd(args)
            .env("HAKO_RUNTIME", &wrapper)
            .output()
            .expect("run hako");
        assert!(
            o.status.success(),
            "hako {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    slow(&["create", "--name", "again", "busybox", "echo", "ran"]);
    for _ in 0..2 {
        slow(&["start", "again"]);
        assert_eq!(slow(&["wait", "again"]).trim(), "0");
    }
    assert_eq!(slow(&["logs", "again"]), "ran\nran\n");
    let dies = events(&h, &["container=again", "event=die"]);
    assert_eq!(dies.len(), 2, "{dies:?}");
    slow(&["rm", "again"]);
    h.assert_clean(&[]);
}

/// Finished exec sessions are kept about five minutes after their process ended (their
/// exit code readable), then swept, as dockerd's exec GC does: at the next exec create,
/// and by `hako serve` (at its start and every minute); a recent one stays.
#[test]
fn finished_exec_sessions_are_swept_after_five_minutes() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["busybox", "sleep", "1000"], None);
    let age = |session: &str| {
        // It ended six minutes ago (by its exit record).
        std::fs::File::options()
            .write(true)
            .open(h.exec.path().join("exec").join(session).join("exit.json"))
            .expect("the exit record")
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(360))
            .expect("age the exit record");
    };
    h.ok(&["exec", &id, "true"]);
    let a = exec_dirs(&h);
    assert_eq!(a.len(), 1, "{a:?}");
    h.ok(&["exec", &id, "true"]);
    let mut b = exec_dirs(&h);
    assert_eq!(b.len(), 2, "a recent session stays: {b:?}");
    b.retain(|x| *x != a[0]);
    age(&a[0]);
    h.ok(&["exec", &id, "true"]);
    let mut left = exec_dirs(&h);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&a[0]), "swept at exec create: {left:?}");
    left.retain(|x| *x != b[0]);
    let c = left[0].clone();
    age(&b[0]);
    let s = common::serve::Server::start(&h);
    h.wait_for("hako serve's sweep", || !exec_dirs(&h).contains(&b[0]));
    let (status, body) = s.http("GET", &format!("/exec/{}/json", b[0]), "");
    assert_eq!(status, 404, "{body}");
    let (status, body) = s.http("GET", &format!("/exec/{c}/json"), "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ExitCode\":0"), "{body}");
    drop(s);
    h.finish(&[&id]);
}
