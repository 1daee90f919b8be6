//! Writing selected items into a mounted root filesystem.
//!
//! Paths in the destination are looked up in-root by `hako_sys::fs::Root` (a symlink in
//! the image, `/app -> /srv/app`, means the image's `/srv/app`, never the host's), and
//! every entry is made with `*at` calls relative to its parent's descriptor that never
//! follow the last component. Times are kept deterministic: copied entries keep their
//! source mtime, directories the copy had to create get the newest mtime of what was
//! copied (0 if nothing), and directories that existed get their mtime back, so the same
//! inputs give byte-identical layers.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use hako_sys::fs::{Root, Rules, fd_path};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstat, fstatat, futimens,
    mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use sha2::{Digest, Sha256};

use super::source::SourceRoot;
use super::{CopyError, Entry, Item, Kind};

/// How entries are written.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `--chown` resolved: every entry (and created directories) gets this owner.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`: every copied entry (not symlinks) gets this mode.
    pub chmod: Option<u32>,
    /// `--parents`.
    pub parents: bool,
}

struct Dest {
    root: Root,
    /// Paths (relative to the root) this copy created.
    created: HashSet<String>,
    /// Directories that existed, with their mtime before the copy changed them.
    restore: Vec<(String, TimeSpec, TimeSpec)>,
    restored: HashSet<String>,
    /// Copied directories: final mode and mtime are set after their content.
    dirs: Vec<(String, u32, (i64, i64))>,
    /// Directories made for the destination path.
    made: Vec<String>,
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

fn split(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    }
}

fn ts((s, ns): (i64, i64)) -> TimeSpec {
    TimeSpec::new(s, ns)
}

impl Dest {
    fn open(rootfs: &Path) -> Result<Dest, CopyError> {
        let root = Root::open(rootfs, Rules::InRoot)
            .map_err(|e| CopyError::io(format!("open {}", rootfs.display()), e))?;
        Ok(Dest {
            root,
            created: HashSet::new(),
            restore: Vec::new(),
            restored: HashSet::new(),
            dirs: Vec::new(),
            made: Vec::new(),
        })
    }

    fn resolve(&self, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        self.root.open_at(rel, flags)
    }

