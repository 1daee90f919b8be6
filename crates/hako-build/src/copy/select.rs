//! Choosing what a COPY copies: source paths (with wildcards and the `--parents` `./`
//! pivot) resolved in the source root, and the tree under each, with metadata and
//! content digests for the cache key.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use sha2::{Digest, Sha256};

use super::source::SourceRoot;
use super::{CopyError, Entry, Item, Kind};

/// How sources are chosen.
#[derive(Debug, Clone, Default)]
pub struct SelectOptions {
    /// `--parents`: keep each source's path (from the `./` pivot, else from the root).
    pub parents: bool,
    /// `--exclude` patterns (relative to the source root).
    pub exclude: Vec<String>,
}

fn has_wildcard(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Selects every source of one COPY/ADD.
pub fn select(
    root: &SourceRoot,
    sources: &[String],
    opts: &SelectOptions,
) -> Result<Vec<Item>, CopyError> {
    let exclude = crate::ignore::Matcher::new(&opts.exclude).map_err(|e| CopyError::Invalid {
        message: e.to_string(),
    })?;
    let mut items = Vec::new();
    for src in sources {
        // `--parents` keeps the path after the last `/./` (or all of it).
        let (pivot, raw) = match src.rfind("/./") {
            Some(i) if opts.parents => (Some(&src[..i]), &src[i + 3..]),
            _ => (None, src.as_str()),
        };
        let full = match pivot {
            Some(p) => format!("{p}/{raw}"),
            None => raw.to_string(),
        };
        let rel = root.relative(&full)?;
        let keep_from = match pivot {
            Some(p) => root.relative(p)?.len(),
            None => 0,
        };
        let matches = if has_wildcard(&rel) {
            glob(root, &rel)?
        } else {
            vec![rel]
        };
        for m in matches {
            let keep = m[keep_from..].trim_start_matches('/').to_string();
            items.push(item(root, src, &m, keep, &exclude)?);
        }
    }
    Ok(items)
}

/// Expands a wildcard path one component at a time (like `filepath.Glob`).
fn glob(root: &SourceRoot, pattern: &str) -> Result<Vec<String>, CopyError> {
    let mut found = vec![String::new()];
    for comp in pattern.split('/') {
        let mut next = Vec::new();
        for base in &found {
            let join = |n: &str| {
                if base.is_empty() {
                    n.to_string()
                } else {
                    format!("{base}/{n}")
                }
            };
            if !has_wildcard(comp) {
                let p = join(&unescape(comp));
                if !root.ignored(&p) && root.open(&p, OFlag::O_PATH).is_ok() {
                    next.push(p);
                }
                continue;
            }
            let re = crate::ignore::Matcher::new(&[comp]).map_err(|e| CopyError::Invalid {
                message: e.to_string(),
            })?;
            let Ok(dir) = root.open(base, OFlag::O_RDONLY | OFlag::O_DIRECTORY) else {
                continue;
            };
            for name in list_dir(dir.as_fd(), base)? {
                let n = String::from_utf8_lossy(name.as_bytes()).into_owned();
                if re.excluded(&n) && !n.contains('/') {
                    let p = join(&n);
                    if !root.ignored(&p) {
                        next.push(p);
                    }
                }
            }
        }
        found = next;
    }
    found.sort();
    Ok(found)
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Sorted names in a directory (without `.` and `..`).
pub(crate) fn list_dir(dir: BorrowedFd<'_>, shown: &str) -> Result<Vec<OsString>, CopyError> {
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CopyError::io(format!("open {shown}"), e))?;
    let mut d =
        nix::dir::Dir::from_fd(fd).map_err(|e| CopyError::io(format!("read {shown}"), e))?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.map_err(|e| CopyError::io(format!("read {shown}"), e))?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from(std::ffi::OsStr::from_bytes(n)));
        }
    }
    names.sort();
    Ok(names)
}

