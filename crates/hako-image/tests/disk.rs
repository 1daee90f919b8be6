//! A layer is stored once: unpacked, plus a small tar-split record, never also as the blob
//! it came in. `save` still gives every layer back byte for byte (its digest is its diff
//! id), a tar that overwrites its own files keeps its blob instead, and a damaged record or
//! layer file makes `save` fail with a line that says what, never write other bytes.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use hako_image::{ImageStore, ImportOptions, Options};
use sha2::Digest as _;

mod common;

use common::Root;

/// Bytes that do not compress: a layer kept twice cannot hide in a small blob.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u8::try_from(x >> 56).unwrap()
        })
        .collect()
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "etc/", &[][..]).unwrap();
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Bytes of every file in the blob store.
fn blob_bytes(root: &Path) -> u64 {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// The blobs that are tar-split records (zstd frames).
fn records(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let mut head = [0u8; 4];
            std::fs::File::open(p)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok()
                && head == [0x28, 0xb5, 0x2f, 0xfd]
        })
        .collect()
}

fn open(root: &Root, driver: &str) -> ImageStore {
    ImageStore::open_with(
        root.path(),
        Options {
            driver: Some(driver.into()),
            ..Default::default()
        },
    )
    .unwrap()
}

fn import(store: &ImageStore, tag: &str, stream: &[u8]) -> hako_image::Digest {
    store
        .import(
            &mut Cursor::new(stream),
            &ImportOptions {
                reference: Some(tag.into()),
                ..Default::default()
            },
        )
        .unwrap()
}

/// The files of a saved archive, by path.
fn archive_files(archive: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut ar = tar::Archive::new(Cursor::new(archive));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(path, data);
    }
    out
}

/// Every layer file of a saved archive is its diff id (its name is its digest).
fn assert_layers_exact(archive: &[u8], diff_ids: &[String]) {
    let files = archive_files(archive);
    for d in diff_ids {
        let hex = d.trim_start_matches("sha256:");
        let data = files
            .get(&format!("blobs/sha256/{hex}"))
            .unwrap_or_else(|| panic!("layer {d} missing from the archive"));
        assert_eq!(&sha256(data), d);
    }
}

