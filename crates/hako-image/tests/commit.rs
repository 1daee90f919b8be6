//! `hako diff` as a tar and `hako commit`, as root on real mounts, for both drivers:
//! changes made in a mounted container rootfs (add, modify, delete, replace a directory,
//! links) come back in a rootfs prepared from the committed image, and the committed
//! image saves and loads.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use hako_image::{CommitOptions, ImageStore, ImportOptions, Options};

mod common;

use common::Root;

fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    let dir = tar::EntryType::Directory;
    let file = tar::EntryType::Regular;
    add("bin/", b"", dir, 0o755);
    add("bin/sh", b"#!fake shell\n", file, 0o755);
    add("etc/", b"", dir, 0o755);
    add("etc/hostname", b"hako\n", file, 0o644);
    add("etc/motd", b"welcome\n", file, 0o644);
    add("var/", b"", dir, 0o755);
    add("var/lib/", b"", dir, 0o755);
    add("var/lib/data/", b"", dir, 0o755);
    add("var/lib/data/a", b"a\n", file, 0o644);
    add("var/lib/data/b", b"b\n", file, 0o644);
    b.into_inner().unwrap()
}

/// Entry names and kinds of a tar.
fn tar_names(data: &[u8]) -> BTreeMap<String, tar::EntryType> {
    let mut a = tar::Archive::new(data);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            (name, e.header().entry_type())
        })
        .collect()
}

/// Every path below `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