fn not_found(src: &str) -> CopyError {
    CopyError::NotFound {
        path: src.to_string(),
    }
}

/// One selected source: opened (symlinks followed within the root), then walked.
fn item(
    root: &SourceRoot,
    src: &str,
    rel: &str,
    keep: String,
    exclude: &crate::ignore::Matcher,
) -> Result<Item, CopyError> {
    if root.ignored(rel) {
        return Err(not_found(src));
    }
    let fd = match root.open(rel, OFlag::O_PATH) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Err(not_found(src)),
        Err(Errno::EXDEV | Errno::ELOOP) if root.is_context() => {
            return Err(CopyError::Forbidden {
                path: src.to_string(),
                why: "a symlink on the way points outside the build context".into(),
            });
        }
        Err(e) => return Err(CopyError::io(format!("open {src}"), e)),
    };
    let st = fstat(fd.as_fd()).map_err(|e| CopyError::io(format!("stat {src}"), e))?;
    let is_dir = kind_of(&st) == SFlag::S_IFDIR;
    let mut it = Item {
        src: src.to_string(),
        rel: rel.to_string(),
        keep,
        is_dir,
        entries: Vec::new(),
    };
    let keep_owner = !root.is_context();
    if is_dir {
        let dir = openat(
            fd.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CopyError::io(format!("open {src}"), e))?;
        // Ignore rules apply to the real location (a symlinked directory shows what
        // its target shows).
        let real = real_rel(root, &dir).unwrap_or_else(|| rel.to_string());
        let mut top = entry_from_stat("", &st, None, keep_owner);
        top.xattrs = xattrs(&dir);
        it.entries.push(top);
        walk(root, &dir, &real, "", exclude, keep_owner, &mut it.entries)?;
    } else {
        let mut e = entry_from_stat("", &st, None, keep_owner);
        if e.kind == Kind::File {
            let f = open_read(fd.as_fd(), src)?;
            e.xattrs = xattrs(&f);
            e.digest = Some(digest_file(f, src)?);
        }
        it.entries.push(e);
    }
    link_hardlinks(&mut it.entries);
    Ok(it)
}

fn real_rel(root: &SourceRoot, dir: &OwnedFd) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok()?;
    let rel = link.strip_prefix(root.path()).ok()?;
    Some(rel.to_string_lossy().into_owned())
}

/// Reopens an `O_PATH` descriptor of a regular file for reading (no path lookup again).
fn open_read(fd: BorrowedFd<'_>, shown: &str) -> Result<OwnedFd, CopyError> {
    nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CopyError::io(format!("open {shown}"), e))
}

