//! hako-runtime under real engines, unchanged: dockerd (`--add-runtime`), containerd (the
//! runc v2 shim with `--runc-binary`) and podman (`--runtime`). Every scenario also runs
//! with runc as the oracle (`<scenario>::hako` and `<scenario>::runc`). `docker_load`
//! checks the other direction of interop: image archives between the `hako` CLI and dockerd.
//!
//! Each test starts its own daemon, boxed in new net, mount and pid namespaces with all of
//! its dirs and socket in a temp dir (see `engines/support.rs`), and ends with a teardown
//! check: no process, mount or container cgroup left. Tests skip (printing `SKIP`) when not
//! root or when an engine is missing; under `CI=true` a missing engine is a failure.
//!
//! ```sh
//! cargo build --release -p hako-runtime
//! cargo nextest run -p hako-e2e --test engines               # all engines, hako + runc
//! cargo nextest run -p hako-e2e --test engines -E 'test(/^docker_/)'
//! cargo nextest run -p hako-e2e --test engines --run-ignored all   # incl. known hako bugs
//! ```
//!
//! Scenarios that fail because of a hako-runtime bug stay here, ignored with the bug
//! (`#[ignore = "hako-runtime: ..."]` on the `hako` variant only), so they fail for the
//! right reason the day they are run and pass the day the bug is fixed.

#[path = "engines/containerd.rs"]
mod containerd;
#[path = "engines/docker_build.rs"]
mod docker_build;
#[path = "engines/docker_load.rs"]
mod docker_load;
#[path = "engines/dockerd.rs"]
mod dockerd;
#[path = "engines/image.rs"]
mod image;
#[path = "engines/podman.rs"]
mod podman;
#[path = "engines/support.rs"]
mod support;

use std::time::{Duration, Instant};

use containerd::Containerd;
use dockerd::Dockerd;
use hako_test_support::RuntimeKind;
use podman::Podman;

/// `mod <scenario> { #[test] fn hako(); #[test] fn runc(); }` for each scenario fn, run by
/// `$runner`; `scenario["why"]` ignores the hako variant with that reason.
macro_rules! scenarios {
    ($runner:ident: $($name:ident $([$why:literal])?),* $(,)?) => {$(
        mod $name {
            use hako_test_support::RuntimeKind;
            #[test]
            $(#[ignore = $why])?
            fn hako() {
                super::$runner(RuntimeKind::Hako, stringify!($name), super::$name);
            }
            #[test]
            fn runc() {
                super::$runner(RuntimeKind::Runc, stringify!($name), super::$name);
            }
        }
    )*};
}

// ---------------------------------------------------------------- dockerd

fn with_dockerd(kind: RuntimeKind, name: &str, f: fn(&Dockerd)) {
    let Some(oci) = support::gate(name, kind, &["dockerd", "docker", "containerd", "unshare"])
    else {
        return;
    };
    let d = Dockerd::start(&oci);
    f(&d);
    d.shutdown();
}

// Every `docker run` on hako-runtime fails at create today (one bug, see the reason); with
// that zero weight dropped from config.json all five pass.
scenarios! { with_dockerd:
    docker_run_output,
    docker_run_interactive_tty,
    docker_exec,
    docker_resource_limits,
    docker_stop_and_rm,
}

/// `docker run --rm`: stdout, stderr and the exit code come back through the shim.
fn docker_run_output(d: &Dockerd) {
    let out = d.run(&[
        "--rm",
        d.image(),
        "sh",
        "-c",
        "echo hello-engine; id -u; echo pid=$$; echo to-stderr >&2",
    ]);
    out.ok("docker run");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["hello-engine", "0", "pid=1"],
        "{out}"
    );
    assert!(out.stderr.contains("to-stderr"), "{out}");
    let out = d.run(&["--rm", d.image(), "sh", "-c", "exit 3"]);
    assert_eq!(out.code(), Some(3), "exit code of the container: {out}");
}

/// `docker run -it`: a pty for the container, typed input answered.
fn docker_run_interactive_tty(d: &Dockerd) {
    let line = format!(
        "run --rm -it --runtime {} --network none {} sh",
        d.runtime(),
        d.image()
    );
    let out = d.docker_pty(&line, "tty; echo answer=$((6*7))\nexit 5\n");
    assert!(out.stdout.contains("/dev/pts/0"), "no tty inside: {out}");
    assert!(out.stdout.contains("answer=42"), "{out}");
    assert_eq!(out.code(), Some(5), "{out}");
}

