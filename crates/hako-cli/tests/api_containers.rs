//! `docker cp` (both ways, files, directories, `dir/.`, symlinks with and without `-L`,
//! into a volume, to and from a tar stream), `docker port`, `docker commit` and `docker
//! update` through `hako serve`.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::Hako;
use common::serve::{Server, have_docker};

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
    s.ok(&["update", "--restart", "on-failure:2", "rp"]);
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "rp"])
            .trim(),
        "on-failure"
    );
    s.ok(&["exec", "rp", "rm", "/ready"]);
    s.ok(&["exec", "rp", "kill", "1"]);
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
    s.ok(&["exec", "rp", "kill", "1"]);
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
