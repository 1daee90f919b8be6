//! End-to-end tests of `hako-shim` with real containers (root only), against runc and
//! hako-runtime. Each scenario is a `fn(&Runtime)` run once per runtime, like the e2e suite.
//!
//! hako-runtime is taken from `$HAKO_RUNTIME`, else next to this test binary's target dir
//! (`cargo build -p hako-runtime` with the same `CARGO_TARGET_DIR`), else the workspace's
//! `target/`.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hako_shim::protocol::{self, ExitInfo, Reply, Request};
use hako_test_support::{Bundle, Config, Runtime, RuntimeKind, in_ci, root_or_skip, unique_id};
use serde_json::Value;

const SHIM: &str = env!("CARGO_BIN_EXE_hako-shim");

macro_rules! scenario {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn runc() {
                super::run_scenario(super::RuntimeKind::Runc, stringify!($name), super::$name);
            }
            #[test]
            fn hako() {
                super::run_scenario(super::RuntimeKind::Hako, stringify!($name), super::$name);
            }
        }
    )*};
}

scenario!(
    echo_is_logged_as_json,
    wait_returns_the_exit_code,
    attach_gets_stdcopy_frames,
    stdin_once_ends_cat,
    tty_with_resize,
    on_failure_restarts_exactly_twice,
    always_restarts_until_stopped,
    oom_kill_is_recorded,
    slow_client_is_dropped,
    log_rotation_keeps_max_file,
    survives_its_spawner,
    sigterm_stops_the_container_for_good,
    create_failure_leaves_nothing,
    exit_command_runs,
    exit_command_is_skipped_once_the_container_is_removed,
    clients_see_the_end_before_the_runtime_delete,
    hooks_run_with_a_clean_signal_mask,
    exit_command_waits_for_the_attached_remover,
    go_fd_holds_the_create_until_told,
);

fn run_scenario(kind: RuntimeKind, name: &str, f: fn(&Runtime)) {
    if !root_or_skip(&format!("{name} [{kind}]")) {
        return;
    }
    let rt = match kind {
        RuntimeKind::Hako => match own_hako_runtime() {
            Some(bin) => Runtime::with_binary(kind, bin),
            None => Runtime::new(kind),
        },
        _ => Runtime::new(kind),
    };
    match rt {
        Ok(rt) => f(&rt),
        // runc is a Debian package scripts/test.sh installs: under CI missing is a failure too.
        Err(e) if in_ci() => {
            panic!(
                "{name} [{kind}]: {e:#} (CI=true: hako-runtime must be built first, runc installed)"
            )
        }
        Err(e) => eprintln!("SKIP {name} [{kind}]: {e:#}"),
    }
}

/// `<target>/debug/hako-runtime` next to this test binary (`<target>/debug/deps/shim-*`).
fn own_hako_runtime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HAKO_RUNTIME") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("hako-runtime");
    bin.is_file().then_some(bin)
}

/// One shim and everything around it.
struct Shim<'a> {
    rt: &'a Runtime,
    id: String,
    bundle: Bundle,
    dir: tempfile::TempDir,
    /// The detached shim's pid, once it reported ready.
    pid: Option<i32>,
    /// Spawn it with SIGTERM and SIGCHLD ignored (inherited across exec, as from a parent
    /// that ignores them).
    ignoring: bool,
    /// A program to give as the runtime instead of `rt`'s (a wrapper around it).
    runtime: Option<PathBuf>,
}

/// Serializes spawns: the ready pipe is inherited (no close-on-exec) during the spawn, and
/// another test's shim must not inherit it.
static SPAWN: Mutex<()> = Mutex::new(());

