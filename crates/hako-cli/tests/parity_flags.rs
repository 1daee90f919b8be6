//! Docker's run/create flags that issue 10 found missing, each checked from inside a real
//! container: `-a/--attach`, `--volumes-from`, `--pid/--ipc container:NAME`, `--device`
//! of a directory, and a created container that is not left mounted. Each test ends with
//! the leak check.

#[macro_use]
mod common;

use common::{Hako, mounted};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `-a` picks the streams `run` shows (stdout and stderr without it, stdin with `-i`);
/// `create -a` records them; `-a` with `-d` and an unknown stream are Docker's errors.
#[test]
fn attach_picks_the_streams_run_shows() {
    need_root!();
    let h = Hako::new();
    let script = "echo out; echo err >&2";
    let o = h.run(&["run", "--rm", "-a", "stdout", "busybox", "sh", "-c", script]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "out\n");
    assert!(!text(&o.stderr).contains("err"), "{}", text(&o.stderr));
    let o = h.run(&["run", "--rm", "-a", "STDERR", "busybox", "sh", "-c", script]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "");
    assert_eq!(text(&o.stderr), "err\n");
    let o = h.run(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert_eq!(
        (text(&o.stdout), text(&o.stderr)),
        ("out\n".into(), "err\n".into())
    );
    // -i attaches stdin too; -a stdout keeps stderr away.
    let o = h.run_stdin(
        &[
            "run",
            "--rm",
            "-i",
            "-a",
            "stdout",
            "busybox",
            "sh",
            "-c",
            "cat; echo gone >&2",
        ],
        b"typed\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "typed\n");
    assert!(!text(&o.stderr).contains("gone"), "{}", text(&o.stderr));
    // The exit code comes back whatever is attached.
    let o = h.run(&[
        "run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));

    h.ok(&[
        "create", "--name", "c", "-a", "stdout", "busybox", "echo", "hi",
    ]);
    let cfg = &h.inspect("c")["Config"];
    assert_eq!(
        (
            &cfg["AttachStdin"],
            &cfg["AttachStdout"],
            &cfg["AttachStderr"]
        ),
        (&false.into(), &true.into(), &false.into()),
        "{cfg}"
    );
    assert_eq!(h.ok(&["start", "-a", "c"]), "hi\n");
    let d = h.ok(&["run", "-d", "--name", "d", "busybox", "true"]);
    let cfg = &h.inspect(d.trim())["Config"];
    assert_eq!(cfg["AttachStdout"], false, "run -d attaches nothing: {cfg}");

    let e = h.fails(125, &["run", "-d", "-a", "stdout", "busybox", "true"]);
    assert!(e.contains("Conflicting options: -a and -d"), "{e}");
    let o = h.run(&["run", "-a", "stdio", "busybox", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("valid streams are STDIN, STDOUT and STDERR"),
        "{}",
        text(&o.stderr)
    );
    h.finish(&["c", "d"]);
}

/// `--volumes-from` mounts the other container's volumes and binds at the same places,
/// with their modes unless `:ro`/`:rw` says otherwise; a mount of the new container's own
/// at the same place wins; a missing container or a bad mode is one error line.
#[test]
fn volumes_from_mounts_the_other_containers_volumes_and_binds() {
    need_root!();
    let h = Hako::new();
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("h"), "from-host\n").expect("write");
    let bind = format!("{}:/hostdir:ro", host.path().display());
    let src = h.start(
        &[
            "--name",
            "src",
            "-v",
            "vf-vol:/data",
            "-v",
            &bind,
            "-v",
            "/anon",
            "busybox",
            "sh",
            "-c",
            "echo v > /data/f; echo a > /anon/f; sleep 1000",
        ],
        Some("/anon/f"),
    );
    let script = "cat /data/f /anon/f /hostdir/h; touch /hostdir/x 2>/dev/null || echo bind-ro; \
                  touch /data/w && echo data-rw";
    let out = h.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out, "v\na\nfrom-host\nbind-ro\ndata-rw\n");
    let out = h.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "busybox",
        "sh",
        "-c",
        "cat /data/f; touch /data/g 2>/dev/null || echo data-ro",
    ]);
    assert_eq!(out, "v\ndata-ro\n");
    // Its own mount at /data wins over the one it would take from src.
    let mine = tempfile::tempdir().expect("tempdir");
    std::fs::write(mine.path().join("mine"), "").expect("write");
    let own = format!("{}:/data", mine.path().display());
    let out = h.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        "-v",
        &own,
        "busybox",
        "ls",
        "/data",
    ]);
    assert_eq!(out, "mine\n");
    // Recorded as Docker does, and the volume is in use while the joiner exists.
    h.ok(&[
        "create",
        "--name",
        "joiner",
        "--volumes-from",
        "src",
        "busybox",
        "true",
    ]);
    let j = h.inspect("joiner");
    assert_eq!(
        j["HostConfig"]["VolumesFrom"],
        serde_json::json!(["src"]),
        "{j}"
    );
    let dests: Vec<&str> = j["Mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["Destination"].as_str())
        .collect();
    for d in ["/data", "/anon", "/hostdir"] {
        assert!(dests.contains(&d), "{d} not in {dests:?}");
    }
    h.ok(&["rm", "-f", "-v", "src"]);
    let o = h.run(&["volume", "rm", "vf-vol"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("in use"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(h.ok(&["start", "-a", "joiner"]), "");

    let e = h.fails(
        125,
        &["run", "--rm", "--volumes-from", "nope", "busybox", "true"],
    );
    assert!(e.contains("No such container: nope"), "{e}");
    let e = h.fails(
        1,
        &["create", "--volumes-from", "joiner:zz", "busybox", "true"],
    );
    assert!(e.contains("invalid mode"), "{e}");
    h.finish(&[&src, "joiner"]);
    h.ok(&["volume", "rm", "vf-vol"]);
    let left = h.ok(&["volume", "ls", "-q"]);
    assert!(left.trim().is_empty(), "volumes left: {left}");
}

/// Docker mounts a container's root filesystem when it starts: `create` (which mounts it
/// for its own work, such as copying the image's files into a new volume) leaves it
/// unmounted, `start` mounts it, its exit unmounts it again, and so does a failed start.
#[test]
fn a_created_container_is_not_left_mounted() {
    need_root!();
    let h = Hako::new();
    h.ok(&[
        "create",
        "--name",
        "cr",
        "-v",
        "/etc",
        "busybox",
        "head",
        "-1",
        "/etc/passwd",
    ]);
    let merged = h.inspect("cr")["GraphDriver"]["Data"]["MergedDir"]
        .as_str()
        .expect("MergedDir")
        .to_string();
    assert!(!mounted(&merged), "create left {merged} mounted");
    // The volume got the image's /etc during create.
    assert_eq!(
        h.ok(&["start", "-a", "cr"]),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    h.wait_for("the exit's unmount", || !mounted(&merged));
    let id = h.ok(&["create", "busybox", "sleep", "1000"]);
    let id = id.trim();
    let merged = h.inspect(id)["GraphDriver"]["Data"]["MergedDir"]
        .as_str()
        .expect("MergedDir")
        .to_string();
    assert!(!mounted(&merged), "create left {merged} mounted");
    h.ok(&["start", id]);
    assert!(mounted(&merged), "start mounts it");
    assert_eq!(
        h.ok(&["exec", id, "cat", "/etc/hostname"]),
        format!("{}\n", &id[..12])
    );
    // A start that fails leaves it created and unmounted, as Docker's cleanup does.
    let o = h.run(&["run", "--name", "bad", "busybox", "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    let bad = h.inspect("bad");
    assert_eq!(bad["State"]["Status"], "created", "{}", bad["State"]);
    let merged = bad["GraphDriver"]["Data"]["MergedDir"]
        .as_str()
        .expect("MergedDir")
        .to_string();
    assert!(!mounted(&merged), "a failed start left {merged} mounted");
    let o = h.run(&["start", "bad"]);
    assert!(!o.status.success());
    assert!(!mounted(&merged), "a failed start left {merged} mounted");
    h.finish(&["cr", id, "bad"]);
}

/// `--device DIR[:CONTAINER_DIR[:PERMS]]` adds every device node under the host directory
/// at the same place under the container's (Docker walks it); other files and symlinks
/// are left out, and the cgroup allows exactly the permissions asked for. (c 1:2 has no
/// driver: an open the cgroup allows fails with ENXIO, one it refuses with EPERM.)
#[test]
fn device_of_a_directory_adds_every_node_under_it() {
    need_root!();
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let h = Hako::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::create_dir(p.join("sub")).expect("mkdir");
    for (name, minor) in [("nodrv", 2), ("zero", 5), ("sub/urandom", 9)] {
        mknod(
            &p.join(name),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(1, minor),
        )
        .expect("mknod");
    }
    std::fs::write(p.join("notes"), "not a device").expect("write");
    std::os::unix::fs::symlink("zero", p.join("link")).expect("symlink");
    let spec = format!("{}:/dev/mine", p.display());
    let script = "cd /dev/mine && find . | sort && stat -c '%n %F %t:%T' nodrv zero sub/urandom \
                  && head -c 3 zero | od -An -tx1 && head -c 8 sub/urandom | wc -c; echo x > nodrv";
    let o = h.run(&[
        "run", "--rm", "--device", &spec, "busybox", "sh", "-c", script,
    ]);
    assert_eq!(
        text(&o.stdout),
        ".\n./nodrv\n./sub\n./sub/urandom\n./zero\n\
         nodrv character special file 1:2\nzero character special file 1:5\n\
         sub/urandom character special file 1:9\n 00 00 00\n8\n"
    );
    assert!(
        text(&o.stderr).contains("No such device or address"),
        "rwm lets the write reach the (missing) driver: {}",
        text(&o.stderr)
    );
    // Read-only: the cgroup allows the read and refuses the write.
    let spec = format!("{}:/dev/mine:r", p.display());
    let o = h.run(&[
        "run",
        "--rm",
        "--device",
        &spec,
        "busybox",
        "sh",
        "-c",
        "cat /dev/mine/nodrv; echo x > /dev/mine/nodrv",
    ]);
    let err = text(&o.stderr);
    assert!(
        err.contains("No such device or address") && err.contains("Operation not permitted"),
        "{err}"
    );
    // A directory inside the directory: its nodes only, at the path given.
    let spec = format!("{}:/dev/other", p.join("sub").display());
    let out = h.ok(&[
        "run",
        "--rm",
        "--device",
        &spec,
        "busybox",
        "ls",
        "/dev/other",
    ]);
    assert_eq!(out, "urandom\n");
    h.assert_clean(&[]);
}

fn ns(h: &Hako, args: &[&str]) -> String {
    h.ok(args).trim().to_string()
}

/// `--pid container:NAME` and `--ipc container:NAME` put the new container in that
/// running container's PID and IPC namespaces (its processes are visible, the namespace
/// links are the same) and, for IPC, on its /dev/shm, which only a `--ipc shareable`
/// container offers (a tmpfs the host mounts while it runs); a stopped, missing or
/// private one is refused with Docker's words.
#[test]
fn pid_and_ipc_container_join_the_other_containers_namespaces() {
    need_root!();
    let h = Hako::new();
    let donor = h.start(
        &[
            "--name",
            "donor",
            "--ipc",
            "shareable",
            "--shm-size",
            "8m",
            "busybox",
            "sleep",
            "1000",
        ],
        None,
    );
    let shm = h.root.path().join("containers").join(&donor).join("shm");
    assert!(
        mounted(&shm.to_string_lossy()),
        "the shareable /dev/shm is mounted on the host"
    );
    let theirs = |t: &str| {
        ns(
            &h,
            &["exec", "donor", "readlink", &format!("/proc/1/ns/{t}")],
        )
    };
    let (pid, ipc) = (theirs("pid"), theirs("ipc"));
    let out = h.ok(&[
        "run", "--rm", "--pid", "container:donor", "--ipc", "container:donor", "busybox", "sh",
        "-c",
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; cat /proc/1/cmdline | tr '\\0' ' '; \
         echo; echo shared > /dev/shm/note; df -k /dev/shm | tail -1 | awk '{print $2}'",
    ]);
    assert_eq!(out, format!("{pid}\n{ipc}\nsleep 1000 \n8192\n"));
    assert_eq!(h.ok(&["exec", "donor", "cat", "/dev/shm/note"]), "shared\n");
    // Without the flags: namespaces and /dev/shm of its own.
    let own = h.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; ls /dev/shm",
    ]);
    assert_eq!(
        own.lines()
            .filter(|l| *l == pid || *l == ipc || *l == "note")
            .count(),
        0,
        "{own}"
    );
    // ps in the joined namespace lists the donor's process and its own.
    h.ok(&[
        "create",
        "--name",
        "j",
        "--pid",
        "container:donor",
        "busybox",
        "ps",
        "-o",
        "comm",
    ]);
    assert_eq!(h.ok(&["start", "-a", "j"]), "COMMAND\nsleep\nps\n");
    let j = h.inspect("j");
    assert_eq!(j["HostConfig"]["PidMode"], "container:donor", "{j}");
    h.ok(&["stop", "-t", "1", "donor"]);
    assert!(
        !mounted(&shm.to_string_lossy()),
        "stop unmounts the shareable /dev/shm"
    );
    let e = h.fails(1, &["start", "j"]);
    assert!(
        e.contains("cannot join PID of a non running container: donor"),
        "{e}"
    );
    // It comes back: a restarted donor has a new init, the joiner follows it.
    h.ok(&["start", "donor"]);
    assert_eq!(h.ok(&["start", "-a", "j"]), "COMMAND\nsleep\nps\n");
    let e = h.fails(
        125,
        &["run", "--rm", "--ipc", "container:nope", "busybox", "true"],
    );
    assert!(e.contains("No such container: nope"), "{e}");
    let private = h.start(&["--name", "private", "busybox", "sleep", "1000"], None);
    let e = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--ipc",
            "container:private",
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("non-shareable IPC"), "{e}");
    h.finish(&[&donor, "j", &private]);
}

/// `run`/`create` and `update` take the same resource flags from one declaration (Docker's
/// `--cpu-period`, `--cpu-quota` and `--blkio-weight` were update-only before), and the
/// limits reach the container's cgroup at create and at update.
#[test]
fn run_create_and_update_share_their_resource_flags() {
    need_root!();
    let h = Hako::new();
    let flags = [
        "--blkio-weight",
        "--cpu-period",
        "--cpu-quota",
        "--cpu-shares",
        "--cpus ",
        "--cpuset-cpus",
        "--cpuset-mems",
        "--memory <",
        "--memory-reservation",
        "--memory-swap",
        "--pids-limit",
    ];
    let lines = |cmd: &str| -> Vec<String> {
        // `update`'s help is short: one line per flag, text included.
        let help = h.ok(&[cmd, "--help"]);
        flags
            .iter()
            .map(|f| {
                help.lines()
                    .find(|l| l.contains(f))
                    .unwrap_or_else(|| panic!("{cmd} --help has no {f}:\n{help}"))
                    .trim()
                    .to_string()
            })
            .collect()
    };
    // The same flag, value name and text (wrapped differently in a longer help).
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    for cmd in ["run", "create"] {
        let help = words(&h.ok(&[cmd, "--help"]));
        for l in lines("update") {
            assert!(help.contains(&words(&l)), "{cmd} --help lacks {l:?}");
        }
    }
    // v1: cpu.cfs_quota_us; v2: cpu.max "QUOTA PERIOD".
    let quota = "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max";
    let id = h.start(
        &[
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            "busybox",
            "sleep",
            "1000",
        ],
        None,
    );
    assert_eq!(h.ok(&["exec", &id, "sh", "-c", quota]), "50000\n");
    h.ok(&["update", "--cpu-quota", "25000", &id]);
    assert_eq!(h.ok(&["exec", &id, "sh", "-c", quota]), "25000\n");
    let hc = &h.inspect(&id)["HostConfig"];
    assert_eq!(
        (&hc["CpuPeriod"], &hc["CpuQuota"]),
        (&100_000.into(), &25_000.into()),
        "{hc}"
    );
    h.finish(&[&id]);
}

/// A block device of this machine: (its /dev path, "MAJOR:MINOR").
fn a_block_device() -> (String, String) {
    use std::os::unix::fs::FileTypeExt;
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    for n in names {
        let dev = format!("/dev/{n}");
        let numbers = std::fs::read_to_string(format!("/sys/block/{n}/dev")).unwrap_or_default();
        if std::fs::metadata(&dev).is_ok_and(|m| m.file_type().is_block_device()) {
            return (dev, numbers.trim().to_string());
        }
    }
    panic!("no block device on this machine");
}

/// Docker's remaining resource flags of run/create: `--device-{read,write}-{bps,iops}`
/// (the container's blkio throttle), `--memory-swappiness`, `--oom-kill-disable`, and
/// `--annotation` (into the OCI spec); bad values are one line and nothing is made.
#[test]
fn blkio_throttles_swappiness_oom_kill_disable_and_annotations() {
    need_root!();
    let h = Hako::new();
    let (dev, numbers) = a_block_device();
    let id = h.ok(&[
        "create",
        "--device-read-bps",
        &format!("{dev}:1mb"),
        "--device-write-iops",
        &format!("{dev}:100"),
        "--memory-swappiness",
        "30",
        "-m",
        "64m",
        "--oom-kill-disable",
        "--annotation",
        "org.hako.test=yes",
        "busybox",
        "sh",
        "-c",
        "cd /sys/fs/cgroup; cat blkio/blkio.throttle.read_bps_device blkio/blkio.throttle.write_iops_device \
         memory/memory.swappiness; grep oom_kill_disable memory/memory.oom_control",
    ]);
    let id = id.trim();
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            h.root
                .path()
                .join("containers")
                .join(id)
                .join("config.json"),
        )
        .expect("config.json"),
    )
    .expect("json");
    assert_eq!(
        spec["annotations"]["org.hako.test"], "yes",
        "{}",
        spec["annotations"]
    );
    let mem = &spec["linux"]["resources"]["memory"];
    assert_eq!(
        (&mem["swappiness"], &mem["disableOOMKiller"]),
        (&30.into(), &true.into())
    );
    let hc = &h.inspect(id)["HostConfig"];
    assert_eq!(hc["BlkioDeviceReadBps"][0]["Rate"], 1 << 20, "{hc}");
    assert_eq!(hc["Annotations"]["org.hako.test"], "yes", "{hc}");
    // Inside (cgroup v1, this machine's): the limits are the container's cgroup's.
    if std::path::Path::new("/sys/fs/cgroup/blkio").exists() {
        assert_eq!(
            h.ok(&["start", "-a", id]),
            format!("{numbers} 1048576\n{numbers} 100\n30\noom_kill_disable 1\n")
        );
    }
    let e = h.fails(
        1,
        &["create", "--device-read-bps", "/dev/null:1mb", "busybox"],
    );
    assert!(e.contains("/dev/null is not a block device"), "{e}");
    let e = h.fails(125, &["create", "--memory-swappiness", "101", "busybox"]);
    assert!(e.contains("valid memory swappiness range is 0-100"), "{e}");
    let e = h.fails(125, &["create", "--device-write-bps", "sda:1mb", "busybox"]);
    assert!(e.contains("--device-write-bps"), "{e}");
    h.finish(&[id]);
}

/// `run -q` pulls a missing image without the pull's progress and status lines (Docker's
/// `--quiet`: only "Unable to find image" is said, as there).
#[test]
fn run_quiet_pulls_without_output() {
    need_root!();
    let h = Hako::new();
    // In the test's network namespace, where hako (and its pulls) run.
    let Some(reg) = h.net.run(hako_test_support::Registry::start) else {
        return;
    };
    let name = format!("127.0.0.1:{}/hako/busybox:quiet", reg.port);
    h.ok(&["tag", "busybox", &name]);
    h.ok(&["push", &name]);
    h.ok(&["rmi", &name]);
    let o = h.run(&["run", "-q", "--rm", &name, "echo", "pulled"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        (text(&o.stdout), text(&o.stderr)),
        (
            "pulled\n".into(),
            format!("Unable to find image '{name}' locally\n")
        )
    );
    h.ok(&["rmi", &name]);
    drop(reg);
    h.assert_clean(&[]);
}

/// `--env-file`, `--oom-score-adj`, `--sysctl`, `--stop-signal` and `--stop-timeout`, seen
/// from inside the container; Docker's refusals of an out-of-range score and of a sysctl
/// that is the host's own setting (`vm.*`, or `net.*` with the host's network), and that
/// the refused sysctl was not written.
#[test]
fn env_file_oom_score_adj_sysctl_and_stop_timeout() {
    need_root!();
    let h = Hako::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let envf = dir.path().join("env");
    std::fs::write(&envf, "A=1\n# a comment\n\nB=two words\nPATH\n").expect("env file");
    let script = "echo \"A=$A B=$B\"; cat /proc/self/oom_score_adj \
                  /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax";
    let out = h.ok(&[
        "run",
        "--rm",
        "--env-file",
        envf.to_str().expect("utf-8"),
        "--oom-score-adj",
        "500",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.msgmax=9999",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out, "A=1 B=two words\n500\n1\n9999\n");

    let host_sysctl = |p: &str| {
        let o = h.host("cat").arg(p).output().expect("cat");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let swappiness = host_sysctl("/proc/sys/vm/swappiness");
    /// Puts the host's vm.swappiness back if a failing run wrote it.
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let p = "/proc/sys/vm/swappiness";
            if std::fs::read_to_string(p).ok().as_ref() != Some(&self.0) {
                let _ = std::fs::write(p, &self.0);
            }
        }
    }
    let _restore = Restore(swappiness.clone());
    let err = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--sysctl",
            "vm.swappiness=7",
            "busybox",
            "true",
        ],
    );
    assert!(
        err.contains("sysctl 'vm.swappiness=7' is not allowed"),
        "{err}"
    );
    let err = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--sysctl",
            "kernel.msgmax",
            "busybox",
            "true",
        ],
    );
    assert!(
        err.contains("sysctl 'kernel.msgmax' is not allowed"),
        "{err}"
    );
    assert_eq!(host_sysctl("/proc/sys/vm/swappiness"), swappiness);
    let forward = host_sysctl("/proc/sys/net/ipv4/ip_forward");
    let flip = if forward.trim() == "1" { "0" } else { "1" };
    let kv = format!("net.ipv4.ip_forward={flip}");
    let o = h.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--sysctl",
        &kv,
        "busybox",
        "true",
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("not allowed in host network namespace"),
        "{err}"
    );
    assert_eq!(host_sysctl("/proc/sys/net/ipv4/ip_forward"), forward);
    let err = h.fails(
        125,
        &["run", "--rm", "--oom-score-adj", "2000", "busybox", "true"],
    );
    assert!(
        err.contains("Invalid value 2000, range for oom score adj is [-1000, 1000]"),
        "{err}"
    );
    let err = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--env-file",
            "/nonexistent/env",
            "busybox",
            "true",
        ],
    );
    assert!(err.contains("/nonexistent/env"), "{err}");
    let err = h.fails(125, &["run", "--rm", "-e", "=x", "busybox", "true"]);
    assert!(err.contains("invalid environment variable: =x"), "{err}");

    // A process that ignores the stop signal is killed once --stop-timeout is over.
    let id = h.start(
        &[
            "--stop-timeout",
            "1",
            "--stop-signal",
            "USR1",
            "busybox",
            "sh",
            "-c",
            "trap '' TERM USR1; touch /ready; while :; do sleep 0.1; done",
        ],
        Some("/ready"),
    );
    // exec takes --env-file too (Docker 28); -e wins over the file.
    assert_eq!(
        h.ok(&[
            "exec",
            "--env-file",
            envf.to_str().expect("utf-8"),
            "-e",
            "B=cli",
            &id,
            "sh",
            "-c",
            "echo \"$A $B\"",
        ]),
        "1 cli\n"
    );
    let cfg = &h.inspect(&id)["Config"];
    assert_eq!(
        (&cfg["StopTimeout"], &cfg["StopSignal"]),
        (&1.into(), &"USR1".into())
    );
    let t = std::time::Instant::now();
    h.ok(&["stop", &id]);
    // Docker's default would wait 10 s; generous for a loaded machine.
    assert!(
        t.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(h.inspect(&id)["State"]["ExitCode"], 137);
    h.finish(&[&id]);
}

/// `-w` of a directory the image lacks: made at create in the container's layer (root's,
/// 0755, so `diff` lists it before the first start), whoever the user; a file in the way
/// is Docker's "Cannot mkdir" error, and a failed create leaves nothing.
#[test]
fn a_missing_working_dir_is_made_at_create() {
    need_root!();
    let h = Hako::new();
    let out = h.ok(&[
        "run",
        "--rm",
        "-u",
        "1234:5678",
        "-w",
        "/new/deep",
        "busybox",
        "sh",
        "-c",
        "pwd; stat -c '%u %g %a' .",
    ]);
    assert_eq!(out, "/new/deep\n0 0 755\n");
    h.ok(&["create", "--name", "wd", "-w", "/made/x", "busybox", "true"]);
    assert_eq!(h.ok(&["diff", "wd"]), "A /made\nA /made/x\n");
    for w in ["/bin/busybox", "/bin/busybox/x"] {
        let err = h.fails(125, &["run", "--rm", "-w", w, "busybox", "true"]);
        assert!(
            err.contains(&format!("Cannot mkdir: {w} is not a directory")),
            "{err}"
        );
    }
    h.finish(&["wd"]);
}
