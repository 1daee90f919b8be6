//! COPY on real directories (as root: ownership is part of what is checked).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use super::*;
use crate::ignore::{Matcher, read_patterns};

fn ctx(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, content) in files {
        let full = d.path().join(p);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, content).unwrap();
    }
    d
}

fn root(d: &Path, ignore: &str) -> SourceRoot {
    SourceRoot::context(d, Matcher::new(&read_patterns(ignore)).unwrap()).unwrap()
}

fn sel(r: &SourceRoot, srcs: &[&str]) -> Result<Vec<Item>, CopyError> {
    select(
        r,
        &srcs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &SelectOptions::default(),
    )
}

fn rels(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .flat_map(|i| {
            i.entries
                .iter()
                .map(move |e| format!("{}:{}", i.rel, e.rel))
        })
        .collect()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn selection_with_dockerignore_and_wildcards() {
    let d = ctx(&[
        ("a.txt", "a"),
        ("b.txt", "b"),
        ("c.md", "c"),
        ("dir/x", "x"),
        ("dir/secret.key", "k"),
        ("dir/sub/y", "y"),
        ("node_modules/m", "m"),
    ]);
    let r = root(d.path(), "node_modules\n**/*.key\n");
    let items = sel(&r, &["*.txt"]).unwrap();
    assert_eq!(rels(&items), [r"a.txt:", "b.txt:"]);
    let items = sel(&r, &["."]).unwrap();
    let all = rels(&items);
    assert!(all.contains(&":dir/x".to_string()), "{all:?}");
    assert!(
        !all.iter()
            .any(|p| p.contains("secret") || p.contains("node_modules")),
        "{all:?}"
    );
    assert!(matches!(
        sel(&r, &["node_modules/m"]),
        Err(CopyError::NotFound { .. })
    ));
    assert!(matches!(
        sel(&r, &["nope"]),
        Err(CopyError::NotFound { .. })
    ));
    assert!(matches!(
        sel(&r, &["../x"]),
        Err(CopyError::Forbidden { .. })
    ));
    assert!(
        sel(&r, &["*.nomatch"]).unwrap().is_empty(),
        "an empty wildcard copies nothing"
    );
    let items = sel(&r, &["dir/*/y"]).unwrap();
    assert_eq!(rels(&items), ["dir/sub/y:"]);
}

#[test]
fn symlinks_inside_stay_links_and_escapes_fail() {
    let d = ctx(&[("real/f", "data")]);
    symlink("real", d.path().join("alias")).unwrap();
    symlink("/etc/passwd", d.path().join("escape")).unwrap();
    symlink("../../../../etc", d.path().join("real/up")).unwrap();
    let r = root(d.path(), "");
    let items = sel(&r, &["alias"]).unwrap();
    assert!(items[0].is_dir, "a top-level symlink is followed");
    let up = items[0].entries.iter().find(|e| e.rel == "up").unwrap();
    assert_eq!(
        up.kind,
        Kind::Symlink("../../../../etc".into()),
        "links below are copied as links"
    );
    let e = sel(&r, &["escape"]).unwrap_err();
    assert!(matches!(e, CopyError::Forbidden { .. }), "{e}");
    assert!(e.to_string().contains("outside the build context"), "{e}");
    assert!(matches!(
        sel(&r, &["real/up/passwd"]),
        Err(CopyError::Forbidden { .. })
    ));
}

#[test]
fn digest_ignores_mtime_but_not_content_or_mode() {
    let d = ctx(&[("f", "one"), ("dir/g", "two")]);
    let r = root(d.path(), "");
    let base = digest(&sel(&r, &["."]).unwrap());
    let f = d.path().join("f");
    let old = fs::metadata(&f).unwrap().modified().unwrap();
    fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(old - std::time::Duration::from_secs(1000))
        .unwrap();
    assert_eq!(
        digest(&sel(&r, &["."]).unwrap()),
        base,
        "mtime is not an input"
    );
    fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    let moded = digest(&sel(&r, &["."]).unwrap());
    assert_ne!(moded, base);
    fs::write(&f, "ONE").unwrap();
    assert_ne!(digest(&sel(&r, &["."]).unwrap()), moded);
    // The same content under another name is another input.
    assert_ne!(
        digest(&sel(&r, &["f"]).unwrap()),
        digest(&sel(&r, &["dir/g"]).unwrap())
    );
}

fn write_to(
    r: &SourceRoot,
    srcs: &[&str],
    rootfs: &Path,
    dest: &str,
    opts: &WriteOptions,
) -> Result<(), CopyError> {
    let items = select(
        r,
        &srcs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &SelectOptions {
            parents: opts.parents,
            exclude: vec![],
        },
    )?;
    write(r, &items, &[], rootfs, dest, opts)
}

#[test]
fn destinations_like_docker() {
    let d = ctx(&[("f", "file"), ("dir/a", "A"), ("dir/sub/b", "B")]);
    let r = root(d.path(), "");
    let rootfs = tempfile::tempdir().unwrap();
    let o = WriteOptions::default();
    write_to(&r, &["f"], rootfs.path(), "/new", &o).unwrap();
    assert_eq!(
        fs::read_to_string(rootfs.path().join("new")).unwrap(),
        "file"
    );
    write_to(&r, &["f"], rootfs.path(), "/into/", &o).unwrap();
    assert_eq!(
        fs::read_to_string(rootfs.path().join("into/f")).unwrap(),
        "file"
    );
    // An existing directory without the slash is still "into".
    write_to(&r, &["f"], rootfs.path(), "/into", &o).unwrap();
    write_to(&r, &["dir"], rootfs.path(), "/d", &o).unwrap();
    assert_eq!(
        fs::read_to_string(rootfs.path().join("d/sub/b")).unwrap(),
        "B"
    );
    assert!(
        !rootfs.path().join("d/dir").exists(),
        "a directory's contents are copied"
    );
    write_to(
        &r,
        &["dir/sub/b"],
        rootfs.path(),
        "/p/",
        &WriteOptions {
            parents: true,
            ..o.clone()
        },
    )
    .unwrap();
    assert!(rootfs.path().join("p/dir/sub/b").exists());
    // Replacing a file is fine; a directory is not replaced by a file.
    write_to(&r, &["f"], rootfs.path(), "/new", &o).unwrap();
    let e = write_to(
        &r,
        &["f"],
        rootfs.path(),
        "/d/sub",
        &WriteOptions::default(),
    );
    assert!(
        e.is_ok(),
        "an existing directory takes the file inside: {e:?}"
    );
    assert!(rootfs.path().join("d/sub/f").exists());
}

#[test]
fn destination_symlinks_resolve_inside_the_rootfs() {
    let d = ctx(&[("f", "file")]);
    let r = root(d.path(), "");
    let rootfs = tempfile::tempdir().unwrap();
    fs::create_dir_all(rootfs.path().join("srv/app")).unwrap();
    // An absolute link in the image means the image's /srv/app.
    symlink("/srv/app", rootfs.path().join("app")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), rootfs.path().join("evil")).unwrap();
    write_to(&r, &["f"], rootfs.path(), "/app/", &WriteOptions::default()).unwrap();
    assert!(rootfs.path().join("srv/app/f").exists());
    write_to(
        &r,
        &["f"],
        rootfs.path(),
        "/evil/",
        &WriteOptions::default(),
    )
    .unwrap();
    assert!(
        !outside.path().join("f").exists(),
        "never written outside the rootfs"
    );
}