/// `docker exec`: output, exit code, env/cwd/user flags, and `exec -it`.
fn docker_exec(d: &Dockerd) {
    let name = format!("exec-{}", std::process::id());
    d.run(&["-d", "--name", &name, d.image(), "sleep", "1000"])
        .ok("docker run -d");
    let out = d.docker(&[
        "exec",
        "-e",
        "HAKO_X=42",
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        &name,
        "sh",
        "-c",
        "echo $HAKO_X; pwd; id -u; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    out.ok("docker exec");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["42", "/tmp", "1000", "sleep 1000 "],
        "{out}"
    );
    let out = d.docker(&["exec", &name, "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), Some(7), "{out}");
    let out = d.docker_pty(
        &format!("exec -it {name} sh"),
        "tty; echo answer=$((6*7))\nexit\n",
    );
    assert!(
        out.stdout.contains("/dev/pts/"),
        "no tty in exec -it: {out}"
    );
    assert!(out.stdout.contains("answer=42"), "{out}");
    d.docker(&["rm", "-f", &name]).ok("docker rm -f");
}

/// `-m 64m --cpus 0.5 --pids-limit 10`: the values in the cgroup files (inside and on the
/// host), the pids limit holds against a burst of forks, and a memory hog is OOM-killed.
fn docker_resource_limits(d: &Dockerd) {
    let name = format!("limits-{}", std::process::id());
    d.run(&[
        "-d",
        "--name",
        &name,
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "10",
        d.image(),
        "sleep",
        "1000",
    ])
    .ok("docker run -d with limits");
    let id = d.id(&name);
    let inside = d.docker(&[
        "exec",
        &name,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
        "/sys/fs/cgroup/pids/pids.max",
    ]);
    inside.ok("reading limits inside");
    assert_eq!(
        inside.stdout.lines().collect::<Vec<_>>(),
        ["67108864", "50000", "100000", "10"],
        "{inside}"
    );
    for (controller, file, want) in [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("pids", "pids.max", "10"),
    ] {
        let path = d.cgroup_dir(controller, &id).join(file);
        let got = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("<{e}>"));
        assert_eq!(got.trim(), want, "{}", path.display());
    }
    // 20 background forks against pids.max = 10: the shell hits the limit (busybox sh
    // gives up at the first failed fork) and the count stays <= 10 (read on the host: a
    // full cgroup leaves no pid for another exec).
    let out = d.docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        "i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done; echo all-forked",
    ]);
    assert!(
        !out.stdout.contains("all-forked"),
        "20 forks under pids.max=10: {out}"
    );
    let current = d.cgroup_dir("pids", &id).join("pids.current");
    let current: u32 = std::fs::read_to_string(&current)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX);
    assert!(current <= 10, "pids.current = {current} above the limit");
    d.docker(&["rm", "-f", &name]).ok("docker rm -f");

    let hog = format!("oom-{}", std::process::id());
    let out = d.run(&[
        "--name",
        &hog,
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        d.image(),
        "sh",
        "-c",
        "head -c 256m /dev/zero | tail",
    ]);
    assert_eq!(out.code(), Some(137), "memory hog not killed: {out}");
    let oom = d.docker(&["inspect", "-f", "{{.State.OOMKilled}}", &hog]);
    assert_eq!(oom.stdout.trim(), "true", "{oom}");
    d.docker(&["rm", &hog]).ok("docker rm");
}

/// `docker stop` delivers SIGTERM through the runtime (a trapping init exits 0 at once),
/// the runtime state and cgroup go with the exit; `docker rm` and `rm -f` remove.
fn docker_stop_and_rm(d: &Dockerd) {
    let name = format!("stop-{}", std::process::id());
    d.run(&[
        "-d",
        "--name",
        &name,
        d.image(),
        "sh",
        "-c",
        "trap 'echo got-term; exit 0' TERM; sleep 1000 & wait",
    ])
    .ok("docker run -d");
    let id = d.id(&name);
    assert!(
        d.runtime_state(&id).exists(),
        "runtime state dir missing while running"
    );
    let started = Instant::now();
    d.docker(&["stop", "-t", "20", &name]).ok("docker stop");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop took {:?}: SIGTERM not delivered",
        started.elapsed()
    );
    let state = d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &name,
    ]);
    assert_eq!(state.stdout.trim(), "exited 0", "{state}");
    let logs = d.docker(&["logs", &name]);
    assert!(logs.stdout.contains("got-term"), "{logs}");
    assert!(
        !d.runtime_state(&id).exists(),
        "runtime state left after exit"
    );
    assert!(
        !d.cgroup_dir("memory", &id).exists(),
        "cgroup left after exit"
    );
    d.docker(&["rm", &name]).ok("docker rm");
    let gone = d.docker(&["inspect", &name]);
    assert!(!gone.success(), "container still known: {gone}");

    // rm -f of a running container whose init ignores SIGTERM.
    let name = format!("rmf-{}", std::process::id());
    d.run(&["-d", "--name", &name, d.image(), "sleep", "1000"])
        .ok("docker run -d");
    let id = d.id(&name);
    d.docker(&["rm", "-f", &name]).ok("docker rm -f");
    assert!(
        !d.runtime_state(&id).exists(),
        "runtime state left after rm -f"
    );
    assert!(
        !d.cgroup_dir("memory", &id).exists(),
        "cgroup left after rm -f"
    );
    let ps = d.docker(&["ps", "-aq"]);
    assert!(ps.stdout.trim().is_empty(), "{ps}");
}