impl<'a> Shim<'a> {
    fn new(rt: &'a Runtime, config: &Config) -> Self {
        Self {
            rt,
            id: unique_id(&format!("shim-{}", rt.kind().name())),
            bundle: Bundle::new(config).expect("bundle"),
            dir: tempfile::tempdir().expect("tempdir"),
            pid: None,
            ignoring: false,
            runtime: None,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("logs/container.log")
    }

    fn args(&self, ready_fd: i32, extra: &[&str]) -> Vec<String> {
        let runtime = self
            .runtime
            .clone()
            .unwrap_or_else(|| self.rt.binary().to_path_buf());
        let mut args: Vec<String> = [
            "--id",
            &self.id,
            "--bundle",
            &self.bundle.path().display().to_string(),
            "--runtime",
            &runtime.display().to_string(),
            "--runtime-root",
            &self.rt.root().display().to_string(),
            "--state-dir",
            &self.state().display().to_string(),
            "--log-path",
            &self.log().display().to_string(),
            "--ready-fd",
            &ready_fd.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // As the engine runs it: hako-runtime itself (not a wrapper) is called in process.
        if self.runtime.is_none() && self.rt.kind() == RuntimeKind::Hako {
            args.push("--runtime-builtin".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Spawn the shim (directly, or through `sh -c` when `via_sh`, returning that spawner),
    /// and read its ready line.
    fn spawn_with(
        &mut self,
        extra: &[&str],
        via_sh: bool,
    ) -> (Result<i32, String>, Option<std::process::Child>) {
        let guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&w);
        let args = self.args(fd, extra);
        let mut spawner = None;
        if via_sh {
            // The spawner stays alive (sleeps) after starting the shim, so it can be killed.
            let child = Command::new("/bin/sh")
                .args(["-c", "\"$0\" \"$@\"; exec sleep 1000", SHIM])
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sh");
            spawner = Some(child);
        } else {
            let mut cmd = Command::new(SHIM);
            if self.ignoring {
                // (Not `sh -c "trap '' CHLD"`: dash does not ignore SIGCHLD.)
                cmd = Command::new("python3");
                cmd.args([
                    "-c",
                    "import os, signal, sys\n\
                     for s in (signal.SIGTERM, signal.SIGCHLD): signal.signal(s, signal.SIG_IGN)\n\
                     os.execv(sys.argv[1], sys.argv[1:])",
                    SHIM,
                ]);
            }
            let status = cmd
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("spawn shim");
            assert!(status.success(), "the shim's first process exits 0");
        }
        drop(w);
        drop(guard);
        // One line, not EOF: a spawner that stays alive holds the pipe open too.
        let mut ready = std::fs::File::from(r);
        let mut text = String::new();
        let mut byte = [0u8; 1];
        while ready.read(&mut byte).expect("read ready pipe") == 1 && byte[0] != b'\n' {
            text.push(char::from(byte[0]));
        }
        let v: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("ready line {text:?}: {e}"));
        let result = match v["pid"].as_i64() {
            Some(pid) => {
                self.pid = protocol::read_shim_pid(&self.state()).map(|(pid, _)| pid);
                Ok(i32::try_from(pid).unwrap())
            }
            None => Err(v["error"].as_str().unwrap_or("?").to_string()),
        };
        (result, spawner)
    }

    fn spawn(&mut self, extra: &[&str]) -> i32 {
        match self.spawn_with(extra, false).0 {
            Ok(pid) => pid,
            Err(e) => panic!("shim failed to create the container: {e}"),
        }
    }

    fn request(&self, req: &Request) -> Reply {
        protocol::request(&self.state(), req).unwrap_or_else(|e| panic!("{req:?}: {e}"))
    }

    /// Send `req` from another thread (for requests that block, like a wait).
    fn request_thread(&self, req: Request) -> std::thread::JoinHandle<Reply> {
        let state = self.state();
        std::thread::spawn(move || {
            protocol::request(&state, &req).unwrap_or_else(|e| panic!("{req:?}: {e}"))
        })
    }

    fn start(&self) {
        assert_eq!(self.request(&Request::Start), Reply::Ok);
    }

    fn wait(&self) -> ExitInfo {
        protocol::wait(&self.state()).expect("wait")
    }

    fn attach(&self, stdin: bool) -> (std::os::unix::net::UnixStream, bool) {
        let (s, tty) = protocol::attach(&self.state(), stdin, true, true).expect("attach");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (s, tty)
    }

    fn log_entries(&self) -> Vec<Value> {
        read_entries(&self.log())
    }

    /// Wait until the shim process is gone (or a zombie), then check that nothing is left:
    /// no runtime state, cgroup, mount or process, and only exit.json and runtime.log in
    /// the state dir.
    #[track_caller]
    fn assert_gone_and_clean(&self) {
        if let Some(pid) = self.pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) {
                assert!(Instant::now() < deadline, "shim {pid} still running");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.rt.assert_no_leaks(&[&self.id], &[self.bundle.path()]);
        let mut left: Vec<String> = std::fs::read_dir(self.state())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        // Kept on purpose: the exit record, the runtime's log and the shim's failure log.
        left.retain(|n| {
            n != protocol::EXIT_FILE
                && n != protocol::RUNTIME_LOG
                && n != hako_shim::shimlog::SHIM_LOG
        });
        assert!(left.is_empty(), "left in the state dir: {left:?}");
    }
}

impl Drop for Shim<'_> {
    fn drop(&mut self) {
        // A failed test: do not leave a shim behind (it would hold the container).
        if let Some(pid) = self.pid
            && alive(pid)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.rt.delete_force(&self.id);
        }
    }
}

/// Running (not a zombie the sandbox's pid 1 never reaps).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn read_entries(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
        .collect()
}

