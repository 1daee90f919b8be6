//! `hako system check [--repair]` on stores damaged on purpose: what no record owns (a shim
//! whose record was deleted, directories, lock files, a mount, a cgroup, half-written
//! blobs), wrong reference counts, a dangling tag, a volume without data, and an image whose
//! config blob is corrupt. Each is found, `--repair` fixes what can be fixed, and the store
//! ends as it began.

#[macro_use]
mod common;

use std::path::Path;

use common::Hako;
use hako_test_support::{Inventory, db_execute};

fn check(h: &Hako, args: &[&str]) -> (i32, String) {
    let mut a = vec!["system", "check"];
    a.extend_from_slice(args);
    let o = h.run(&a);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), out)
}

fn settled(h: &Hako) -> Inventory {
    h.ok(&["ps", "-a"]);
    Inventory::take(h.root.path(), h.exec.path(), &[])
}

#[test]
fn check_finds_and_repair_removes_what_no_record_owns() {
    need_root!();
    let h = Hako::new();
    let base = settled(&h);
    let (code, out) = check(&h, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 damaged objects, 0 pieces of garbage"),
        "{out}"
    );

    // A running container whose record disappears: its shim, directories, lock file,
    // mounted root filesystem and cgroup are owned by nothing.
    let orphan = h
        .ok(&["run", "-d", "busybox", "sleep", "300"])
        .trim()
        .to_string();
    db_execute(
        h.root.path(),
        &format!("DELETE FROM containers WHERE id = '{orphan}'"),
    );
    // A stopped container whose cgroup was left behind.
    let stopped = h.ok(&["create", "busybox", "true"]).trim().to_string();
    let cg = Path::new("/sys/fs/cgroup/pids/hako").join(&stopped);
    std::fs::create_dir_all(&cg).expect("make a cgroup");
    // Leftovers of interrupted operations, a mount nobody owns, wrong counts.
    std::fs::write(h.root.path().join("blobs/tmp/half"), b"x").unwrap();
    let mnt = h.root.path().join("stray-mount");
    std::fs::create_dir_all(&mnt).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount tmpfs");
    db_execute(h.root.path(), "UPDATE layers SET refcount = refcount + 5");
    db_execute(
        h.root.path(),
        "PRAGMA foreign_keys = OFF; INSERT INTO tags (name, image_id, tagged) VALUES ('docker.io/library/gone:latest', 'sha256:0000000000000000000000000000000000000000000000000000000000000000', 0)",
    );
    h.ok(&["volume", "create", "hollow"]);
    std::fs::remove_dir_all(h.root.path().join("volumes/hollow/_data")).unwrap();

    let (code, out) = check(&h, &[]);
    assert_eq!(code, 1, "{out}");
    for want in [
        "shim ",
        "monitors container",
        "directory of a container that has no record",
        "lock file of a container",
        &format!("cgroup {}", cg.display()),
        "half-written blob",
        &format!("mount {}", mnt.display()),
        "reference count is",
        "tag docker.io/library/gone:latest",
        "volume hollow: its data directory",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    // Checking changes nothing.
    assert!(cg.exists() && mnt.join(".").exists());

    let (code, out) = check(&h, &["--repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("damage ")
            || out
                .lines()
                .filter(|l| l.starts_with("damage"))
                .all(|l| l.ends_with("(repaired)")),
        "{out}"
    );
    let (code, out) = check(&h, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 damaged objects, 0 pieces of garbage"),
        "{out}"
    );
    assert!(!cg.exists(), "cgroup removed");
    assert!(
        !hako_test_support::Inventory::take(h.root.path(), h.exec.path(), &[])
            .mounts
            .iter()
            .any(|m| m.contains("stray-mount")),
        "unmounted"
    );

    h.ok(&["rm", &stopped]);
    h.ok(&["volume", "rm", "hollow"]);
    std::fs::remove_dir(&mnt).unwrap();
    let diff = settled(&h).diff(&base);
    assert!(diff.is_empty(), "{diff}");
    h.assert_clean(&[&orphan, &stopped]);
}

#[test]
fn a_damaged_image_is_marked_refused_and_removable() {
    need_root!();
    let h = Hako::new();
    let base = settled(&h);
    h.ok(&["import", common::rootfs_tar().to_str().unwrap(), "damaged"]);
    let id = h.ok(&["image", "inspect", "-f", "{{.Id}}", "damaged"]);
    let hex = id.trim().trim_start_matches("sha256:");
    let blob = h.root.path().join("blobs/sha256").join(hex);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes.extend_from_slice(b" ");
    std::fs::write(&blob, bytes).unwrap();

    let (code, out) = check(&h, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("content does not match its digest"), "{out}");
    assert!(out.contains(&format!("image {}", &hex[..12])), "{out}");
    let (code, out) = check(&h, &["--repair"]);
    assert_eq!(code, 1, "the damaged image needs the user: {out}");
    assert!(out.contains("marked damaged"), "{out}");
    let e = h.fails(125, &["run", "--rm", "damaged", "true"]);
    assert!(
        e.contains("is damaged") && e.contains("pull or load it again"),
        "{e}"
    );
    // busybox shares its layer and is unharmed.
    h.ok(&["run", "--rm", "busybox", "true"]);
    h.ok(&["rmi", "damaged"]);
    let (code, out) = check(&h, &[]);
    assert_eq!(code, 0, "{out}");
    let diff = settled(&h).diff(&base);
    assert!(diff.is_empty(), "{diff}");
}

/// A namespace file bound the way a spare is (`unshare --net` + a bind mount).
fn bind_netns(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("netns dir");
    std::fs::write(path, b"").expect("netns file");
    let st = std::process::Command::new("unshare")
        .args(["--net", "--", "mount", "--bind", "/proc/self/ns/net"])
        .arg(path)
        .status()
        .expect("unshare");
    assert!(st.success(), "bind a namespace on {}", path.display());
}

fn mounted(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let p = path.display().to_string();
    table
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

/// A running `hako serve`'s spare network namespace is its own, not damage; the spare of a
/// server that is gone (killed with SIGKILL) is removed by the next command's open.
#[test]
fn a_spare_namespace_is_a_live_servers_or_goes_at_the_next_open() {
    need_root!();
    let h = Hako::new();
    h.ok(&["ps", "-a"]);
    let netns = h.exec.path().join("netns");
    let live = netns.join(format!(".spare-{}-0", std::process::id()));
    let dead = netns.join(".spare-2147483646-0");
    bind_netns(&live);
    bind_netns(&dead);
    assert!(mounted(&dead));
    h.ok(&["ps", "-a"]);
    assert!(
        !dead.exists() && !mounted(&dead),
        "the dead server's spare is gone"
    );
    let (code, out) = check(&h, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 damaged objects, 0 pieces of garbage"),
        "a live server's spare is no damage: {out}"
    );
    assert!(live.exists() && mounted(&live), "and it stays");
    nix::mount::umount2(&live, nix::mount::MntFlags::MNT_DETACH).expect("umount");
    std::fs::remove_file(&live).expect("rm");
}
