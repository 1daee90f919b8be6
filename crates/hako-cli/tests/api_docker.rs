//! `hako serve` driven by the stock `docker` CLI (its own root, exec root and socket), plus
//! raw HTTP for what the CLI never sends: unknown endpoints, bad versions, bad bodies,
//! clients that leave mid-stream, and a server killed with SIGKILL.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Hako;
use common::pty::Pty;
use common::serve::{Server, have_docker};
use serde_json::Value;

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn the_docker_cli_drives_hako_serve() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    let v = s.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(v.trim(), "1.50 linux");
    assert!(
        s.ok(&["info", "--format", "{{.Driver}}"]).trim() == "overlay2"
            || s.ok(&["info", "--format", "{{.Driver}}"]).trim() == "vfs"
    );
    assert!(
        s.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .contains("busybox:latest")
    );
    // run: output, exit codes, --rm leaves nothing.
    assert_eq!(s.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    assert_eq!(
        s.run(&["run", "--rm", "busybox", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    let o = s.run(&["run", "--rm", "busybox", "nope"]);
    assert_eq!(
        o.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = s.run(&["run", "--rm", "nosuchimage"]);
    assert_ne!(o.status.code(), Some(0));
    // A detached container: the same one `hako ps` sees.
    let id = s
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "--label",
            "team=a",
            "busybox",
            "sh",
            "-c",
            // The trap first: a TERM that comes before it would be ignored (pid 1).
            "trap 'exit 0' TERM; echo started; while :; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(
        h.ok(&["ps", "-q"]).trim(),
        &id[..12],
        "one store for CLI and API"
    );
    assert_eq!(
        s.ok(&["ps", "--filter", "label=team=a", "--format", "{{.Names}}"])
            .trim(),
        "web"
    );
    assert!(
        s.ok(&["ps", "--filter", "label=team=b", "-q"])
            .trim()
            .is_empty()
    );
    h.wait_for("output", || s.ok(&["logs", "web"]) == "started\n");
    assert_eq!(
        s.ok(&["exec", "web", "sh", "-c", "echo $A $(pwd)"]),
        "1 /tmp\n"
    );
    assert_eq!(
        s.run(&["exec", "web", "sh", "-c", "exit 3"]).status.code(),
        Some(3)
    );
    s.ok(&["exec", "-d", "web", "touch", "/made"]);
    h.wait_for("exec -d", || {
        s.run(&["exec", "web", "test", "-e", "/made"])
            .status
            .success()
    });
    assert_eq!(
        s.ok(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.Config.WorkingDir}}",
            "web"
        ])
        .trim(),
        "running /tmp"
    );
    assert!(s.ok(&["top", "web"]).contains("sleep") || s.ok(&["top", "web"]).contains("sh"));
    assert!(
        s.ok(&["stats", "--no-stream", "--format", "{{.Name}}", "web"])
            .contains("web")
    );
    s.ok(&["pause", "web"]);
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.State.Status}}", "web"]).trim(),
        "paused"
    );
    s.ok(&["unpause", "web"]);
    s.ok(&["rename", "web", "web2"]);
    // A generous timeout: on a loaded machine the trap may take a while to run, and a
    // SIGKILL would make the exit codes below 137.
    s.ok(&["restart", "-t", "30", "web2"]);
    h.wait_for("the restarted shell", || {
        s.ok(&["logs", "web2"]) == "started\nstarted\n"
    });
    s.ok(&["stop", "-t", "30", "web2"]);
    assert_eq!(s.ok(&["wait", "web2"]).trim(), "0");
    assert_eq!(
        s.ok(&["ps", "-a", "--filter", "exited=0", "--format", "{{.Names}}"])
            .trim(),
        "web2"
    );
    // create + start -a
    s.ok(&["create", "--name", "later", "busybox", "echo", "from-later"]);
    assert_eq!(s.ok(&["start", "-a", "later"]), "from-later\n");
    // Events from the CLI, the shims and the server in one log. The docker CLI sends
    // `--until 0s` in whole seconds: the last second's events come after it, so wait.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let evs = s.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "container=web2",
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    ]);
    let all = s.ok(&["events", "--since", "0", "--until", "0s"]);
    assert!(
        !evs.is_empty() && evs.lines().all(|l| l == "0"),
        "{evs}\nall:\n{all}"
    );
    // Volumes.
    s.ok(&["volume", "create", "data"]);
    assert!(s.ok(&["volume", "ls", "-q"]).contains("data"));
    s.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/d",
        "busybox",
        "sh",
        "-c",
        "echo kept > /d/f",
    ]);
    assert_eq!(
        s.ok(&["run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/f"]),
        "kept\n"
    );
    // Images.
    s.ok(&["tag", "busybox", "mine:1"]);
    assert!(
        s.ok(&["image", "inspect", "-f", "{{.RepoTags}}", "mine:1"])
            .contains("mine:1")
    );
    assert!(!s.ok(&["history", "-q", "mine:1"]).trim().is_empty());
    let tar = h.root.path().join("img.tar");
    s.ok(&["save", "-o", tar.to_str().expect("path"), "mine:1"]);
    s.ok(&["rmi", "mine:1"]);
    assert!(
        s.ok(&["load", "-i", tar.to_str().expect("path")])
            .contains("mine:1")
    );
    s.ok(&["rmi", "mine:1"]);
    assert!(s.ok(&["system", "df"]).contains("Images"));
    // rm -f, and nothing left.
    s.ok(&["rm", "-f", "web2", "later"]);
    s.ok(&["volume", "rm", "data"]);
    assert!(s.ok(&["ps", "-aq"]).trim().is_empty());
    // What the CLI never sends.
    let (code, body) = s.http("GET", "/v1.50/nope", "");
    assert_eq!(code, 404, "{body}");
    assert!(serde_json::from_str::<Value>(&body).expect("json")["message"].is_string());
    let (code, body) = s.http("GET", "/v1.99/version", "");
    assert_eq!(code, 400);
    assert!(body.contains("too new"), "{body}");
    let (code, _) = s.http("GET", "/v1.12/version", "");
    assert_eq!(code, 400);
    let (code, body) = s.http("HEAD", "/_ping", "");
    assert_eq!((code, body.as_str()), (200, ""));
    let (code, body) = s.http("GET", "/v1.41/_ping", "");
    assert_eq!((code, body.as_str()), (200, "OK"));
    let (code, body) = s.http("POST", "/containers/create", "{\"Image\": 5}");
    assert_eq!(code, 400, "{body}");
    let (code, _) = s.http(
        "POST",
        "/containers/create",
        "{\"Image\":\"busybox\",\"HostConfig\":{\"Runtime\":\"/bin/sh\"}}",
    );
    assert_eq!(code, 400, "a runtime path is refused");
    let (code, _) = s.http("GET", "/containers/nope/json", "");
    assert_eq!(code, 404);
    // A build without a context (the builder exists since POST /build landed): an error.
    let (code, body) = s.http("POST", "/build", "");
    assert!((400..600).contains(&code), "{code} {body}");
    drop(s);
    h.finish(&[]);
}