/// Split a stdcopy stream into (stream id, payload) frames.
fn frames(mut data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let len = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
        assert_eq!(&data[1..4], &[0, 0, 0], "frame header");
        out.push((data[0], data[8..8 + len].to_vec()));
        data = &data[8 + len..];
    }
    assert!(data.is_empty(), "trailing bytes in the stream");
    out
}

fn joined(frames: &[(u8, Vec<u8>)], stream: u8) -> String {
    let bytes: Vec<u8> = frames
        .iter()
        .filter(|(s, _)| *s == stream)
        .flat_map(|(_, d)| d.clone())
        .collect();
    String::from_utf8(bytes).unwrap()
}

fn read_to_end(mut s: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("reading the attach stream");
    out
}

// --- scenarios ---

fn echo_is_logged_as_json(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().args(&["echo", "hello"]));
    let pid = shim.spawn(&[]);
    assert!(pid > 0);
    // Before any request, the shim holds nothing it inherited: stdio, signalfd, control
    // socket, log, two pipes and the container's mount namespace (held until its exit is
    // published). The ready pipe is closed just after the ready line was written, so give
    // the shim a moment to get there.
    let fds_of = |pid: i32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|l| l.display().to_string())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut fds = fds_of(shim.pid.unwrap());
    while fds.len() != 9 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        fds = fds_of(shim.pid.unwrap());
    }
    assert_eq!(fds.len(), 9, "{fds:?}");
    assert_eq!(
        fds.iter().filter(|f| f.starts_with("mnt:[")).count(),
        1,
        "{fds:?}"
    );
    match shim.request(&Request::State) {
        Reply::State(s) => {
            assert_eq!(s.status, "created");
            assert_eq!(s.pid, Some(pid));
            assert!(!s.tty);
        }
        other => panic!("state: {other:?}"),
    }
    shim.start();
    let exit = shim.wait();
    assert_eq!(exit.exit_code, 0);
    assert_eq!(exit.signal, None);
    shim.assert_gone_and_clean();
    let entries = shim.log_entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["log"], "hello\n");
    assert_eq!(entries[0]["stream"], "stdout");
    let time = entries[0]["time"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    assert_eq!(protocol::read_exit(&shim.state()).unwrap(), Some(exit));
}

fn wait_returns_the_exit_code(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().sh("exit 3"));
    shim.spawn(&[]);
    // Two waiters before the start, one from a second thread: both get the exit.
    let early = shim.request_thread(Request::Wait);
    std::thread::sleep(Duration::from_millis(50));
    shim.start();
    let exit = shim.wait();
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.restart_count, 0);
    assert!(!exit.oom_killed);
    assert_eq!(early.join().unwrap(), Reply::Exited(exit.clone()));
    shim.assert_gone_and_clean();
    assert_eq!(
        protocol::read_exit(&shim.state())
            .unwrap()
            .unwrap()
            .exit_code,
        3
    );
}

fn attach_gets_stdcopy_frames(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().sh("echo out; echo err >&2; echo more"));
    shim.spawn(&[]);
    let (stream, tty) = shim.attach(false);
    assert!(!tty);
    shim.start();
    let frames = frames(&read_to_end(stream));
    assert_eq!(joined(&frames, 1), "out\nmore\n");
    assert_eq!(joined(&frames, 2), "err\n");
    assert_eq!(shim.wait().exit_code, 0);
    shim.assert_gone_and_clean();
}

