//! Tar-split records: a layer applied with one gives its tar back byte for byte, on both
//! drivers; a tar that overwrites its own files says the record cannot stand in for it; a
//! damaged record or a changed layer file is an error that names it, never other bytes.

mod common;

use std::io::{Cursor, Read};

use common::{Fixture, Tar, gzip, id, sha256};
use hako_storage::{Driver, Overlay2, Vfs};

/// A tar with every kind of entry unpacking treats differently.
fn varied_tar() -> Vec<u8> {
    let mut big = vec![0u8; 3 << 20];
    for (i, b) in big.iter_mut().enumerate() {
        // Data, then a zero run (a hole on disk), then data again.
        if !(1 << 20..2 << 20).contains(&i) {
            *b = u8::try_from((i * 7919) % 251).unwrap();
        }
    }
    let mut t = Tar::new();
    t.dir("etc")
        .file("etc/hostname", b"hako\n")
        .file("etc/empty", b"")
        .file_owned("etc/owned", b"uid 1000", 0o4755, 1000, 1000)
        .file_with_xattrs("etc/caps", b"x", &[("user.test", b"value")])
        .symlink("etc/link", "hostname")
        .hardlink("etc/hard", "etc/hostname")
        .device("dev-null", tar::EntryType::Char, 1, 3)
        .device("fifo", tar::EntryType::Fifo, 0, 0)
        .dir("big")
        .file("big/blob", &big)
        .whiteout("etc", "gone")
        .opaque("big")
        // A whiteout with contents: unpacking writes no file for it.
        .file(".wh.odd", b"payload of a whiteout");
    // tar-rs writes a file with holes as a GNU sparse entry: kept raw in the record.
    let holes = tempfile::NamedTempFile::new().unwrap();
    holes.as_file().set_len(4 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(holes.as_file(), b"data at 2 MiB", 2 << 20).unwrap();
    t.b_path(holes.path(), "sparse");
    let mut long = "d/".repeat(60);
    long.push_str("file");
    let mut bytes = t.bytes();
    // A PAX long name, written by tar-rs itself, then GNU tar's 10 KiB record padding.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_mtime(1);
    b.append_data(&mut h, &long, &b"long!"[..]).unwrap();
    let long_tar = b.into_inner().unwrap();
    // Splice: drop the first tar's end blocks, append the second (which has its own).
    let end = bytes.len() - 1024;
    bytes.truncate(end);
    bytes.extend_from_slice(&long_tar);
    bytes.resize(bytes.len().div_ceil(10240) * 10240 + 10240, 0);
    bytes
}

fn drivers(fx: &Fixture) -> Vec<Box<dyn Driver>> {
    vec![
        Box::new(Overlay2::new(fx.path().join("o")).unwrap()),
        Box::new(Vfs::new(fx.path().join("v")).unwrap()),
    ]
}

fn rebuild(d: &dyn Driver, layer: &str, record: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    d.layer_tar(layer, Box::new(Cursor::new(record.to_vec())))
        .map_err(std::io::Error::other)?
        .read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn a_layer_gives_its_tar_back_byte_for_byte() {
    let fx = Fixture::new();
    let tar = varied_tar();
    for d in drivers(&fx) {
        for (label, stream) in [("plain", tar.clone()), ("gzip", gzip(&tar))] {
            let layer = id(&format!("{}-{label}", d.name()));
            let mut record = Vec::new();
            let dg = d
                .apply_layer_split(&layer, None, &mut Cursor::new(&stream), &mut record)
                .unwrap();
            assert!(dg.split_complete, "{} {label}", d.name());
            assert_eq!(dg.diff_id, sha256(&tar));
            // The record holds headers, not contents.
            assert!(record.len() < 64 * 1024, "record is {} bytes", record.len());
            let back = rebuild(&*d, &layer, &record).unwrap();
            assert_eq!(back.len(), tar.len(), "{} {label}", d.name());
            assert!(back == tar, "{} {label}: rebuilt tar differs", d.name());
        }
    }
}

#[test]
fn a_layer_on_a_parent_rebuilds_its_own_tar() {
    let fx = Fixture::new();
    for d in drivers(&fx) {
        let base = Tar::new()
            .dir("a")
            .file("a/x", b"base x")
            .file("a/y", b"base y")
            .bytes();
        let top = Tar::new()
            .file("a/x", b"top x, longer")
            .whiteout("a", "y")
            .file("b", b"new")
            .bytes();
        let (l1, l2) = (id("base"), id("top"));
        let (mut r1, mut r2) = (Vec::new(), Vec::new());
        d.apply_layer_split(&l1, None, &mut Cursor::new(&base), &mut r1)
            .unwrap();
        let dg = d
            .apply_layer_split(&l2, Some(&l1), &mut Cursor::new(&top), &mut r2)
            .unwrap();
        assert!(dg.split_complete);
        assert!(rebuild(&*d, &l1, &r1).unwrap() == base);
        assert!(rebuild(&*d, &l2, &r2).unwrap() == top);
    }
}

#[test]
fn a_tar_that_overwrites_its_own_files_keeps_no_record() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "same path twice",
            Tar::new().file("x", b"first").file("x", b"second").bytes(),
        ),
        (
            "file then whiteout",
            Tar::new().file("x", b"first").whiteout("", "x").bytes(),
        ),
        (
            "directory replaced by a file",
            Tar::new()
                .dir("d")
                .file("d/x", b"inside")
                .file("d", b"now a file")
                .bytes(),
        ),
        (
            "file replaced by a symlink",
            Tar::new().file("x", b"first").symlink("x", "y").bytes(),
        ),
    ];
    let fx = Fixture::new();
    for d in drivers(&fx) {
        for (what, tar) in &cases {
            let layer = id(&format!("{}-{what}", d.name()));
            let mut record = Vec::new();
            let dg = d
                .apply_layer_split(&layer, None, &mut Cursor::new(tar), &mut record)
                .unwrap();
            assert!(!dg.split_complete, "{}: {what}", d.name());
            assert_eq!(dg.diff_id, sha256(tar));
        }
        // Without a record asked for, never complete.
        let dg = d
            .apply_layer(&id("plain"), None, &mut Cursor::new(varied_tar()))
            .unwrap();
        assert!(!dg.split_complete);
    }
}

