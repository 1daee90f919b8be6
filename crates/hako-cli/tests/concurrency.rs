//! Many hako processes on one store at once (DESIGN.md "One engine, many callers"): each
//! test drives the real `hako` binary from several threads, so every command is its own
//! process, and ends with an exact inventory of the store compared to the one before the
//! work (hako-test-support's `Inventory`: every row, file, mount and process).
//!
//! Sizes: `HAKO_LOOP_WORKERS` / `HAKO_LOOP_ITER` (default 4 × 6) and `HAKO_PARALLEL_RUNS`
//! (default 50). `tests/soak/soak.sh` runs the long version.

#[macro_use]
mod common;

use std::process::Output;
use std::sync::Mutex;

use common::Hako;
use hako_test_support::Inventory;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The inventory after an open that had the chance to collect garbage.
fn settled(h: &Hako) -> Inventory {
    h.ok(&["ps", "-a"]);
    Inventory::take(h.root.path(), h.exec.path(), &[])
}

/// The loop that found the races: per worker `run --rm`, `run -d` with a named volume,
/// `exec`, `logs`, `commit` every third turn, `rm -f`, `rmi`, `volume rm`. Every
/// operation must succeed, and afterwards the store holds exactly what it held before.
#[test]
fn four_loops_of_mixed_work_lose_nothing() {
    need_root!();
    let h = Hako::new();
    let before = settled(&h);
    let workers = env_or("HAKO_LOOP_WORKERS", 4);
    let iter = env_or("HAKO_LOOP_ITER", 6);
    let failures = Mutex::new(Vec::<String>::new());
    let ops = Mutex::new(0usize);
    std::thread::scope(|s| {
        for w in 0..workers {
            let (h, failures, ops) = (&h, &failures, &ops);
            s.spawn(move || {
                let op = |args: &[&str]| {
                    *ops.lock().unwrap() += 1;
                    let o = h.run(args);
                    if !o.status.success() {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("worker {w}: hako {args:?}: {}", text(&o)));
                    }
                    o
                };
                for i in 0..iter {
                    let name = format!("cc{w}-{i}");
                    let vol = format!("ccv{w}-{i}");
                    let img = format!("ccimg{w}:{i}");
                    let o = op(&["run", "--rm", "busybox", "echo", "hi"]);
                    if o.status.success() {
                        assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
                    }
                    let data = format!("{vol}:/data");
                    op(&[
                        "run", "-d", "--name", &name, "-v", &data, "busybox", "sleep", "60",
                    ]);
                    op(&["exec", &name, "sh", "-c", "echo x > /data/f; echo logged"]);
                    op(&["logs", &name]);
                    let committed = i % 3 == 2;
                    if committed {
                        op(&["commit", &name, &img]);
                    }
                    op(&["rm", "-f", &name]);
                    if committed {
                        op(&["rmi", &img]);
                    }
                    op(&["volume", "rm", &vol]);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let ops = ops.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {ops} operations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let after = settled(&h);
    let diff = after.diff(&before);
    assert!(diff.is_empty(), "after {ops} operations:\n{diff}");
    h.assert_clean(&[]);
}

/// Outcomes a racing `run` may have, as Docker could produce them: it ran, or another
/// process removed its container or image first.
fn acceptable_run_failure(out: &str) -> bool {
    out.contains("No such container")
        || out.contains("Unable to find image")
        || out.contains("No such image")
}

/// `HAKO_PARALLEL_RUNS` `hako run`s at once (half `--rm`, half `-d`) while other processes
/// list, force-remove, untag/remove the image and prune. No "database is locked" or file
/// error reaches anyone, names stay unique, an image is never deleted under a container,
/// and after removing what is left the store is as before.
#[test]
fn parallel_runs_race_ps_rm_rmi_and_prune() {
    need_root!();
    let h = Hako::new();
    let before = settled(&h);
    // The runs use an image of their own (sharing busybox's layer), which a racer keeps
    // trying to remove.
    h.ok(&[
        "import",
        common::rootfs_tar().to_str().expect("utf-8"),
        "victim",
    ]);
    let n = env_or("HAKO_PARALLEL_RUNS", 50);
    let bad = Mutex::new(Vec::<String>::new());
    let outcomes = Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..n)
            .map(|i| {
                let (h, bad, outcomes) = (&h, &bad, &outcomes);
                s.spawn(move || {
                    let name = format!("race{i}");
                    let args: Vec<&str> = if i % 2 == 0 {
                        vec![
                            "run", "--rm", "--pull", "never", "--name", &name, "victim", "echo",
                            "ok",
                        ]
                    } else {
                        vec![
                            "run", "-d", "--pull", "never", "--name", &name, "victim", "sleep",
                            "30",
                        ]
                    };
                    let o = h.run(&args);
                    let out = text(&o);
                    let what = if o.status.success() {
                        "run ok".to_string()
                    } else {
                        format!(
                            "run failed: {}",
                            out.lines().next().unwrap_or("").get(..40).unwrap_or(&out)
                        )
                    };
                    *outcomes.lock().unwrap().entry(what).or_default() += 1;
                    if !o.status.success() && !acceptable_run_failure(&out) {
                        bad.lock().unwrap().push(format!("{args:?}: {out}"));
                    }
                })
            })
            .collect();
        let racers: Vec<_> = [
            vec!["ps", "-a"],
            vec!["rm", "-f", "race1", "race3", "race5"],
            vec!["rmi", "victim"],
            vec!["container", "prune", "-f"],
            vec!["image", "prune", "-f"],
            vec!["volume", "prune", "-f"],
        ]
        .into_iter()
        .map(|args| {
            let (h, bad, done, outcomes) = (&h, &bad, &done, &outcomes);
            s.spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let o = h.run(&args);
                    let out = text(&o);
                    *outcomes
                        .lock()
                        .unwrap()
                        .entry(format!(
                            "{} {}",
                            args[0],
                            if o.status.success() { "ok" } else { "refused" }
                        ))
                        .or_default() += 1;
                    // Refusals Docker gives too are fine; anything about the store is not.
                    let refused = out.contains("No such")
                        || out.contains("is being used by")
                        || out.contains("container is running");
                    if !o.status.success() && !refused {
                        bad.lock().unwrap().push(format!("{args:?}: {out}"));
                    }
                    for word in [
                        "database is locked",
                        "No such file or directory",
                        "panicked",
                    ] {
                        if out.contains(word) {
                            bad.lock().unwrap().push(format!("{args:?}: {out}"));
                        }
                    }
                }
            })
        })
        .collect();
        for r in runs {
            r.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in racers {
            r.join().unwrap();
        }
    });
    eprintln!("outcomes: {:#?}", outcomes.into_inner().unwrap());
    let bad = bad.into_inner().unwrap();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // Every container left has its image, and names are unique.
    let ps = h.ok(&["ps", "-a", "--format", "{{.Names}} {{.Image}}"]);
    let mut names = std::collections::HashSet::new();
    for line in ps.lines() {
        let (name, image) = line.split_once(' ').expect("name image");
        assert!(names.insert(name.to_string()), "name {name} twice: {ps}");
        let id = h.ok(&["inspect", "-f", "{{.Image}}", name]);
        h.ok(&["image", "inspect", id.trim()]);
        assert!(image == "victim" || image.starts_with("sha256:"), "{line}");
    }
    for name in names {
        h.ok(&["rm", "-f", &name]);
    }
    if h.run(&["image", "inspect", "victim"]).status.success() {
        h.ok(&["rmi", "victim"]);
    }
    let after = settled(&h);
    let diff = after.diff(&before);
    assert!(diff.is_empty(), "{diff}");
    h.assert_clean(&[]);
}