fn stdin_once_ends_cat(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().args(&["cat"]));
    shim.spawn(&["--stdin", "--stdin-once"]);
    let (mut stream, _) = shim.attach(true);
    shim.start();
    stream.write_all(b"ping\npong").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let frames = frames(&read_to_end(stream));
    assert_eq!(joined(&frames, 1), "ping\npong");
    assert_eq!(shim.wait().exit_code, 0);
    shim.assert_gone_and_clean();
    let logs: Vec<String> = shim
        .log_entries()
        .iter()
        .map(|e| e["log"].as_str().unwrap().to_string())
        .collect();
    // The unfinished last line is flushed at EOF without a newline.
    assert_eq!(logs, ["ping\n", "pong"]);
}

fn tty_with_resize(rt: &Runtime) {
    let config = Config::new().terminal(true).sh("stty size; tty");
    let mut shim = Shim::new(rt, &config);
    shim.spawn(&["--tty"]);
    let (stream, tty) = shim.attach(false);
    assert!(tty);
    assert_eq!(
        shim.request(&Request::Resize { rows: 33, cols: 77 }),
        Reply::Ok
    );
    shim.start();
    let out = String::from_utf8(read_to_end(stream)).unwrap();
    assert!(out.contains("33 77\r\n"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert_eq!(shim.wait().exit_code, 0);
    shim.assert_gone_and_clean();
    let entries = shim.log_entries();
    assert!(
        entries.iter().all(|e| e["stream"] == "stdout"),
        "{entries:?}"
    );
    assert_eq!(entries[0]["log"], "33 77\r\n");
}

fn on_failure_restarts_exactly_twice(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().sh("echo run; exit 7"));
    shim.spawn(&["--restart", "on-failure:2"]);
    // A wait sent before the start gets the first exit; the next one the following exit.
    let first = shim.request_thread(Request::Wait);
    std::thread::sleep(Duration::from_millis(50));
    shim.start();
    match first.join().unwrap() {
        Reply::Exited(e) => assert_eq!((e.exit_code, e.restart_count), (7, 0)),
        other => panic!("wait: {other:?}"),
    }
    shim.assert_gone_and_clean();
    let last = protocol::read_exit(&shim.state()).unwrap().unwrap();
    assert_eq!((last.exit_code, last.restart_count), (7, 2));
    let runs = shim
        .log_entries()
        .iter()
        .filter(|e| e["log"] == "run\n")
        .count();
    assert_eq!(runs, 3, "one run and exactly two restarts");
}

fn log_rotation_keeps_max_file(rt: &Runtime) {
    let config = Config::new().sh("i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line $i; done");
    let mut shim = Shim::new(rt, &config);
    shim.spawn(&["--log-max-size", "2000", "--log-max-file", "3"]);
    shim.start();
    shim.wait();
    shim.assert_gone_and_clean();
    let dir = shim.log().parent().unwrap().to_path_buf();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["container.log", "container.log.1", "container.log.2"]
    );
    for n in &names {
        assert!(std::fs::metadata(dir.join(n)).unwrap().len() <= 2000, "{n}");
    }
    let last = shim.log_entries();
    assert_eq!(last.last().unwrap()["log"], "line 300\n");
    let older = read_entries(&dir.join("container.log.1"));
    let n = |e: &Value| -> u32 { e["log"].as_str().unwrap()[5..].trim().parse().unwrap() };
    assert_eq!(
        n(older.last().unwrap()) + 1,
        n(&last[0]),
        "rotation loses nothing"
    );
}

fn survives_its_spawner(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().args(&["sleep", "1000"]));
    let (ready, spawner) = shim.spawn_with(&[], true);
    let mut spawner = spawner.unwrap();
    ready.expect("created");
    let pid = shim.pid.expect("shim pid");
    spawner.kill().unwrap();
    spawner.wait().unwrap();
    // Nor do SIGINT and SIGHUP to the shim itself end it (SIGTERM does: see
    // sigterm_stops_the_container_for_good).
    for sig in ["INT", "HUP", "QUIT"] {
        Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(pid));
    shim.start();
    match shim.request(&Request::State) {
        Reply::State(s) => {
            assert_eq!(s.status, "running");
            assert!(s.started_at.is_some());
        }
        other => panic!("state: {other:?}"),
    }
    assert_eq!(shim.request(&Request::Stop { no_restart: true }), Reply::Ok);
    rt.kill(&shim.id, "KILL").expect_ok("kill");
    let exit = shim.wait();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    shim.assert_gone_and_clean();
}

