//! Layer paths, resolved by the workspace's one resolver ([`hako_sys::fs::Root`]) under
//! [`Rules::NoSymlinks`].
//!
//! A layer tar is untrusted input: an entry `a -> /etc` followed by `a/passwd` must not
//! write the host's `/etc/passwd` (the classic "symlink then write through it" attack,
//! CVE-2018-15664 and friends). So no symlink is followed on the way to an entry's parent
//! directory (such an entry is refused), and the last component is handled with `*at`
//! calls that do not follow it. This file only names the layer's errors.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hako_sys::fs::Rules;
use nix::errno::Errno;

use crate::error::{Error, Result};

pub(crate) use hako_sys::fs::fd_child_path as fd_path;

/// A path inside a layer, as validated components (no `.`, `..`, empty or `/` parts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RelPath(pub(crate) Vec<OsString>);

impl RelPath {
    /// Validates a tar entry name. Absolute names and `..` components are refused, not
    /// silently rewritten: a layer that contains them was built to attack its reader.
    pub(crate) fn parse(raw: &[u8]) -> Result<RelPath> {
        hako_sys::fs::entry_name(raw)
            .map(RelPath)
            .map_err(|why| Error::UnsafeEntry {
                path: String::from_utf8_lossy(raw).into_owned(),
                reason: why.as_str(),
            })
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
    root: hako_sys::fs::Root,
    path: PathBuf,
}

impl Root {
    pub(crate) fn open(path: &Path) -> Result<Root> {
        let root = hako_sys::fs::Root::open(path, Rules::NoSymlinks)
            .map_err(|e| Error::io(format!("open layer dir {}", path.display()), e.into()))?;
        Ok(Root {
            root,
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
        let rel = PathBuf::from(join(parts));
        let r = if create {
            self.root.ensure_dir(&rel)
        } else {
            self.root.open_dir(&rel)
        };
        r.map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV => Error::UnsafeEntry {
                path: entry.to_string(),
                reason: "a parent directory is a symlink or not a directory",
            },
            e => Error::io(
                format!("open {}/{}", self.path.display(), rel.display()),
                e.into(),
            ),
        })
    }
}
