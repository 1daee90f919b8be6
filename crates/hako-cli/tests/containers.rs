//! The container commands driven like a user drives them: the built `hako` binary with a
//! throwaway `--root`/`--exec-root`, a busybox image from `hako import`, real containers
//! under hako-shim and hako-runtime. Results are checked from inside the containers and from
//! the host, and every test ends with a leak check (no record, mount, cgroup, shim or
//! container process left).

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{HAKO, Hako, static_init};

#[test]
fn run_rm_prints_and_leaves_nothing() {
    need_root!();
    let h = Hako::new();
    let out = h.ok(&["run", "--rm", "busybox", "echo", "hello from hako"]);
    assert_eq!(out, "hello from hako\n");
    h.assert_clean(&[]);
}

#[test]
fn exit_codes_like_docker_and_bad_input_leaves_nothing() {
    need_root!();
    let h = Hako::new();
    let o = h.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    let e = h.fails(127, &["run", "--rm", "busybox", "nope"]);
    assert!(e.contains("executable file not found"), "{e}");
    let e = h.fails(126, &["run", "--rm", "busybox", "/etc/passwd"]);
    assert!(e.contains("permission denied"), "{e}");
    let e = h.fails(125, &["run", "--rm", "--pull", "never", "nosuchimage"]);
    assert!(e.contains("No such image: nosuchimage:latest"), "{e}");
    // --pull missing (the default) tries the registry, as Docker does; this one is closed.
    let o = h.run(&["run", "--rm", "127.0.0.1:1/nosuchimage"]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Unable to find image '127.0.0.1:1/nosuchimage:latest' locally"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("Error")).count(),
        1,
        "{err}"
    );
    let e = h.fails(125, &["run", "-m", "abc", "busybox", "true"]);
    assert!(e.contains("invalid size: 'abc'"), "{e}");
    let e = h.fails(125, &["run", "--cpus", "-1", "busybox", "true"]);
    assert!(e.contains("Range of CPUs"), "{e}");
    // (`-v` makes a missing host directory, as Docker; `--mount` refuses it.)
    let e = h.fails(
        125,
        &[
            "run",
            "--mount",
            "type=bind,source=/nonexistent/hako-src,target=/x",
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("bind source path does not exist"), "{e}");
    let e = h.fails(
        125,
        &["run", "--restart", "always", "--rm", "busybox", "true"],
    );
    assert!(e.contains("Conflicting options"), "{e}");
    // The failed create of `nope` (no --rm) must not leave a half container either.
    let e = h.fails(127, &["run", "--name", "half", "busybox", "nope"]);
    assert!(e.contains("not found"), "{e}");
    let ps = h.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(
        ps.trim(),
        "half created",
        "a failed start leaves a created container, as Docker"
    );
    h.ok(&["rm", "half"]);
    h.assert_clean(&[]);
}

#[test]
fn detached_lifecycle_ps_logs_exec_stop_start_rm() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&[
            "run",
            "-d",
            "--name",
            "ticker",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    // The CLI that started it is gone; the shim keeps it running.
    let ps = h.ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.State}}"]);
    assert_eq!(ps.trim(), format!("{} ticker running", &id[..12]));
    h.wait_for("log lines", || {
        h.ok(&["logs", "ticker"]).lines().count() >= 3
    });
    let tail = h.ok(&["logs", "--tail", "1", "ticker"]);
    assert_eq!(tail.lines().count(), 1);
    assert!(tail.starts_with("tick "), "{tail}");
    // From the host: the container's init is a real process in its own pid namespace.
    let info = h.inspect("ticker");
    let pid = info["State"]["Pid"].as_i64().expect("pid");
    assert!(pid > 0);
    let host_ns = std::fs::read_link("/proc/self/ns/pid").expect("ns");
    let ctr_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).expect("ctr ns");
    assert_ne!(host_ns, ctr_ns);
    assert_eq!(info["Name"], "/ticker");
    assert_eq!(info["State"]["Status"], "running");
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.Pid}}", "ticker"]).trim(),
        pid.to_string()
    );
    // exec sees the container's hostname and env.
    let out = h.ok(&[
        "exec",
        "-e",
        "X=1",
        "ticker",
        "sh",
        "-c",
        "echo $(hostname) $X $HOSTNAME",
    ]);
    assert_eq!(out.trim(), format!("{} 1 {}", &id[..12], &id[..12]));
    assert_eq!(
        h.run(&["exec", "ticker", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    let e = h.fails(1, &["rm", "ticker"]);
    assert!(e.contains("container is running"), "{e}");
    let e = h.fails(125, &["run", "--name", "ticker", "busybox", "true"]);
    assert!(e.contains("is already in use"), "{e}");
    // stop: the trap makes it exit 0 on SIGTERM.
    h.ok(&["stop", "ticker"]);
    assert_eq!(
        h.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "ticker"
        ])
        .trim(),
        "exited 0"
    );
    let e = h.fails(1, &["exec", "ticker", "true"]);
    assert!(e.contains("is not running"), "{e}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    // start again; logs keep the earlier output.
    h.ok(&["start", "ticker"]);
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.Running}}", "ticker"])
            .trim(),
        "true"
    );
    h.ok(&["rm", "-f", "ticker"]);
    h.assert_clean(&[&id]);
}