/// Whether `pid` waits for an flock (a `->` line of /proc/locks).
fn waits_for_a_lock(pid: i32) -> bool {
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("->") && l.split_whitespace().nth(5) == Some(&pid.to_string()))
}

/// A container's exit command (`hako container cleanup ID`, run by its shim in its place)
/// that read the network sandbox before a new start set the network up again must not
/// tear down the new one. The soak hit it on `stop` + `start`: the exit command, starved
/// at nice 19, read the old sandbox, waited for the network lock while `start` set up a
/// new namespace, then removed it under the starting runtime ("open net namespace ...: No
/// such file or directory"). Made certain here: the test holds the network lock until the
/// exit command waits for it, and meanwhile hands the sandbox to another live holder, as
/// a start's setup does.
#[test]
fn an_exit_command_leaves_a_network_set_up_again_meanwhile() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&["run", "-d", "busybox", "sh", "-c", "sleep 2"])
        .trim()
        .to_string();
    let shim = hako_shim::protocol::read_shim_pid(&h.exec_root().join("containers").join(&id))
        .map(|(pid, _)| pid)
        .expect("the shim's pid");
    let lock = std::fs::File::options()
        .write(true)
        .open(h.exec_root().join("network.lock"))
        .expect("the network lock file");
    let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock");
    // The container exits; its shim becomes the exit command, reads the sandbox (owned by
    // the shim's pid, its own) and waits for the lock to tear it down.
    h.wait_for("the exit command waiting for the network lock", || {
        waits_for_a_lock(shim)
    });
    let me = std::process::id();
    hako_test_support::db_execute(
        h.root.path(),
        &format!("UPDATE net_sandboxes SET owner = {me} WHERE container = '{id}'"),
    );
    drop(lock);
    h.wait_for("the exit command to end", || {
        !std::path::Path::new(&format!("/proc/{shim}")).exists()
    });
    let netns = h.exec_root().join("netns").join(&id);
    assert!(
        netns.exists(),
        "the exit command removed the network a new holder set up: {} is gone",
        netns.display()
    );
    // Back to no holder, so that rm releases it at once.
    hako_test_support::db_execute(
        h.root.path(),
        &format!("UPDATE net_sandboxes SET owner = 0 WHERE container = '{id}'"),
    );
    h.ok(&["rm", "-f", &id]);
    assert!(!netns.exists(), "rm released the network");
}
