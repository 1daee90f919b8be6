//! Crash testing: every multi-step operation is killed with SIGKILL at its named steps
//! (`HAKO_CRASH_AT`, hako-sys crash.rs), one step per run. Afterwards the next command sees
//! a consistent store: `system check` finds nothing at all (the open of that next command
//! has finished or undone the interrupted work), the object exists whole (usable) or not at
//! all, and once it is removed the store holds exactly what it held before.
//!
//! The steps of each operation are learned first (`HAKO_CRASH_TRACE`), so new steps are
//! tried without changing this file. `HAKO_CRASH_POINTS` caps the steps tried per
//! operation (default 6, spread over the operation; 0 = all of them).

#[macro_use]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;

use common::Hako;
use hako_test_support::Inventory;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One operation under test.
struct Op<'a> {
    name: &'a str,
    /// Makes what the operation needs.
    setup: &'a dyn Fn(&Hako),
    /// The operation.
    args: Vec<String>,
    /// After the crash and the next open: checks the object is whole or absent, and
    /// removes it (and what `setup` made).
    settle: &'a dyn Fn(&Hako),
}

/// `step:n` for the n-th time each step was reached, in order.
fn occurrences(trace: &str) -> Vec<String> {
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    trace
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let n = seen.entry(l).or_default();
            *n += 1;
            format!("{l}:{n}")
        })
        .collect()
}

fn pick(points: Vec<String>) -> Vec<String> {
    let cap: usize = std::env::var("HAKO_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    if cap == 0 || points.len() <= cap {
        return points;
    }
    // Spread over the operation: first, last, and evenly between.
    (0..cap)
        .map(|i| points[i * (points.len() - 1) / (cap - 1)].clone())
        .collect()
}