#[test]
fn cli_killed_mid_logs_follow_does_not_stop_the_container() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "while true; do echo line; sleep 0.05; done",
        ])
        .trim()
        .to_string();
    let mut follow = h
        .cmd(&["logs", "-f", &id])
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    std::thread::sleep(Duration::from_millis(300));
    follow.kill().expect("kill -9 the CLI");
    let _ = follow.wait();
    let before = h.ok(&["logs", &id]).lines().count();
    h.wait_for("more log lines", || {
        h.ok(&["logs", &id]).lines().count() > before + 3
    });
    assert_eq!(h.ok(&["ps", "-q", "--no-trunc"]).trim(), id);
    h.ok(&["rm", "-f", &id]);
    h.assert_clean(&[&id]);
}

#[test]
fn restart_on_failure_stops_after_the_limit() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "busybox",
            "sh",
            "-c",
            "echo run; exit 5",
        ])
        .trim()
        .to_string();
    h.wait_for("three runs", || {
        h.ok(&["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", &id])
            .trim()
            == "exited 2"
    });
    assert_eq!(h.ok(&["logs", &id]).matches("run").count(), 3);
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]).trim(),
        "5"
    );
    h.ok(&["rm", &id]);
    h.assert_clean(&[&id]);
}

/// Zombie children of the container's PID 1, seen from the host (an exited task leaves
/// its cgroup, so the cgroup's process list cannot show zombies).
fn zombies(h: &Hako, id: &str) -> usize {
    let pid = h
        .ok(&["inspect", "-f", "{{.State.Pid}}", id])
        .trim()
        .parse::<i32>()
        .expect("pid");
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn init_reaps_orphans_that_pid_1_would_leave_as_zombies() {
    need_root!();
    assert!(
        static_init().is_some(),
        "no static hako-init next to hako (cargo build makes it) and no HAKO_INIT"
    );
    let h = Hako::new();
    // PID 1 becomes `sleep`, which never waits; the orphaned `sleep 0.1` is re-parented to it.
    let workload = ["sh", "-c", "sh -c 'sleep 0.1 &'; exec sleep 30"];
    let plain = h
        .ok(&[&["run", "-d", "busybox"][..], &workload[..]].concat())
        .trim()
        .to_string();
    let with_init = h
        .ok(&[&["run", "-d", "--init", "busybox"][..], &workload[..]].concat())
        .trim()
        .to_string();
    h.wait_for("a zombie without --init", || zombies(&h, &plain) >= 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(zombies(&h, &with_init), 0, "hako-init reaps");
    let args = h.ok(&["exec", &with_init, "cat", "/proc/1/cmdline"]);
    assert!(args.starts_with("/sbin/hako-init"), "{args:?}");
    // hako-init forwards the stop signal: `sleep` dies of SIGTERM at once (no 10 s wait).
    let t = Instant::now();
    h.ok(&["stop", &with_init]);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "stop took {:?}",
        t.elapsed()
    );
    h.ok(&["rm", "-f", &plain, &with_init]);
    h.assert_clean(&[&plain, &with_init]);
}

#[test]
fn volumes_binds_tmpfs_and_read_only() {
    need_root!();
    let h = Hako::new();
    let host_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(host_dir.path().join("in.txt"), "from host\n").expect("write");
    let bind = format!("{}:/data:ro", host_dir.path().display());
    let out = h.ok(&["run", "--rm", "-v", &bind, "busybox", "cat", "/data/in.txt"]);
    assert_eq!(out, "from host\n");
    let o = h.run(&["run", "--rm", "-v", &bind, "busybox", "touch", "/data/x"]);
    assert_ne!(o.status.code(), Some(0), "a :ro bind is read-only");
    // A named volume outlives its containers.
    h.ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/v",
        "busybox",
        "sh",
        "-c",
        "echo kept > /v/f",
    ]);
    assert_eq!(
        h.ok(&["run", "--rm", "-v", "keep:/v", "busybox", "cat", "/v/f"]),
        "kept\n"
    );
    // --read-only root with a writable --tmpfs.
    let o = h.run(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_ne!(o.status.code(), Some(0));
    let out = h.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "echo ok > /scratch/f && cat /scratch/f && grep ' /scratch ' /proc/mounts",
    ]);
    assert!(
        out.starts_with("ok\n") && out.contains("tmpfs") && out.contains("noexec"),
        "{out}"
    );
    h.assert_clean(&[]);
}

