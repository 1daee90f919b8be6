//! Opening paths inside the container's root filesystem without ever leaving it.
//!
//! A rootfs comes from an image and is not trusted: `/dev` may be a symlink to `/etc`, a
//! mount destination may be `../../host`. Every path is resolved with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` against a descriptor of the rootfs,
//! so symlinks are followed as if the rootfs were `/` (CVE-2021-30465 class of bugs), and
//! the mount happens on `/proc/self/fd/N` of what was opened, not on a path that could be
//! swapped in between.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, mkdirat};

use crate::error::{Context, Result};

/// What to create when the destination does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Open `path` (absolute, interpreted inside `root`) as an `O_PATH` descriptor.
pub fn open_in_root(root: &impl AsFd, path: &Path) -> nix::Result<OwnedFd> {
    openat2(root.as_fd(), &rel(path), how(OFlag::O_PATH))
}

/// Open a directory inside `root` for `*at` calls.
pub fn open_dir_in_root(root: &impl AsFd, path: &Path) -> nix::Result<OwnedFd> {
    openat2(
        root.as_fd(),
        &rel(path),
        how(OFlag::O_DIRECTORY | OFlag::O_RDONLY),
    )
}

fn rel(path: &Path) -> PathBuf {
    let r: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir))
        .collect();
    if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r
    }
}

/// Make sure `path` exists inside `root` (creating missing directories, and the last
/// component as `kind`), and return an `O_PATH` descriptor of it.
///
/// Missing parts are created one component at a time. Symlinks met on the way (also
/// dangling ones, which the kernel cannot resolve for us) are followed by hand as if `root`
/// were `/`: `cur` only ever holds real directories, so `..` is a plain pop and nothing can
/// climb out.
pub fn ensure_in_root(root: &impl AsFd, path: &Path, kind: Kind) -> Result<OwnedFd> {
    match open_in_root(root, path) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).context(|| format!("open {} in rootfs", path.display())),
    }
    let mut cur = PathBuf::from("/");
    let mut todo: VecDeque<OsString> = components(&rel(path));
    let mut hops = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            cur.pop();
            continue;
        }
        if name == "." {
            continue;
        }
        let parent =
            open_dir_in_root(root, &cur).context(|| format!("open {} in rootfs", cur.display()))?;
        match nix::fcntl::readlinkat(parent.as_fd(), name.as_os_str()) {
            Ok(target) => {
                hops += 1;
                if hops > 40 {
                    return Err(Errno::ELOOP)
                        .context(|| format!("resolve {} in rootfs", path.display()));
                }
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                let mut rest = components(&target);
                rest.extend(todo);
                todo = rest;
            }
            // Exists and is not a symlink.
            Err(Errno::EINVAL) => cur.push(&name),
            Err(Errno::ENOENT) => {
                let made = if todo.is_empty() && kind == Kind::File {
                    nix::fcntl::openat(
                        parent.as_fd(),
                        name.as_os_str(),
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_CLOEXEC
                            | OFlag::O_NOFOLLOW,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map(drop)
                } else {
                    mkdirat(
                        parent.as_fd(),
                        name.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                };
                match made {
                    Ok(()) | Err(Errno::EEXIST) => cur.push(&name),
                    Err(e) => {
                        return Err(e)
                            .context(|| format!("create {} in rootfs", cur.join(&name).display()));
                    }
                }
            }
            Err(e) => {
                return Err(e)
                    .context(|| format!("resolve {} in rootfs", cur.join(&name).display()));
            }
        }
    }
    open_in_root(root, &cur).context(|| format!("open {} in rootfs", path.display()))
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter(|c| !matches!(c, Component::RootDir))
        .map(|c| c.as_os_str().to_owned())
        .collect()
}

/// `/proc/self/fd/N` for a descriptor: the name under which the kernel mounts onto exactly
/// the object we opened.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("escape")).unwrap();
        symlink("/../../..", root.path().join("up")).unwrap();
        let rootfd = nix::fcntl::open(
            root.path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        ensure_in_root(&rootfd, Path::new("/escape/x/y"), Kind::Dir).unwrap();
        ensure_in_root(&rootfd, Path::new("/up/etc/file"), Kind::File).unwrap();
        // Nothing was created outside: the absolute symlink resolved inside root.
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        assert!(
            root.path()
                .join(outside.path().strip_prefix("/").unwrap())
                .join("x/y")
                .is_dir()
        );
        assert!(root.path().join("etc/file").is_file());
    }
}
