//! Layer unpack: what a layer tar may carry, and the hostile tars it must refuse.

mod common;

use std::io::Cursor;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::{Fixture, Tar, gzip, id, sha256};
use hako_storage::unpack::{self, Compression, WhiteoutMode};
use hako_storage::{Driver, Error, Overlay2, Vfs};

/// A layer dir to unpack into, next to an `outside` dir that must stay empty.
struct Sandbox {
    fx: Fixture,
}

impl Sandbox {
    fn new() -> Sandbox {
        let fx = Fixture::new();
        std::fs::create_dir(fx.path().join("layer")).unwrap();
        std::fs::create_dir(fx.path().join("outside")).unwrap();
        Sandbox { fx }
    }
    fn layer(&self) -> std::path::PathBuf {
        self.fx.path().join("layer")
    }
    fn outside(&self) -> std::path::PathBuf {
        self.fx.path().join("outside")
    }
    fn apply(&self, tar: &[u8], mode: WhiteoutMode) -> hako_storage::Result<unpack::LayerDigests> {
        unpack::apply(&mut Cursor::new(tar), &self.layer(), mode)
    }
}

fn assert_unsafe(res: hako_storage::Result<unpack::LayerDigests>, what: &str) {
    match res {
        Err(Error::UnsafeEntry { .. }) => {}
        other => panic!("{what}: expected an unsafe-entry error, got {other:?}"),
    }
}

#[test]
fn evil_tars_are_refused_and_write_nothing_outside() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dot-dot", Tar::new().file("../outside/x", b"x").bytes()),
        (
            "dot-dot deep",
            Tar::new().dir("a").file("a/../../outside/x", b"x").bytes(),
        ),
        (
            "absolute",
            Tar::new()
                .file_raw(b"/tmp/hako-test-evil-abs", b"x", 0o644)
                .bytes(),
        ),
        (
            "symlink then write through it (absolute target)",
            Tar::new()
                .symlink("link", "/OUTSIDE")
                .file("link/x", b"x")
                .bytes(),
        ),
        (
            "symlink then write through it (relative target)",
            Tar::new()
                .symlink("link", "../outside")
                .file("link/x", b"x")
                .bytes(),
        ),
        (
            "symlink to dot-dot then dir through it",
            Tar::new()
                .symlink("up", "..")
                .dir("up/outside/newdir")
                .bytes(),
        ),
        (
            "hardlink outside (dot-dot)",
            Tar::new().hardlink("h", "../outside/x").bytes(),
        ),
        (
            "hardlink absolute",
            Tar::new().hardlink("h", "/etc/passwd").bytes(),
        ),
        (
            "hardlink missing target",
            Tar::new().hardlink("h", "nothere").bytes(),
        ),
        (
            "hardlink through symlink",
            Tar::new()
                .symlink("s", "/etc")
                .hardlink("h", "s/passwd")
                .bytes(),
        ),
        (
            "whiteout through symlink",
            Tar::new()
                .symlink("s", "../outside")
                .whiteout("s", "x")
                .bytes(),
        ),
    ];
    for (name, tar) in cases {
        // Replace the placeholder with this sandbox's real outside dir.
        let s = Sandbox::new();
        let tar = if name.contains("absolute target") {
            let mut t = Tar::new();
            t.symlink("link", &s.outside().display().to_string())
                .file("link/x", b"x");
            t.bytes()
        } else {
            tar
        };
        std::fs::write(s.outside().join("x"), b"precious").unwrap();
        for mode in [WhiteoutMode::Overlay, WhiteoutMode::Delete] {
            assert_unsafe(s.apply(&tar, mode), name);
            assert_eq!(
                common::tree(&s.outside()),
                vec![Path::new("x").to_path_buf()],
                "{name}"
            );
            assert_eq!(
                std::fs::read(s.outside().join("x")).unwrap(),
                b"precious",
                "{name}"
            );
        }
        assert!(!Path::new("/tmp/hako-test-evil-abs").exists());
    }
}

