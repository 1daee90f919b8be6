//! A full disk (issue 12), as root on a small loop-mounted ext4 the test makes as `--root`: pull, load,
//! import, commit, build, volume copy-up, create and run each fail with one error line that
//! says "no space left on device", leave nothing half-made (`hako system check` finds no
//! damage), and work again once space is freed; on a disk with no byte left, `images`, `ps`
//! and `system check` still work; a container whose log fills the disk keeps running, its
//! shim notes the dropped output in `shim.log` and logs again once there is room.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Hako;

/// A small ext4 filesystem on a loop device (the "small loop-mounted filesystem":
/// real block allocation, a journal, metadata that needs room too), mounted on a fresh
/// directory; unmounted on drop (the kernel frees the loop device with the last reference,
/// `mount -o loop` sets autoclear). [`SmallFs::release`] unmounts and checks that it went.
struct SmallFs {
    dir: tempfile::TempDir,
    image: tempfile::TempDir,
}

impl SmallFs {
    /// `block`: the ext4 block size (mkfs.ext4 picks 1024 below 512 MiB; most hosts' stores
    /// have 4096, where SQLite connections close without a checkpoint: hako-sys `sqlite.rs`).
    fn new(mib: u64, block: u32) -> SmallFs {
        let image = tempfile::Builder::new()
            .prefix("hako-full-img-")
            .tempdir()
            .expect("tempdir");
        let file = image.path().join("fs.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(mib << 20))
            .expect("image file");
        // No blocks reserved for root (hako runs as root: it would see them as free).
        run_ok(
            Command::new("mkfs.ext4")
                .args([
                    "-q",
                    "-F",
                    "-b",
                    &block.to_string(),
                    "-m",
                    "0",
                    "-E",
                    "lazy_itable_init=0,lazy_journal_init=0",
                ])
                .arg(&file),
        );
        let dir = tempfile::Builder::new()
            .prefix("hako-full-")
            .tempdir()
            .expect("tempdir");
        run_ok(
            Command::new("mount")
                .args(["-t", "ext4", "-o", "loop"])
                .arg(&file)
                .arg(dir.path()),
        );
        SmallFs { dir, image }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn filler(&self, n: usize) -> PathBuf {
        self.path().join(format!("filler{n}"))
    }

    fn avail(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(self.path()).expect("statvfs");
        s.blocks_available() * s.fragment_size()
    }

    /// Takes all free space but `leave` bytes: one preallocated file, then 4 KiB writes
    /// (ext4 needs blocks for a big file's extent tree too, so one `fallocate` of all that
    /// is free can fail).
    fn fill(&self, leave: u64) {
        use std::io::Write;
        self.free();
        let n = self.avail().saturating_sub(leave + (256 << 10));
        run_ok(
            Command::new("fallocate")
                .args(["-l", &n.to_string()])
                .arg(self.filler(0)),
        );
        let mut f = std::fs::File::create(self.filler(1)).expect("filler");
        while self.avail() > leave + 4096 {
            match f.write_all(&[0u8; 4096]).and_then(|()| f.sync_data()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("fill: {e}"),
            }
        }
        assert!(self.avail() <= leave + 4096, "{} left", self.avail());
    }

    fn free(&self) {
        for n in 0..2 {
            let _ = std::fs::remove_file(self.filler(n));
        }
    }

    /// Unmounts; the loop device goes with it.
    fn release(self) {
        let file = self.image.path().join("fs.img");
        nix::mount::umount(self.path()).expect("unmount the small filesystem");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = Command::new("losetup")
                .arg("-j")
                .arg(&file)
                .output()
                .expect("losetup");
            let held = String::from_utf8_lossy(&o.stdout).into_owned();
            if held.trim().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "loop device left: {held}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

fn run_ok(c: &mut Command) {
    let o = c.output().expect("run");
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A hako whose `--root` is on `fs`, with busybox.
fn hako_on(fs: &SmallFs) -> Hako {
    let h = Hako {
        root: tempfile::Builder::new()
            .prefix("root-")
            .tempdir_in(fs.path())
            .expect("tempdir"),
        exec: tempfile::Builder::new()
            .prefix("hk")
            .tempdir_in("/tmp")
            .expect("tempdir"),
        exec_override: None,
        net: hako_test_support::NetSandbox::new().expect("a network namespace for the test"),
    };
    h.ok(&[
        "import",
        common::rootfs_tar().to_str().expect("utf-8"),
        "busybox",
        "--change",
        "CMD [\"sh\"]",
    ]);
    h
}

/// `args` fails (Docker's status for the command) with one error line, and it says the
/// disk is full.
fn no_space(h: &Hako, args: &[&str]) -> String {
    // `build` fails as Docker's does: exit 1, "ERROR: failed to solve: ...".
    let (code, prefix) = if args[0] == "build" {
        (1, "ERROR")
    } else {
        (common::failure_code(args), "Error")
    };
    let o = h.run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "hako {args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "hako {args:?}: {err}");
    assert!(
        lines[0].to_lowercase().contains("no space left on device"),
        "hako {args:?}: {err}"
    );
    lines[0].to_string()
}

/// `system check`: nothing damaged (garbage that the next operation collects is allowed
/// while the disk is full; `settled` says none may remain).
fn check(h: &Hako, settled: bool) {
    let o = h.run(&["system", "check"]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "system check: {out}");
    assert!(out.contains(" 0 damaged objects"), "{out}");
    if settled && !out.contains(" 0 pieces of garbage") {
        let dbg = h.run(&["--debug", "ps"]);
        panic!(
            "{out}\n{}\n{}{}",
            h.ok(&["images", "-a", "--digests", "--no-trunc"]),
            String::from_utf8_lossy(&dbg.stderr),
            h.ok(&["system", "check"])
        );
    }
}

/// On a nearly full disk (`leave` bytes): `args` fails cleanly; with space, it works.
fn fails_then_works(h: &Hako, fs: &SmallFs, leave: u64, args: &[&str]) -> String {
    fs.fill(leave);
    let e = no_space(h, args);
    check(h, false);
    fs.free();
    let out = h.ok(args);
    check(h, false);
    // What the failed attempt left (it could not even write its cleanup to the database)
    // is collected by the next command.
    h.ok(&["ps"]);
    check(h, true);
    eprintln!("hako {args:?} on a full disk: {e}");
    out
}

#[test]
fn image_and_container_operations_fail_cleanly_on_a_full_disk_and_work_after() {
    need_root!();
    let fs = SmallFs::new(64, 1024);
    let h = hako_on(&fs);
    let tmp = tempfile::tempdir().unwrap();
    // An image with 3 MB of data in /data: too big for the 1 MiB the fills leave.
    h.ok(&[
        "run",
        "--name",
        "mk",
        "busybox",
        "sh",
        "-c",
        "mkdir /data && head -c 3000000 /dev/urandom > /data/big",
    ]);
    h.ok(&["commit", "mk", "big:1"]);
    let saved = tmp.path().join("big.tar");
    h.ok(&["save", "-o", saved.to_str().unwrap(), "big:1"]);
    let reg = h.net.run(hako_test_support::Registry::start);
    let remote = reg
        .as_ref()
        .map(|r| format!("127.0.0.1:{}/full/big:1", r.port));
    if let Some(r) = &remote {
        h.ok(&["tag", "big:1", r]);
        h.ok(&["push", r]);
        h.ok(&["rmi", r]);
    }
    h.ok(&["rmi", "big:1"]);
    check(&h, true);
    const LEAVE: u64 = 1 << 20;

    if let Some(r) = &remote {
        fails_then_works(&h, &fs, LEAVE, &["pull", "-q", r]);
        h.ok(&["rmi", r]);
    }
    fails_then_works(
        &h,
        &fs,
        LEAVE,
        &["load", "-q", "-i", saved.to_str().unwrap()],
    );
    // Volume copy-up: the image's 3 MB /data into a new volume.
    fs.fill(LEAVE);
    no_space(
        &h,
        &["run", "--rm", "-v", "full-vol:/data", "big:1", "true"],
    );
    check(&h, false);
    assert_eq!(h.ok(&["ps", "-aq"]).lines().count(), 1, "only mk");
    // The rollback could not write to the full database: the next command finishes it.
    fs.free();
    h.ok(&["ps"]);
    assert_eq!(
        h.ok(&["volume", "ls", "-q"]).trim(),
        "",
        "a half-copied volume"
    );
    check(&h, true);
    h.ok(&[
        "run",
        "--rm",
        "-v",
        "full-vol:/data",
        "big:1",
        "ls",
        "/data/big",
    ]);
    h.ok(&["volume", "rm", "full-vol"]);
    check(&h, true);

    fails_then_works(&h, &fs, LEAVE, &["commit", "mk", "committed:1"]);
    h.ok(&["rmi", "committed:1"]);
    fails_then_works(
        &h,
        &fs,
        LEAVE,
        &[
            "import",
            common::rootfs_tar().to_str().unwrap(),
            "imported:1",
        ],
    );
    h.ok(&["rmi", "imported:1"]);
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("big"), vec![7u8; 3_000_000]).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY big /big\n").unwrap();
    fails_then_works(
        &h,
        &fs,
        LEAVE,
        &["build", "-q", "-t", "built:1", ctx.to_str().unwrap()],
    );
    h.ok(&["rmi", "built:1"]);

    // Not a byte left: removals still work (they are how a user frees space): rm -f -v
    // of a running container with an anonymous volume, volume rm, rmi of an image whose
    // layer only it has.
    h.ok(&["commit", "mk", "full-rmi:1"]);
    h.ok(&[
        "run", "-d", "--name", "full-rm", "-v", "/anon", "busybox", "sleep", "600",
    ]);
    h.ok(&[
        "run",
        "--rm",
        "-v",
        "full-nv:/data",
        "busybox",
        "sh",
        "-c",
        "head -c 2000000 /dev/urandom > /data/f",
    ]);
    // hako holds 1 MiB back for exactly this (reserve.rs in hako-image).
    let reserve = h.root.path().join("reserved-space");
    assert!(
        reserve.exists(),
        "no reserved space in the root ({} bytes free)",
        fs.avail()
    );
    fs.fill(0);
    for args in [
        &["rm", "-f", "-v", "full-rm"][..],
        &["volume", "rm", "full-nv"],
        &["rmi", "full-rmi:1"],
    ] {
        let o = h.run(args);
        assert!(
            o.status.success(),
            "hako {args:?} with 0 bytes free: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    check(&h, false);
    assert!(fs.avail() > 2_000_000, "the removals freed space");
    assert_eq!(h.ok(&["ps", "-aq"]).lines().count(), 1, "only mk");
    assert!(!h.ok(&["volume", "ls", "-q"]).contains("full-nv"));
    assert!(!h.ok(&["images"]).contains("full-rmi"));
    assert!(!reserve.exists(), "the reserve was used");
    fs.free();
    h.ok(&["ps"]);
    assert!(
        reserve.exists(),
        "the reserve is made again once there is room"
    );
    check(&h, true);

    // Not a byte left: what writes fails clearly, what reads works.
    fs.fill(0);
    no_space(&h, &["run", "--rm", "busybox", "true"]);
    no_space(&h, &["create", "--name", "full-c", "busybox", "true"]);
    assert!(h.ok(&["images"]).contains("busybox"));
    assert_eq!(h.ok(&["ps", "-aq"]).lines().count(), 1, "only mk");
    check(&h, false);
    fs.free();
    assert_eq!(h.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");
    h.ok(&["create", "--name", "full-c", "busybox", "true"]);
    h.ok(&["rm", "full-c", "mk"]);
    h.ok(&["image", "prune", "-a", "-f"]);
    check(&h, true);
    drop(reg);
    h.assert_clean(&[]);
    drop(h);
    fs.release();
}

#[test]
fn a_container_whose_log_fills_the_disk_keeps_running() {
    log_fills_the_disk(1024, hako_sys::sqlite::CloseMode::Checkpoint);
}

/// The same with 4 KiB blocks, where the store's connections close without a checkpoint and
/// the readers here (`inspect`, `logs`) rebuild SQLite's mapped wal-index from a kept `-wal`
/// on the full disk: they must not die of SIGBUS (they did with 1 KiB blocks).
#[test]
fn a_container_whose_log_fills_a_disk_of_page_sized_blocks_keeps_running() {
    log_fills_the_disk(4096, hako_sys::sqlite::CloseMode::Keep);
}

fn log_fills_the_disk(block: u32, mode: hako_sys::sqlite::CloseMode) {
    need_root!();
    let fs = SmallFs::new(32, block);
    assert_eq!(
        hako_sys::sqlite::close_mode(&fs.path().join("hako.db")),
        mode
    );
    let h = hako_on(&fs);
    // About 50 kB of log a second.
    let id = h
        .ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "s=$(head -c 1000 /dev/zero | tr '\\0' x); i=0; while :; do i=$((i+1)); echo \"line $i $s\"; usleep 20000; done",
        ])
        .trim()
        .to_string();
    let shim_log = h.exec_root().join("containers").join(&id).join("shim.log");
    let shim_log_has = |what: &str| {
        std::fs::read_to_string(&shim_log)
            .unwrap_or_default()
            .contains(what)
    };
    fs.fill(128 << 10);
    wait(
        Duration::from_secs(60),
        "the log to hit the full disk",
        || shim_log_has("No space left on device"),
    );
    std::thread::sleep(Duration::from_secs(1));
    // Space freed on the full disk, less than the log waits for (1 MiB), stays free for
    // the others (the store's `-shm`): the log does not take it back.
    std::fs::File::options()
        .write(true)
        .open(fs.filler(1))
        .and_then(|f| f.set_len(0))
        .expect("truncate filler1");
    let freed = fs.avail();
    assert!(freed >= 200 << 10, "only {freed} bytes freed");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        fs.avail() + (64 << 10) >= freed,
        "the log took the space freed on a full disk: {} of {freed} bytes left",
        fs.avail()
    );
    let running = || h.ok(&["inspect", "-f", "{{.State.Running}}", &id]).trim() == "true";
    assert!(running(), "the container stopped on a full disk");
    h.ok(&["exec", &id, "true"]);
    let last = |h: &Hako| -> u64 {
        let out = h.ok(&["logs", "--tail", "1", &id]);
        out.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no line number in {out:?}"))
    };
    let before = last(&h);
    fs.free();
    wait(Duration::from_secs(30), "the log to work again", || {
        shim_log_has("writing the log works again")
    });
    wait(Duration::from_secs(30), "new lines in the log", || {
        last(&h) > before + 5
    });
    assert!(running());
    h.ok(&["rm", "-f", &id]);
    h.assert_clean(&[&id]);
    drop(h);
    fs.release();
}

fn wait(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
