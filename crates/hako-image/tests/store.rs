//! ImageStore end to end, as root on real mounts: import, inspect, tag, container rootfs,
//! diff, remove, prune, save/load round trips, skopeo interop, and a `kill -9` mid-load.

use std::io::{Cursor, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use hako_image::{ChangeKind, Error, ImageStore, ImportOptions, Options, RemoveAction};

mod common;

use common::Root;

fn rootfs_tar(extra: &str) -> Vec<u8> {
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
    add("bin/", b"", tar::EntryType::Directory, 0o755);
    add("bin/sh", b"#!fake shell\n", tar::EntryType::Regular, 0o755);
    add("etc/", b"", tar::EntryType::Directory, 0o755);
    add("etc/hostname", b"hako\n", tar::EntryType::Regular, 0o644);
    add(
        "etc/extra",
        extra.as_bytes(),
        tar::EntryType::Regular,
        0o644,
    );
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn import(store: &ImageStore, tag: &str, extra: &str) -> hako_image::Digest {
    let opts = ImportOptions {
        reference: Some(tag.into()),
        changes: vec![
            "ENV A=1".into(),
            "CMD [\"/bin/sh\"]".into(),
            "WORKDIR /srv".into(),
        ],
        ..Default::default()
    };
    store
        .import(&mut Cursor::new(gz(&rootfs_tar(extra))), &opts)
        .unwrap()
}

fn leftovers(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["blobs/sha256", "blobs/tmp", "overlay2", "vfs/dir"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            for e in rd {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                if n != "l" {
                    out.push(format!("{sub}/{n}"));
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(root.join("overlay2/l")) {
        out.extend(rd.map(|e| format!("overlay2/l/{}", e.unwrap().file_name().to_string_lossy())));
    }
    out
}

fn lifecycle(driver: &str) {
    let root = Root::new("hako-test-image-");
    let store = ImageStore::open_with(
        root.path(),
        Options {
            driver: Some(driver.into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(store.driver_name(), driver);
    let id = import(&store, "hako-test/app:1", "v1");

    // Listing and lookup by every name Docker accepts.
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].repo_tags, vec!["hako-test/app:1"]);
    for name in [
        "hako-test/app:1",
        "docker.io/hako-test/app:1",
        id.as_str(),
        id.hex(),
        &id.hex()[..12],
    ] {
        assert_eq!(store.resolve(name).unwrap(), id, "{name}");
    }
    assert!(matches!(
        store.resolve("hako-test/app:2"),
        Err(Error::NoSuchImage(_))
    ));
    assert!(matches!(
        store.tag(id.as_str(), "Bad:Tag"),
        Err(Error::InvalidReference { .. })
    ));

    // Inspect has Docker's shape.
    let v = store.inspect("hako-test/app:1").unwrap();
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["RepoTags"][0], "hako-test/app:1");
    assert_eq!(v["Config"]["Env"][0], "A=1");
    assert_eq!(v["Config"]["Cmd"][0], "/bin/sh");
    assert_eq!(v["Config"]["WorkingDir"], "/srv");
    assert_eq!(v["RootFS"]["Type"], "layers");
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(v["GraphDriver"]["Name"], driver);
    if driver == "overlay2" {
        let upper = v["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap();
        assert!(Path::new(upper).join("etc/hostname").exists(), "{v}");
        assert!(v["GraphDriver"]["Data"]["MergedDir"].is_string());
        assert!(v["GraphDriver"]["Data"]["WorkDir"].is_string());
    }
    assert!(v["Size"].as_u64().unwrap() > 0);

    // The same rootfs again shares the layer.
    let id2 = import(&store, "hako-test/app:copy", "v1");
    assert_ne!(id, id2, "configs differ by creation time");
    store.tag("hako-test/app:1", "hako-test/other").unwrap();
    assert_eq!(store.resolve("hako-test/other:latest").unwrap(), id);

    // A container rootfs: the image's files, writes stay in the container.
    let m = store
        .prepare_rootfs("hako-test/app:1", "hako-test-ctr1")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(m.rootfs.join("etc/hostname")).unwrap(),
        "hako\n"
    );
    std::fs::write(m.rootfs.join("etc/hostname"), "changed\n").unwrap();
    std::fs::remove_file(m.rootfs.join("etc/extra")).unwrap();
    std::fs::write(m.rootfs.join("new"), "n").unwrap();
    let changes = store.container_changes("hako-test-ctr1").unwrap();
    let has = |k: ChangeKind, p: &str| changes.iter().any(|c| c.kind == k && c.path == p);
    assert!(
        has(ChangeKind::Modified, "/etc/hostname")
            && has(ChangeKind::Deleted, "/etc/extra")
            && has(ChangeKind::Added, "/new"),
        "{changes:?}"
    );
    assert!(matches!(
        store.prepare_rootfs("hako-test/app:1", "hako-test-ctr1"),
        Err(Error::ContainerExists(_))
    ));

    // rmi refuses while a container uses the image; by tag it only untags other tags.
    assert_eq!(
        store.remove("hako-test/other", false).unwrap(),
        vec![RemoveAction::Untagged("hako-test/other:latest".into())]
    );
    assert!(matches!(
        store.remove("hako-test/app:1", false),
        Err(Error::ImageInUse { .. })
    ));
    store.release_rootfs("hako-test-ctr1").unwrap();
    let acts = store.remove("hako-test/app:1", false).unwrap();
    assert!(
        acts.contains(&RemoveAction::Deleted(id.clone())),
        "{acts:?}"
    );
    assert_eq!(store.list().unwrap().len(), 1);
    // The shared layer is still there for the copy.
    let m = store
        .prepare_rootfs("hako-test/app:copy", "hako-test-ctr2")
        .unwrap();
    assert!(m.rootfs.join("etc/extra").exists());
    store.release_rootfs("hako-test-ctr2").unwrap();

    // prune --all removes everything; nothing is left on disk.
    let report = store.prune(true).unwrap();
    assert_eq!(report.images_deleted, vec![id2]);
    assert!(store.list().unwrap().is_empty());
    assert_eq!(leftovers(root.path()), Vec::<String>::new());
}

#[test]
fn lifecycle_overlay2() {
    lifecycle("overlay2");
}

#[test]
fn lifecycle_vfs() {
    lifecycle("vfs");
}

#[test]
fn bad_import_writes_nothing() {
    let root = Root::new("hako-test-image-");
    let store = ImageStore::open(root.path()).unwrap();
    let e = store
        .import(
            &mut Cursor::new(rootfs_tar("")),
            &ImportOptions {
                reference: Some("a:b:c".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("invalid reference format"), "{e}");
    let e = store
        .import(
            &mut Cursor::new(rootfs_tar("")),
            &ImportOptions {
                changes: vec!["RUN x".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::BadChange(_)), "{e}");
    let g = gz(&rootfs_tar("x"));
    let e = store
        .import(
            &mut Cursor::new(&g[..g.len() / 2]),
            &ImportOptions::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("layer stream"), "{e}");
    drop(store);
    let store = ImageStore::open(root.path()).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(leftovers(root.path()), Vec::<String>::new());
}

#[test]
fn save_load_round_trip_and_corruption() {
    let a = Root::new("hako-test-image-");
    let store = ImageStore::open(a.path()).unwrap();
    let id = import(&store, "hako-test/rt:1", "round trip");
    store
        .tag("hako-test/rt:1", "localhost:5000/hako-test/rt:2")
        .unwrap();
    let mut archive = Vec::new();
    store.save(&[id.as_str()], &mut archive).unwrap();

    let b = Root::new("hako-test-image-");
    let other = ImageStore::open(b.path()).unwrap();
    let loaded = other.load(&mut Cursor::new(&archive)).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        loaded[0].id, id,
        "the image id is the config digest and survives"
    );
    let mut tags = loaded[0].tags.clone();
    tags.sort();
    assert_eq!(
        tags,
        vec!["hako-test/rt:1", "localhost:5000/hako-test/rt:2"]
    );
    assert_eq!(
        other.inspect("hako-test/rt:1").unwrap()["RootFS"],
        store.inspect(id.as_str()).unwrap()["RootFS"]
    );
    // Loading again is a no-op that still succeeds.
    assert_eq!(other.load(&mut Cursor::new(&archive)).unwrap()[0].id, id);
    // Saving the loaded image gives a byte-identical archive.
    let mut again = Vec::new();
    other.save(&[id.as_str()], &mut again).unwrap();
    assert_eq!(again, archive);

    // A flipped byte in a layer: digest mismatch, nothing listed.
    let c = Root::new("hako-test-image-");
    let third = ImageStore::open(c.path()).unwrap();
    let mut bad = archive.clone();
    let pos = bad
        .windows(10)
        .position(|w| w == b"round trip")
        .unwrap_or(0);
    assert!(pos > 0);
    bad[pos] ^= 1;
    let e = third.load(&mut Cursor::new(&bad)).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert!(third.list().unwrap().is_empty());
    // Truncated: an error, nothing listed.
    third
        .load(&mut Cursor::new(&archive[..archive.len() / 2]))
        .unwrap_err();
    assert!(third.list().unwrap().is_empty());
    third.prune(false).unwrap();
    assert_eq!(leftovers(c.path()), Vec::<String>::new());
}

fn skopeo() -> bool {
    Command::new("skopeo")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn skopeo_reads_what_we_save_and_we_load_what_it_writes() {
    if !skopeo() {
        // scripts/test.sh installs skopeo: under CI missing is a failure.
        assert!(
            !matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1")),
            "skopeo not installed (CI=true)"
        );
        eprintln!("skopeo not installed; skipping");
        return;
    }
    let a = Root::new("hako-test-image-");
    let store = ImageStore::open(a.path()).unwrap();
    let id = import(&store, "hako-test/sk:1", "skopeo");
    let saved = a.path().join("saved.tar");
    store
        .save(
            &["hako-test/sk:1"],
            &mut std::fs::File::create(&saved).unwrap(),
        )
        .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("skopeo")
            .args(["--insecure-policy"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let inspect = run(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}", saved.display()),
    ]);
    let cfg: serde_json::Value = serde_json::from_slice(&inspect).unwrap();
    assert_eq!(cfg["config"]["Env"][0], "A=1");
    // Our archive is also an OCI layout.
    run(&["inspect", &format!("oci-archive:{}", saved.display())]);
    let oci = a.path().join("sk-oci.tar");
    let dock = a.path().join("sk-docker.tar");
    run(&[
        "copy",
        &format!("docker-archive:{}", saved.display()),
        &format!("oci-archive:{}:docker.io/hako-test/sk:oci", oci.display()),
    ]);
    run(&[
        "copy",
        &format!("docker-archive:{}", saved.display()),
        &format!("docker-archive:{}:hako-test/sk:docker", dock.display()),
    ]);

    for (file, tag) in [(&oci, "hako-test/sk:oci"), (&dock, "hako-test/sk:docker")] {
        let b = Root::new("hako-test-image-");
        let other = ImageStore::open(b.path()).unwrap();
        let loaded = other.load(&mut std::fs::File::open(file).unwrap()).unwrap();
        assert_eq!(loaded.len(), 1, "{file:?}");
        assert_eq!(loaded[0].tags, vec![tag.to_string()], "{file:?}");
        let v = other.inspect(tag).unwrap();
        assert_eq!(v["RootFS"], store.inspect(id.as_str()).unwrap()["RootFS"]);
        let m = other.prepare_rootfs(tag, "hako-test-sk").unwrap();
        assert_eq!(
            std::fs::read_to_string(m.rootfs.join("etc/extra")).unwrap(),
            "skopeo"
        );
        other.release_rootfs("hako-test-sk").unwrap();
    }
}

/// The child half of `kill_9_mid_load`: loads stdin into the store named by the env.
#[test]
#[ignore = "helper process for kill_9_mid_load"]
fn load_child() {
    let Ok(root) = std::env::var("HAKO_TEST_LOAD_ROOT") else {
        return;
    };
    let store = ImageStore::open(&root).unwrap();
    let _ = store.load(&mut std::io::stdin().lock());
}

#[test]
fn kill_9_mid_load() {
    // An archive with a big layer so the child is surely mid-way when killed.
    let src = Root::new("hako-test-image-");
    let store = ImageStore::open(src.path()).unwrap();
    let mut big = tar::Builder::new(Vec::new());
    for i in 0..64 {
        let data: Vec<u8> = (0..256 * 1024u32)
            .map(|x| (x.wrapping_mul(2_654_435_761) >> (i % 24)).to_le_bytes()[0])
            .collect();
        let mut h = tar::Header::new_gnu();
        h.set_path(format!("data/f{i}")).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        big.append(&h, &data[..]).unwrap();
    }
    store
        .import(
            &mut Cursor::new(big.into_inner().unwrap()),
            &ImportOptions {
                reference: Some("hako-test/big".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let mut archive = Vec::new();
    store.save(&["hako-test/big"], &mut archive).unwrap();

    let dst = Root::new("hako-test-image-");
    drop(ImageStore::open(dst.path()).unwrap());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "load_child", "--nocapture"])
        .env("HAKO_TEST_LOAD_ROOT", dst.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Feed 60%, wait until the child has a half-written blob, then kill it.
    stdin.write_all(&archive[..archive.len() * 6 / 10]).unwrap();
    stdin.flush().unwrap();
    let tmp = dst.path().join("blobs/tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        std::fs::read_dir(&tmp).unwrap().count() > 0,
        "child never started writing"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    drop(stdin);

    // Reopening cleans up; nothing half-loaded is listed.
    let reopened = ImageStore::open(dst.path()).unwrap();
    assert!(reopened.list().unwrap().is_empty());
    assert_eq!(leftovers(dst.path()), Vec::<String>::new());
    // And the store still works: the full load succeeds.
    let loaded = reopened.load(&mut Cursor::new(&archive)).unwrap();
    assert_eq!(loaded[0].tags, vec!["hako-test/big:latest"]);
}