    fn dir(&self, rel: &str) -> Result<OwnedFd, CopyError> {
        self.resolve(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(|e| CopyError::io(format!("open /{rel}"), e))
    }

    /// Remembers the mtime of an existing directory about to get a new entry.
    fn touching(&mut self, rel: &str, fd: BorrowedFd<'_>) -> Result<(), CopyError> {
        if self.created.contains(rel) || !self.restored.insert(rel.to_string()) {
            return Ok(());
        }
        let st = fstat(fd).map_err(|e| CopyError::io(format!("stat /{rel}"), e))?;
        self.restore.push((
            rel.to_string(),
            TimeSpec::new(st.st_atime, st.st_atime_nsec),
            TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
        ));
        Ok(())
    }

    /// `mkdir -p` of `rel` in the root, new directories 0755 and owned by `owner`.
    fn mkdir_p(&mut self, rel: &str, owner: (u32, u32)) -> Result<(), CopyError> {
        self.mkdir_p_depth(rel, owner, 0)
    }

    fn mkdir_p_depth(
        &mut self,
        rel: &str,
        owner: (u32, u32),
        depth: usize,
    ) -> Result<(), CopyError> {
        let mut cur = String::new();
        for comp in rel.split('/').filter(|c| !c.is_empty()) {
            let next = join(&cur, comp);
            match self.resolve(&next, OFlag::O_PATH) {
                Ok(fd) => {
                    let st =
                        fstat(fd.as_fd()).map_err(|e| CopyError::io(format!("stat /{next}"), e))?;
                    if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFDIR.bits() {
                        return Err(CopyError::Invalid {
                            message: format!(
                                "cannot create directory /{next}: a file is in the way"
                            ),
                        });
                    }
                }
                Err(Errno::ENOENT) => {
                    let parent = self.dir(&cur)?;
                    // A dangling symlink in the image: make what it points to (in the
                    // root), as `mkdir -p` through the link would.
                    if let Ok(t) = nix::fcntl::readlinkat(parent.as_fd(), comp) {
                        if depth > 40 {
                            return Err(CopyError::Invalid {
                                message: format!("too many levels of symbolic links at /{next}"),
                            });
                        }
                        let t = t.to_string_lossy();
                        let abs = if t.starts_with('/') {
                            t.to_string()
                        } else {
                            format!("/{cur}/{t}")
                        };
                        let target = crate::ignore::clean_path(&abs);
                        self.mkdir_p_depth(target.trim_start_matches('/'), owner, depth + 1)?;
                        cur = next;
                        continue;
                    }
                    self.touching(&cur, parent.as_fd())?;
                    mkdirat(parent.as_fd(), comp, Mode::from_bits_truncate(0o755))
                        .map_err(|e| CopyError::io(format!("mkdir /{next}"), e))?;
                    fchownat(
                        parent.as_fd(),
                        comp,
                        Some(Uid::from_raw(owner.0)),
                        Some(Gid::from_raw(owner.1)),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| CopyError::io(format!("chown /{next}"), e))?;
                    // mkdir honours the umask: set the mode explicitly.
                    fchmodat(
                        parent.as_fd(),
                        comp,
                        Mode::from_bits_truncate(0o755),
                        FchmodatFlags::FollowSymlink,
                    )
                    .map_err(|e| CopyError::io(format!("chmod /{next}"), e))?;
                    self.created.insert(next.clone());
                    self.made.push(next.clone());
                }
                Err(e) => return Err(CopyError::io(format!("open /{next}"), e)),
            }
            cur = next;
        }
        Ok(())
    }

    fn is_dir(&self, rel: &str) -> bool {
        self.resolve(rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .is_ok()
    }

    /// Sets the times and modes deferred until everything was written.
    fn finish(self, newest: (i64, i64)) -> Result<(), CopyError> {
        for (rel, mode, mtime) in self.dirs.iter().rev() {
            let fd = self.dir(rel)?;
            fchmod(fd.as_fd(), Mode::from_bits_truncate(*mode))
                .map_err(|e| CopyError::io(format!("chmod /{rel}"), e))?;
            futimens(fd.as_fd(), &ts(*mtime), &ts(*mtime))
                .map_err(|e| CopyError::io(format!("set times of /{rel}"), e))?;
        }
        for rel in self.made.iter().rev() {
            let fd = self.dir(rel)?;
            futimens(fd.as_fd(), &ts(newest), &ts(newest))
                .map_err(|e| CopyError::io(format!("set times of /{rel}"), e))?;
        }
        for (rel, atime, mtime) in &self.restore {
            let fd = self.dir(rel)?;
            futimens(fd.as_fd(), atime, mtime)
                .map_err(|e| CopyError::io(format!("set times of /{rel}"), e))?;
        }
        Ok(())
    }
}

/// `mkdir -p` of `path` (absolute in the image) in `rootfs`, owned by `owner`, the way
/// WORKDIR creates it. Returns whether anything was created.
pub fn mkdir_p(rootfs: &Path, path: &str, owner: (u32, u32)) -> Result<bool, CopyError> {
    let mut d = Dest::open(rootfs)?;
    d.mkdir_p(path.trim_matches('/'), owner)?;
    let made = !d.made.is_empty();
    d.finish((0, 0))?;
    Ok(made)
}

/// Copies `items` (read from `src`) and `inline` files (name, content, mode) into
/// `rootfs` at `dest` (absolute; a trailing `/` means a directory).
pub fn write(
    src: &SourceRoot,
    items: &[Item],
    inline: &[(String, Vec<u8>, u32)],
    rootfs: &Path,
    dest: &str,
    opts: &WriteOptions,
) -> Result<(), CopyError> {
    let mut d = Dest::open(rootfs)?;
    let dest_rel = dest.trim_matches('/').to_string();
    let into_dir = dest.ends_with('/') || dest_rel.is_empty() || d.is_dir(&dest_rel);
    let dir_owner = opts.owner.unwrap_or((0, 0));
    let newest = items
        .iter()
        .flat_map(|i| i.entries.iter())
        .map(|e| e.mtime)
        .max()
        .unwrap_or((0, 0));
    for it in items {
        let target = if opts.parents {
            join(&dest_rel, &it.keep)
        } else if it.is_dir {
            dest_rel.clone()
        } else if into_dir {
            join(&dest_rel, split(&it.rel).1)
        } else {
            dest_rel.clone()
        };
        let (parent, _) = split(&target);
        d.mkdir_p(parent, dir_owner)?;
        copy_item(&mut d, src, it, &target, opts)?;
    }
    for (name, data, mode) in inline {
        let target = if into_dir {
            join(&dest_rel, name)
        } else {
            dest_rel.clone()
        };
        let (parent, base) = split(&target);
        d.mkdir_p(parent, dir_owner)?;
        let pfd = d.dir(parent)?;
        d.touching(parent, pfd.as_fd())?;
        clear(pfd.as_fd(), base, &target, false)?;
        let f = create_file(pfd.as_fd(), base, &target)?;
        let mut file = std::fs::File::from(f);
        file.write_all(data).map_err(|e| CopyError::Io {
            context: format!("write /{target}"),
            source: e,
        })?;
        let fd = OwnedFd::from(file);
        let owner = opts.owner.unwrap_or((0, 0));
        meta_fd(
            fd.as_fd(),
            owner,
            opts.chmod.unwrap_or(*mode),
            (0, 0),
            &target,
        )?;
    }
    d.finish(newest)?;
    hako_sys::crash::point("build.copied");
    Ok(())
}

/// Removes a non-directory in the way; a directory in the way of a non-directory fails.
fn clear(
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &str,
    want_dir: bool,
) -> Result<bool, CopyError> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(CopyError::io(format!("stat /{shown}"), e)),
        Ok(st) => {
            let is_dir = st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits();
            match (is_dir, want_dir) {
                (true, true) => Ok(true),
                (true, false) => Err(CopyError::Invalid {
                    message: format!("cannot overwrite directory /{shown} with a non-directory"),
                }),
                (false, _) => {
                    unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
                        .map_err(|e| CopyError::io(format!("remove /{shown}"), e))?;
                    Ok(false)
                }
            }
        }
    }
}

