//! The soak: cycles of mixed work from several processes at once on one store, then an
//! exact leak check. `tests/soak/soak.sh CYCLES` runs the long version; the ordinary test
//! suite runs a short one (`HAKO_SOAK_CYCLES`, default 2 per worker; `HAKO_SOAK_WORKERS`,
//! default 3; `HAKO_SOAK_SECONDS`, a time budget after which no cycle starts). At the end
//! it prints the time spent per kind of operation.
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
//! Docker Engine API requests go to a `hako serve` started for the soak (create, start,
//! wait, delete, list), whose fds and memory are compared too. Every cycle also makes a user
//! network with a container publishing a port (`-p 127.0.0.1::80`), reached from the host
//! and by name from another container on the network; then removes both. Every hako process
//! (and the registry) runs in the test's network namespace (`common::Hako`).

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Records a failed operation (and shows it at once: a long soak ends hours later).
fn fail(failures: &Mutex<Vec<String>>, what: String) {
    eprintln!("soak: FAILED {what}");
    failures.lock().unwrap().push(what);
}

/// Time spent per kind of operation (`run --rm`, `exec`, `API POST /containers/create`...):
/// which step a cycle's time goes to.
#[derive(Default)]
struct Profile(Mutex<std::collections::BTreeMap<String, (usize, Duration)>>);

impl Profile {
    fn add(&self, kind: String, took: Duration) {
        let mut m = self.0.lock().unwrap();
        let e = m.entry(kind).or_default();
        e.0 += 1;
        e.1 += took;
    }

    /// The kind of a CLI operation: its command words before the first flag or name.
    fn kind(args: &[&str]) -> String {
        let mut k = vec![args[0]];
        match args {
            ["run", "--rm", ..] => k.push("--rm"),
            ["run", "-d", ..] => k.push("-d"),
            ["network" | "volume", sub, ..] => k.push(sub),
            _ => {}
        }
        if args[0] == "run" && args.contains(&"--network") {
            k.push("(user network)");
        }
        k.join(" ")
    }

    /// A table, the costliest first; shares are of the time all workers spent.
    fn table(&self) -> String {
        let m = self.0.lock().unwrap();
        let total: Duration = m.values().map(|v| v.1).sum();
        let mut rows: Vec<_> = m.iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.1));
        let mut out = format!(
            "{:<34} {:>7} {:>9} {:>8} {:>6}\n",
            "operation", "count", "total s", "mean ms", "share"
        );
        for (k, (n, t)) in rows {
            out += &format!(
                "{:<34} {:>7} {:>9.1} {:>8.0} {:>5.1}%\n",
                k,
                n,
                t.as_secs_f64(),
                t.as_secs_f64() * 1000.0 / *n as f64,
                100.0 * t.as_secs_f64() / total.as_secs_f64().max(1e-9)
            );
        }
        out
    }
}

/// What a process's fds point at.
fn fd_targets(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            std::fs::read_link(e.path())
                .map(|t| format!("{}: {}", e.file_name().to_string_lossy(), t.display()))
                .unwrap_or_default()
        })
        .collect()
}

