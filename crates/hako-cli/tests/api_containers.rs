//! `docker cp` (both ways, files, directories, `dir/.`, symlinks with and without `-L`,
//! into a volume, to and from a tar stream), `docker port`, `docker commit` and `docker
//! update` through `hako serve`.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::serve::{Server, have_docker};
use common::{Hako, mounted};

#[test]
fn docker_cp_port_commit_and_update_through_hako_serve() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    let host = tempfile::tempdir().expect("host dir");
    let hp = |p: &str| host.path().join(p);
    let hs = |p: &str| hp(p).to_str().expect("utf-8").to_string();
    s.ok(&[
        "run",
        "-d",
        "--name",
        "f1",
        "-p",
        "18090:80",
        "-v",
        "vol1:/data",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; mkdir -p /srv/d/sub; echo a > /srv/d/a; echo b > /srv/d/sub/b; \
         ln -s /srv/d/a /srv/link; echo vol > /data/v; touch /ready; sleep 1000 & wait",
    ]);
    h.wait_for("the container's files", || {
        s.run(&["exec", "f1", "test", "-e", "/ready"])
            .status
            .success()
    });

    // Out of the container.
    s.ok(&["cp", "f1:/srv/d/a", &hs("a")]);
    assert_eq!(std::fs::read_to_string(hp("a")).expect("a"), "a\n");
    s.ok(&["cp", "f1:/srv/d", &hs("d")]);
    assert_eq!(
        std::fs::read_to_string(hp("d/sub/b")).expect("d/sub/b"),
        "b\n"
    );
    s.ok(&["cp", "f1:/srv/d/.", &hs("e")]);
    assert_eq!(std::fs::read_to_string(hp("e/a")).expect("e/a"), "a\n");
    assert!(hp("e/sub/b").is_file());
    s.ok(&["cp", "f1:/srv/link", &hs("l")]);
    assert_eq!(
        std::fs::read_link(hp("l")).expect("a symlink").to_str(),
        Some("/srv/d/a")
    );
    s.ok(&["cp", "-L", "f1:/srv/link", &hs("lf")]);
    // The whole root: dockerd names the entries `/`, `/bin/`, ...; the client makes the
    // destination the root's copy.
    s.ok(&["cp", "f1:/", &hs("root")]);
    assert_eq!(
        std::fs::read_to_string(hp("root/srv/d/a")).expect("root/srv/d/a"),
        "a\n"
    );
    let o = s
        .docker(&["cp", "f1:/", "-"])
        .output()
        .expect("docker cp f1:/ -");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut tar = tar::Archive::new(&o.stdout[..]);
    let first: Vec<Vec<u8>> = tar
        .entries()
        .expect("a tar")
        .take(2)
        .map(|e| e.expect("entry").path_bytes().into_owned())
        .collect();
    assert_eq!(first[0], b"/", "{first:?}");
    assert!(
        first[1].starts_with(b"/") && first[1].len() > 1,
        "{first:?}"
    );
    assert_eq!(std::fs::read_to_string(hp("lf")).expect("lf"), "a\n");
    let o = s.run(&["cp", "f1:/data/v", "-"]);
    assert!(o.status.success(), "{o:?}");
    let mut tar = tar::Archive::new(&o.stdout[..]);
    let names: Vec<String> = tar
        .entries()
        .expect("a tar")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["v"]);
    let o = s.run(&["cp", "f1:/nope", &hs("x")]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Could not find the file /nope"),
        "{o:?}"
    );

    // Into the container: a file into a directory, to a new name, a directory into a
    // volume, a tar from stdin; owned by root without -a.
    std::fs::write(hp("up.txt"), "hello\n").expect("write");
    std::fs::create_dir_all(hp("dir/in")).expect("mkdir");
    std::fs::write(hp("dir/in/f"), "deep\n").expect("write");
    s.ok(&["cp", &hs("up.txt"), "f1:/srv/"]);
    s.ok(&["cp", &hs("up.txt"), "f1:/srv/renamed.txt"]);
    s.ok(&["cp", &hs("dir"), "f1:/data/"]);
    let mut child = s
        .docker(&["cp", "-", "f1:/srv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker cp -");
    {
        let mut b = tar::Builder::new(child.stdin.take().expect("stdin"));
        let mut hdr = tar::Header::new_gnu();
        hdr.set_size(4);
        hdr.set_mode(0o640);
        hdr.set_uid(1234);
        hdr.set_gid(1234);
        hdr.set_mtime(1_600_000_000);
        hdr.set_cksum();
        b.append_data(&mut hdr, "fromtar", &b"tar\n"[..])
            .expect("tar entry");
        b.into_inner().expect("tar end").flush().expect("flush");
    }
    let o = child.wait_with_output().expect("docker cp -");
    assert!(o.status.success(), "{o:?}");
    let seen = s.ok(&[
        "exec",
        "f1",
        "sh",
        "-c",
        "cat /srv/up.txt /srv/renamed.txt /data/dir/in/f /srv/fromtar; stat -c '%u %a' /srv/up.txt",
    ]);
    assert_eq!(seen, "hello\nhello\ndeep\ntar\n0 644\n");
    let o = s.run(&["cp", &hs("up.txt"), "f1:/nodir/x"]);
    assert!(!o.status.success(), "no such directory: {o:?}");
    // A file over a directory through the API (docker-py's put_archive sends no
    // noOverwriteDirNonDir): refused with the flag, the directory replaced without, as dockerd.
    let file_tar = one_file_tar("d", b"file\n");
    let put = |flag: &str| {
        let mut c = std::os::unix::net::UnixStream::connect(&s.sock).expect("connect");
        let head = format!(
            "PUT /v1.50/containers/f1/archive?path=/srv{flag} HTTP/1.0\r\nHost: hako\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
            file_tar.len()
        );
        c.write_all(head.as_bytes()).expect("request");
        c.write_all(&file_tar).expect("body");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    };
    let refused = put("&noOverwriteDirNonDir=1");
    assert!(
        refused.starts_with("HTTP/1.0 400") || refused.starts_with("HTTP/1.1 400"),
        "{refused}"
    );
    assert_eq!(
        s.ok(&["exec", "f1", "cat", "/srv/d/sub/b"]),
        "b\n",
        "the directory stays"
    );
    let replaced = put("");
    assert!(replaced.contains(" 200 OK"), "{replaced}");
    assert_eq!(s.ok(&["exec", "f1", "cat", "/srv/d"]), "file\n");

    // port: from inspect's NetworkSettings.Ports.
    let ports = s.ok(&["port", "f1"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:18090"), "{ports}");
    assert!(s.ok(&["port", "f1", "80"]).contains("0.0.0.0:18090"));

    // commit: the container's changes and a --change, then a container of the image.
    let id = s.ok(&[
        "commit",
        "-c",
        "ENV COMMITTED=yes",
        "-m",
        "by the test",
        "f1",
        "snap:v1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let out = s.ok(&[
        "run",
        "--rm",
        "snap:v1",
        "sh",
        "-c",
        "cat /srv/up.txt; echo $COMMITTED",
    ]);
    assert_eq!(out, "hello\nyes\n");
    let comment = s.ok(&["image", "inspect", "snap:v1", "--format", "{{.Comment}}"]);
    assert_eq!(comment.trim(), "by the test");
    let o = s.run(&["commit", "ghost", "x:y"]);
    assert!(!o.status.success());
    // A config in the body (docker-py's `conf`, bollard's config): merged with the
    // container's own as dockerd merges it, `changes` last; a wrong type is a 400.
    let (status, body) = s.http(
        "POST",
        "/v1.50/commit?container=f1&repo=snap&tag=conf&changes=ENV%20LAST%3D1",
        r#"{"Env": ["FROM_CONF=1"], "Cmd": ["sh", "-c", "echo $FROM_CONF$LAST $PATH"],
            "Labels": {"made-by": "conf"}, "ExposedPorts": {"7000/udp": {}},
            "WorkingDir": "/srv", "Hostname": "ignored"}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        s.ok(&["run", "--rm", "snap:conf"]).trim(),
        "11 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "the body's env and command, the change, the container's PATH"
    );
    let seen = s.ok(&[
        "image",
        "inspect",
        "snap:conf",
        "--format",
        "{{.Config.Labels}} {{.Config.ExposedPorts}} {{.Config.WorkingDir}} {{json .Config}}",
    ]);
    assert!(
        seen.starts_with("map[made-by:conf] map[7000/udp:{}] /srv {") && !seen.contains("ignored"),
        "{seen}"
    );
    let (status, body) = s.http(
        "POST",
        "/v1.50/commit?container=f1&repo=snap&tag=bad",
        r#"{"Env": "x"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid JSON"), "{body}");
    s.ok(&["rmi", "snap:conf"]);

    // update: the running container's cgroup changes now, the record keeps it.
    s.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--cpus",
        "0.5",
        "f1",
    ]);
    let limit = s.ok(&[
        "exec",
        "f1",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(limit.trim(), "67108864");
    let kept = s.ok(&[
        "inspect",
        "f1",
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
    ]);
    assert_eq!(kept.trim(), "67108864 500000000");
    let o = s.run(&["update", "--memory", "1k", "f1"]);
    assert!(
        !o.status.success(),
        "a limit below the minimum is refused: {o:?}"
    );

    s.ok(&["rm", "-f", "f1"]);
    s.ok(&["rmi", "snap:v1"]);
    s.ok(&["volume", "rm", "vol1"]);
    drop(s);
    h.finish(&[]);
}

/// `docker update --restart` on a running container applies at once, as dockerd's monitor
/// follows it: the next exit restarts it (on-failure), and back to `no` it stays down.
/// A tar reader stops at the end-of-archive block, and the client may still be sending
/// what follows it (Go's second zero block, padding): the server reads that too, so the
/// answer arrives and the connection lives on. Before, it was reset now and then, and
/// `docker cp` failed with "broken pipe" (once in CI).
#[test]
fn an_upload_is_read_to_its_end_and_the_connection_lives_on() {
    need_root!();
    let h = Hako::new();
    let s = Server::start(&h);
    let id = h
        .ok(&["create", "--name", "up", "busybox", "true"])
        .trim()
        .to_string();
    let mut body = one_file_tar("up.txt", b"up\n");
    // The reader's end: the archive's first zero block; the rest comes in two parts later.
    let end = body.len() - 512;
    body.resize(body.len() + 64 * 1024, 0);
    let (early, late) = body.split_at(end);
    let (late1, late2) = late.split_at(late.len() / 2);

    let mut c = std::os::unix::net::UnixStream::connect(&s.sock).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let put = format!(
        "PUT /v1.47/containers/up/archive?path=%2Fetc HTTP/1.1\r\nHost: hako\r\n\
         Content-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(put.as_bytes()).expect("write the request");
    c.write_all(early).expect("write the archive");
    for part in [late1, late2] {
        std::thread::sleep(Duration::from_millis(300));
        c.write_all(part)
            .expect("write the padding: the server must still be reading");
    }
    c.write_all(b"GET /_ping HTTP/1.1\r\nHost: hako\r\nConnection: close\r\n\r\n")
        .expect("a second request on the same connection");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read both answers");
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "the upload's answer: {out:?}"
    );
    assert_eq!(
        out.matches("HTTP/1.1 200").count(),
        2,
        "two answers on one connection: {out:?}"
    );
    assert!(out.ends_with("OK"), "the ping's answer: {out:?}");
    let o = h.ok(&["cp", "up:/etc/up.txt", "-"]);
    assert!(o.contains("up.txt"), "the uploaded file: {o:?}");
    drop(s);
    h.finish(&[&id]);
}

#[test]
fn a_new_restart_policy_applies_to_the_running_container() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    let id = s
        .ok(&[
            "run",
            "-d",
            "--name",
            "rp",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 3' TERM; touch /ready; while :; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    let ready = || {
        h.wait_for("the container's trap", || {
            s.run(&["exec", "rp", "test", "-e", "/ready"])
                .status
                .success()
        });
    };
    ready();
    // `kill 1` makes init run its trap and exit; the exec'd `kill` may still be in the pid
    // namespace when the kernel tears it down (SIGKILL: 137), as it may with dockerd.
    let kill_init = || {
        let o = s.run(&["exec", "rp", "kill", "1"]);
        assert!(
            matches!(o.status.code(), Some(0 | 137)),
            "docker exec rp kill 1: {o:?}"
        );
    };
    s.ok(&["update", "--restart", "on-failure:2", "rp"]);
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "rp"])
            .trim(),
        "on-failure"
    );
    s.ok(&["exec", "rp", "rm", "/ready"]);
    kill_init();
    h.wait_for("the restart by the new policy", || {
        s.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Running}}",
            "rp",
        ])
        .trim()
            == "1 true"
    });
    ready();
    s.ok(&["update", "--restart", "no", "rp"]);
    kill_init();
    h.wait_for("the exit", || {
        s.ok(&["inspect", "-f", "{{.State.Status}}", "rp"]).trim() == "exited"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        s.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
            "rp"
        ])
        .trim(),
        "1 exited 3",
        "no restart under the policy set back to no"
    );
    drop(s);
    h.finish(&[&id]);
}

