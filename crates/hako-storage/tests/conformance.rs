//! The driver conformance suite: every [`Driver`] must pass [`suite`].
//!
//! It runs on real mounts as root and checks the behaviour the seed describes for a union
//! filesystem: the files of all layers are visible, the first write copies a file up and
//! leaves the lower layer alone, a delete leaves a whiteout, opaque directories hide what
//! is below, `changes` lists A/C/D, 128 layers mount, and teardown leaves nothing behind.

mod common;

use std::io::Cursor;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::{Fixture, Tar, id, sha256};
use hako_storage::{ChangeKind, Driver, Overlay2, Vfs};

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
}

fn is_whiteout(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}

/// The suite. `make` opens a driver on an empty root directory.
fn suite<D: Driver>(make: impl Fn(&Path) -> D) {
    let fx = Fixture::new();
    let d = make(fx.path());
    let (l1, l2) = (id("layer-1"), id("layer-2"));

    // Layer 1: the base.
    let tar1 = Tar::new()
        .dir("a")
        .file("a/file1", b"one")
        .file("a/keep", b"keep")
        .dir("dir")
        .file("dir/x", b"x")
        .dir("opq")
        .file("opq/old1", b"old")
        .dir("gone")
        .file("gone/inner", b"inner")
        .bytes();
    let dg = d.apply_layer(&l1, None, &mut Cursor::new(&tar1)).unwrap();
    assert_eq!(
        dg.diff_id,
        sha256(&tar1),
        "diff id is the sha256 of the tar"
    );
    assert_eq!(
        dg.blob_digest, dg.diff_id,
        "an uncompressed blob is its own diff"
    );

    // Layer 2: whiteouts of a file and a dir, an opaque dir, new files.
    let tar2 = Tar::new()
        .dir("b")
        .file("b/file2", b"two")
        .whiteout("a", "keep")
        .whiteout("", "gone")
        .dir("opq")
        .opaque("opq")
        .file("opq/new", b"new")
        .bytes();
    d.apply_layer(&l2, Some(&l1), &mut Cursor::new(&tar2))
        .unwrap();
    assert!(d.exists(&l1) && d.exists(&l2));

    // A container on layer 2 sees the union.
    let ctr = id("container-1");
    d.create_rw(&ctr, Some(&l2)).unwrap();
    let m = d.mount(&ctr).unwrap();
    let root = &m.rootfs;
    assert_eq!(read(root.join("a/file1")), "one");
    assert_eq!(read(root.join("b/file2")), "two");
    assert_eq!(read(root.join("opq/new")), "new");
    assert!(
        !root.join("a/keep").exists(),
        "whiteout in layer 2 hides a/keep"
    );
    assert!(
        !root.join("gone").exists(),
        "whiteout in layer 2 hides dir gone"
    );
    assert!(
        !root.join("opq/old1").exists(),
        "opaque dir hides lower entries"
    );
    assert_eq!(d.mount(&ctr).unwrap(), m, "mount is idempotent");

    // Copy-up: the first write changes only the container's layer.
    std::fs::write(root.join("a/file1"), "changed").unwrap();
    assert_eq!(read(root.join("a/file1")), "changed");
    assert_eq!(read(d.paths(&l1).unwrap().upper_dir.join("a/file1")), "one");
    let ctr2 = id("container-2");
    d.create_rw(&ctr2, Some(&l2)).unwrap();
    let m2 = d.mount(&ctr2).unwrap();
    assert_eq!(
        read(m2.rootfs.join("a/file1")),
        "one",
        "other containers see the image"
    );

    // Delete: a whiteout (overlay2) or absence (vfs) in the container layer.
    std::fs::remove_file(root.join("dir/x")).unwrap();
    assert!(!root.join("dir/x").exists());
    assert!(m2.rootfs.join("dir/x").exists());
    let upper = d.paths(&ctr).unwrap().upper_dir;
    if d.name() == "overlay2" {
        assert!(
            is_whiteout(&upper.join("dir/x")),
            "delete leaves a 0/0 char device"
        );
        assert!(d.paths(&l1).unwrap().upper_dir.join("dir/x").exists());
    }

    // Opaque dir made by the container: rm -r and mkdir again.
    std::fs::remove_dir_all(root.join("b")).unwrap();
    std::fs::create_dir(root.join("b")).unwrap();
    std::fs::write(root.join("b/fresh"), "fresh").unwrap();
    assert!(!root.join("b/file2").exists());
    if d.name() == "overlay2" {
        let v = xattr::get(upper.join("b"), "trusted.overlay.opaque").unwrap();
        assert_eq!(v.as_deref(), Some(&b"y"[..]), "recreated dir is opaque");
        assert!(is_whiteout(&d.paths(&l2).unwrap().upper_dir.join("gone")));
        let v = xattr::get(
            d.paths(&l2).unwrap().upper_dir.join("opq"),
            "trusted.overlay.opaque",
        );
        assert_eq!(
            v.unwrap().as_deref(),
            Some(&b"y"[..]),
            "layer opaque marker"
        );
    }
    std::fs::write(root.join("newfile"), "n").unwrap();

    // Changes of the container against its image.
    let changes = d.changes(&ctr, Some(&l2)).unwrap();
    let has =
        |kind: ChangeKind, path: &str| changes.iter().any(|c| c.kind == kind && c.path == path);
    let shown: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
    assert!(has(ChangeKind::Modified, "/a/file1"), "{shown:?}");
    assert!(has(ChangeKind::Deleted, "/dir/x"), "{shown:?}");
    assert!(has(ChangeKind::Added, "/newfile"), "{shown:?}");
    assert!(has(ChangeKind::Added, "/b/fresh"), "{shown:?}");
    assert!(
        !changes.iter().any(|c| c.path == "/opq/new"),
        "untouched: {shown:?}"
    );
    assert!(d.size(&ctr).unwrap() >= "changed".len() as u64);
    assert_eq!(d.size(&l1).unwrap(), 3 + 4 + 1 + 3 + 5);

    // 128 layers (Docker's limit) stack and mount.
    let mut parent = l2.clone();
    let mut ids = Vec::new();
    for i in 0..126 {
        let lid = id(&format!("deep-{i}"));
        let t = Tar::new()
            .dir("deep")
            .file(&format!("deep/f{i}"), b"x")
            .bytes();
        d.apply_layer(&lid, Some(&parent), &mut Cursor::new(t))
            .unwrap();
        ids.push(lid.clone());
        parent = lid;
    }
    let deep = id("container-deep");
    d.create_rw(&deep, Some(&parent)).unwrap();
    let dm = d.mount(&deep).unwrap();
    if d.name() == "overlay2" {
        assert_eq!(d.paths(&deep).unwrap().lower_dirs.len(), 128);
        assert!(dm.options.as_ref().unwrap().len() < 4096);
    }
    for i in 0..126 {
        assert!(dm.rootfs.join(format!("deep/f{i}")).exists(), "deep/f{i}");
    }
    assert_eq!(read(dm.rootfs.join("a/file1")), "one");

    // Teardown: unmount and remove everything, top down; nothing is left.
    let mut all = vec![deep, ctr, ctr2];
    all.extend(ids.into_iter().rev());
    all.extend([l2, l1]);
    for lid in &all {
        d.unmount(lid).unwrap();
        d.unmount(lid).unwrap();
        d.remove(lid).unwrap();
        assert!(!d.exists(lid));
    }
    d.remove(&all[0]).unwrap();
    d.cleanup().unwrap();
    assert!(d.list().unwrap().is_empty());
    assert_eq!(
        hako_storage::mountinfo::mounts_under(fx.path()),
        Vec::<std::path::PathBuf>::new()
    );
    let left = common::tree(fx.path());
    let allowed = [
        Path::new("overlay2"),
        Path::new("overlay2/l"),
        Path::new("vfs"),
        Path::new("vfs/dir"),
    ];
    assert!(
        left.iter().all(|p| allowed.contains(&p.as_path())),
        "left behind: {left:?}"
    );
}