#[test]
fn docker_run_it_gets_a_terminal_through_the_api() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    // The size is the terminal's from the first instruction on (the CLI sends it as
    // HostConfig.ConsoleSize at create; its resize after the start comes too late for a
    // program that reads it at once). Three runs: without it, about half read 0 rows.
    for _ in 0..3 {
        let mut t = Pty::spawn(&s.docker(&["run", "-it", "--rm", "busybox", "stty", "size"]));
        t.expect("24 80");
        let (status, _) = t.wait();
        assert!(status.success());
    }
    let mut t = Pty::spawn(&s.docker(&["run", "-it", "--name", "tty", "busybox", "sh"]));
    t.expect("# ");
    t.send(b"stty size; echo $((6*7))\r");
    t.expect("24 80");
    t.expect("42");
    // Detach keys, then attach again.
    t.send(b"\x10\x11");
    let (status, _) = t.wait();
    assert!(status.success());
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.State.Running}}", "tty"]).trim(),
        "true"
    );
    let mut t = Pty::spawn(&s.docker(&["exec", "-it", "tty", "sh", "-c", "tty; exit 3"]));
    t.expect("/dev/pts");
    let (status, _) = t.wait();
    assert_eq!(status.code(), Some(3));
    let mut t = Pty::spawn(&s.docker(&["attach", "tty"]));
    t.send(b"echo back\r");
    t.expect("back");
    t.send(b"exit 5\r");
    let (status, _) = t.wait();
    assert_eq!(status.code(), Some(5));
    s.ok(&["rm", "tty"]);
    drop(s);
    h.finish(&[]);
}