#[test]
fn init_must_be_static() {
    need_root!();
    let h = Hako::new();
    let mut c = h.cmd(&["run", "--rm", "--init", "busybox", "true"]);
    c.env("HAKO_INIT", "/bin/ls");
    let o = c.output().expect("run");
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("dynamically linked"),
        "{o:?}"
    );
    h.assert_clean(&[]);
}

#[test]
fn limits_user_workdir_env_and_default_ulimits() {
    need_root!();
    let h = Hako::new();
    let out = h.ok(&[
        "run", "--rm", "-m", "64m", "--pids-limit", "50", "-u", "nobody", "-w", "/tmp", "-e", "A=b", "-h", "box", "busybox",
        "sh", "-c", "id -u; pwd; echo $A; hostname; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; ulimit -n",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..5],
        &["65534", "/tmp", "b", "box", "67108864"],
        "{out}"
    );
    let host_nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("rlimit")
        .0;
    assert_eq!(
        lines[5],
        host_nofile.to_string(),
        "default ulimits are inherited from the host"
    );
    let out = h.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(out, "100\n200\n");
    h.assert_clean(&[]);
}

#[test]
fn rootfs_directory_and_other_runtimes() {
    need_root!();
    let h = Hako::new();
    let rootfs = hako_test_support::busybox_rootfs().expect("rootfs");
    let out = h.ok(&[
        "run",
        "--rm",
        "--rootfs",
        rootfs.to_str().expect("utf-8"),
        "/bin/echo",
        "gocker style",
    ]);
    assert_eq!(out, "gocker style\n");
    if Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let out = h.ok(&[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "busybox",
            "echo",
            "via runc",
        ]);
        assert_eq!(out, "via runc\n");
    }
    h.assert_clean(&[]);
}

#[test]
fn tty_run_gets_a_terminal() {
    need_root!();
    let h = Hako::new();
    // `script` gives the CLI a real terminal, as a user's shell would.
    let have_script = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_script {
        assert!(
            !hako_test_support::in_ci(),
            "util-linux `script` is needed (Debian's bsdutils)"
        );
        eprintln!("SKIP: util-linux script not installed");
        return;
    }
    let cmd = format!(
        "stty cols 91 rows 23; {HAKO} --root {} --exec-root {} run -it --rm busybox sh -c 'tty; stty size; exit 4'",
        h.root.path().display(),
        h.exec.path().display()
    );
    // In the test's network namespace, as every hako that runs containers here.
    let o = h
        .host("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(
        out.contains("23 91"),
        "window size reaches the container: {out}"
    );
    assert_eq!(o.status.code(), Some(4), "{out}");
    h.assert_clean(&[]);
}

#[test]
fn cli_killed_during_run_d_leaves_a_container_that_can_be_started_or_removed() {
    need_root!();
    let h = Hako::new();
    for delay_ms in [0u64, 2, 5, 8, 12, 15, 20, 30, 40, 60, 80, 150, 300] {
        let mut child = h
            .cmd(&["run", "-d", "busybox", "sleep", "600"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hako run -d");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever moment it died at, what is listed is consistent and usable.
        let ps = h.ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}"]);
        for line in ps.lines() {
            let (id, state) = line.split_once(' ').expect("id state");
            match state {
                "created" => {
                    // A create that got as far as a complete bundle starts; one killed
                    // earlier fails to start with a clear error and is still removable.
                    let _ = h.run(&["start", id]);
                }
                "running" => {}
                other => panic!("unexpected state {other} after kill -9 at {delay_ms} ms"),
            }
            h.ok(&["rm", "-f", id]);
        }
        h.assert_clean(&[]);
    }
}

#[test]
fn logs_are_rotated_by_log_opts_and_timestamps_work() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&[
            "run",
            "-d",
            "--log-opt",
            "max-size=2k",
            "--log-opt",
            "max-file=2",
            "busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done",
        ])
        .trim()
        .to_string();
    assert_eq!(h.ok(&["wait", &id]).trim(), "0");
    let log = h.ok(&["inspect", "-f", "{{.LogPath}}", &id]);
    let log = Path::new(log.trim());
    let dir = log.parent().expect("log dir");
    let files: Vec<_> = std::fs::read_dir(dir)
        .expect("read")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .collect();
    assert_eq!(files.len(), 2, "max-file=2 keeps two files");
    for f in &files {
        assert!(
            f.metadata().expect("stat").len() <= 2048 + 200,
            "max-size holds: {f:?}"
        );
    }
    let out = h.ok(&["logs", "--tail", "2", "-t", &id]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1].ends_with(" line-399"), "{out}");
    assert!(
        lines[1].starts_with("20"),
        "RFC 3339 timestamp first: {out}"
    );
    h.ok(&["rm", &id]);
    h.assert_clean(&[&id]);
}

fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn security_options_and_cpu_limits_seen_from_inside() {
    need_root!();
    let h = Hako::new();
    let status = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "cat", "/proc/self/status"]);
        h.ok(&args)
    };
    let def = status(&[]);
    assert_eq!(
        status_field(&def, "Seccomp:"),
        "2",
        "Docker's default profile is on"
    );
    assert_eq!(
        status_field(&def, "CapEff:"),
        "00000000a80425fb",
        "Docker's default capabilities"
    );
    assert_eq!(status_field(&def, "NoNewPrivs:"), "0");
    let out = status(&[
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "no-new-privileges",
    ]);
    assert_eq!(status_field(&out, "Seccomp:"), "0");
    assert_eq!(status_field(&out, "NoNewPrivs:"), "1");
    let out = status(&["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"]);
    assert_eq!(status_field(&out, "CapEff:"), "0000000000001000");
    let out = status(&["--privileged"]);
    assert_eq!(status_field(&out, "Seccomp:"), "0");
    let ours = std::fs::read_to_string("/proc/self/status").expect("status");
    assert_eq!(
        status_field(&out, "CapEff:"),
        status_field(&ours, "CapBnd:"),
        "--privileged: every capability hako itself may grant"
    );
    let e = h.fails(
        125,
        &["run", "--rm", "--cap-add", "NOPE", "busybox", "true"],
    );
    assert!(e.contains("unknown capability"), "{e}");
    let e = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=/nonexistent.json",
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("/nonexistent.json"), "{e}");

    let out = h.ok(&[
        "run", "--rm", "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null || cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpuset.cpus",
    ]);
    let v: Vec<&str> = out.split_whitespace().collect();
    assert!(v.contains(&"50000"), "quota 0.5 cpu: {out}");
    assert_eq!(v.last(), Some(&"0"), "cpuset: {out}");
    h.assert_clean(&[]);
}

#[test]
fn pause_rename_and_attach() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&[
            "run",
            "-d",
            "-i",
            "--name",
            "first",
            "busybox",
            "sh",
            "-c",
            "read x; echo got $x; exit 9",
        ])
        .trim()
        .to_string();
    h.ok(&["pause", "first"]);
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Paused}}", &id])
            .trim(),
        "paused true"
    );
    assert!(
        h.ok(&["ps", "--format", "{{.Status}}"])
            .contains("(Paused)")
    );
    let e = h.fails(1, &["exec", "first", "true"]);
    assert!(e.contains("is paused"), "{e}");
    let e = h.fails(1, &["pause", "first"]);
    assert!(e.contains("already paused"), "{e}");
    h.ok(&["unpause", "first"]);
    let e = h.fails(1, &["unpause", "first"]);
    assert!(e.contains("is not paused"), "{e}");
    h.ok(&["rename", "first", "second"]);
    h.fails(1, &["inspect", "first"]);
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.Name}}", "second"]).trim(),
        "/second"
    );
    // attach: stdin goes in, output comes out, and the exit status is the container's.
    let mut child = h
        .cmd(&["attach", "second"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("attach");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"hello\n").expect("write");
    let out = child.wait_with_output().expect("attach output");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got hello\n");
    assert_eq!(out.status.code(), Some(9));
    h.ok(&["rm", "second"]);
    h.assert_clean(&[&id]);
}

