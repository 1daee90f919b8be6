//! `top`, `stats`, `export`, `cp`, `port`, `volume`, `container prune`, `diff`, `commit`
//! and `info`, driven through the built `hako` binary with a throwaway `--root` and
//! `--exec-root`, real containers (hako-shim, hako-runtime) on an imported busybox image.
//! Results are checked from inside the containers and from the host; every test ends with
//! the leak check (no record, mount, cgroup, shim or container process left).
//!
//! The harness is in `common/mod.rs`, shared with `containers.rs`.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Hako;
use serde_json::Value;

/// Entry names of a tar file, `./` stripped.
fn tar_names(tar: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tf")
        .arg(tar)
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar -tf {}", tar.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect()
}

/// Every file below `dir` with its contents, for "the host did not change" checks.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .map(|e| {
            let data = std::fs::read(e.path()).unwrap_or_default();
            (e.path().to_path_buf(), data)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn top_shows_the_containers_processes() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["--name", "topper", "busybox", "sleep", "1234"], None);
    let out = h.ok(&["top", "topper"]);
    let mut lines = out.lines();
    let header = lines.next().expect("header");
    assert!(header.starts_with("UID "), "{out}");
    assert!(header.contains("PID") && header.ends_with("CMD"), "{out}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(rows[0].ends_with("sleep 1234"), "{out}");
    // The pid is the container's init as inspect reports it.
    let pid = h.inspect(&id)["State"]["Pid"].as_i64().expect("pid");
    assert!(
        rows[0].split_whitespace().nth(1) == Some(&pid.to_string()),
        "{out}"
    );
    // ps options pass through.
    let out = h.ok(&["top", "topper", "-o", "pid,comm"]);
    assert!(
        out.lines().nth(1).is_some_and(|l| l.ends_with("sleep")),
        "{out}"
    );
    h.fails(1, &["top", "nope"]);
    h.ok(&["stop", "-t", "1", "topper"]);
    assert!(h.fails(1, &["top", "topper"]).contains("is not running"));
    h.finish(&[&id]);
}