/// `hello` from a published port `addr` ("127.0.0.1:PORT"), connecting from the test's
/// network namespace (the containers' host); retried while the server starts.
fn fetch(h: &Hako, addr: &str) -> String {
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        return format!("not an address: {addr:?}");
    };
    h.net.run(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let _ = s.write_all(b"x\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if !out.is_empty() {
                    return out.trim().to_string();
                }
            }
            if Instant::now() > deadline {
                return String::new();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

/// One request to the API socket (`Connection: close`): status and body.
fn api(sock: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = UnixStream::connect(sock).expect("connect to hako serve");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} /v1.43{path} HTTP/1.1\r\nHost: hako\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A `hako serve` on a socket of its own, killed on drop.
struct Server {
    child: std::process::Child,
    sock: std::path::PathBuf,
}

impl Server {
    fn start(h: &Hako, sock: &Path) -> Server {
        let mut c = h.cmd(&["serve", "-H", &format!("unix://{}", sock.display())]);
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = c.spawn().expect("spawn hako serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(sock).is_err() {
            assert!(Instant::now() < deadline, "hako serve did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            child,
            sock: sock.to_path_buf(),
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// Seconds per cycle: mean, min, max, and the means of the first and last tenth (a soak
/// that slows down as it goes has something growing).
fn cycle_summary(secs: &[f64]) -> String {
    if secs.is_empty() {
        return "no cycle ran".into();
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let tenth = secs.len().div_ceil(10);
    format!(
        "seconds per cycle: mean {:.2}, min {:.2}, max {:.2}; first {tenth} cycles {:.2}, last {tenth} {:.2}",
        mean(secs),
        secs.iter().copied().fold(f64::INFINITY, f64::min),
        secs.iter().copied().fold(0.0, f64::max),
        mean(&secs[..tenth]),
        mean(&secs[secs.len() - tenth..])
    )
}

/// The `hako-dns` resolvers of this soak's exec root, sampled every second by a thread of
/// its own: how many ran at once (at most), which pids were seen, the largest resident
/// memory. The resolver is no container's: it exits when no user network has a container
/// and the next start makes a new one, so in the soak it comes and goes with the cycles.
#[derive(Default)]
struct Resolvers {
    pids: std::collections::BTreeSet<i32>,
    max_at_once: usize,
    rss_min: Option<u64>,
    rss_max: u64,
    samples: usize,
}

impl Resolvers {
    fn sample(&mut self, exec_root: &Path) {
        let root = exec_root.as_os_str().as_encoded_bytes();
        let mut now = 0;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() != "hako-dns" {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !cmdline.split(|b| *b == 0).any(|a| a == root) {
                continue;
            }
            let (_, rss) = fds_and_rss(pid);
            if rss == 0 {
                continue; // a zombie or gone
            }
            now += 1;
            self.pids.insert(pid);
            self.rss_max = self.rss_max.max(rss);
            self.rss_min = Some(self.rss_min.map_or(rss, |m| m.min(rss)));
        }
        self.samples += 1;
        self.max_at_once = self.max_at_once.max(now);
    }

    fn summary(&self) -> String {
        format!(
            "resolvers seen {} (at most {} at once, {} samples), RSS {}..{} kB",
            self.pids.len(),
            self.max_at_once,
            self.samples,
            self.rss_min.unwrap_or(0),
            self.rss_max
        )
    }
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
    // A time budget (seconds, 0 = none): no new cycle starts after it, the leak check runs
    // as after the last cycle (a long soak on a shared machine ends when it must).
    let budget = Duration::from_secs(env_or("HAKO_SOAK_SECONDS", 0) as u64);
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
    // Inside the test's network namespace, where hako runs.
    let reg = h.net.run(hako_test_support::Registry::start);
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

    // The long-lived processes whose fds and memory must stay flat: a container's shim
    // and the API server.
    let server = Server::start(&h, &tmp.path().join("api.sock"));
    let spid = server.pid();
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
    let profile = Profile::default();
    let ids = Mutex::new(vec![keeper.clone()]);
    let ops = Mutex::new(0usize);
    let mut warm: Option<(usize, u64)> = None;
    let mut warm_server: Option<(usize, u64)> = None;
    let (start_keeper, start_server) = (fds_and_rss(kpid), fds_and_rss(spid));
    let started = Instant::now();
    let resolvers = std::sync::Arc::new(Mutex::new(Resolvers::default()));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (resolvers, sampling) = (resolvers.clone(), sampling.clone());
        let exec = h.exec_root().to_path_buf();
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                resolvers.lock().unwrap().sample(&exec);
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let mut cycle_secs: Vec<f64> = Vec::new();
    // The first cycle warms up (allocator, first log file); the shim is measured after it.
    let mut done = 0;
    for round in 0..cycles {
        if !budget.is_zero() && started.elapsed() >= budget {
            eprintln!(
                "soak: time budget of {} s used up after {round} cycles",
                budget.as_secs()
            );
            break;
        }
        done = round + 1;
        let cycle_started = Instant::now();
        std::thread::scope(|s| {
            for w in 0..workers {
                let (h, failures, ids, ops) = (&h, &failures, &ids, &ops);
                let (bind, ctx, remote, sock) = (&bind, &ctx, &remote, &server.sock);
                let profile = &profile;
                s.spawn(move || {
                    let timed = |kind: String, f: &mut dyn FnMut()| {
                        let t = Instant::now();
                        f();
                        profile.add(kind, t.elapsed());
                    };
                    let op = |args: &[&str]| -> Output {
                        *ops.lock().unwrap() += 1;
                        let t = Instant::now();
                        let o = h.run(args);
                        profile.add(Profile::kind(args), t.elapsed());
                        if !o.status.success() {
                            fail(failures, format!("w{w} c{round}: hako {args:?}: {}", text(&o)));
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
                    // Stops on SIGTERM (Docker's usual case; a plain `sleep` as PID 1
                    // ignores it and every stop waited out its timeout).
                    let o = op(&[
                        "run", "-d", "--name", &name, "-v", &v, "-v", &b, "busybox", "sh", "-c",
                        "trap 'exit 0' TERM; sleep 600 & wait",
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
                        timed("wait for a file (exec test -e)".into(), &mut || {
                            h.wait_for("/c", || {
                                h.run(&["exec", &cm, "test", "-e", "/c"]).status.success()
                            })
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
                        timed("run --rm (pulled), rmi".into(), &mut || {
                            let _ = h.run(&["run", "--rm", r, "true"]);
                            let _ = h.run(&["rmi", r]);
                        });
                    }
                    op(&["volume", "rm", &vol]);
                    // A user network, a published port reached from the host, and a
                    // container on the same network reaching the server by name.
                    let net = format!("soaknet{w}-{c}");
                    let web = format!("soakweb{w}-{c}");
                    op(&["network", "create", &net]);
                    let serve = format!("while true; do echo hello from {web} | nc -l -p 80; done");
                    let o = op(&[
                        "run", "-d", "--name", &web, "--network", &net, "-p", "127.0.0.1::80",
                        "busybox", "sh", "-c", &serve,
                    ]);
                    if o.status.success() {
                        ids.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&o.stdout).trim().to_string());
                        let port = String::from_utf8_lossy(&op(&["port", &web, "80"]).stdout)
                            .trim()
                            .to_string();
                        let want = format!("hello from {web}");
                        *ops.lock().unwrap() += 1;
                        let mut got = String::new();
                        timed("fetch the published port".into(), &mut || {
                            got = fetch(h, &port);
                        });
                        if got != want {
                            fail(failures, format!(
                                "w{w} c{round}: published port {port:?} of {web}: {got:?}"
                            ));
                        }
                        let ask = format!(
                            "for i in 1 2 3 4 5 6 7 8 9 10; do r=$(echo x | nc -w 3 {web} 80); [ -n \"$r\" ] && echo \"$r\" && exit 0; sleep 1; done; exit 1"
                        );
                        let o = op(&["run", "--rm", "--network", &net, "busybox", "sh", "-c", &ask]);
                        if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() != want {
                            fail(failures, format!(
                                "w{w} c{round}: {web} by name: {}",
                                text(&o)
                            ));
                        }
                    }
                    op(&["rm", "-f", &web]);
                    op(&["network", "rm", &net]);
                    // The same through the API server.
                    let call = |m: &str, p: &str, b: Option<&str>, want: u16| -> String {
                        *ops.lock().unwrap() += 1;
                        let t = Instant::now();
                        let (st, body) = api(sock, m, p, b);
                        let path = p.split(['?']).next().unwrap_or(p);
                        let path = match path.split('/').nth(2) {
                            Some(x) if x.len() == 64 => path.replacen(x, "{id}", 1),
                            _ => path.to_string(),
                        };
                        profile.add(format!("API {m} {path}"), t.elapsed());
                        if st != want {
                            fail(failures, format!("w{w} c{round}: API {m} {p}: {st} {body}"));
                        }
                        body
                    };
                    call("GET", "/_ping", None, 200);
                    let body = call(
                        "POST",
                        &format!("/containers/create?name=soakapi{w}-{c}"),
                        Some(r#"{"Image":"busybox","Cmd":["true"]}"#),
                        201,
                    );
                    let id = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["Id"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    if !id.is_empty() {
                        ids.lock().unwrap().push(id.clone());
                        call("POST", &format!("/containers/{id}/start"), None, 204);
                        call("POST", &format!("/containers/{id}/wait"), None, 200);
                        call("DELETE", &format!("/containers/{id}?v=1"), None, 204);
                    }
                    call("GET", "/containers/json?all=1", None, 200);
                });
            }
        });
        cycle_secs.push(cycle_started.elapsed().as_secs_f64());
        if round == 0 {
            warm = Some(fds_and_rss(kpid));
            warm_server = Some(fds_and_rss(spid));
        }
        if (round + 1) % 25 == 0 || round + 1 == cycles.min(5) {
            let (k, sv) = (fds_and_rss(kpid), fds_and_rss(spid));
            eprintln!(
                "soak: cycle {}/{cycles} at {:.0} s, {} operations, {} failed; keeper shim fds {} RSS {} kB; server fds {} RSS {} kB; {}",
                round + 1,
                started.elapsed().as_secs_f64(),
                *ops.lock().unwrap(),
                failures.lock().unwrap().len(),
                k.0,
                k.1,
                sv.0,
                sv.1,
                resolvers.lock().unwrap().summary()
            );
        }
    }
    let elapsed = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    let after_soak = fds_and_rss(kpid);
    let server_after = fds_and_rss(spid);
    let warm_server = warm_server.unwrap_or(server_after);
    let failures = failures.into_inner().unwrap();
    let ops = ops.into_inner().unwrap();
    let warm = warm.unwrap_or(after_soak);
    eprintln!(
        "soak: time per kind of operation ({workers} workers at once):\n{}",
        profile.table()
    );
    let cycles = done;
    eprintln!(
        "soak: {cycles} cycles x {workers} workers, {ops} operations in {:.1} s, {} failed; keeper shim fds {} -> {}, RSS {} kB (start) {} kB (after cycle 1) -> {} kB; server fds {} -> {}, RSS {} kB (start) {} kB (after cycle 1) -> {} kB",
        elapsed.as_secs_f64(),
        failures.len(),
        warm.0,
        after_soak.0,
        start_keeper.1,
        warm.1,
        after_soak.1,
        warm_server.0,
        server_after.0,
        start_server.1,
        warm_server.1,
        server_after.1,
    );
    eprintln!(
        "soak: {}; {}",
        cycle_summary(&cycle_secs),
        resolvers.lock().unwrap().summary()
    );
    // A client connection (exec, logs) the shim has not seen close yet may hold one for
    // a moment on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut keeper_fds = after_soak.0;
    while keeper_fds != warm.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        keeper_fds = fds_and_rss(kpid).0;
    }
    assert_eq!(
        keeper_fds,
        warm.0,
        "the keeper's shim holds more fds: {:?}",
        fd_targets(kpid)
    );
    // Flat: what the allocator keeps may move by a page or two, not grow per cycle.
    assert!(
        after_soak.1 <= warm.1 + 512,
        "the keeper's shim grew from {} kB to {} kB",
        warm.1,
        after_soak.1
    );

    // Not more than after the first cycle (a pooled database connection or a connection
    // the server is still closing may come and go); a connection still closing may hold
    // one for a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut server_fds = server_after.0;
    while server_fds > warm_server.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        server_fds = fds_and_rss(spid).0;
    }
    assert!(
        server_fds <= warm_server.0,
        "the API server holds more fds ({} after the first cycle, {server_fds} now): {:?}",
        warm_server.0,
        fd_targets(spid)
    );
    // The server caches and pools (threads, connections): bounded, not per request.
    assert!(
        server_after.1 <= warm_server.1 + 8192,
        "the API server grew from {} kB to {} kB",
        warm_server.1,
        server_after.1
    );
    drop(server);
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
    drop(reg);
    h.assert_clean(&id_refs);
    // Last, so that a failed operation does not hide what the leak check finds.
    assert!(
        failures.is_empty(),
        "{} of {ops} operations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