// ---------------------------------------------------------------- containerd

fn with_containerd(kind: RuntimeKind, name: &str, f: fn(&Containerd)) {
    let Some(oci) = support::gate(
        name,
        kind,
        &["containerd", "ctr", "containerd-shim-runc-v2", "unshare"],
    ) else {
        return;
    };
    let c = Containerd::start(&oci);
    f(&c);
    c.shutdown();
}

scenarios! { with_containerd:
    ctr_run_output,
    ctr_run_tty,
    ctr_task_exec_limits_kill,
}

/// `ctr run --rm`: output and exit code through the runc v2 shim.
fn ctr_run_output(c: &Containerd) {
    let want = ["hello-engine", "0", "pid=1"];
    let run = || {
        let out = c.run(
            &support::unique("run"),
            &["--rm"],
            &[
                "sh",
                "-c",
                "echo hello-engine; id -u; echo pid=$$; echo to-stderr >&2",
            ],
        );
        out.ok("ctr run");
        out
    };
    // `ctr run` itself may exit before its copy of the stdout fifo has read everything
    // (seen once with stock runc: "hello-engine" alone, stderr complete): a cut-off
    // prefix is tried again, twice at most; anything else fails at once.
    let mut out = run();
    for _ in 0..2 {
        let got: Vec<_> = out.stdout.lines().collect();
        if got.len() >= want.len() || got[..] != want[..got.len()] {
            break;
        }
        eprintln!("ctr run cut the output off, again: {out}");
        out = run();
    }
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), want, "{out}");
    assert!(out.stderr.contains("to-stderr"), "{out}");
    let id = support::unique("exit");
    let out = c.run(&id, &["--rm"], &["sh", "-c", "exit 3"]);
    assert_eq!(out.code(), Some(3), "exit code of the task: {out}");
}

/// `ctr run -t`: the shim receives the pty master over the console socket.
fn ctr_run_tty(c: &Containerd) {
    let id = support::unique("tty");
    let flags = c.run_flags(&id).join(" ");
    // The pause before `exit`: containerd's shim copies the pty's output until the task
    // exits and can drop what the shell wrote just before (seen once in a CI run under
    // load, with the exit code right: the runtime handed the pty over at create and is
    // not on the output's path).
    let out = c.ctr_pty(
        &format!("run {flags} --rm -t {} {id} sh", c.image()),
        "tty; echo answer=$((6*7)); sleep 0.3\nexit 5\n",
    );
    assert!(out.stdout.contains("/dev/pts/0"), "no tty inside: {out}");
    assert!(out.stdout.contains("answer=42"), "{out}");
    assert_eq!(out.code(), Some(5), "{out}");
}

