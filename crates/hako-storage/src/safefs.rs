//! Path resolution inside a layer directory that never follows a symlink.
//!
//! A layer tar is untrusted input: an entry `a -> /etc` followed by `a/passwd` must not
//! write the host's `/etc/passwd` (the classic "symlink then write through it" attack,
//! CVE-2018-15664 and friends). Every directory is opened relative to the layer root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)`; the last component is then handled
//! with `*at` calls that do not follow it. On kernels without openat2 we walk the path one
//! component at a time with `O_NOFOLLOW`.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2};
use nix::sys::stat::{Mode, mkdirat};

use crate::error::{Error, IoContext, Result};

/// A path inside a layer, as validated components (no `.`, `..`, empty or `/` parts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RelPath(pub(crate) Vec<OsString>);

impl RelPath {
    /// Validates a tar entry name. Absolute names and `..` components are refused, not
    /// silently rewritten: a layer that contains them was built to attack its reader.
    pub(crate) fn parse(raw: &[u8]) -> Result<RelPath> {
        let shown = || String::from_utf8_lossy(raw).into_owned();
        if raw.first() == Some(&b'/') {
            return Err(Error::UnsafeEntry {
                path: shown(),
                reason: "absolute path",
            });
        }
        if raw.contains(&0) {
            return Err(Error::UnsafeEntry {
                path: shown(),
                reason: "NUL byte in name",
            });
        }
        let mut parts = Vec::new();
        for comp in raw.split(|b| *b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    return Err(Error::UnsafeEntry {
                        path: shown(),
                        reason: "`..` component",
                    });
                }
                c => parts.push(OsStr::from_bytes(c).to_os_string()),
            }
        }
        Ok(RelPath(parts))
    }

    /// The parent path and the last component; `None` for the root.
    pub(crate) fn split_last(&self) -> Option<(&[OsString], &OsStr)> {
        self.0
            .split_last()
            .map(|(last, parent)| (parent, last.as_os_str()))
    }

    /// The components joined with `/`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        join(&self.0).as_bytes().to_vec()
    }

    pub(crate) fn display(&self) -> String {
        let joined = join(&self.0);
        String::from_utf8_lossy(joined.as_bytes()).into_owned()
    }
}

fn join(parts: &[OsString]) -> OsString {
    let mut out = OsString::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push("/");
        }
        out.push(p);
    }
    out
}

/// An open layer root directory.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    pub(crate) fn open(path: &Path) -> Result<Root> {
        let fd = open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open layer dir {}", path.display()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the directory `parts` below the root without following any symlink,
    /// creating missing directories (mode 0755) if `create` is set.
    pub(crate) fn open_dir(
        &self,
        parts: &[OsString],
        create: bool,
        entry: &str,
    ) -> Result<OwnedFd> {
        if parts.is_empty() {
            return self
                .fd
                .try_clone()
                .ctx(|| format!("dup {}", self.path.display()));
        }
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(
                ResolveFlag::RESOLVE_IN_ROOT
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        match openat2(self.fd.as_fd(), join(parts).as_os_str(), how) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOENT) if create => self.walk(parts, true, entry),
            Err(Errno::ENOSYS) => self.walk(parts, create, entry),
            Err(e) => Err(resolve_error(e, entry, &self.path, parts)),
        }
    }

    /// Component-by-component open with O_NOFOLLOW (and mkdirat for missing parts).
    fn walk(&self, parts: &[OsString], create: bool, entry: &str) -> Result<OwnedFd> {
        let mut dir = self
            .fd
            .try_clone()
            .ctx(|| format!("dup {}", self.path.display()))?;
        for part in parts {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
            let next = match openat(dir.as_fd(), part.as_os_str(), flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(
                        dir.as_fd(),
                        part.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(resolve_error(e, entry, &self.path, parts)),
                    }
                    openat(dir.as_fd(), part.as_os_str(), flags, Mode::empty())
                }
                other => other,
            };
            dir = next.map_err(|e| resolve_error(e, entry, &self.path, parts))?;
        }
        Ok(dir)
    }
}

fn resolve_error(e: Errno, entry: &str, root: &Path, parts: &[OsString]) -> Error {
    match e {
        Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV => Error::UnsafeEntry {
            path: entry.to_string(),
            reason: "a parent directory is a symlink or not a directory",
        },
        e => Error::io(
            format!(
                "open {}/{}",
                root.display(),
                String::from_utf8_lossy(join(parts).as_bytes())
            ),
            e.into(),
        ),
    }
}

/// A path that names `name` inside the directory open as `dir`, usable by APIs that only
/// take paths. `/proc/self/fd/N` is a magic link to exactly that directory, and the last
/// component is not followed by the `l*` calls it is used with.
pub(crate) fn fd_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    if !name.is_empty() {
        p.push(name);
    }
    p
}
