//! Opening paths inside the container's root filesystem without ever leaving it.
//!
//! A rootfs comes from an image and is not trusted: `/dev` may be a symlink to `/etc`, a
//! mount destination may be `../../host`. Every path is resolved with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` against a descriptor of the rootfs,
//! so symlinks are followed as if the rootfs were `/` (CVE-2021-30465 class of bugs), and
//! the mount happens on `/proc/self/fd/N` of what was opened, not on a path that could be
//! swapped in between.

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
pub fn ensure_in_root(root: &impl AsFd, path: &Path, kind: Kind) -> Result<OwnedFd> {
    match open_in_root(root, path) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).context(|| format!("open {} in rootfs", path.display())),
    }
    // Walk down, creating what is missing; each step is again resolved in root.
    let mut cur = PathBuf::from("/");
    let comps: Vec<_> = rel(path)
        .components()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    for (i, name) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let next = cur.join(name);
        match open_in_root(root, &next) {
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                let parent = open_dir_in_root(root, &cur)
                    .context(|| format!("open {} in rootfs", cur.display()))?;
                let made = if last && kind == Kind::File {
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
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(e).context(|| format!("create {} in rootfs", next.display()));
                    }
                }
            }
            Err(e) => return Err(e).context(|| format!("open {} in rootfs", next.display())),
        }
        cur = next;
    }
    open_in_root(root, path).context(|| format!("open {} in rootfs", path.display()))
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