/// `attach` with `logs=1` streams the log as it reads it: a 32 MiB log goes through
/// without the server holding it (its peak RSS, reset before, grows far less than the log).
#[test]
fn attach_with_logs_streams_the_log_without_holding_it() {
    need_root!();
    if !have_docker() {
        return;
    }
    const SIZE: usize = 32 << 20;
    let h = Hako::new();
    let s = Server::start(&h);
    s.ok(&[
        "run",
        "-d",
        "--name",
        "big",
        "busybox",
        "sh",
        "-c",
        &format!("head -c {SIZE} /dev/zero | tr '\\0' x"),
    ]);
    assert_eq!(s.ok(&["wait", "big"]).trim(), "0");
    let status = format!("/proc/{}/status", s.pid());
    let hwm = || {
        std::fs::read_to_string(&status)
            .expect("status")
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
    };
    // Peak RSS back to the current RSS.
    std::fs::write(format!("/proc/{}/clear_refs", s.pid()), "5").expect("clear_refs");
    let before = hwm();
    let mut c = std::os::unix::net::UnixStream::connect(&s.sock).expect("connect");
    c.write_all(
        // HTTP/1.0: the body ends with the connection (no chunk framing to undo).
        b"POST /v1.50/containers/big/attach?logs=1&stdout=1 HTTP/1.0\r\nHost: hako\r\n\r\n",
    )
    .expect("request");
    let mut r = std::io::BufReader::new(c);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        r.read_exact(&mut b).expect("headers");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // Read slowly at first: a server that streams has only a channel's worth in flight.
    std::thread::sleep(Duration::from_secs(1));
    // stdcopy frames: 8-byte header (stream, 0, 0, 0, length BE), then the payload.
    let mut total = 0usize;
    let mut hdr = [0u8; 8];
    let mut payload = Vec::new();
    while r.read_exact(&mut hdr).is_ok() {
        assert_eq!(hdr[0], 1, "stdout frames only");
        let len = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
        payload.resize(len, 0);
        r.read_exact(&mut payload).expect("a whole frame");
        assert!(payload.iter().all(|b| *b == b'x'), "the log's bytes");
        total += len;
    }
    assert_eq!(total, SIZE, "every byte of the log replayed");
    let grown = hwm().saturating_sub(before);
    assert!(
        grown < 12 << 10,
        "hako serve's peak RSS grew {grown} kB replaying a {} kB log",
        SIZE >> 10
    );
    s.ok(&["rm", "big"]);
    drop(s);
    h.finish(&[]);
}

