//! The soak: cycles of mixed work from several processes at once on one store, then an
//! exact leak check. `tests/soak/soak.sh CYCLES` runs the long version; the ordinary test
//! suite runs a short one (`HAKO_SOAK_CYCLES`, default 2 per worker; `HAKO_SOAK_WORKERS`,
//! default 3).
//!
//! ```text
//! per cycle, per worker   run --rm; run -d with a named volume and a read-only bind,
//!                         exec, logs, stop, start, rm -f; exec and logs on a long-lived
//!                         container; every 3rd: commit, run the image, rmi; every 4th:
//!                         build (a Dockerfile with RUN); every 5th: pull from a local
//!                         registry, run, rmi (staggered by worker); volume rm
//! after                   remove what the soak made; then the store (every row, file,
//!                         mount, process: hako-test-support Inventory), the cgroups of
//!                         every container id seen, and the long-lived container's shim
//!                         (fds, memory) are compared with before
//! ```
//!
//! Features that land later join here: `-p` and user networks (net), API requests
//! (`hako serve`).

#[macro_use]
mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Mutex;
use std::time::Instant;

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

/// Open fds and resident memory (kB) of a process.
fn fds_and_rss(pid: i32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

fn shim_pid(h: &Hako, id: &str) -> i32 {
    let dir = h.exec.path().join("containers").join(id);
    hako_shim::protocol::read_shim_pid(&dir)
        .map(|(pid, _)| pid)
        .unwrap_or_else(|| panic!("no shim pid in {}", dir.display()))
}

/// Directories named after any of `ids` in any cgroup hierarchy under the hako parent.
fn cgroups_of(ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        for id in ids {
            let p = h.path().join("hako").join(id);
            if p.exists() {
                out.push(p.display().to_string());
            }
        }
        let p = Path::new("/sys/fs/cgroup/hako");
        for id in ids {
            if p.join(id).exists() {
                out.push(p.join(id).display().to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn soak_cycles_of_mixed_work_leave_nothing_behind() {
    need_root!();
    let h = Hako::new();
    let cycles = env_or("HAKO_SOAK_CYCLES", 2);
    let workers = env_or("HAKO_SOAK_WORKERS", 3);
    let tmp = tempfile::tempdir().unwrap();
    let bind = tmp.path().join("bind");
    std::fs::create_dir(&bind).unwrap();
    std::fs::write(bind.join("ro"), "bound\n").unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG N=0\nRUN echo built-$N > /built\nCMD [\"cat\", \"/built\"]\n",
    )
    .unwrap();
    let reg = hako_test_support::Registry::start();
    let remote = reg
        .as_ref()
        .map(|r| format!("127.0.0.1:{}/soak/bb:1", r.port));
    if let Some(r) = &remote {
        h.ok(&["tag", "busybox", r]);
        h.ok(&["push", r]);
        h.ok(&["rmi", r]);
    }
    h.ok(&["ps", "-a"]);
    let before = Inventory::take(h.root.path(), h.exec.path(), &[]);

    // The long-lived container whose shim must stay flat.
    let keeper = h
        .ok(&[
            "run",
            "-d",
            "--name",
            "soak-keeper",
            "busybox",
            "sleep",
            "100000",
        ])
        .trim()
        .to_string();
    let kpid = shim_pid(&h, &keeper);

    let failures = Mutex::new(Vec::<String>::new());
    let ids = Mutex::new(vec![keeper.clone()]);
    let ops = Mutex::new(0usize);
    let mut warm: Option<(usize, u64)> = None;
    let started = Instant::now();
    // The first cycle warms up (allocator, first log file); the shim is measured after it.
    for round in 0..cycles {
        std::thread::scope(|s| {
            for w in 0..workers {
                let (h, failures, ids, ops) = (&h, &failures, &ids, &ops);
                let (bind, ctx, remote) = (&bind, &ctx, &remote);
                s.spawn(move || {
                    let op = |args: &[&str]| -> Output {
                        *ops.lock().unwrap() += 1;
                        let o = h.run(args);
                        if !o.status.success() {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("w{w} c{round}: hako {args:?}: {}", text(&o)));
                        }
                        o
                    };
                    let c = round;
                    let name = format!("soak{w}-{c}");
                    let vol = format!("soakv{w}-{c}");
                    let o = op(&["run", "--rm", "busybox", "echo", "hi"]);
                    if o.status.success() {
                        assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
                    }
                    let v = format!("{vol}:/data");
                    let b = format!("{}:/bind:ro", bind.display());
                    let o = op(&[
                        "run", "-d", "--name", &name, "-v", &v, "-v", &b, "busybox", "sleep", "600",
                    ]);
                    ids.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&o.stdout).trim().to_string());
                    op(&[
                        "exec",
                        &name,
                        "sh",
                        "-c",
                        "cat /bind/ro > /data/f; echo logged",
                    ]);
                    op(&["logs", &name]);
                    op(&["stop", "-t", "1", &name]);
                    op(&["start", &name]);
                    op(&["rm", "-f", &name]);
                    op(&["exec", "soak-keeper", "sh", "-c", "echo tick"]);
                    op(&["logs", "--tail", "3", "soak-keeper"]);
                    // Staggered by worker, so that even two cycles do every kind of work.
                    let k = w + c;
                    if k % 3 == 2 {
                        let img = format!("soakimg{w}:{c}");
                        let cm = format!("soakc{w}-{c}");
                        op(&[
                            "run",
                            "-d",
                            "--name",
                            &cm,
                            "busybox",
                            "sh",
                            "-c",
                            "echo c > /c; sleep 600",
                        ]);
                        h.wait_for("/c", || {
                            h.run(&["exec", &cm, "test", "-e", "/c"]).status.success()
                        });
                        op(&["commit", &cm, &img]);
                        op(&["rm", "-f", &cm]);
                        op(&["run", "--rm", &img, "cat", "/c"]);
                        op(&["rmi", &img]);
                    }
                    if k % 4 == 3 {
                        let tag = format!("soakbuild{w}:{c}");
                        let arg = format!("N={w}-{c}");
                        op(&[
                            "build",
                            "-q",
                            "-t",
                            &tag,
                            "--build-arg",
                            &arg,
                            ctx.to_str().unwrap(),
                        ]);
                        op(&["run", "--rm", &tag]);
                        op(&["rmi", &tag]);
                    }
                    if k % 5 == 1
                        && let Some(r) = remote
                    {
                        // Several workers may pull the same image at once: fine, the
                        // last rmi may find it gone.
                        op(&["pull", "-q", r]);
                        let _ = h.run(&["run", "--rm", r, "true"]);
                        let _ = h.run(&["rmi", r]);
                    }
                    op(&["volume", "rm", &vol]);
                });
            }
        });
        if round == 0 {
            warm = Some(fds_and_rss(kpid));
        }
    }
    let elapsed = started.elapsed();
    let after_soak = fds_and_rss(kpid);
    let failures = failures.into_inner().unwrap();
    let ops = ops.into_inner().unwrap();
    let warm = warm.unwrap_or(after_soak);
    eprintln!(
        "soak: {cycles} cycles x {workers} workers, {ops} operations in {:.1} s, {} failed; keeper shim fds {} -> {}, RSS {} kB -> {} kB",
        elapsed.as_secs_f64(),
        failures.len(),
        warm.0,
        after_soak.0,
        warm.1,
        after_soak.1
    );
    assert!(
        failures.is_empty(),
        "{} of {ops} operations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(after_soak.0, warm.0, "the keeper's shim holds more fds");
    // Flat: what the allocator keeps may move by a page or two, not grow per cycle.
    assert!(
        after_soak.1 <= warm.1 + 512,
        "the keeper's shim grew from {} kB to {} kB",
        warm.1,
        after_soak.1
    );

    h.ok(&["rm", "-f", "soak-keeper"]);
    h.ok(&["builder", "prune", "-a", "-f"]);
    h.ok(&["ps", "-a"]);
    let after = Inventory::take(h.root.path(), h.exec.path(), &[]);
    let diff = after.diff(&before);
    assert!(diff.is_empty(), "after {ops} operations:\n{diff}");
    let ids = ids.into_inner().unwrap();
    let cg = cgroups_of(&ids);
    assert!(cg.is_empty(), "cgroups left: {cg:?}");
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.assert_clean(&id_refs);
}