#[test]
fn stats_no_stream_reports_the_memory_limit() {
    need_root!();
    let h = Hako::new();
    let id = h.start(
        &["-m", "64m", "--name", "limited", "busybox", "sleep", "1000"],
        None,
    );
    let out = h.ok(&["stats", "--no-stream"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID")
            && lines[0].contains("CPU %")
            && lines[0].contains("MEM USAGE / LIMIT")
            && lines[0].ends_with("PIDS"),
        "{out}"
    );
    assert_eq!(lines.len(), 2, "one running container: {out}");
    assert!(lines[1].starts_with(&id[..12]), "{out}");
    assert!(lines[1].contains("limited"), "{out}");
    assert!(lines[1].contains(" / 64MiB"), "{out}");
    assert!(lines[1].trim_end().ends_with(" 1"), "one process: {out}");
    let j: Value = serde_json::from_str(
        h.ok(&["stats", "--no-stream", "--format", "json", "limited"])
            .trim(),
    )
    .expect("stats json");
    assert_eq!(j["Name"], "limited");
    assert!(
        j["CPUPerc"].as_str().is_some_and(|c| c.ends_with('%')),
        "{j}"
    );
    h.finish(&[&id]);
}

#[test]
fn export_holds_the_image_and_the_containers_writes() {
    need_root!();
    let h = Hako::new();
    let id = h.start(
        &[
            "busybox",
            "sh",
            "-c",
            "echo written > /written.txt; sleep 1000",
        ],
        Some("/written.txt"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("c.tar");
    h.ok(&["export", "-o", tar.to_str().expect("utf-8"), &id]);
    let names = tar_names(&tar);
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(names.iter().any(|n| n == "written.txt"), "{names:?}");
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("written.txt")
        .output()
        .expect("tar -x");
    assert_eq!(out.stdout, b"written\n");
    // To stdout, and from a stopped container too.
    h.ok(&["stop", "-t", "1", &id]);
    let o = h.run(&["export", &id]);
    assert!(o.status.success());
    let tar2 = dir.path().join("c2.tar");
    std::fs::write(&tar2, &o.stdout).expect("write");
    assert!(tar_names(&tar2).iter().any(|n| n == "written.txt"));
    h.fails(1, &["export", "nope"]);
    h.finish(&[&id]);
}

#[test]
fn cp_copies_both_ways_with_dockers_rules() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["--name", "cpy", "busybox", "sleep", "1000"], None);
    let host = tempfile::tempdir().expect("tempdir");
    let hp = |p: &str| host.path().join(p).to_str().expect("utf-8").to_string();
    std::fs::write(host.path().join("file.txt"), "from host\n").unwrap();
    std::fs::create_dir_all(host.path().join("tree/sub")).unwrap();
    std::fs::write(host.path().join("tree/sub/leaf"), "leaf\n").unwrap();

    // Host -> container: a file into a directory, as a new name, a dir into a dir, SRC/.
    h.ok(&["cp", &hp("file.txt"), "cpy:/tmp"]);
    assert_eq!(
        h.ok(&["exec", "cpy", "cat", "/tmp/file.txt"]),
        "from host\n"
    );
    h.ok(&["cp", &hp("file.txt"), "cpy:/tmp/renamed"]);
    assert_eq!(h.ok(&["exec", "cpy", "cat", "/tmp/renamed"]), "from host\n");
    h.ok(&["cp", &hp("tree"), "cpy:/tmp"]);
    assert_eq!(
        h.ok(&["exec", "cpy", "cat", "/tmp/tree/sub/leaf"]),
        "leaf\n"
    );
    h.ok(&["cp", &format!("{}/.", hp("tree")), "cpy:/tmp"]);
    assert_eq!(h.ok(&["exec", "cpy", "cat", "/tmp/sub/leaf"]), "leaf\n");
    h.ok(&["cp", &hp("tree"), "cpy:/newdir"]);
    assert_eq!(h.ok(&["exec", "cpy", "cat", "/newdir/sub/leaf"]), "leaf\n");
    // Files copied in belong to root (no -a).
    assert_eq!(
        h.ok(&["exec", "cpy", "stat", "-c", "%u:%g", "/tmp/file.txt"]),
        "0:0\n"
    );
    std::os::unix::fs::chown(host.path().join("file.txt"), Some(4321), Some(4321)).unwrap();
    h.ok(&["cp", "-a", &hp("file.txt"), "cpy:/tmp/kept"]);
    assert_eq!(
        h.ok(&["exec", "cpy", "stat", "-c", "%u:%g", "/tmp/kept"]),
        "4321:4321\n"
    );
    // A dangling link as the destination: the file lands where it points, in the container.
    h.ok(&["exec", "cpy", "ln", "-s", "/tmp/target", "/tmp/dangling"]);
    h.ok(&["cp", &hp("file.txt"), "cpy:/tmp/dangling"]);
    assert_eq!(h.ok(&["exec", "cpy", "cat", "/tmp/target"]), "from host\n");
    assert_eq!(
        h.ok(&["exec", "cpy", "readlink", "/tmp/dangling"]),
        "/tmp/target\n"
    );
    // Bad destinations.
    h.fails(1, &["cp", &hp("file.txt"), "cpy:/missing/dir/"]);
    h.fails(1, &["cp", &hp("tree"), "cpy:/tmp/file.txt"]);
    h.fails(1, &["cp", &hp("file.txt"), &hp("x")]);

    // Container -> host.
    h.ok(&[
        "exec",
        "cpy",
        "sh",
        "-c",
        "mkdir -p /out/d && echo inside > /out/d/f",
    ]);
    h.ok(&["cp", "cpy:/out/d/f", &hp("got")]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("got")).unwrap(),
        "inside\n"
    );
    h.ok(&["cp", "cpy:/out", &hp("")]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("out/d/f")).unwrap(),
        "inside\n"
    );
    h.ok(&["cp", "cpy:/out/.", &hp("flat")]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("flat/d/f")).unwrap(),
        "inside\n"
    );
    assert!(
        h.fails(1, &["cp", "cpy:/nope", &hp("")])
            .contains("Could not find the file /nope")
    );

    // Tar streams: to stdout, from stdin.
    let o = h.run(&["cp", "cpy:/out", "-"]);
    assert!(o.status.success());
    let t = host.path().join("out.tar");
    std::fs::write(&t, &o.stdout).unwrap();
    assert!(
        tar_names(&t).contains(&"out/d/f".to_string()),
        "{:?}",
        tar_names(&t)
    );
    let o = h.run_stdin(&["cp", "-", "cpy:/root"], &std::fs::read(&t).unwrap());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(h.ok(&["exec", "cpy", "cat", "/root/out/d/f"]), "inside\n");

    // A stopped container: its root filesystem is mounted for the copy.
    h.ok(&["stop", "-t", "1", "cpy"]);
    h.ok(&["cp", &hp("file.txt"), "cpy:/stopped.txt"]);
    h.ok(&["cp", "cpy:/stopped.txt", &hp("back.txt")]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("back.txt")).unwrap(),
        "from host\n"
    );
    h.ok(&["start", "cpy"]);
    assert_eq!(h.ok(&["exec", "cpy", "cat", "/stopped.txt"]), "from host\n");
    h.fails(1, &["cp", "cpy:/a", "cpy:/b"]);
    h.finish(&[&id]);
}