/// A tar of one regular file, owned by root, mode 0644.
fn one_file_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut hdr = tar::Header::new_gnu();
    hdr.set_size(data.len() as u64);
    hdr.set_mode(0o644);
    hdr.set_uid(0);
    hdr.set_gid(0);
    hdr.set_mtime(1_600_000_000);
    hdr.set_cksum();
    b.append_data(&mut hdr, name, data).expect("tar entry");
    b.into_inner().expect("tar")
}

/// A container created through the API stays mounted for the start Docker clients send
/// next (and `docker run` works from it), but not for long when no start comes.
#[test]
fn a_created_container_is_made_ready_for_its_start_only() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    let merged_dir = |c: &str| {
        h.inspect(c)["GraphDriver"]["Data"]["MergedDir"]
            .as_str()
            .expect("MergedDir")
            .to_string()
    };
    let shim_pid = |id: &str| {
        std::fs::read_to_string(h.exec_root().join("containers").join(id).join("shim.pid"))
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_string))
            .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    let netns = |id: &str| h.exec_root().join("netns").join(id).exists();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };
    let since = now().to_string();
    let id = s.ok(&["create", "--name", "idle", "busybox", "echo", "ran"]);
    let id = id.trim();
    let merged = merged_dir(id);
    assert!(
        mounted(&merged),
        "create unmounted {merged} before the start"
    );
    // The server makes its start ahead (the network, the shim, the runtime's create: a
    // Docker client starts what it creates at once); nothing runs.
    h.wait_for("the shim made ahead", || shim_pid(id).is_some());
    assert!(netns(id), "no network namespace made ahead");
    assert_eq!(h.inspect("idle")["State"]["Status"], "created");
    // Two seconds on with no start: the shim, its namespace and the root filesystem's
    // mount are gone, as `hako create` leaves a container.
    std::thread::sleep(Duration::from_secs(1));
    h.wait_for("the unstarted container's unmount", || !mounted(&merged));
    assert!(shim_pid(id).is_none(), "the shim made ahead still runs");
    assert!(!netns(id), "the network namespace made ahead is left");
    assert_eq!(h.inspect("idle")["State"]["Status"], "created");
    assert_eq!(h.inspect("idle")["State"]["ExitCode"], 0);
    // Of all that, the events say nothing (no connect, no die, no disconnect).
    let events = |h: &Hako| {
        h.ok(&[
            "events",
            "--since",
            &since,
            "--until",
            &(now() + 1).to_string(),
            "--filter",
            "type=container",
            "--filter",
            "type=network",
            "--format",
            "{{.Type}} {{.Action}}",
        ])
    };
    assert_eq!(events(&h), "container create\n");
    // An `--rm` container's made-ahead shim ends without removing it.
    s.ok(&[
        "create", "--rm", "--name", "idle2", "busybox", "echo", "ran2",
    ]);
    h.wait_for("the second unmount", || !mounted(&merged_dir("idle2")));
    assert_eq!(h.inspect("idle2")["State"]["Status"], "created");
    // Its start mounts it again and runs, with Docker's events.
    assert_eq!(s.ok(&["start", "-a", "idle"]), "ran\n");
    assert_eq!(h.inspect("idle")["State"]["ExitCode"], 0);
    assert_eq!(s.ok(&["start", "-a", "idle2"]), "ran2\n");
    h.wait_for("idle2's removal", || {
        h.ok(&["ps", "-aq"]).lines().count() == 1
    });
    let seen = events(&h);
    let idle: Vec<&str> = seen.lines().skip(1).take(1).collect();
    assert_eq!(idle, ["container create"], "{seen}");
    assert!(
        seen.contains("network connect\ncontainer attach\ncontainer start\ncontainer die\nnetwork disconnect\n"),
        "{seen}"
    );
    // A start before the deadline finds it mounted; the deadline leaves a started (and
    // exited) container alone, and `run --rm` leaves nothing.
    assert_eq!(
        s.ok(&["run", "--name", "busy", "busybox", "echo", "hi"]),
        "hi\n"
    );
    let merged = merged_dir("busy");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!mounted(&merged), "an exited container stayed mounted");
    assert_eq!(s.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    drop(s);
    h.finish(&["idle", "busy"]);
}

