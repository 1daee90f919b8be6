//! Every escape the workspace's four resolvers used to catch, through the one resolver,
//! with `openat2` and with the user-space walk: the answers must be the same.

use super::*;
use std::os::unix::fs::symlink;

struct Fixture {
    root: tempfile::TempDir,
    outside: tempfile::TempDir,
}

/// A root full of traps, and a directory outside it that must never change.
fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "host").unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(r.join("file"), "f").unwrap();
    // An absolute symlink naming a host directory (CVE-2018-15664's shape).
    symlink(outside.path(), r.join("abs")).unwrap();
    // Climbing out with `..` through symlinks.
    symlink("../../../../../..", r.join("up")).unwrap();
    symlink("/..", r.join("rootup")).unwrap();
    // An absolute symlink that means the root's own /etc.
    symlink("/etc", r.join("evil2")).unwrap();
    // The same one level down: `/` is the root's wherever the symlink is.
    symlink("/etc", r.join("etc/back")).unwrap();
    symlink("/made/deep", r.join("etc/dangling")).unwrap();
    // A relative symlink that stays below the root.
    symlink("etc", r.join("rel")).unwrap();
    // A dangling symlink (a mount target to create).
    symlink("/made/here", r.join("dangling")).unwrap();
    symlink(outside.path().join("new"), r.join("dangling_out")).unwrap();
    symlink("loop", r.join("loop")).unwrap();
    // /etc/passwd traps for `-u` lookups.
    symlink("/dev/zero", r.join("zero")).unwrap();
    nix::unistd::mkfifo(&r.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
    let big = File::create(r.join("big")).unwrap();
    big.set_len(100 << 20).unwrap();
    Fixture { root, outside }
}

impl Fixture {
    fn roots(&self, rules: Rules) -> [Root; 2] {
        [
            Root::open(self.root.path(), rules).unwrap(),
            Root::open(self.root.path(), rules).unwrap().walk_only(),
        ]
    }

    fn outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(self.outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("secret")]);
    }
}

fn read(r: &Root, p: &str) -> Result<Vec<u8>, Errno> {
    let fd = r.open_at(p, OFlag::O_RDONLY)?;
    let mut v = Vec::new();
    File::from(fd).read_to_end(&mut v).unwrap();
    Ok(v)
}

fn how(r: &Root) -> &'static str {
    if r.walk_only { "walk" } else { "openat2" }
}

#[test]
fn in_root_symlinks_and_dotdot_never_leave_the_root() {
    let f = fixture();
    let passwd = b"root:x:0:0::/root:/bin/sh\n".to_vec();
    for r in f.roots(Rules::InRoot) {
        let w = how(&r);
        // The host directory named by `abs` does not exist inside the root.
        assert_eq!(read(&r, "abs/secret"), Err(Errno::ENOENT), "{w}");
        for p in [
            "up/etc/passwd",
            "../../etc/passwd",
            "/../../etc/passwd",
            "rootup/etc/passwd",
            "evil2/passwd",
            "rel/passwd",
            "etc/back/passwd",
            "etc/back/back/back/passwd",
            "etc/../../../etc/passwd",
        ] {
            assert_eq!(read(&r, p).as_deref(), Ok(passwd.as_slice()), "{w} {p}");
        }
        assert_eq!(read(&r, "loop"), Err(Errno::ELOOP), "{w}");
        assert_eq!(read(&r, "file/x"), Err(Errno::ENOTDIR), "{w}");
        // O_NOFOLLOW | O_PATH opens a final symlink itself.
        let l = r
            .open_at("evil2", OFlag::O_PATH | OFlag::O_NOFOLLOW)
            .unwrap();
        assert_eq!(
            readlinkat(l.as_fd(), "").unwrap(),
            OsString::from("/etc"),
            "{w}"
        );
        // `-u` lookups: the host's /dev/zero is not the root's, a FIFO does not hang, a
        // sparse 100 MB file is over the cap.
        assert_eq!(r.read_file("zero", 1 << 20).unwrap(), None, "{w}");
        let e = r.read_file("fifo", 1 << 20).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{w} {e}");
        let e = r.read_file("big", 8 << 20).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{w} {e}");
        assert_eq!(
            r.read_file("evil2/passwd", 1 << 20).unwrap(),
            Some(passwd.clone())
        );
    }
    f.outside_untouched();
}