#[test]
fn cp_never_follows_a_container_symlink_onto_the_host() {
    need_root!();
    let h = Hako::new();
    // A host directory the container's symlinks point at by absolute and relative path.
    let secret = tempfile::Builder::new()
        .prefix("hako-secret-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::write(secret.path().join("secret"), "host secret\n").unwrap();
    let target = secret.path().to_str().expect("utf-8").to_string();
    let before = snapshot(secret.path());
    let marker = format!("hako-cp-{}", std::process::id());
    let script = format!(
        "ln -s {target} /evil && ln -s ../../../../../..{target} /tmp/up && ln -s /etc /etcl && sleep 1000"
    );
    let id = h.start(
        &["--name", "evil", "busybox", "sh", "-c", &script],
        Some("/etcl"),
    );
    let out = tempfile::tempdir().expect("tempdir");
    let op = |p: &str| out.path().join(p).to_str().expect("utf-8").to_string();
    std::fs::write(out.path().join(&marker), "payload\n").unwrap();

    // Reading through the links: the host file is never found.
    for src in ["evil:/evil/secret", "evil:/tmp/up/secret"] {
        h.fails(1, &["cp", src, &op("stolen")]);
        assert!(!out.path().join("stolen").exists(), "{src} read the host");
    }
    h.fails(1, &["cp", "-L", "evil:/evil", &op("stolen")]);
    assert!(!out.path().join("stolen").exists());
    // Without -L the link itself is copied, as a link.
    h.ok(&["cp", "evil:/evil", &op("link")]);
    assert_eq!(
        std::fs::read_link(out.path().join("link")).unwrap(),
        Path::new(&target)
    );
    // An absolute link resolves in the container: its /etc, not the host's.
    h.ok(&["cp", "evil:/etcl/passwd", &op("passwd")]);
    let passwd = std::fs::read_to_string(out.path().join("passwd")).unwrap();
    let fixture = hako_test_support::busybox_rootfs()
        .unwrap()
        .join("etc/passwd");
    assert_eq!(passwd, std::fs::read_to_string(fixture).unwrap());

    // Writing through the links: nothing lands on the host.
    for dest in ["evil:/evil/", "evil:/evil", "evil:/tmp/up/", "evil:/evil/x"] {
        let _ = h.run(&["cp", &op(&marker), dest]);
    }
    h.ok(&["cp", &op(&marker), "evil:/etcl/"]);
    assert_eq!(
        h.ok(&["exec", "evil", "cat", &format!("/etc/{marker}")]),
        "payload\n"
    );
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "wrote the host's /etc"
    );
    // A tar that plants a link and then writes through it, and one that climbs with `..`
    // (GNU tar's --transform names the entries; -P keeps the `..`).
    let work = out.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::os::unix::fs::symlink(&target, work.join("plant")).unwrap();
    std::fs::write(work.join("pwned"), "pwned\n").unwrap();
    let tar = out.path().join("evil.tar");
    let gnu = |args: &[&str]| {
        let st = Command::new("tar")
            .current_dir(&work)
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "tar {args:?}");
    };
    let t = tar.to_str().expect("utf-8");
    gnu(&["-cf", t, "plant"]);
    gnu(&["-rf", t, "--transform", "s,^pwned,plant/pwned,", "pwned"]);
    assert_eq!(tar_names(&tar), ["plant", "plant/pwned"]);
    let _ = h.run_stdin(&["cp", "-", "evil:/tmp"], &std::fs::read(&tar).unwrap());
    let climb = out.path().join("climb.tar");
    let c = climb.to_str().expect("utf-8");
    gnu(&[
        "-P",
        "-cf",
        c,
        "--transform",
        "s,^pwned,../../../../escape,",
        "pwned",
    ]);
    let raw = std::fs::read(&climb).unwrap();
    let o = h.run_stdin(&["cp", "-", "evil:/tmp"], &raw);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        snapshot(secret.path()),
        before,
        "the host directory changed"
    );
    assert!(!Path::new("/escape").exists() && !Path::new("/tmp/escape").exists());
    h.finish(&[&id]);
}