#[test]
fn ownership_modes_and_times() {
    if !is_root() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "needs root for chown"
        );
        eprintln!("skipping: needs root for chown");
        return;
    }
    let d = ctx(&[("dir/x", "x"), ("dir/y", "y")]);
    fs::set_permissions(d.path().join("dir/x"), fs::Permissions::from_mode(0o4755)).unwrap();
    nix::unistd::chown(
        &d.path().join("dir/y"),
        Some(1234.into()),
        Some(1234.into()),
    )
    .unwrap();
    let r = root(d.path(), "");
    let rootfs = tempfile::tempdir().unwrap();
    fs::create_dir(rootfs.path().join("existing")).unwrap();
    let before = fs::metadata(rootfs.path().join("existing"))
        .unwrap()
        .mtime();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write_to(
        &r,
        &["dir"],
        rootfs.path(),
        "/existing/new/deep/",
        &WriteOptions::default(),
    )
    .unwrap();
    let x = fs::metadata(rootfs.path().join("existing/new/deep/x")).unwrap();
    assert_eq!(
        (x.uid(), x.gid()),
        (0, 0),
        "context files are copied as root's"
    );
    assert_eq!(
        x.mode() & 0o7777,
        0o4755,
        "setuid survives (set after chown)"
    );
    assert_eq!(
        x.mtime(),
        fs::metadata(d.path().join("dir/x")).unwrap().mtime()
    );
    assert_eq!(
        fs::metadata(rootfs.path().join("existing"))
            .unwrap()
            .mtime(),
        before,
        "an existing parent keeps its mtime"
    );
    let newest = fs::metadata(d.path().join("dir/y")).unwrap().mtime();
    let made = fs::metadata(rootfs.path().join("existing/new")).unwrap();
    assert_eq!(
        made.mtime(),
        newest,
        "a created directory takes the newest copied mtime"
    );
    assert_eq!(made.mode() & 0o7777, 0o755);
    write_to(
        &r,
        &["dir"],
        rootfs.path(),
        "/o/",
        &WriteOptions {
            owner: Some((7, 8)),
            chmod: Some(0o640),
            parents: false,
        },
    )
    .unwrap();
    let y = fs::metadata(rootfs.path().join("o/y")).unwrap();
    assert_eq!((y.uid(), y.gid(), y.mode() & 0o7777), (7, 8, 0o640));
    let o = fs::metadata(rootfs.path().join("o")).unwrap();
    assert_eq!(
        (o.uid(), o.gid()),
        (7, 8),
        "--chown also owns the directories it makes"
    );
}