/// A detached task with a memory limit and the default seccomp profile: `task exec`
/// (plain and `-t`), the limit on the host, SIGTERM through `task kill`, then delete.
fn ctr_task_exec_limits_kill(c: &Containerd) {
    let id = support::unique("task");
    let out = c.run(
        &id,
        &["-d", "--memory-limit", "67108864", "--seccomp"],
        &["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"],
    );
    out.ok("ctr run -d");
    let limit = c.cgroup_dir("memory", &id).join("memory.limit_in_bytes");
    let got = std::fs::read_to_string(&limit).unwrap_or_else(|e| format!("<{e}>"));
    assert_eq!(got.trim(), "67108864", "{}", limit.display());
    let state = c.runc_root().join("hako-e2e").join(&id);
    assert!(state.exists(), "runtime state missing: {}", state.display());

    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; cmp /proc/self/cgroup /proc/1/cgroup && echo same-cgroup",
    ]);
    out.ok("ctr task exec");
    assert!(out.stdout.contains("Seccomp:\t2"), "{out}");
    assert!(out.stdout.contains("same-cgroup"), "{out}");
    let out = c.ctr(&["task", "exec", "--exec-id", "e2", &id, "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), Some(7), "{out}");
    let out = c.ctr_pty(
        &format!("task exec -t --exec-id e3 {id} sh"),
        "tty; echo answer=$((6*7))\nexit\n",
    );
    assert!(out.stdout.contains("/dev/pts/"), "no tty in exec -t: {out}");
    assert!(out.stdout.contains("answer=42"), "{out}");

    c.ctr(&["task", "kill", "-s", "SIGTERM", &id])
        .ok("ctr task kill");
    assert!(
        c.wait_task(&id, "STOPPED", Duration::from_secs(10)),
        "task did not stop on SIGTERM: {:?}",
        c.task_status(&id)
    );
    let out = c.ctr(&["task", "delete", &id]);
    out.ok("ctr task delete");
    c.ctr(&["container", "rm", &id]).ok("ctr container rm");
    assert!(!state.exists(), "runtime state left: {}", state.display());
    assert!(
        !c.cgroup_dir("memory", &id).exists(),
        "cgroup left after delete"
    );
}

// ---------------------------------------------------------------- podman

fn with_podman(kind: RuntimeKind, name: &str, f: fn(&Podman)) {
    let Some(oci) = support::gate(name, kind, &["podman", "conmon", "ip"]) else {
        return;
    };
    let p = Podman::start(&oci);
    f(&p);
    p.shutdown();
}

scenarios! { with_podman:
    podman_run_output,
    podman_run_interactive_tty,
    podman_exec_limits_stop_rm,
}

/// `podman run --rm`: output and exit code through conmon.
fn podman_run_output(p: &Podman) {
    let image = p.image();
    let out = p.run(&[
        "--rm",
        &image,
        "sh",
        "-c",
        "echo hello-engine; id -u; echo pid=$$; echo to-stderr >&2",
    ]);
    out.ok("podman run");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["hello-engine", "0", "pid=1"],
        "{out}"
    );
    assert!(out.stderr.contains("to-stderr"), "{out}");
    let out = p.run(&["--rm", &image, "sh", "-c", "exit 3"]);
    assert_eq!(out.code(), Some(3), "exit code of the container: {out}");
}

/// `podman run -it`.
fn podman_run_interactive_tty(p: &Podman) {
    let line = format!("run {} --rm -it {} sh", p.run_flags().join(" "), p.image());
    let out = p.podman_pty(&line, "tty; echo answer=$((6*7))\nexit 5\n");
    assert!(out.stdout.contains("/dev/pts/0"), "no tty inside: {out}");
    assert!(out.stdout.contains("answer=42"), "{out}");
    assert_eq!(out.code(), Some(5), "{out}");
}

/// `-m 64m --cpus 0.5 --pids-limit 10`, `exec` (plain and `-it`), `stop` (SIGTERM
/// through the runtime), `rm`: the runtime no longer knows the container, its cgroup is gone.
fn podman_exec_limits_stop_rm(p: &Podman) {
    let name = format!("podman-{}", std::process::id());
    let image = p.image();
    p.run(&[
        "-d",
        "--name",
        &name,
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "10",
        &image,
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 1000 & wait",
    ])
    .ok("podman run -d");
    let id = p.id(&name);
    for (controller, file, want) in [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("pids", "pids.max", "10"),
    ] {
        let path = p.cgroup_dir(controller, &id).join(file);
        let got = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("<{e}>"));
        assert_eq!(got.trim(), want, "{}", path.display());
    }
    let out = p.podman(&[
        "exec",
        "-e",
        "HAKO_X=42",
        "-w",
        "/tmp",
        &name,
        "sh",
        "-c",
        "echo $HAKO_X; pwd",
    ]);
    out.ok("podman exec");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["42", "/tmp"],
        "{out}"
    );
    let out = p.podman(&["exec", &name, "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), Some(7), "{out}");
    let out = p.podman_pty(
        &format!("exec -it {name} sh"),
        "tty; echo answer=$((6*7))\nexit\n",
    );
    assert!(
        out.stdout.contains("/dev/pts/"),
        "no tty in exec -it: {out}"
    );
    assert!(out.stdout.contains("answer=42"), "{out}");

    let started = Instant::now();
    p.podman(&["stop", "-t", "20", &name]).ok("podman stop");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop took {:?}: SIGTERM not delivered",
        started.elapsed()
    );
    let state = p.podman(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &name,
    ]);
    assert_eq!(state.stdout.trim(), "exited 0", "{state}");
    p.podman(&["rm", &name]).ok("podman rm");
    let mut cmd = std::process::Command::new(p.runtime_path());
    cmd.args(["state", &id]);
    let out = support::run(cmd, std::path::Path::new("/tmp"), Duration::from_secs(10));
    assert!(!out.success(), "runtime still knows the container: {out}");
    assert!(
        !p.cgroup_dir("memory", &id).exists(),
        "cgroup left after rm"
    );
}