fn upper(d: &dyn Driver, layer: &str) -> std::path::PathBuf {
    d.paths(layer).unwrap().upper_dir
}

fn expect_error(d: &dyn Driver, layer: &str, record: &[u8], want: &str) {
    let e = rebuild(d, layer, record).expect_err(want);
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains(want), "{want:?} not in {e}");
}

#[test]
fn damage_is_an_error_that_says_what() {
    let fx = Fixture::new();
    let d = Overlay2::new(fx.path()).unwrap();
    let tar = Tar::new()
        .dir("etc")
        .file("etc/a", b"contents of a")
        .file("etc/b", b"contents of b")
        .dir("sub")
        .file("sub/c", b"contents of c")
        .bytes();
    let layer = id("damaged");
    let mut record = Vec::new();
    d.apply_layer_split(&layer, None, &mut Cursor::new(&tar), &mut record)
        .unwrap();
    assert!(rebuild(&d, &layer, &record).unwrap() == tar);
    let dir = upper(&d, &layer);

    // The record itself: truncated, a flipped byte, not a record at all.
    expect_error(&d, &layer, &record[..record.len() - 6], "tar-split record");
    let mut flipped = record.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    assert!(rebuild(&d, &layer, &flipped).is_err());
    expect_error(&d, &layer, b"not a record", "tar-split record");

    // A layer file: same size other bytes, another size, gone, a symlink on the way.
    let set = |p: &str, data: &[u8]| std::fs::write(dir.join(p), data).unwrap();
    set("etc/a", b"CONTENTS of a");
    expect_error(&d, &layer, &record, "\"etc/a\"");
    expect_error(&d, &layer, &record, "checksum");
    set("etc/a", b"contents of a");
    set("etc/b", b"short");
    expect_error(&d, &layer, &record, "it has 5 bytes, 13 were unpacked");
    std::fs::remove_file(dir.join("etc/b")).unwrap();
    expect_error(&d, &layer, &record, "\"etc/b\"");
    set("etc/b", b"contents of b");
    assert!(rebuild(&d, &layer, &record).unwrap() == tar);
    std::fs::rename(dir.join("sub"), dir.join("sub2")).unwrap();
    std::os::unix::fs::symlink("sub2", dir.join("sub")).unwrap();
    expect_error(&d, &layer, &record, "\"sub/c\"");
    std::fs::remove_file(dir.join("sub")).unwrap();
    std::fs::rename(dir.join("sub2"), dir.join("sub")).unwrap();
    assert!(rebuild(&d, &layer, &record).unwrap() == tar);

    // A missing layer.
    assert!(
        d.layer_tar(&id("nothing"), Box::new(Cursor::new(record)))
            .is_err()
    );
}

#[test]
fn record_is_small_next_to_the_tar() {
    // A big program and links to it, as in a rootfs.
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap())
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o755);
    b.append_data(&mut h, "bin/prog", &data[..]).unwrap();
    for name in ["sh", "ls", "cat", "echo"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        h.set_mode(0o755);
        b.append_link(&mut h, format!("bin/{name}"), "bin/prog")
            .unwrap();
    }
    let tar = b.into_inner().unwrap();
    let fx = Fixture::new();
    let d = Overlay2::new(fx.path()).unwrap();
    let layer = id("prog");
    let mut record = Vec::new();
    let dg = d
        .apply_layer_split(&layer, None, &mut Cursor::new(&tar), &mut record)
        .unwrap();
    assert!(dg.split_complete);
    assert!(rebuild(&d, &layer, &record).unwrap() == tar);
    assert!(
        record.len() < 1024,
        "record {} bytes for a {} byte tar",
        record.len(),
        tar.len()
    );
}