/// Sends SIGTERM to the shim (what systemd does to every process of a unit it stops, as at
/// shutdown) and waits until the shim has ended; its exit record.
#[track_caller]
fn terminate_shim(shim: &Shim, within: Duration) -> ExitInfo {
    let pid = shim.pid.expect("shim pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let deadline = Instant::now() + within;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the shim did not end within {within:?} of SIGTERM; shim.log: {}",
            std::fs::read_to_string(shim.state().join(hako_shim::shimlog::SHIM_LOG))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    protocol::read_exit(&shim.state())
        .expect("exit.json")
        .expect("an exit record")
}

/// Waits (10 s at most) for the container to log the line "up".
#[track_caller]
fn wait_until_up(shim: &Shim) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !shim.log_entries().iter().any(|e| e["log"] == "up\n") {
        assert!(Instant::now() < deadline, "the container never said up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm_stops_the_container_for_good(rt: &Runtime) {
    // The container's stop signal (USR1 here) ends it; `always` does not restart it. The
    // container starts with no signal blocked (the shim's signalfd mask once reached runc
    // containers: Go unblocks only what it handles, USR1 stayed blocked).
    let script = "trap 'echo got USR1; exit 7' USR1; grep SigBlk /proc/$$/status; echo up; \
                  while :; do sleep 0.1; done";
    let mut shim = Shim::new(rt, &Config::new().sh(script));
    let events = shim.dir.path().join("events.log");
    shim.spawn(&[
        "--restart",
        "always",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "30",
        "--events-log",
        &events.display().to_string(),
    ]);
    shim.start();
    wait_until_up(&shim);
    let exit = terminate_shim(&shim, Duration::from_secs(20));
    assert_eq!(
        (exit.exit_code, exit.signal, exit.restart_count),
        (7, None, 0),
        "{exit:?}"
    );
    shim.assert_gone_and_clean();
    let logged: Vec<Value> = shim.log_entries();
    let said = |what: &str| logged.iter().filter(|e| e["log"] == what).count();
    assert_eq!((said("up\n"), said("got USR1\n")), (1, 1), "{logged:?}");
    assert_eq!(said("SigBlk:\t0000000000000000\n"), 1, "{logged:?}");
    let actions: Vec<(String, String)> = read_entries(&events)
        .iter()
        .map(|e| {
            let attrs = &e["Actor"]["Attributes"];
            let detail = attrs["signal"].as_str().or(attrs["exitCode"].as_str());
            (
                e["Action"].as_str().unwrap_or("").to_string(),
                detail.unwrap_or("").to_string(),
            )
        })
        .filter(|(a, _)| a != "start")
        .collect();
    assert_eq!(
        actions,
        [
            ("kill".to_string(), "10".to_string()),
            ("die".into(), "7".into())
        ]
    );

    // A container that does not end on its stop signal (a pid 1 without a handler ignores
    // SIGTERM) is killed once the stop timeout is over.
    let mut shim = Shim::new(rt, &Config::new().args(&["sleep", "1000"]));
    shim.spawn(&["--restart", "unless-stopped", "--stop-timeout", "1"]);
    shim.start();
    let sent = Instant::now();
    let exit = terminate_shim(&shim, Duration::from_secs(20));
    assert_eq!(
        (exit.exit_code, exit.signal, exit.restart_count),
        (137, Some(9), 0),
        "{exit:?}"
    );
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    shim.assert_gone_and_clean();

    // Started by a parent that ignores SIGTERM and SIGCHLD (ignored stays ignored across
    // exec): the shim still creates the container (an ignored SIGCHLD had the kernel reap
    // the runtime: "No child processes"), hears SIGTERM and gets the exit status.
    let script = "trap 'exit 6' TERM; echo up; while :; do sleep 0.1; done";
    let mut shim = Shim::new(rt, &Config::new().sh(script));
    shim.ignoring = true;
    shim.spawn(&["--restart", "always", "--stop-timeout", "30"]);
    shim.start();
    wait_until_up(&shim);
    let exit = terminate_shim(&shim, Duration::from_secs(20));
    assert_eq!(
        (exit.exit_code, exit.signal, exit.restart_count),
        (6, None, 0),
        "{exit:?}"
    );
    shim.assert_gone_and_clean();

    // Paused (a frozen cgroup sees no signal; on v1 not even SIGKILL): resumed first.
    let script = "trap 'exit 5' TERM; echo up; while :; do sleep 0.1; done";
    let mut shim = Shim::new(rt, &Config::new().sh(script));
    shim.spawn(&["--stop-timeout", "30"]);
    shim.start();
    wait_until_up(&shim);
    rt.cmd(&["pause", &shim.id]).expect_ok("pause");
    let exit = terminate_shim(&shim, Duration::from_secs(20));
    assert_eq!((exit.exit_code, exit.signal), (5, None), "{exit:?}");
    shim.assert_gone_and_clean();

    // Created, never started: the shim deletes it and ends.
    let mut shim = Shim::new(rt, &Config::new().args(&["sleep", "1000"]));
    shim.spawn(&[]);
    let pid = shim.pid.expect("shim pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    shim.assert_gone_and_clean();
}

fn create_failure_leaves_nothing(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().args(&["/no/such/program"]));
    let (ready, _) = shim.spawn_with(&[], false);
    let err = ready.expect_err("create must fail");
    assert!(err.contains("/no/such/program"), "{err}");
    shim.assert_gone_and_clean();
    assert!(!shim.state().join(protocol::EXIT_FILE).exists());
}

fn exit_command_runs(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().sh("exit 5"));
    let marker = shim.dir.path().join("exit-command-ran");
    let script = format!("echo \"$1\" > {}", marker.display());
    shim.spawn(&[
        "--exit-command",
        "/bin/sh",
        "--exit-command-arg",
        "-c",
        "--exit-command-arg",
        &script,
        "--exit-command-arg",
        "sh",
        "--exit-command-arg",
        "--an-argument",
    ]);
    shim.start();
    assert_eq!(shim.wait().exit_code, 5);
    shim.assert_gone_and_clean();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the exit command did not run");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "--an-argument\n");
}

/// The poststart and poststop hooks run (by `start` and `delete`, in the shim with
/// `--runtime-builtin`) with no signal blocked, although the shim blocks the ones its
/// signalfd reads.
fn hooks_run_with_a_clean_signal_mask(rt: &Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = |stage: &str| {
        let out = dir.path().join(stage);
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("grep SigBlk /proc/self/status > {}", out.display())],
        })
    };
    let config = Config::new().sh("exit 0").edit(|v| {
        v["hooks"] = serde_json::json!({
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
    });
    let mut shim = Shim::new(rt, &config);
    shim.spawn(&[]);
    shim.start();
    assert_eq!(shim.wait().exit_code, 0);
    shim.assert_gone_and_clean();
    for stage in ["poststart", "poststop"] {
        let text = std::fs::read_to_string(dir.path().join(stage))
            .unwrap_or_else(|e| panic!("the {stage} hook did not run: {e}"));
        assert_eq!(
            text.split_whitespace().nth(1),
            Some("0000000000000000"),
            "{stage}: {text}"
        );
    }
}

/// `--exit-command-lock`: a caller attached to remove the container itself holds the lock
/// shared; the shim, its files gone (so that caller does not wait for it), waits for the
/// lock, then runs the exit command only if the bundle is still there: not when the holder
/// removed the container, and when it let go without doing so (it died).
fn exit_command_waits_for_the_attached_remover(rt: &Runtime) {
    for removes in [true, false] {
        let mut shim = Shim::new(rt, &Config::new().sh("exit 0"));
        let marker = shim.dir.path().join("exit-command-ran");
        let lock = shim.dir.path().join("attached.lock");
        std::fs::write(&lock, b"").expect("lock file");
        let held = nix::fcntl::Flock::lock(
            std::fs::File::open(&lock).expect("open lock"),
            nix::fcntl::FlockArg::LockShared,
        )
        .expect("lock shared");
        let script = format!("touch {}", marker.display());
        shim.spawn(&[
            "--exit-command",
            "/bin/sh",
            "--exit-command-arg",
            "-c",
            "--exit-command-arg",
            &script,
            "--exit-command-lock",
            lock.to_str().expect("utf-8"),
        ]);
        let pid = shim.pid.expect("shim pid");
        shim.start();
        assert_eq!(shim.wait().exit_code, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while protocol::shim_alive(&shim.state()) {
            assert!(
                Instant::now() < deadline,
                "the shim's files are still there"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(alive(pid), "the shim waits for the lock");
        assert!(
            !marker.exists(),
            "the exit command ran before the lock was free"
        );
        let bundle = shim.bundle.path().to_path_buf();
        let away = bundle.with_extension("removed");
        if removes {
            std::fs::rename(&bundle, &away).expect("remove the bundle");
        }
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            assert!(Instant::now() < deadline, "shim {pid} still running");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        if removes {
            std::fs::rename(&away, &bundle).expect("put the bundle back");
        }
        assert_eq!(
            marker.exists(),
            !removes,
            "the exit command ran: removed {removes}"
        );
        shim.assert_gone_and_clean();
    }
}

/// `--go-fd`: the shim starts up and waits for a byte before it creates the container (its
/// spawner sets the network up meanwhile); a closed pipe instead means the spawner gave up:
/// the shim answers an error and leaves nothing.
fn go_fd_holds_the_create_until_told(rt: &Runtime) {
    let go_pipe = || {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        nix::fcntl::fcntl(
            &w,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .expect("close-on-exec");
        (r, w)
    };
    // Told after 300 ms: the ready line (the container created) comes after that.
    let mut shim = Shim::new(rt, &Config::new().args(&["echo", "went"]));
    let (r, w) = go_pipe();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&r).to_string();
    let t0 = Instant::now();
    let (created, waited) = std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            nix::unistd::write(&w, b"1").expect("go");
        });
        let created = shim.spawn_with(&["--go-fd", &fd], false).0;
        (created, t0.elapsed())
    });
    drop(r);
    assert!(created.is_ok(), "{created:?}");
    assert!(
        waited >= Duration::from_millis(300),
        "created after {waited:?}"
    );
    shim.start();
    assert_eq!(shim.wait().exit_code, 0);
    shim.assert_gone_and_clean();
    assert!(
        std::fs::read_to_string(shim.log()).is_ok_and(|l| l.contains("went")),
        "the container ran"
    );
    // The spawner gives up (closes its end): an error, and nothing created or left.
    let mut shim = Shim::new(rt, &Config::new().args(&["echo", "never"]));
    let (r, w) = go_pipe();
    drop(w);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&r).to_string();
    let err = shim
        .spawn_with(&["--go-fd", &fd], false)
        .0
        .expect_err("no go, no container");
    drop(r);
    assert!(err.contains("gave up"), "{err}");
    shim.assert_gone_and_clean();
}