#[test]
fn overlay2_conformance() {
    suite(|root| Overlay2::new(root).unwrap());
}

#[test]
fn vfs_conformance() {
    suite(|root| Vfs::new(root).unwrap());
}

/// A failed apply leaves no layer and no temporary directory behind, and a crash's
/// leftovers are removed by `cleanup`.
fn failure_leaves_nothing<D: Driver>(make: impl Fn(&Path) -> D) {
    let fx = Fixture::new();
    let d = make(fx.path());
    let tar = Tar::new().file("ok", b"ok").file("../evil", b"x").bytes();
    let err = d
        .apply_layer(&id("bad"), None, &mut Cursor::new(tar))
        .unwrap_err();
    assert!(err.to_string().contains(".."), "{err}");
    assert!(!d.exists(&id("bad")));
    assert!(d.list().unwrap().is_empty());
    let home = if d.name() == "overlay2" {
        fx.path().join("overlay2")
    } else {
        fx.path().join("vfs/dir")
    };
    let leftovers: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.iter().all(|n| n == "l"), "{leftovers:?}");
    // A crash leftover:
    std::fs::create_dir_all(home.join("tmp-crashed/diff/x")).unwrap();
    d.cleanup().unwrap();
    assert!(!home.join("tmp-crashed").exists());
}

#[test]
fn overlay2_failure_leaves_nothing() {
    failure_leaves_nothing(|root| Overlay2::new(root).unwrap());
}

#[test]
fn vfs_failure_leaves_nothing() {
    failure_leaves_nothing(|root| Vfs::new(root).unwrap());
}

#[test]
fn overlay2_probe_and_short_links() {
    let fx = Fixture::new();
    let d = Overlay2::probe(fx.path()).unwrap();
    let base = id("base");
    d.apply_layer(
        &base,
        None,
        &mut Cursor::new(Tar::new().file("f", b"1").bytes()),
    )
    .unwrap();
    let link =
        std::fs::read_to_string(fx.path().join("overlay2").join(&base).join("link")).unwrap();
    assert_eq!(link.len(), 26);
    let target = std::fs::read_link(fx.path().join("overlay2/l").join(&link)).unwrap();
    assert_eq!(target, Path::new("..").join(&base).join("diff"));
    // A crash between rename and link creation: cleanup restores the link.
    std::fs::remove_file(fx.path().join("overlay2/l").join(&link)).unwrap();
    d.cleanup().unwrap();
    assert!(fx.path().join("overlay2/l").join(&link).exists());
    let top = id("top");
    d.apply_layer(
        &top,
        Some(&base),
        &mut Cursor::new(Tar::new().file("g", b"2").bytes()),
    )
    .unwrap();
    let lower =
        std::fs::read_to_string(fx.path().join("overlay2").join(&top).join("lower")).unwrap();
    assert_eq!(lower, format!("l/{link}"));
    assert!(fx.path().join("overlay2").join(&top).join("work").is_dir());
    d.remove(&top).unwrap();
    d.remove(&base).unwrap();
}

#[test]
fn unknown_and_missing_drivers_are_named() {
    let fx = Fixture::new();
    let e = hako_storage::open_driver("aufs", fx.path()).unwrap_err();
    assert!(
        e.to_string().contains("not available on this kernel"),
        "{e}"
    );
    let e = hako_storage::open_driver("nope", fx.path()).unwrap_err();
    assert!(e.to_string().contains("unknown storage driver"), "{e}");
}