/// `docker run --rm` waits for the removal (`wait?condition=removed`), so the server removes
/// the container at its exit itself rather than leave it to the shim's exit command (a new
/// process whose start-up the client would wait for); a client that leaves, or a server
/// killed, leaves it to the exit command: nothing is left either way.
#[test]
fn run_rm_is_removed_by_the_server_or_else_by_the_exit_command() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let mut s = Server::start_with(&h, &["--log-level", "debug"]);
    // The server runs in a fresh image of hako (same pid, same arguments); what carried
    // its options there reaches no child.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", s.pid())).expect("cmdline");
    assert!(
        String::from_utf8_lossy(&cmdline).contains("serve\0--host\0"),
        "{cmdline:?}"
    );
    let id = s.ok(&["run", "-d", "busybox", "sleep", "60"]);
    let shim = std::fs::read_to_string(
        h.exec_root()
            .join("containers")
            .join(id.trim())
            .join("shim.pid"),
    )
    .expect("shim.pid");
    let shim = shim.split_whitespace().next().expect("pid");
    let env = std::fs::read(format!("/proc/{shim}/environ")).expect("shim environ");
    assert!(
        !String::from_utf8_lossy(&env).contains("HAKO_SERVE_EXEC"),
        "the shim inherited the server's exec options"
    );
    // Start of a running container: 304; of a paused one: 409 (dockerd's answers).
    let start = format!("/containers/{}/start", id.trim());
    assert_eq!(s.http("POST", &start, "").0, 304);
    s.ok(&["pause", id.trim()]);
    let (code, body) = s.http("POST", &start, "");
    assert_eq!(code, 409, "{body}");
    s.ok(&["unpause", id.trim()]);
    s.ok(&["rm", "-f", id.trim()]);
    let before = std::fs::read_to_string(s.log()).expect("server log").len();
    assert_eq!(s.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    assert!(h.ok(&["ps", "-aq"]).trim().is_empty());
    let log = std::fs::read_to_string(s.log()).expect("server log")[before..].to_string();
    assert!(
        log.contains("rm: removal claimed"),
        "the server did not remove the container itself:\n{log}"
    );
    for kill_server in [false, true] {
        let mut run = s
            .docker(&["run", "--rm", "--name", "rm2", "busybox", "sleep", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker run");
        h.wait_for("rm2 to run", || {
            !h.ok(&["ps", "-q", "--filter", "name=rm2"])
                .trim()
                .is_empty()
        });
        if kill_server {
            s.kill9();
        } else {
            run.kill().expect("kill docker run");
        }
        let _ = run.wait();
        h.wait_for("the exit command to remove rm2", || {
            h.ok(&["ps", "-aq"]).trim().is_empty()
        });
        if kill_server {
            s.spawn();
        }
    }
    // `ps -a` no longer lists a container once its removal is claimed: the lock files go
    // at the removal's end, which may still be under way (a loaded machine); a leak stays.
    let locks = || -> Vec<std::ffi::OsString> {
        std::fs::read_dir(h.exec_root().join("locks"))
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !locks().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(locks().is_empty(), "lock files left: {:?}", locks());
    drop(s);
    h.finish(&[]);
}

#[test]
fn a_killed_server_loses_nothing_and_leaks_nothing() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let mut s = Server::start(&h);
    let id = s
        .ok(&[
            "run",
            "-d",
            "--name",
            "tick",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 0' TERM; i=0; while :; do echo $i; i=$((i+1)); sleep 0.1; done",
        ])
        .trim()
        .to_string();
    let mut follow = s
        .docker(&["logs", "-f", "tick"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    let mut attach = s
        .docker(&["attach", "--no-stdin", "tick"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("attach");
    std::thread::sleep(Duration::from_millis(500));
    s.kill9();
    // The clients see the end; the container does not.
    for c in [&mut follow, &mut attach] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "a client hung after the server died"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let lines = |h: &Hako| h.ok(&["logs", "tick"]).lines().count();
    let before = lines(&h);
    std::thread::sleep(Duration::from_millis(500));
    assert!(lines(&h) > before, "logs keep growing with no server");
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.Status}}", "tick"]).trim(),
        "running"
    );
    // A new server drives it.
    s.spawn();
    assert_eq!(s.ok(&["ps", "-q"]).trim(), &id[..12]);
    // Leaks: bad requests and clients that leave mid-stream, 1,000 of them.
    let pid = s.pid();
    let fds = || count(Path::new(&format!("/proc/{pid}/fd")));
    let tasks = || count(Path::new(&format!("/proc/{pid}/task")));
    // Warm up the pools first.
    for _ in 0..20 {
        let _ = s.http("GET", "/containers/json", "");
    }
    std::thread::sleep(Duration::from_millis(500));
    let (fd0, task0) = (fds(), tasks());
    for i in 0..1000 {
        match i % 5 {
            0 => {
                let (c, _) = s.http("POST", "/containers/create", "{\"Image\":");
                assert_eq!(c, 400);
            }
            1 => {
                let (c, _) = s.http(
                    "POST",
                    "/containers/create?name=x",
                    "{\"Image\":\"busybox\",\"Cmd\":\"nope\"}",
                );
                assert_eq!(c, 400);
            }
            2 => {
                // A body cut off: the length promises more than comes.
                let mut st = UnixStream::connect(&s.sock).expect("connect");
                let _ = st.write_all(b"POST /containers/create HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n{\"Im");
            }
            3 => {
                // logs -f, then gone.
                let mut st = UnixStream::connect(&s.sock).expect("connect");
                let _ = st.write_all(
                    b"GET /containers/tick/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                );
                let mut buf = [0u8; 64];
                let _ = st.read(&mut buf);
            }
            _ => {
                // events, then gone.
                let mut st = UnixStream::connect(&s.sock).expect("connect");
                let _ = st.write_all(b"GET /events HTTP/1.1\r\nHost: h\r\n\r\n");
                let mut buf = [0u8; 64];
                let _ = st.read(&mut buf);
            }
        }
    }
    // Streams notice their client is gone within a poll interval.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (f, t) = (fds(), tasks());
        if f <= fd0 + 2 && t <= task0 + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leak: fds {fd0} -> {f}, tasks {task0} -> {t}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        s.ok(&["version", "--format", "{{.Server.APIVersion}}"])
            .trim(),
        "1.50"
    );
    s.ok(&["stop", "-t", "5", "tick"]);
    assert_eq!(s.ok(&["wait", "tick"]).trim(), "0");
    s.ok(&["rm", "tick"]);
    drop(follow);
    drop(attach);
    drop(s);
    h.finish(&[&id]);
}

/// The resident kB of `pid`'s own code (the `r-xp` mappings of its executable).
fn code_rss_kb(pid: i32) -> u64 {
    hako_sys::malloc::code_rss_kb(Some(pid)).expect("smaps")
}

/// An idle server gives back the pages of its own code (the kernel maps code in 64 KB
/// chunks, so a few requests make nearly all of it resident) a few seconds after its
/// last request, and maps back what the next request runs.
#[test]
fn an_idle_server_gives_its_code_pages_back() {
    need_root!();
    let h = Hako::new();
    let s = Server::start(&h);
    for path in [
        "/containers/json?all=1",
        "/images/json",
        "/info",
        "/volumes",
    ] {
        let (code, body) = s.http("GET", path, "");
        assert_eq!(code, 200, "{path}: {body}");
    }
    let busy = code_rss_kb(s.pid());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut idle = busy;
    while idle * 4 > busy && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        idle = code_rss_kb(s.pid());
    }
    assert!(
        idle * 4 <= busy,
        "code RSS after the requests {busy} kB, idle {idle} kB"
    );
    let (code, body) = s.http("GET", "/images/json", "");
    assert_eq!(code, 200, "{body}");
    assert!(
        code_rss_kb(s.pid()) > idle,
        "the next request maps code back"
    );
}

/// The processes in `server`'s network namespace (each test has its own) that are a shim
/// started ahead of need (`hako-shim --zygote-fd N PAD`) and detached already (not the
/// server's child any more: that first process exits once its child has detached).
fn zygotes_of(server: i32) -> Vec<i32> {
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    let theirs = ns(server);
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"hako-shim"))
            && args.get(1) == Some(&b"--zygote-fd".as_slice())
            && theirs.is_some()
            && ns(pid) == theirs
            && parent(pid).is_some_and(|p| p != server)
        {
            out.push(pid);
        }
    }
    out
}