/// A remover that claimed the container's removal marks the state directory: the shim
/// then exits without running its exit command.
fn exit_command_is_skipped_once_the_container_is_removed(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().sh("sleep 0.3; exit 3"));
    let marker = shim.dir.path().join("exit-command-ran");
    let script = format!("touch {}", marker.display());
    shim.spawn(&[
        "--exit-command",
        "/bin/sh",
        "--exit-command-arg",
        "-c",
        "--exit-command-arg",
        &script,
    ]);
    shim.start();
    let removing = shim.state().join(protocol::REMOVING_FILE);
    std::fs::write(&removing, "").unwrap();
    assert_eq!(shim.wait().exit_code, 3);
    let pid = shim.pid.expect("spawned");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "shim {pid} still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !marker.exists(),
        "the exit command ran for a container being removed"
    );
    std::fs::remove_file(&removing).unwrap();
    shim.assert_gone_and_clean();
}

/// The shim answers its waiters and ends its attach streams before it runs `RUNTIME
/// delete` (what `run --rm` waits for before it removes the container): with a runtime
/// whose `delete` takes a second, the stream's end comes while the shim still runs.
fn clients_see_the_end_before_the_runtime_delete(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().sh("echo out"));
    let wrapper = shim.dir.path().join("slow-delete-runtime");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = delete ] && sleep 1; done\nexec {} \"$@\"\n",
            rt.binary().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    shim.runtime = Some(wrapper);
    shim.spawn(&[]);
    let (stream, _) = shim.attach(false);
    // The wait is sent before the start, on a connection made before it: the shim reads
    // it first (a thread's `request` could come after the exit, and a wait that arrives
    // then is answered in the shim's next turn, after the delete).
    let mut waiter =
        hako_shim::sockpath::connect(&protocol::socket_path(&shim.state())).expect("connect");
    let mut line = serde_json::to_vec(&Request::Wait).unwrap();
    line.push(b'\n');
    waiter.write_all(&line).unwrap();
    shim.start();
    let out = read_to_end(stream);
    assert!(
        shim.state().join(protocol::SHIM_PID_FILE).exists(),
        "the attach stream ended only after the shim's RUNTIME delete"
    );
    assert_eq!(joined(&frames(&out), 1), "out\n");
    let mut reply = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut waiter), &mut reply).unwrap();
    match serde_json::from_str(&reply).unwrap() {
        Reply::Exited(e) => assert_eq!(e.exit_code, 0),
        other => panic!("wait: {other:?}"),
    }
    assert!(
        shim.state().join(protocol::SHIM_PID_FILE).exists(),
        "the waiter was answered only after the shim's RUNTIME delete"
    );
    assert_eq!(shim.wait().exit_code, 0);
    shim.assert_gone_and_clean();
}