fn create_file(parent: BorrowedFd<'_>, name: &str, shown: &str) -> Result<OwnedFd, CopyError> {
    openat(
        parent,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| CopyError::io(format!("create /{shown}"), e))
}

/// Owner first (chown clears setuid bits), then mode, then times.
fn meta_fd(
    fd: BorrowedFd<'_>,
    owner: (u32, u32),
    mode: u32,
    mtime: (i64, i64),
    shown: &str,
) -> Result<(), CopyError> {
    fchown(
        fd,
        Some(Uid::from_raw(owner.0)),
        Some(Gid::from_raw(owner.1)),
    )
    .map_err(|e| CopyError::io(format!("chown /{shown}"), e))?;
    fchmod(fd, Mode::from_bits_truncate(mode))
        .map_err(|e| CopyError::io(format!("chmod /{shown}"), e))?;
    futimens(fd, &ts(mtime), &ts(mtime))
        .map_err(|e| CopyError::io(format!("set times of /{shown}"), e))
}

fn set_xattrs(fd: &OwnedFd, e: &Entry) {
    if e.xattrs.is_empty() {
        return;
    }
    let Ok(dup) = fd.try_clone() else { return };
    let f = std::fs::File::from(dup);
    for (k, v) in &e.xattrs {
        // Best effort, as Docker: a filesystem that cannot hold an attribute is no reason
        // to fail the build.
        let _ = xattr::FileExt::set_xattr(&f, k, v);
    }
}

/// Opens the source entry `rel` below the item (a root without symlinks), following nothing.
fn open_source(item: &Root, rel: &str, shown: &str) -> Result<OwnedFd, CopyError> {
    item.open_at(rel, OFlag::O_RDONLY | OFlag::O_NOFOLLOW)
        .map_err(|e| CopyError::io(format!("open {shown}"), e))
}