/// The server's start of a container it made ready skips the look at its state; one that
/// another process (`hako start`) started meanwhile is not started twice or torn down:
/// `docker start` answers as for any running container, which keeps running with its
/// network, and a `start` event is sent once.
#[test]
fn a_container_made_ready_and_started_by_another_process_is_left_running() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let id = s.ok(&["create", "busybox", "sleep", "300"]);
    let id = id.trim();
    let shim = h.exec_root().join("containers").join(id).join("shim.pid");
    h.wait_for("the shim made ahead", || shim.exists());
    h.ok(&["start", id]);
    assert_eq!(s.ok(&["start", id]).trim(), id);
    assert_eq!(h.inspect(id)["State"]["Status"], "running");
    let ip = h.inspect(id)["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!ip.is_empty(), "no address left");
    let addr = h.ok(&["exec", id, "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains(&ip), "{addr}");
    let starts = h.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 1)
        .to_string(),
        "--filter",
        "event=start",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(starts.lines().count(), 1, "{starts}");
    drop(s);
    h.finish(&[id]);
}

/// A `wait?condition=next-exit` made before the start sees the exit of a run it never saw
/// (here a `hako start` by another process, whose spawn does not wake the server's waiter,
/// of a container that exits at once): before, the waiter, having never seen it running,
/// waited for a run to come for ever. Each round's wait must answer with the exit code.
#[test]
fn a_wait_made_before_the_start_sees_a_run_too_short_to_be_seen() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    for round in 0..6 {
        let name = format!("short{round}");
        let id = s.ok(&["create", "--name", &name, "busybox", "sh", "-c", "exit 3"]);
        let path = format!("/containers/{}/wait?condition=next-exit", id.trim());
        std::thread::scope(|scope| {
            let waited = scope.spawn(|| s.http("POST", &path, ""));
            // The wait is registered (its headers would go out) before the start.
            std::thread::sleep(Duration::from_millis(200));
            h.ok(&["start", &name]);
            let (status, body) = waited.join().expect("the wait");
            assert_eq!(status, 200, "round {round}: {body}");
            assert!(body.contains("\"StatusCode\":3"), "round {round}: {body}");
        });
        h.ok(&["rm", &name]);
    }
    drop(s);
    h.finish(&[]);
}

/// `wait?condition=removed` of an exited container that another caller removes answers
/// the container's exit code, as dockerd's does (it answered 0: the waiter had seen no
/// exit of its own).
#[test]
fn a_wait_for_the_removal_of_an_exited_container_answers_its_exit_code() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    let o = h.run(&["run", "--name", "gone", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    std::thread::scope(|scope| {
        let waited = scope.spawn(|| s.http("POST", "/containers/gone/wait?condition=removed", ""));
        // The wait is registered before the removal.
        std::thread::sleep(Duration::from_millis(300));
        h.ok(&["rm", "gone"]);
        let (status, body) = waited.join().expect("the wait");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"StatusCode\":3"), "{body}");
    });
    drop(s);
    h.finish(&[]);
}