fn diff_ids(store: &ImageStore, name: &str) -> Vec<String> {
    store.inspect(name).unwrap()["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn stored_once(driver: &str) {
    let big = noise(2 << 20, 7);
    let tar = layer_tar(&[("etc/big", &big), ("etc/small", b"small\n")]);
    let a = Root::new("hako-test-disk-");
    let store = open(&a, driver);
    let id = import(&store, "hako-test/disk:1", &gz(&tar));
    // The config and the record: a few KiB, not the 2 MiB layer (compressed or not).
    assert!(blob_bytes(a.path()) < 64 * 1024, "{}", blob_bytes(a.path()));
    assert_eq!(records(a.path()).len(), 1);
    assert_eq!(diff_ids(&store, "hako-test/disk:1"), vec![sha256(&tar)]);

    let mut archive = Vec::new();
    store.save(&["hako-test/disk:1"], &mut archive).unwrap();
    assert_layers_exact(&archive, &[sha256(&tar)]);
    // The layer in the archive is the imported tar itself, byte for byte.
    let files = archive_files(&archive);
    assert!(files[&format!("blobs/sha256/{}", &sha256(&tar)[7..])] == tar);

    // Loaded elsewhere: stored once too, and saved again to the same bytes.
    let b = Root::new("hako-test-disk-");
    let other = open(&b, driver);
    let loaded = other.load(&mut Cursor::new(&archive)).unwrap();
    assert_eq!(loaded[0].id, id);
    assert!(blob_bytes(b.path()) < 64 * 1024, "{}", blob_bytes(b.path()));
    let mut again = Vec::new();
    other.save(&[id.as_str()], &mut again).unwrap();
    assert!(again == archive, "save after load differs");

    // A container sees the files; removing everything leaves nothing behind.
    let m = other
        .prepare_rootfs(id.as_str(), "hako-test-disk-c1")
        .unwrap();
    assert!(std::fs::read(m.rootfs.join("etc/big")).unwrap() == big);
    other.release_rootfs("hako-test-disk-c1").unwrap();
    other.prune(true).unwrap();
    assert_eq!(blob_bytes(b.path()), 0);
}

#[test]
fn a_layer_is_stored_once_overlay2() {
    stored_once("overlay2");
}

#[test]
fn a_layer_is_stored_once_vfs() {
    stored_once("vfs");
}

#[test]
fn a_tar_that_overwrites_its_own_files_keeps_its_blob() {
    let first = noise(300_000, 1);
    let tar = layer_tar(&[("etc/x", &first), ("etc/x", b"second")]);
    let a = Root::new("hako-test-disk-");
    let store = open(&a, "overlay2");
    import(&store, "hako-test/dup:1", &tar);
    // The first etc/x exists only in the tar: the tar stays.
    assert!(blob_bytes(a.path()) >= tar.len() as u64);
    assert!(records(a.path()).is_empty());
    let mut archive = Vec::new();
    store.save(&["hako-test/dup:1"], &mut archive).unwrap();
    let files = archive_files(&archive);
    assert!(files[&format!("blobs/sha256/{}", &sha256(&tar)[7..])] == tar);
    // A later collection keeps it.
    store.prune(false).unwrap();
    let mut again = Vec::new();
    store.save(&["hako-test/dup:1"], &mut again).unwrap();
    assert!(again == archive);
}

fn save_error(store: &ImageStore, name: &str) -> String {
    let mut out = Vec::new();
    let e = store.save(&[name], &mut out).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    eprintln!("{e}");
    e
}

#[test]
fn damage_makes_save_fail_and_check_tell() {
    let tar = layer_tar(&[("etc/a", b"contents of a\n"), ("etc/b", &noise(70_000, 3))]);
    let a = Root::new("hako-test-disk-");
    let store = open(&a, "overlay2");
    import(&store, "hako-test/damage:1", &tar);
    let upper = PathBuf::from(
        store.inspect("hako-test/damage:1").unwrap()["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .unwrap(),
    );
    let record = records(a.path()).pop().unwrap();
    let good = std::fs::read(&record).unwrap();
    let mut ok = Vec::new();
    store.save(&["hako-test/damage:1"], &mut ok).unwrap();

    // A layer file changed behind hako's back (same size).
    std::fs::write(upper.join("etc/a"), b"CONTENTS of a\n").unwrap();
    let e = save_error(&store, "hako-test/damage:1");
    assert!(e.contains("\"etc/a\"") && e.contains("checksum"), "{e}");
    std::fs::write(upper.join("etc/a"), b"contents of a\n").unwrap();

    // The record damaged: a flipped byte, cut short.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x10;
    std::fs::write(&record, &bad).unwrap();
    let e = save_error(&store, "hako-test/damage:1");
    assert!(e.contains("tar-split record is damaged"), "{e}");
    std::fs::write(&record, &good[..good.len() - 8]).unwrap();
    let e = save_error(&store, "hako-test/damage:1");
    assert!(
        e.contains("tar-split record is damaged: it is cut short"),
        "{e}"
    );

    // The record gone: save says so, and `system check` names the layer.
    std::fs::remove_file(&record).unwrap();
    let e = save_error(&store, "hako-test/damage:1");
    assert!(
        e.contains("tar-split record") && e.contains("pull or load it again"),
        "{e}"
    );
    let (findings, _) = store.check(None).unwrap();
    let text = format!("{findings:?}");
    assert!(text.contains("tar-split record"), "{text}");

    // Restored: everything is as before.
    std::fs::write(&record, &good).unwrap();
    let mut again = Vec::new();
    store.save(&["hako-test/damage:1"], &mut again).unwrap();
    assert!(again == ok);
}