#[test]
fn ensure_creates_through_dangling_symlinks_inside_the_root() {
    let f = fixture();
    for (i, r) in f.roots(Rules::InRoot).into_iter().enumerate() {
        let w = how(&r);
        let d = r
            .ensure(format!("dangling/d{i}/x"), Kind::Dir, OFlag::O_PATH)
            .unwrap();
        assert!(File::from(d).metadata().unwrap().is_dir(), "{w}");
        assert!(
            f.root.path().join(format!("made/here/d{i}/x")).is_dir(),
            "{w}"
        );
        r.ensure(format!("dangling_out/f{i}"), Kind::File, OFlag::O_PATH)
            .unwrap();
        let inside = f
            .root
            .path()
            .join(f.outside.path().strip_prefix("/").unwrap());
        assert!(inside.join(format!("new/f{i}")).is_file(), "{w}");
        r.ensure(format!("abs/x{i}/y"), Kind::File, OFlag::O_PATH)
            .unwrap();
        assert!(inside.join(format!("x{i}/y")).is_file(), "{w}");
        r.ensure(format!("up/etc/e{i}"), Kind::Dir, OFlag::O_PATH)
            .unwrap();
        assert!(f.root.path().join(format!("etc/e{i}")).is_dir(), "{w}");
        // Existing: opened as it is; a file where a directory is needed: ENOTDIR.
        r.ensure_dir("etc").unwrap();
        assert_eq!(r.ensure_dir("file/x").unwrap_err(), Errno::ENOTDIR, "{w}");
        assert_eq!(r.ensure_dir("loop/x").unwrap_err(), Errno::ELOOP, "{w}");
    }
    f.outside_untouched();
}

#[test]
fn beneath_refuses_every_way_out() {
    let f = fixture();
    for r in f.roots(Rules::Beneath) {
        let w = how(&r);
        for p in [
            "abs/secret",
            "up/etc/passwd",
            "../etc/passwd",
            "rootup/etc",
            "evil2/passwd",
        ] {
            assert_eq!(read(&r, p), Err(Errno::EXDEV), "{w} {p}");
        }
        assert!(read(&r, "rel/passwd").is_ok(), "{w}");
        assert!(read(&r, "etc/../etc/passwd").is_ok(), "{w}");
        assert_eq!(r.ensure_dir("dangling/x").unwrap_err(), Errno::EXDEV, "{w}");
    }
    f.outside_untouched();
}

#[test]
fn no_symlinks_refuses_any_symlink_on_the_way() {
    let f = fixture();
    for r in f.roots(Rules::NoSymlinks) {
        let w = how(&r);
        for p in ["abs/secret", "evil2/passwd", "rel/passwd", "up/etc", "rel"] {
            assert_eq!(read(&r, p), Err(Errno::ELOOP), "{w} {p}");
        }
        assert_eq!(r.ensure_dir("evil2/sub").unwrap_err(), Errno::ELOOP, "{w}");
        assert_eq!(r.ensure_dir("abs/sub").unwrap_err(), Errno::ELOOP, "{w}");
        assert_eq!(r.ensure_dir("file/sub").unwrap_err(), Errno::ENOTDIR, "{w}");
        r.ensure_dir("etc/new/deeper").unwrap();
        assert!(f.root.path().join("etc/new/deeper").is_dir());
        // A final symlink can still be looked at (to replace it) with O_NOFOLLOW.
        r.open_at("evil2", OFlag::O_PATH | OFlag::O_NOFOLLOW)
            .unwrap();
        // `..` stays at the top.
        assert!(read(&r, "../etc/passwd").is_ok(), "{w}");
    }
    f.outside_untouched();
}

#[test]
fn magic_links_are_never_followed() {
    let slash = Root::open(Path::new("/"), Rules::InRoot).unwrap();
    for r in [slash.with_rules(Rules::InRoot).unwrap(), slash.walk_only()] {
        let w = how(&r);
        assert_eq!(
            r.open_at("/proc/self/root/etc", OFlag::O_PATH).unwrap_err(),
            Errno::ELOOP,
            "{w}"
        );
        assert_eq!(
            r.open_at("/proc/self/cwd", OFlag::O_PATH).unwrap_err(),
            Errno::ELOOP,
            "{w}"
        );
        // procfs's ordinary symlinks are fine.
        r.open_at("/proc/self/status", OFlag::O_RDONLY).unwrap();
    }
}

#[test]
fn entry_names_cannot_climb_out() {
    assert_eq!(entry_name(b"../x"), Err(BadName::DotDot));
    assert_eq!(entry_name(b"a/../../x"), Err(BadName::DotDot));
    assert_eq!(entry_name(b"/etc/passwd"), Err(BadName::Absolute));
    assert_eq!(entry_name(b"a\0b"), Err(BadName::Nul));
    assert_eq!(entry_name(b"./a//b/").unwrap(), vec!["a", "b"]);
    assert_eq!(entry_name(b"./").unwrap(), Vec::<OsString>::new());
}