#[test]
fn run_pulls_a_missing_image_from_a_registry() {
    need_root!();
    let h = Hako::new();
    // In the test's network namespace, where hako (and its pulls) run.
    let Some(reg) = h.net.run(hako_test_support::Registry::start) else {
        return;
    };
    let name = format!("127.0.0.1:{}/hako/busybox:run", reg.port);
    h.ok(&["tag", "busybox", &name]);
    h.ok(&["push", &name]);
    h.ok(&["rmi", &name]);
    let o = h.run(&["run", "--rm", &name, "echo", "pulled and run"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "pulled and run\n",
        "pull output stays off stdout"
    );
    assert!(
        err.contains(&format!("Unable to find image '{name}' locally")),
        "{err}"
    );
    assert!(err.contains("Status: Downloaded newer image for"), "{err}");
    assert!(
        h.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .contains(&name)
    );
    drop(reg);
    h.assert_clean(&[]);
}

#[test]
fn system_df_counts_containers_volumes_and_shared_layers() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&[
            "run",
            "-d",
            "-v",
            "dfvol:/data",
            "busybox",
            "sh",
            "-c",
            "echo x > /data/f; echo y > /y; sleep 60",
        ])
        .trim()
        .to_string();
    h.wait_for("the write", || {
        h.run(&["exec", &id, "test", "-e", "/y"]).status.success()
    });
    h.ok(&["commit", &id, "derived"]);
    let df = h.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    assert!(df.contains("Containers 1 1"), "{df}");
    assert!(df.contains("Local Volumes 1 1"), "{df}");
    assert!(df.contains("Images 2 1"), "{df}");
    let v = h.ok(&["system", "df", "-v"]);
    let derived = v
        .lines()
        .find(|l| l.starts_with("derived"))
        .expect("derived row");
    let busybox = v
        .lines()
        .find(|l| l.starts_with("busybox"))
        .expect("busybox row");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    // busybox's layer is shared by both images: its whole size is shared, nothing unique.
    // (SIZE has 3 digits, SHARED SIZE 4, as the docker CLI prints them: disk_usage.rs.)
    let b = cols(busybox);
    assert_eq!(b[b.len() - 2], "0B", "{busybox}");
    assert_eq!(
        cols(derived)[cols(derived).len() - 3],
        b[b.len() - 3],
        "{derived}"
    );
    h.ok(&["rm", "-f", "-v", &id]);
    h.ok(&["volume", "rm", "dfvol"]);
    h.assert_clean(&[&id]);
}

/// Docker's `RemovalInProgress`: from the claim of a removal to the record's deletion the
/// container is listed (`ps -a`: "Removal In Progress", state and filter `removing`,
/// inspect's `State.Status`), not hidden. The `rm` stops itself right after its claim
/// (`HAKO_STOP_AT`, hako-sys crash.rs) and goes on when told to.
#[test]
fn a_container_being_removed_reads_removal_in_progress() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&["create", "--name", "going", "busybox", "true"])
        .trim()
        .to_string();
    let rm = h
        .cmd(&["rm", "going"])
        .env("HAKO_STOP_AT", "rm.claimed")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hako rm");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(rm.id()).expect("pid"));
    let stopped = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('T')))
            .unwrap_or(false)
    };
    // Goes on even when a check below fails (the test's clean-up would wait for it).
    struct GoOn(nix::unistd::Pid);
    impl Drop for GoOn {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
        }
    }
    let go_on = GoOn(pid);
    h.wait_for("the rm to stop after its claim", stopped);
    assert_eq!(
        h.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}"]),
        "going removing Removal In Progress\n"
    );
    assert_eq!(
        h.ok(&["ps", "-aq", "--no-trunc", "--filter", "status=removing"])
            .trim(),
        id
    );
    assert_eq!(
        h.ok(&["ps", "-aq", "--filter", "status=created"]).trim(),
        "",
        "a container being removed is no longer `created`"
    );
    assert_eq!(
        h.ok(&["ps", "-q"]).trim(),
        "",
        "not running: not in plain `ps`"
    );
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.Status}}", "going"])
            .trim(),
        "removing"
    );
    // A second `rm` is refused at once (dockerd's 409), with or without -f.
    for args in [&["rm", "going"][..], &["rm", "-f", "going"][..]] {
        let e = h.fails(1, args);
        assert!(
            e.contains("removal of container going is already in progress"),
            "{e}"
        );
    }
    drop(go_on);
    let out = rm.wait_with_output().expect("wait hako rm");
    assert!(
        out.status.success(),
        "rm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(h.ok(&["ps", "-aq"]).trim(), "");
    h.assert_clean(&[&id]);
}