/// `pid`'s parent.
fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` runs (not gone, not a zombie).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// `hako serve` keeps a shim started ahead of need (`hako_engine`'s zygote): the next
/// container's shim is that very process, its command line now the one a spawned shim
/// has (what `ps`, the network's release and `system check` read); a new zygote follows;
/// and the zygote ends when the server does, even by SIGKILL.
#[test]
fn a_zygote_shim_becomes_the_next_shim_and_ends_with_the_server() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let mut s = Server::start(&h);
    let server = s.pid();
    h.wait_for("a zygote shim", || zygotes_of(server).len() == 1);
    let z = zygotes_of(server)[0];
    // Its image is on a read-only mount (so it may create containers in a fork of itself,
    // where the init runs that image until it executes the container's program).
    let exe = nix::sys::statvfs::statvfs(format!("/proc/{z}/exe").as_str()).expect("statvfs");
    assert!(
        exe.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the zygote runs from a writable mount"
    );
    let id = s
        .ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let cmd = std::fs::read(format!("/proc/{z}/cmdline")).expect("the zygote's cmdline");
    let args: Vec<&[u8]> = cmd.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
    assert!(
        args.windows(2)
            .any(|w| w == [b"--id".as_slice(), id.as_bytes()]),
        "the container's shim is not the zygote: {}",
        String::from_utf8_lossy(&cmd)
    );
    let shim_pid =
        std::fs::read_to_string(h.exec_root().join("containers").join(&id).join("shim.pid"))
            .expect("shim.pid");
    // (`PID START_TIME`)
    assert_eq!(
        shim_pid.split_whitespace().next(),
        Some(z.to_string().as_str())
    );
    // It is the shim in every way: exec, logs, the exit code, removal with its network.
    assert_eq!(
        s.ok(&["exec", &id, "sh", "-c", "echo out; echo err >&2"]),
        "out\n"
    );
    h.wait_for("the next zygote", || {
        let now = zygotes_of(server);
        now.len() == 1 && now[0] != z
    });
    assert_eq!(s.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    s.ok(&["rm", "-f", &id]);
    assert!(!running(z), "the container's shim outlived its removal");
    h.wait_for("a zygote after the run", || zygotes_of(server).len() == 1);
    let last = zygotes_of(server)[0];
    s.kill9();
    h.wait_for("the zygote to end with its server", || !running(last));
    assert!(h.ok(&["ps", "-aq"]).trim().is_empty());
}