fn commit_round_trip(driver: &str) {
    let root = Root::new("hako-test-commit-");
    let store = ImageStore::open_with(
        root.path(),
        Options {
            driver: Some(driver.into()),
            ..Options::default()
        },
    )
    .unwrap();
    let opts = ImportOptions {
        reference: Some("hako-test/base:1".into()),
        ..ImportOptions::default()
    };
    store.import(&mut &rootfs_tar()[..], &opts).unwrap();

    let m = store
        .prepare_rootfs("hako-test/base:1", "hako-test-c1")
        .unwrap();
    let r = &m.rootfs;
    std::fs::write(r.join("new.txt"), b"new\n").unwrap();
    std::fs::write(r.join("etc/hostname"), b"committed\n").unwrap();
    std::fs::remove_file(r.join("etc/motd")).unwrap();
    std::fs::remove_dir_all(r.join("var/lib/data")).unwrap();
    std::fs::create_dir(r.join("var/lib/data")).unwrap();
    std::fs::write(r.join("var/lib/data/c"), b"c\n").unwrap();
    std::os::unix::fs::symlink("../new.txt", r.join("etc/link")).unwrap();
    std::fs::hard_link(r.join("new.txt"), r.join("bin/hard")).unwrap();

    let mut diff = Vec::new();
    store.export_diff("hako-test-c1", &mut diff).unwrap();
    let names = tar_names(&diff);
    assert!(names.contains_key("etc/.wh.motd"), "{names:?}");
    assert!(names.contains_key("new.txt"), "{names:?}");
    assert!(names.contains_key("etc/hostname"), "{names:?}");
    assert_eq!(names.get("etc/link"), Some(&tar::EntryType::Symlink));
    assert!(names.contains_key("var/lib/data/c"), "{names:?}");
    assert!(!names.contains_key("var/lib/data/a"), "{names:?}");
    if driver == "overlay2" {
        // Overlay marks the recreated directory opaque; the tar says so the OCI way.
        assert!(names.contains_key("var/lib/data/.wh..wh..opq"), "{names:?}");
        assert!(
            names.values().any(|k| *k == tar::EntryType::Link),
            "hard link kept: {names:?}"
        );
    }

    let id = store
        .commit(
            "hako-test-c1",
            &CommitOptions {
                reference: Some("hako-test/committed:1".into()),
                changes: vec![r#"CMD ["/bin/sh", "-c", "true"]"#.into()],
                message: Some("a commit".into()),
                author: Some("hako test".into()),
                pause: true,
                config: None,
                created_by: Some("sh -c make".into()),
            },
        )
        .unwrap();
    assert_eq!(store.resolve("hako-test/committed:1").unwrap(), id);
    let config: serde_json::Value =
        serde_json::from_slice(&store.image_config(&id).unwrap()).unwrap();
    let last = config["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (&last["created_by"], &last["comment"], &last["author"]),
        (
            &"sh -c make".into(),
            &"a commit".into(),
            &"hako test".into()
        ),
        "{last}"
    );

    let m2 = store
        .prepare_rootfs("hako-test/committed:1", "hako-test-c2")
        .unwrap();
    let r2 = &m2.rootfs;
    assert_eq!(std::fs::read(r2.join("new.txt")).unwrap(), b"new\n");
    assert_eq!(
        std::fs::read(r2.join("etc/hostname")).unwrap(),
        b"committed\n"
    );
    assert_eq!(std::fs::read(r2.join("bin/hard")).unwrap(), b"new\n");
    assert_eq!(std::fs::read(r2.join("bin/sh")).unwrap(), b"#!fake shell\n");
    assert_eq!(
        std::fs::read_link(r2.join("etc/link")).unwrap(),
        Path::new("../new.txt")
    );
    assert!(!r2.join("etc/motd").exists(), "the deletion is committed");
    assert_eq!(
        tree(&r2.join("var/lib/data")),
        vec!["c".to_string()],
        "the replaced directory hides the old files"
    );
    // The new container starts clean: nothing changed yet.
    assert!(store.container_changes("hako-test-c2").unwrap().is_empty());

    // save needs the new layer's blob; a fresh store loads it back.
    let mut saved = Vec::new();
    store.save(&["hako-test/committed:1"], &mut saved).unwrap();
    let root2 = Root::new("hako-test-commit-");
    let other = ImageStore::open_with(
        root2.path(),
        Options {
            driver: Some(driver.into()),
            ..Options::default()
        },
    )
    .unwrap();
    let loaded = other.load(&mut &saved[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    let m3 = other
        .prepare_rootfs("hako-test/committed:1", "hako-test-c3")
        .unwrap();
    assert!(!m3.rootfs.join("etc/motd").exists());
    let mut s = String::new();
    std::fs::File::open(m3.rootfs.join("etc/hostname"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "committed\n");
    other.release_rootfs("hako-test-c3").unwrap();

    store.release_rootfs("hako-test-c2").unwrap();
    store.release_rootfs("hako-test-c1").unwrap();
    store.remove("hako-test/committed:1", false).unwrap();
    store.remove("hako-test/base:1", false).unwrap();
}

#[test]
fn commit_round_trip_overlay2() {
    commit_round_trip("overlay2");
}

#[test]
fn commit_round_trip_vfs() {
    commit_round_trip("vfs");
}

#[test]
fn storage_opt_size_without_quota_is_refused() {
    let root = Root::new("hako-test-commit-");
    let store = ImageStore::open_with(
        root.path(),
        Options {
            driver: Some("overlay2".into()),
            ..Options::default()
        },
    )
    .unwrap();
    let opts = ImportOptions {
        reference: Some("hako-test/base:1".into()),
        ..ImportOptions::default()
    };
    store.import(&mut &rootfs_tar()[..], &opts).unwrap();
    assert!(!store.quota_supported(), "/var/tmp is not xfs with pquota");
    let err = store
        .prepare_rootfs_with(
            "hako-test/base:1",
            "hako-test-q",
            &hako_image::StorageOpts::parse(&["size=10M"]).unwrap(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("'pquota'"), "{err}");
    // Nothing half made: the same id works without the option.
    store
        .prepare_rootfs("hako-test/base:1", "hako-test-q")
        .unwrap();
    store.release_rootfs("hako-test-q").unwrap();
}