fn copy_item(
    d: &mut Dest,
    src: &SourceRoot,
    it: &Item,
    target: &str,
    opts: &WriteOptions,
) -> Result<(), CopyError> {
    let base = src
        .open(&it.rel, OFlag::O_PATH)
        .map_err(|e| CopyError::io(format!("open {}", it.src), e))?;
    let item_fd = if it.is_dir {
        openat(
            base.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CopyError::io(format!("open {}", it.src), e))?
    } else {
        base
    };
    let item = Root::from_fd(item_fd, Rules::NoSymlinks);
    let (tparent, tname) = split(target);
    // Parent descriptors of the entries being written (entries come parent first).
    let mut stack: Vec<(String, OwnedFd)> = Vec::new();
    let top_parent = d.dir(tparent)?;
    for (i, e) in it.entries.iter().enumerate() {
        if i == 1 {
            // The copy is under way: its first entry is written.
            hako_sys::crash::point("build.copying");
        }
        let path = join(target, &e.rel);
        let (prel, name) = if e.rel.is_empty() {
            (None, tname)
        } else {
            let (p, n) = split(&e.rel);
            (Some(p), n)
        };
        let parent: BorrowedFd<'_> = match prel {
            None => top_parent.as_fd(),
            Some(p) => {
                while stack.last().is_some_and(|(r, _)| r != p) {
                    stack.pop();
                }
                match stack.last() {
                    Some((_, fd)) => fd.as_fd(),
                    None => {
                        return Err(CopyError::Invalid {
                            message: format!("internal: no parent for {path}"),
                        });
                    }
                }
            }
        };
        let parent_path = split(&path).0.to_string();
        d.touching(&parent_path, parent)?;
        let owner = opts.owner.unwrap_or((e.uid, e.gid));
        let mode = opts.chmod.unwrap_or(e.mode);
        let shown_src = if e.rel.is_empty() {
            it.src.clone()
        } else {
            format!("{}/{}", it.src, e.rel)
        };
        if let Some(j) = e.hardlink_to {
            clear(parent, name, &path, false)?;
            let first = join(target, &it.entries[j].rel);
            let (fp, fname) = split(&first);
            let fdir = d.dir(fp)?;
            linkat(fdir.as_fd(), fname, parent, name, AtFlags::empty())
                .map_err(|err| CopyError::io(format!("link /{path}"), err))?;
            continue;
        }
        match &e.kind {
            Kind::Dir => {
                let existed = clear(parent, name, &path, true)?;
                if !existed {
                    mkdirat(parent, name, Mode::from_bits_truncate(0o700))
                        .map_err(|err| CopyError::io(format!("mkdir /{path}"), err))?;
                    d.created.insert(path.clone());
                }
                let fd = openat(
                    parent,
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|err| CopyError::io(format!("open /{path}"), err))?;
                // The destination directory itself keeps its metadata when it existed.
                if !(e.rel.is_empty() && existed) {
                    fchown(
                        fd.as_fd(),
                        Some(Uid::from_raw(owner.0)),
                        Some(Gid::from_raw(owner.1)),
                    )
                    .map_err(|err| CopyError::io(format!("chown /{path}"), err))?;
                    set_xattrs(&fd, e);
                    d.dirs.push((path.clone(), mode, e.mtime));
                } else {
                    d.touching(&path, fd.as_fd())?;
                }
                stack.push((e.rel.clone(), fd));
            }
            Kind::File => {
                clear(parent, name, &path, false)?;
                let sfd = if e.rel.is_empty() {
                    nix::fcntl::open(
                        &fd_path(&item.as_fd()),
                        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|err| CopyError::io(format!("open {shown_src}"), err))?
                } else {
                    open_source(&item, &e.rel, &shown_src)?
                };
                let dfd = create_file(parent, name, &path)?;
                copy_data(sfd, &dfd, e, &shown_src, &path)?;
                set_xattrs(&dfd, e);
                meta_fd(dfd.as_fd(), owner, mode, e.mtime, &path)?;
            }
            Kind::Symlink(t) => {
                clear(parent, name, &path, false)?;
                symlinkat(OsStr::new(t), parent, name)
                    .map_err(|err| CopyError::io(format!("symlink /{path}"), err))?;
                fchownat(
                    parent,
                    name,
                    Some(Uid::from_raw(owner.0)),
                    Some(Gid::from_raw(owner.1)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|err| CopyError::io(format!("chown /{path}"), err))?;
                utimensat(
                    parent,
                    name,
                    &ts(e.mtime),
                    &ts(e.mtime),
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|err| CopyError::io(format!("set times of /{path}"), err))?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                clear(parent, name, &path, false)?;
                let kind = match e.kind {
                    Kind::Char => SFlag::S_IFCHR,
                    Kind::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                mknodat(parent, name, kind, Mode::from_bits_truncate(0o600), e.rdev)
                    .map_err(|err| CopyError::io(format!("mknod /{path}"), err))?;
                fchownat(
                    parent,
                    name,
                    Some(Uid::from_raw(owner.0)),
                    Some(Gid::from_raw(owner.1)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|err| CopyError::io(format!("chown /{path}"), err))?;
                fchmodat(
                    parent,
                    name,
                    Mode::from_bits_truncate(mode),
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(|err| CopyError::io(format!("chmod /{path}"), err))?;
                utimensat(
                    parent,
                    name,
                    &ts(e.mtime),
                    &ts(e.mtime),
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|err| CopyError::io(format!("set times of /{path}"), err))?;
            }
            Kind::Socket => {}
        }
    }
    Ok(())
}

/// Copies a file's content while hashing it; a digest that differs from the one taken
/// when the sources were selected means the file changed under the build.
fn copy_data(
    sfd: OwnedFd,
    dfd: &OwnedFd,
    e: &Entry,
    shown_src: &str,
    shown_dst: &str,
) -> Result<(), CopyError> {
    let mut s = std::fs::File::from(sfd);
    let mut out = std::fs::File::from(dfd.try_clone().map_err(|err| CopyError::Io {
        context: format!("dup /{shown_dst}"),
        source: err,
    })?);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = s.read(&mut buf).map_err(|err| CopyError::Io {
            context: format!("read {shown_src}"),
            source: err,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|err| CopyError::Io {
            context: format!("write /{shown_dst}"),
            source: err,
        })?;
    }
    let got: [u8; 32] = h.finalize().into();
    if e.digest.is_some_and(|want| want != got) {
        return Err(CopyError::Changed {
            path: shown_src.to_string(),
        });
    }
    Ok(())
}