fn kind_of(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn entry_from_stat(rel: &str, st: &FileStat, link: Option<String>, keep_owner: bool) -> Entry {
    let kind = match kind_of(st) {
        SFlag::S_IFDIR => Kind::Dir,
        SFlag::S_IFLNK => Kind::Symlink(link.unwrap_or_default()),
        SFlag::S_IFCHR => Kind::Char,
        SFlag::S_IFBLK => Kind::Block,
        SFlag::S_IFIFO => Kind::Fifo,
        SFlag::S_IFSOCK => Kind::Socket,
        _ => Kind::File,
    };
    Entry {
        rel: rel.to_string(),
        size: if kind == Kind::File {
            u64::try_from(st.st_size).unwrap_or(0)
        } else {
            0
        },
        kind,
        mode: st.st_mode & 0o7777,
        uid: if keep_owner { st.st_uid } else { 0 },
        gid: if keep_owner { st.st_gid } else { 0 },
        mtime: (st.st_mtime, st.st_mtime_nsec),
        rdev: st.st_rdev,
        dev_ino: (st.st_nlink > 1 && kind_of(st) == SFlag::S_IFREG)
            .then_some((st.st_dev, st.st_ino)),
        hardlink_to: None,
        xattrs: Vec::new(),
        digest: None,
    }
}

/// Walks `dir` (already open, no symlinks followed below it), appending entries.
fn walk(
    root: &SourceRoot,
    dir: &OwnedFd,
    ctx_rel: &str,
    rel: &str,
    exclude: &crate::ignore::Matcher,
    keep_owner: bool,
    out: &mut Vec<Entry>,
) -> Result<(), CopyError> {
    let shown = if rel.is_empty() { ctx_rel } else { rel };
    for name in list_dir(dir.as_fd(), shown)? {
        let n = String::from_utf8_lossy(name.as_bytes()).into_owned();
        let child_rel = if rel.is_empty() {
            n.clone()
        } else {
            format!("{rel}/{n}")
        };
        let child_ctx = if ctx_rel.is_empty() {
            n.clone()
        } else {
            format!("{ctx_rel}/{n}")
        };
        let st = fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| CopyError::io(format!("stat {child_ctx}"), e))?;
        let is_dir = kind_of(&st) == SFlag::S_IFDIR;
        let hidden = root.ignored(&child_ctx) || exclude.excluded(&child_rel);
        if hidden && (!is_dir || root.skip_dir(&child_ctx) || exclude.skip_dir(&child_rel)) {
            continue;
        }
        let link = if kind_of(&st) == SFlag::S_IFLNK {
            let t = readlinkat(dir.as_fd(), name.as_os_str())
                .map_err(|e| CopyError::io(format!("readlink {child_ctx}"), e))?;
            Some(t.to_string_lossy().into_owned())
        } else {
            None
        };
        let mut e = entry_from_stat(&child_rel, &st, link, keep_owner);
        match e.kind {
            Kind::Socket => continue,
            Kind::File if !hidden => {
                let f = openat(
                    dir.as_fd(),
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| CopyError::io(format!("open {child_ctx}"), e))?;
                e.xattrs = xattrs(&f);
                e.digest = Some(digest_file(f, &child_ctx)?);
            }
            Kind::Dir => {
                let sub = openat(
                    dir.as_fd(),
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| CopyError::io(format!("open {child_ctx}"), e))?;
                e.xattrs = xattrs(&sub);
                let at = out.len();
                if !hidden {
                    out.push(e);
                }
                walk(root, &sub, &child_ctx, &child_rel, exclude, keep_owner, out)?;
                // An excluded directory shows only to hold re-included content.
                if hidden && out.len() > at {
                    let mut d = entry_from_stat(&child_rel, &st, None, keep_owner);
                    d.xattrs = Vec::new();
                    out.insert(at, d);
                }
                continue;
            }
            _ => {}
        }
        if !hidden {
            out.push(e);
        }
    }
    Ok(())
}

/// Content sha256 of an open regular file.
fn digest_file(fd: OwnedFd, shown: &str) -> Result<[u8; 32], CopyError> {
    let mut f = std::fs::File::from(fd);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| CopyError::Io {
            context: format!("read {shown}"),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Extended attributes worth copying (not overlayfs' own, not SELinux labels).
fn xattrs(fd: &OwnedFd) -> Vec<(OsString, Vec<u8>)> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let Ok(names) = xattr::list_deref(&path) else {
        return Vec::new();
    };
    let mut out: Vec<(OsString, Vec<u8>)> = names
        .filter(|n| {
            let b = n.as_bytes();
            !b.starts_with(b"trusted.overlay.") && b != b"security.selinux"
        })
        .filter_map(|n| xattr::get_deref(&path, &n).ok().flatten().map(|v| (n, v)))
        .collect();
    out.sort();
    out
}

/// Files with several links inside one item: later ones link to the first.
fn link_hardlinks(entries: &mut [Entry]) {
    let mut first: std::collections::HashMap<(u64, u64), usize> = Default::default();
    for (i, e) in entries.iter_mut().enumerate() {
        if let Some(key) = e.dev_ino {
            match first.get(&key) {
                Some(&j) => e.hardlink_to = Some(j),
                None => {
                    first.insert(key, i);
                }
            }
        }
    }
}