fn always_restarts_until_stopped(rt: &Runtime) {
    let mut shim = Shim::new(rt, &Config::new().sh("echo run"));
    shim.spawn(&["--restart", "always"]);
    shim.start();
    // Exit 0 restarts too; wait for a couple of restarts, then stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match shim.request(&Request::State) {
            Reply::State(s) if s.restart_count >= 2 => break,
            Reply::State(_) => {}
            other => panic!("state: {other:?}"),
        }
        assert!(Instant::now() < deadline, "no restarts");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(shim.request(&Request::Stop { no_restart: true }), Reply::Ok);
    // Stopped while running or while waiting to restart: either way it stays down.
    let _ = rt.kill(&shim.id, "KILL");
    shim.assert_gone_and_clean();
    let last = protocol::read_exit(&shim.state()).unwrap().unwrap();
    let runs = shim
        .log_entries()
        .iter()
        .filter(|e| e["log"] == "run\n")
        .count();
    assert!(runs >= 3, "{runs} runs");
    assert!(last.restart_count >= 2, "{last:?}");
}

fn oom_kill_is_recorded(rt: &Runtime) {
    let config = Config::new()
        .args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"])
        .edit(|j| {
            j["linux"]["resources"]["memory"] =
                serde_json::json!({"limit": 16 << 20, "swap": 16 << 20});
        });
    let mut shim = Shim::new(rt, &config);
    shim.spawn(&[]);
    shim.start();
    let exit = shim.wait();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    assert!(exit.oom_killed, "{exit:?}");
    shim.assert_gone_and_clean();
}

fn slow_client_is_dropped(rt: &Runtime) {
    // 4 MiB on one line: 256 partial log entries; far more than a client may have pending.
    let config = Config::new().sh("dd if=/dev/zero bs=1M count=4 2>/dev/null | tr '\\0' a");
    let mut shim = Shim::new(rt, &config);
    shim.spawn(&["--log-max-size", "1000000", "--log-max-file", "2"]);
    let (stuck, _) = shim.attach(false);
    shim.start();
    // The container is not held up by a client that never reads.
    assert_eq!(shim.wait().exit_code, 0);
    shim.assert_gone_and_clean();
    let got = read_to_end(stuck).len();
    assert!(
        got < 4 << 20,
        "the stuck client got everything ({got} bytes)"
    );
    let logged: usize = ["container.log", "container.log.1"]
        .iter()
        .flat_map(|n| read_entries(&shim.log().with_file_name(n)))
        .map(|e| e["log"].as_str().unwrap().len())
        .sum();
    assert!(logged > 0 && logged <= 4 << 20);
}