#[test]
fn port_lists_nothing_for_an_existing_container() {
    need_root!();
    let h = Hako::new();
    h.ok(&["create", "--name", "p", "busybox"]);
    assert_eq!(h.ok(&["port", "p"]), "");
    // The port as written, as the docker CLI names it.
    assert_eq!(
        h.fails(1, &["port", "p", "80"]),
        "Error: No public port '80' published for p"
    );
    assert!(
        h.fails(1, &["port", "nope"])
            .contains("No such container: nope")
    );
    let id = h
        .ok(&["inspect", "--format", "{{.Id}}", "p"])
        .trim()
        .to_string();
    h.finish(&[&id]);
}

#[test]
fn volume_lifecycle() {
    need_root!();
    let h = Hako::new();
    assert_eq!(
        h.ok(&["volume", "create", "--label", "team=a", "named"]),
        "named\n"
    );
    let anon = h.ok(&["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64);
    let ls = h.ok(&["volume", "ls"]);
    assert!(ls.starts_with("DRIVER    VOLUME NAME\n"), "{ls}");
    assert!(
        ls.contains("local     named\n") && ls.contains(&anon),
        "{ls}"
    );
    assert_eq!(
        h.ok(&["volume", "ls", "-q", "--filter", "label=team=a"]),
        "named\n"
    );
    assert_eq!(
        h.ok(&["volume", "ls", "-q", "--filter", "name=nam"]),
        "named\n"
    );
    let v: Value = serde_json::from_str(&h.ok(&["volume", "inspect", "named"])).unwrap();
    assert_eq!(v[0]["Name"], "named");
    assert_eq!(v[0]["Labels"]["team"], "a");
    let mp = h.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "named"]);
    assert!(Path::new(mp.trim()).is_dir(), "{mp}");

    // In use: rm fails, prune keeps it, the data is there from the host.
    let id = h.start(
        &[
            "-v",
            "named:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f; sleep 1000",
        ],
        Some("/data/f"),
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(mp.trim()).join("f")).unwrap(),
        "kept\n"
    );
    let err = h.fails(1, &["volume", "rm", "named"]);
    assert!(err.contains("volume is in use"), "{err}");
    assert_eq!(
        h.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
        format!("{anon}\n")
    );
    // Without -f the prompt decides.
    let o = h.run_stdin(&["volume", "prune"], b"n\n");
    assert!(o.status.success());
    assert!(h.ok(&["volume", "ls", "-q"]).contains(&anon));
    let out = h.ok(&["volume", "prune", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Volumes:\n{anon}\n\nTotal reclaimed space: "
        )),
        "{out}"
    );
    assert_eq!(h.ok(&["volume", "ls", "-q"]), "named\n");
    h.ok(&["rm", "-f", &id]);
    // Named volumes go only with -a.
    assert!(!h.ok(&["volume", "prune", "-f"]).contains("named"));
    assert!(h.ok(&["volume", "prune", "-f", "-a"]).contains("named\n"));
    assert_eq!(h.ok(&["volume", "ls", "-q"]), "");
    assert!(!Path::new(mp.trim()).exists());
    h.fails(1, &["volume", "rm", "named"]);
    h.ok(&["volume", "rm", "-f", "named"]);
    h.finish(&[&id]);
}

#[test]
fn container_prune_removes_only_stopped_containers() {
    need_root!();
    let h = Hako::new();
    let running = h.start(&["--name", "up", "busybox", "sleep", "1000"], None);
    let exited = h
        .ok(&["run", "-d", "--name", "done", "busybox", "true"])
        .trim()
        .to_string();
    h.ok(&["wait", "done"]);
    let created = h
        .ok(&["create", "--name", "new", "busybox"])
        .trim()
        .to_string();
    let labelled = h
        .ok(&["create", "--label", "keep=yes", "busybox"])
        .trim()
        .to_string();
    // "n" at the prompt: nothing happens.
    let o = h.run_stdin(&["container", "prune"], b"n\n");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Are you sure you want to continue? [y/N]")
    );
    assert_eq!(h.ok(&["ps", "-aq"]).lines().count(), 4);
    let out = h.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains(&exited) && out.contains(&created), "{out}");
    assert!(!out.contains(&running) && !out.contains(&labelled), "{out}");
    assert!(out.contains("\nTotal reclaimed space: "), "{out}");
    let left = h.ok(&["ps", "-aq", "--no-trunc"]);
    assert!(
        left.contains(&running) && left.contains(&labelled),
        "{left}"
    );
    assert_eq!(left.lines().count(), 2);
    h.finish(&[&running, &exited, &created, &labelled]);
}