#[test]
fn from_a_rootfs_owners_and_hardlinks_are_kept() {
    if !is_root() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "needs root for chown"
        );
        eprintln!("skipping: needs root for chown");
        return;
    }
    let src = ctx(&[("usr/bin/tool", "bin")]);
    nix::unistd::chown(
        &src.path().join("usr/bin/tool"),
        Some(42.into()),
        Some(43.into()),
    )
    .unwrap();
    fs::hard_link(
        src.path().join("usr/bin/tool"),
        src.path().join("usr/bin/alias"),
    )
    .unwrap();
    symlink("/usr/bin", src.path().join("bin")).unwrap();
    let r = SourceRoot::rootfs(src.path()).unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    // `/bin/tool` goes through the image's absolute link.
    write_to(
        &r,
        &["/bin/tool"],
        rootfs.path(),
        "/t",
        &WriteOptions::default(),
    )
    .unwrap();
    let t = fs::metadata(rootfs.path().join("t")).unwrap();
    assert_eq!((t.uid(), t.gid()), (42, 43));
    write_to(
        &r,
        &["/usr/bin"],
        rootfs.path(),
        "/b/",
        &WriteOptions::default(),
    )
    .unwrap();
    let a = fs::metadata(rootfs.path().join("b/alias")).unwrap();
    let b = fs::metadata(rootfs.path().join("b/tool")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard links stay linked");
}

#[test]
fn a_file_changed_after_hashing_fails_the_copy() {
    let d = ctx(&[("f", "before")]);
    let r = root(d.path(), "");
    let items = sel(&r, &["f"]).unwrap();
    fs::write(d.path().join("f"), "after!").unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    let e = write(
        &r,
        &items,
        &[],
        rootfs.path(),
        "/f",
        &WriteOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, CopyError::Changed { .. }), "{e}");
}

#[test]
fn inline_files_and_mkdir() {
    let d = ctx(&[]);
    let r = root(d.path(), "");
    let rootfs = tempfile::tempdir().unwrap();
    write(
        &r,
        &[],
        &[("hello".into(), b"hi\n".to_vec(), 0o644)],
        rootfs.path(),
        "/etc/",
        &WriteOptions::default(),
    )
    .unwrap();
    let m = fs::metadata(rootfs.path().join("etc/hello")).unwrap();
    assert_eq!(m.mode() & 0o777, 0o644);
    assert!(mkdir_p(rootfs.path(), "/w/x", (0, 0)).unwrap());
    assert!(!mkdir_p(rootfs.path(), "/w/x", (0, 0)).unwrap());
    fs::write(rootfs.path().join("file"), "").unwrap();
    assert!(mkdir_p(rootfs.path(), "/file/x", (0, 0)).is_err());
}