fn consistent(h: &Hako, base: &Inventory, what: &str) {
    // Any command opens the engine; the open finishes or undoes the interrupted work,
    // unless another process is in a flight at that moment (then a later open does it).
    // The killed operation may have left such a process: the shim of a container it
    // killed runs its exit command (which releases the network) right then. So: opens
    // until the check is clean, for a bounded time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        h.ok(&["ps", "-a"]);
        let o = h.run(&["system", "check"]);
        let out = text(&o);
        if o.status.success() && out.contains("0 damaged objects, 0 pieces of garbage") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: system check after opens for 20 s:\n{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = base;
}

fn crash_op(h: &Hako, base: &Inventory, op: &Op<'_>) -> usize {
    let args: Vec<&str> = op.args.iter().map(String::as_str).collect();
    // Learn the steps.
    (op.setup)(h);
    let trace = tempfile::NamedTempFile::new().expect("trace file");
    let o = h
        .cmd(&args)
        .env("HAKO_CRASH_TRACE", trace.path())
        .output()
        .expect("run");
    assert!(o.status.success(), "{}: {}", op.name, text(&o));
    (op.settle)(h);
    let steps = std::fs::read_to_string(trace.path()).unwrap_or_default();
    let points = pick(occurrences(&steps));
    assert!(!points.is_empty(), "{}: no crash points reached", op.name);
    let mut killed = 0;
    for p in &points {
        (op.setup)(h);
        let o = h.cmd(&args).env("HAKO_CRASH_AT", p).output().expect("run");
        if o.status.signal() == Some(9) {
            killed += 1;
        } else {
            // Not reached this time (a step that depends on timing): it ran to the end.
            assert!(o.status.success(), "{} at {p}: {}", op.name, text(&o));
        }
        let what = format!("{} killed at {p}", op.name);
        consistent(h, base, &what);
        (op.settle)(h);
        let after = Inventory::take(h.root.path(), h.exec.path(), &[]);
        let diff = after.diff(base);
        assert!(
            diff.is_empty(),
            "{what}: after removing what is left:\n{diff}"
        );
    }
    eprintln!(
        "{}: {killed} of {} points killed it ({})",
        op.name,
        points.len(),
        points.join(" ")
    );
    killed
}

fn exists(h: &Hako, kind: &str, name: &str) -> bool {
    h.run(&[kind, "inspect", name]).status.success()
}

/// A root filesystem tar with one more file than busybox: its layer is new to the store.
fn other_tar(dir: &Path) -> std::path::PathBuf {
    let src = hako_test_support::busybox_rootfs().expect("busybox rootfs");
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(&tree)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(tree.join("crash-marker"), "whole\n").unwrap();
    let tar = dir.join("other.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

fn crash_group(group: &[&str]) {
    let h = Hako::new();
    let tmp = tempfile::tempdir().unwrap();
    let other = other_tar(tmp.path());
    let other_s = other.to_str().unwrap().to_string();
    // An archive for `load`: the other image, saved, then removed.
    h.ok(&["import", &other_s, "crash-ld"]);
    let saved = tmp.path().join("ld.tar");
    h.ok(&["save", "-o", saved.to_str().unwrap(), "crash-ld"]);
    h.ok(&["rmi", "crash-ld"]);
    let reg = h.net.run(hako_test_support::Registry::start);
    let pulled = reg
        .as_ref()
        .map(|r| format!("127.0.0.1:{}/crash/ld:1", r.port));
    if let Some(p) = &pulled {
        h.ok(&["import", &other_s, p]);
        h.ok(&["push", p]);
        h.ok(&["rmi", p]);
    }
    h.ok(&["ps", "-a"]);
    let base = Inventory::take(h.root.path(), h.exec.path(), &[]);

    let nothing = |_: &Hako| {};
    let run_ok = |h: &Hako, image: &str| {
        let out = h.ok(&["run", "--rm", image, "cat", "/crash-marker"]);
        assert_eq!(out, "whole\n", "{image} is whole");
    };
    let rm_image = |h: &Hako, image: &str| {
        if exists(h, "image", image) {
            run_ok(h, image);
            h.ok(&["rmi", image]);
        }
    };
    let running = |h: &Hako, name: &str, extra: &[&str]| {
        let mut a = vec!["run", "-d", "--name", name];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "sh", "-c", "echo x > /new; sleep 100"]);
        h.ok(&a);
    };
    let rm_container = |h: &Hako, name: &str| {
        if exists(h, "container", name) {
            h.ok(&["rm", "-f", "-v", name]);
        }
    };

    let mut ops: Vec<Op<'_>> = Vec::new();
    let create_settle = |h: &Hako| {
        if exists(h, "container", "crash-c") {
            // Whole: it starts, and its volume got the image's /etc.
            h.ok(&["start", "-a", "crash-c"]);
            let mp = h.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "crash-vol"]);
            assert!(Path::new(mp.trim()).join("passwd").exists(), "copied up");
            h.ok(&["rm", "crash-c"]);
        }
        if exists(h, "volume", "crash-vol") {
            h.ok(&["volume", "rm", "crash-vol"]);
        }
    };
    ops.push(Op {
        name: "create",
        setup: &nothing,
        args: [
            "create",
            "--name",
            "crash-c",
            "-v",
            "crash-vol:/etc",
            "busybox",
            "true",
        ]
        .map(String::from)
        .to_vec(),
        settle: &create_settle,
    });
    let run_settle = |h: &Hako| rm_container(h, "crash-r");
    ops.push(Op {
        name: "run -d",
        setup: &nothing,
        args: ["run", "-d", "--name", "crash-r", "busybox", "sleep", "100"]
            .map(String::from)
            .to_vec(),
        settle: &run_settle,
    });
    let stop_setup = |h: &Hako| running(h, "crash-s", &[]);
    let stop_settle = |h: &Hako| {
        let state = h.ok(&["inspect", "-f", "{{.State.Status}}", "crash-s"]);
        assert!(
            matches!(state.trim(), "running" | "exited"),
            "stop left {state}"
        );
        h.ok(&["rm", "-f", "crash-s"]);
    };
    ops.push(Op {
        name: "stop",
        setup: &stop_setup,
        args: ["stop", "-t", "1", "crash-s"].map(String::from).to_vec(),
        settle: &stop_settle,
    });
    let rm_setup = |h: &Hako| running(h, "crash-rm", &["-v", "/data"]);
    let rm_settle = |h: &Hako| rm_container(h, "crash-rm");
    ops.push(Op {
        name: "rm -f -v",
        setup: &rm_setup,
        args: ["rm", "-f", "-v", "crash-rm"].map(String::from).to_vec(),
        settle: &rm_settle,
    });
    let import_settle = |h: &Hako| rm_image(h, "crash-imp");
    ops.push(Op {
        name: "import",
        setup: &nothing,
        args: vec!["import".into(), other_s.clone(), "crash-imp".into()],
        settle: &import_settle,
    });
    let load_settle = |h: &Hako| rm_image(h, "crash-ld");
    ops.push(Op {
        name: "load",
        setup: &nothing,
        args: vec!["load".into(), "-i".into(), saved.display().to_string()],
        settle: &load_settle,
    });
    let commit_setup = |h: &Hako| {
        running(h, "crash-cm", &[]);
        h.wait_for("/new", || {
            h.run(&["exec", "crash-cm", "test", "-e", "/new"])
                .status
                .success()
        });
    };
    let commit_settle = |h: &Hako| {
        if exists(h, "image", "crash-cimg") {
            assert_eq!(h.ok(&["run", "--rm", "crash-cimg", "cat", "/new"]), "x\n");
            h.ok(&["rmi", "crash-cimg"]);
        }
        h.ok(&["rm", "-f", "crash-cm"]);
    };
    ops.push(Op {
        name: "commit",
        setup: &commit_setup,
        args: ["commit", "crash-cm", "crash-cimg"]
            .map(String::from)
            .to_vec(),
        settle: &commit_settle,
    });
    let vol_setup = |h: &Hako| {
        h.ok(&["volume", "create", "crash-v"]);
    };
    let vol_settle = |h: &Hako| {
        if exists(h, "volume", "crash-v") {
            h.ok(&[
                "run",
                "--rm",
                "-v",
                "crash-v:/v",
                "busybox",
                "touch",
                "/v/ok",
            ]);
            h.ok(&["volume", "rm", "crash-v"]);
        }
    };
    ops.push(Op {
        name: "volume rm",
        setup: &vol_setup,
        args: ["volume", "rm", "crash-v"].map(String::from).to_vec(),
        settle: &vol_settle,
    });
    let rmi_setup = |h: &Hako| {
        h.ok(&["import", &other_s, "crash-rmi"]);
    };
    let rmi_settle = |h: &Hako| rm_image(h, "crash-rmi");
    ops.push(Op {
        name: "rmi",
        setup: &rmi_setup,
        args: ["rmi", "crash-rmi"].map(String::from).to_vec(),
        settle: &rmi_settle,
    });
    let pull_settle = |h: &Hako| {
        if let Some(p) = &pulled {
            // An interrupted pull resumes (its partial downloads are kept for that).
            if !exists(h, "image", p) {
                h.ok(&["pull", "-q", p]);
            }
            rm_image(h, p);
        }
    };
    if let Some(p) = &pulled {
        ops.push(Op {
            name: "pull",
            setup: &nothing,
            args: vec!["pull".into(), "-q".into(), p.clone()],
            settle: &pull_settle,
        });
    }

    if group.contains(&"pull") && pulled.is_none() {
        eprintln!("SKIP pull: no docker-registry (not in CI)");
        return;
    }
    let mut total = 0;
    for op in ops.iter().filter(|o| group.contains(&o.name)) {
        total += crash_op(&h, &base, op);
    }
    assert!(total > 0);
    // The registry runs in the test's network namespace, where the leak check looks.
    drop(reg);
    h.assert_clean(&[]);
}

#[test]
fn container_operations_survive_kill_9_at_every_step() {
    need_root!();
    crash_group(&["create", "run -d", "stop", "rm -f -v", "volume rm"]);
}

#[test]
fn image_operations_survive_kill_9_at_every_step() {
    need_root!();
    crash_group(&["import", "load", "commit", "rmi"]);
}

#[test]
fn pull_survives_kill_9_at_every_step() {
    need_root!();
    crash_group(&["pull"]);
}