#[test]
fn diff_and_commit() {
    need_root!();
    let h = Hako::new();
    let id = h.start(
        &[
            "--name",
            "changer",
            "busybox",
            "sh",
            "-c",
            "echo new > /added; echo extra:x:5:5::/:/bin/sh >> /etc/passwd; rm /bin/vi; touch /ready; sleep 1000",
        ],
        Some("/ready"),
    );
    let diff = h.ok(&["diff", "changer"]);
    for line in ["A /added", "C /etc", "C /etc/passwd", "D /bin/vi", "C /bin"] {
        assert!(
            diff.lines().any(|l| l == line),
            "{line} missing in:\n{diff}"
        );
    }
    assert!(!diff.contains("/etc/hosts"), "{diff}");
    let image = h
        .ok(&[
            "commit",
            "-m",
            "a message",
            "-a",
            "me",
            "-c",
            "ENV FOO=bar",
            "changer",
            "mine:v1",
        ])
        .trim()
        .to_string();
    assert!(image.starts_with("sha256:"), "{image}");
    // The container was paused for the commit and runs on.
    assert_eq!(h.inspect("changer")["State"]["Status"], "running");
    let out = h.ok(&[
        "run",
        "--rm",
        "mine:v1",
        "sh",
        "-c",
        "cat /added; echo $FOO; grep -c extra /etc/passwd; test -e /bin/vi || echo gone",
    ]);
    assert_eq!(out, "new\nbar\n1\ngone\n");
    // The new image runs the container's command by default.
    let cmd = h.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        "mine:v1",
    ]);
    assert!(cmd.contains("sleep 1000"), "{cmd}");
    let hist = h.ok(&["history", "mine:v1"]);
    assert!(hist.contains("a message"), "{hist}");
    // --pause=false on a running one, and a stopped one.
    h.ok(&["commit", "--pause=false", "changer", "mine:v2"]);
    h.ok(&["stop", "-t", "1", "changer"]);
    h.ok(&["commit", "changer", "mine:v3"]);
    assert_eq!(h.ok(&["run", "--rm", "mine:v3", "cat", "/added"]), "new\n");
    h.fails(1, &["diff", "nope"]);
    h.finish(&[&id]);
}

#[test]
fn info_counts_containers_by_state() {
    need_root!();
    let h = Hako::new();
    let a = h.start(&["busybox", "sleep", "1000"], None);
    let b = h.start(&["busybox", "sleep", "1000"], None);
    h.ok(&["pause", &b]);
    let c = h.ok(&["create", "busybox"]).trim().to_string();
    let f = "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}}";
    assert_eq!(h.ok(&["info", "--format", f]), "3 1 1 1\n");
    let text = h.ok(&["info"]);
    assert!(
        text.contains(" Containers: 3\n  Running: 1\n  Paused: 1\n  Stopped: 1\n"),
        "{text}"
    );
    h.ok(&["unpause", &b]);
    h.finish(&[&a, &b, &c]);
}

#[test]
fn cp_goes_into_volumes_and_respects_read_only_mounts() {
    need_root!();
    let h = Hako::new();
    let bind = tempfile::tempdir().expect("tempdir");
    std::fs::write(bind.path().join("conf"), "bound\n").unwrap();
    let ro = format!("{}:/ro:ro", bind.path().display());
    let id = h.start(
        &[
            "--name",
            "vols",
            "-v",
            "vol:/data",
            "-v",
            &ro,
            "busybox",
            "sleep",
            "1000",
        ],
        None,
    );
    let host = tempfile::tempdir().expect("tempdir");
    let f = host.path().join("f");
    std::fs::write(&f, "into the volume\n").unwrap();
    let fp = f.to_str().expect("utf-8");
    h.ok(&["cp", fp, "vols:/data/"]);
    assert_eq!(
        h.ok(&["exec", "vols", "cat", "/data/f"]),
        "into the volume\n"
    );
    let mp = h.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "vol"]);
    assert!(Path::new(mp.trim()).join("f").exists());
    let err = h.fails(1, &["cp", fp, "vols:/ro/"]);
    assert!(err.contains("read-only"), "{err}");
    assert!(!bind.path().join("f").exists());
    let out = host.path().join("conf");
    h.ok(&["cp", "vols:/ro/conf", out.to_str().expect("utf-8")]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "bound\n");
    let rofs = h
        .ok(&["create", "--read-only", "busybox"])
        .trim()
        .to_string();
    let err = h.fails(1, &["cp", fp, &format!("{rofs}:/tmp")]);
    assert!(
        err.contains("container rootfs is marked read-only"),
        "{err}"
    );
    h.finish(&[&id, &rofs]);
    h.ok(&["volume", "rm", "vol"]);
}