#[test]
fn evil_tar_through_driver_leaves_no_layer() {
    let fx = Fixture::new();
    let drivers: Vec<Box<dyn Driver>> = vec![
        Box::new(Overlay2::new(fx.path()).unwrap()),
        Box::new(Vfs::new(fx.path()).unwrap()),
    ];
    for d in drivers {
        let tar = Tar::new()
            .dir("etc")
            .symlink("etc/evil", "/etc")
            .file("etc/evil/hako-test-pwned", b"x")
            .bytes();
        let err = d
            .apply_layer(&id("evil"), None, &mut Cursor::new(tar))
            .unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!Path::new("/etc/hako-test-pwned").exists());
        assert!(!d.exists(&id("evil")));
        assert!(d.list().unwrap().is_empty());
    }
}

#[test]
fn keeps_metadata_links_devices_xattrs_sparse() {
    let s = Sandbox::new();
    let mut t = Tar::new();
    t.dir("d")
        .file_owned("d/owned", b"data", 0o4755, 1234, 5678)
        .hardlink("d/hard", "d/owned")
        .symlink("d/sym", "/does/not/matter")
        .device("d/null", tar::EntryType::Char, 1, 3)
        .device("d/blk", tar::EntryType::Block, 7, 0)
        .device("d/fifo", tar::EntryType::Fifo, 0, 0)
        .file_with_xattrs(
            "d/x",
            b"x",
            &[("user.hako", b"yes"), ("trusted.overlay.opaque", b"y")],
        );
    // A 16 MiB file that is all zero but for its last byte: unpacked sparse.
    let mut big = vec![0u8; 16 << 20];
    *big.last_mut().unwrap() = 1;
    t.file("d/sparse", &big);
    let tar = t.bytes();
    let dg = s.apply(&tar, WhiteoutMode::Overlay).unwrap();
    assert_eq!(dg.diff_id, sha256(&tar));
    assert_eq!(dg.compression, Compression::None);
    let l = s.layer();
    let md = std::fs::metadata(l.join("d/owned")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert_eq!(
        md.permissions().mode() & 0o7777,
        0o4755,
        "set-uid survives chown"
    );
    assert_eq!(md.mtime(), 1_600_000_000);
    assert_eq!(md.nlink(), 2);
    assert_eq!(std::fs::metadata(l.join("d/hard")).unwrap().ino(), md.ino());
    assert_eq!(
        std::fs::read_link(l.join("d/sym")).unwrap(),
        Path::new("/does/not/matter")
    );
    let null = std::fs::symlink_metadata(l.join("d/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(
        std::fs::symlink_metadata(l.join("d/blk"))
            .unwrap()
            .file_type()
            .is_block_device()
    );
    assert!(
        std::fs::symlink_metadata(l.join("d/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        xattr::get(l.join("d/x"), "user.hako").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    assert_eq!(
        xattr::get(l.join("d/x"), "trusted.overlay.opaque").unwrap(),
        None,
        "overlay xattrs from tars are dropped"
    );
    let sp = std::fs::metadata(l.join("d/sparse")).unwrap();
    assert_eq!(sp.len(), 16 << 20);
    assert!(
        sp.blocks() * 512 < 1 << 20,
        "sparse file takes {} blocks",
        sp.blocks()
    );
    assert_eq!(std::fs::read(l.join("d/sparse")).unwrap(), big);
    assert_eq!(
        std::fs::metadata(l.join("d")).unwrap().mtime(),
        1_600_000_000,
        "dir mtime set last"
    );
}

#[test]
fn whiteouts_per_mode() {
    // Overlay: char 0/0 and the opaque xattr.
    let s = Sandbox::new();
    let tar = Tar::new()
        .dir("a")
        .whiteout("a", "gone")
        .opaque("a")
        .file("a/kept", b"k")
        .bytes();
    s.apply(&tar, WhiteoutMode::Overlay).unwrap();
    let wh = std::fs::symlink_metadata(s.layer().join("a/gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert_eq!(
        xattr::get(s.layer().join("a"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!s.layer().join("a/.wh..wh..opq").exists());

    // Delete (vfs): the layer dir already holds the parent's files.
    let s = Sandbox::new();
    let base = Tar::new()
        .dir("a")
        .file("a/gone", b"g")
        .file("a/old", b"o")
        .dir("b")
        .file("b/old", b"o")
        .bytes();
    s.apply(&base, WhiteoutMode::Delete).unwrap();
    let tar = Tar::new()
        .whiteout("a", "gone")
        .dir("b")
        .file("b/new", b"n")
        .opaque("b")
        .bytes();
    s.apply(&tar, WhiteoutMode::Delete).unwrap();
    assert!(!s.layer().join("a/gone").exists());
    assert!(s.layer().join("a/old").exists());
    assert!(
        !s.layer().join("b/old").exists(),
        "opaque clears older entries"
    );
    assert!(
        s.layer().join("b/new").exists(),
        "but keeps this layer's own"
    );
}

/// The unpacker keeps the previous entry's directory open. A whiteout that removes that
/// directory must make the next entry in it resolve the path again: the entry then
/// re-creates the directory (vfs) instead of landing in the removed one.
#[test]
fn an_entry_after_its_directory_was_whited_out_is_not_lost() {
    let s = Sandbox::new();
    let tar = Tar::new()
        .dir("d")
        .file("d/old", b"o")
        .whiteout("", "d")
        .file("d/new", b"n")
        .bytes();
    s.apply(&tar, WhiteoutMode::Delete).unwrap();
    assert!(!s.layer().join("d/old").exists());
    assert_eq!(std::fs::read(s.layer().join("d/new")).unwrap(), b"n");
}

#[test]
fn gzip_and_zstd_digests_and_truncation() {
    let tar = Tar::new().file("f", &vec![7u8; 300_000]).bytes();
    let gz = gzip(&tar);
    let s = Sandbox::new();
    let dg = s.apply(&gz, WhiteoutMode::Overlay).unwrap();
    assert_eq!(dg.compression, Compression::Gzip);
    assert_eq!(dg.blob_digest, sha256(&gz));
    assert_eq!(dg.blob_size, gz.len() as u64);
    assert_eq!(dg.diff_id, sha256(&tar));
    assert_eq!(dg.diff_size, tar.len() as u64);

    let zs = zstd::encode_all(&tar[..], 3).unwrap();
    let s = Sandbox::new();
    let dg = s.apply(&zs, WhiteoutMode::Overlay).unwrap();
    assert_eq!(dg.compression, Compression::Zstd);
    assert_eq!((dg.blob_digest, dg.diff_id), (sha256(&zs), sha256(&tar)));

    // Truncated gzip: an error, and through a driver no half layer.
    let fx = Fixture::new();
    let d = Overlay2::new(fx.path()).unwrap();
    for cut in [gz.len() / 2, gz.len() - 4] {
        let err = d
            .apply_layer(&id("trunc"), None, &mut Cursor::new(&gz[..cut]))
            .unwrap_err();
        assert!(matches!(err, Error::BadStream(_)), "{err:?}");
        assert!(!d.exists(&id("trunc")));
        assert!(d.list().unwrap().is_empty());
    }
    let e = d
        .apply_layer(
            &id("xz"),
            None,
            &mut Cursor::new(b"\xfd7zXZ\0rest".to_vec()),
        )
        .unwrap_err();
    assert!(e.to_string().contains("not supported"), "{e}");
}

/// A container's writable layer skips the unpack of its empty layer: what it records
/// in its place must be what that unpack returns, and it must change nothing.
#[test]
fn the_empty_layer_shortcut_matches_its_unpack() {
    let sb = Sandbox::new();
    let applied = sb.apply(&[0u8; 1024], WhiteoutMode::Overlay).unwrap();
    assert_eq!(applied, unpack::empty_layer());
    assert_eq!(std::fs::read_dir(sb.layer()).unwrap().count(), 0);
}