#[test]
fn update_changes_limits_inside_a_running_container_and_the_record() {
    need_root!();
    let h = Hako::new();
    let c = h.start(
        &[
            "--name",
            "upd",
            "-m",
            "64m",
            "--pids-limit",
            "20",
            "busybox",
            "sleep",
            "600",
        ],
        None,
    );
    let mem = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max";
    let pids = "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max";
    assert_eq!(h.ok(&["exec", "upd", "sh", "-c", mem]).trim(), "67108864");
    // Docker prints each container as given.
    let out = h.ok(&[
        "update",
        "-m",
        "128m",
        "--memory-swap",
        "-1",
        "--pids-limit",
        "50",
        "--restart",
        "on-failure:3",
        "upd",
    ]);
    assert_eq!(out, "upd\n");
    assert_eq!(h.ok(&["exec", "upd", "sh", "-c", mem]).trim(), "134217728");
    assert_eq!(h.ok(&["exec", "upd", "sh", "-c", pids]).trim(), "50");
    let v = h.inspect(&c);
    assert_eq!(v["HostConfig"]["Memory"], 134_217_728);
    assert_eq!(v["HostConfig"]["PidsLimit"], 50);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    // Bad input: one line, nothing changed.
    let e = h.fails(1, &["update", "upd"]);
    assert!(e.contains("one or more flags"), "{e}");
    let e = h.fails(125, &["update", "-m", "lots", "upd"]);
    assert!(e.contains("invalid size"), "{e}");
    let e = h.fails(1, &["update", "--restart", "sometimes", "upd"]);
    assert!(e.contains("invalid restart policy"), "{e}");
    let e = h.fails(1, &["update", "-m", "32m", "nosuch"]);
    assert!(e.contains("No such container"), "{e}");
    assert_eq!(h.inspect(&c)["HostConfig"]["Memory"], 134_217_728);
    // A stopped container: recorded, applied at its next start.
    h.ok(&["stop", "-t", "0", "upd"]);
    h.ok(&["update", "-m", "96m", "upd"]);
    h.ok(&["start", "upd"]);
    assert_eq!(h.ok(&["exec", "upd", "sh", "-c", mem]).trim(), "100663296");
    h.ok(&["rm", "-f", "upd"]);
    h.assert_clean(&[&c]);
}

/// The options of the container's `/` in its own mount table.
fn root_mount_options(mounts: &str) -> String {
    mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/"))
        .unwrap_or_else(|| panic!("no / in:\n{mounts}"))
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_string()
}

/// Overlay's `volatile` among mount options (`fsync=volatile` since Linux 6.6).
fn volatile(opts: &str) -> bool {
    opts.split(',')
        .any(|o| o == "volatile" || o == "fsync=volatile")
}

/// A `--rm` container's layer is thrown away with it, so its overlay is mounted
/// `volatile` (no sync of the host's filesystem at the unmount, podman's choice for
/// `--rm`); any other container's is not. A `--rm` container created, then started (an
/// unmount and a mount in between, the kernel's volatile marker left by the first) runs.
#[test]
fn a_rm_containers_overlay_is_volatile_and_no_other() {
    need_root!();
    let h = Hako::new();
    let opts = root_mount_options(&h.ok(&["run", "--rm", "busybox", "cat", "/proc/mounts"]));
    assert!(volatile(&opts), "{opts}");
    let id = h.start(&["busybox", "sleep", "100"], None);
    let opts = root_mount_options(&h.ok(&["exec", &id, "cat", "/proc/mounts"]));
    assert!(!volatile(&opts), "{opts}");
    let rm = h
        .ok(&["create", "--rm", "busybox", "cat", "/proc/mounts"])
        .trim()
        .to_string();
    let opts = root_mount_options(&h.ok(&["start", "-a", &rm]));
    assert!(volatile(&opts), "{opts}");
    h.finish(&[&id, &rm]);
}
