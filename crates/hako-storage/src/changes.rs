//! What a layer changed relative to its parents (`docker diff`).

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, SFlag, fstatat};

use crate::error::{Error, Result};
use crate::safefs::Root;

/// The kind of a change, printed as Docker prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// `C`: the path exists below and was changed.
    Modified,
    /// `A`: the path is new.
    Added,
    /// `D`: the path was deleted.
    Deleted,
}

impl ChangeKind {
    /// Docker's letter: `A`, `C` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path, absolute in the container (`/etc/passwd`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// The path, starting with `/`.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path)
    }
}

fn walk_err(e: walkdir::Error) -> Error {
    let path = e
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Error::io(format!("walk {path}"), e.into())
}

fn show(rel: &Path) -> String {
    format!("/{}", String::from_utf8_lossy(rel.as_os_str().as_bytes()))
}

fn parts(rel: &Path) -> Vec<OsString> {
    rel.iter().map(|c| c.to_os_string()).collect()
}

/// `stat` of `rel` inside `root`, without following any symlink; `None` if it is not
/// there (or a parent is not a plain directory).
fn lstat_in(root: &Root, rel: &Path) -> Option<FileStat> {
    let p = parts(rel);
    let (name, parent) = p.split_last()?;
    let dir = root.open_dir(parent, false, "").ok()?;
    fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).ok()
}

fn is_whiteout(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits() && st.st_rdev == 0
}

/// Changes of an overlay upper dir: whiteouts are deletions; a path that one of the
/// `lowers` (top first) shows is a modification, anything else is an addition.
pub(crate) fn overlay_changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let lower_roots: Vec<Root> = lowers
        .iter()
        .map(|l| Root::open(l))
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(upper)
        .follow_links(false)
        .min_depth(1)
        .sort_by_file_name();
    // Below an opaque directory nothing of the lowers is visible.
    let mut opaque: Vec<PathBuf> = Vec::new();
    for entry in walker {
        let entry = entry.map_err(walk_err)?;
        let rel = entry
            .path()
            .strip_prefix(upper)
            .unwrap_or(entry.path())
            .to_path_buf();
        let md = entry.metadata().map_err(walk_err)?;
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push(Change {
                path: show(&rel),
                kind: ChangeKind::Deleted,
            });
            continue;
        }
        let hidden = opaque.iter().any(|o| rel.starts_with(o) && rel != *o);
        let below = !hidden && visible_in_lowers(&lower_roots, &rel);
        out.push(Change {
            path: show(&rel),
            kind: if below {
                ChangeKind::Modified
            } else {
                ChangeKind::Added
            },
        });
        if md.is_dir()
            && xattr::get(entry.path(), "trusted.overlay.opaque")
                .ok()
                .flatten()
                .is_some_and(|v| v == b"y")
        {
            opaque.push(rel);
        }
    }
    Ok(out)
}

fn visible_in_lowers(lowers: &[Root], rel: &Path) -> bool {
    for lower in lowers {
        // An ancestor that is a whiteout or opaque in this lower hides everything below.
        let mut anc = PathBuf::new();
        let comps: Vec<_> = rel.iter().collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            anc.push(c);
            if let Some(st) = lstat_in(lower, &anc)
                && is_whiteout(&st)
            {
                return false;
            }
        }
        if let Some(st) = lstat_in(lower, rel) {
            return !is_whiteout(&st);
        }
        if ancestor_opaque(lower, rel) {
            return false;
        }
    }
    false
}

fn ancestor_opaque(lower: &Root, rel: &Path) -> bool {
    let mut anc = PathBuf::new();
    let comps: Vec<_> = rel.iter().collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        anc.push(c);
        let Ok(dir) = lower.open_dir(&parts(&anc), false, "") else {
            return false;
        };
        let file = std::fs::File::from(dir);
        if xattr::FileExt::get_xattr(&file, "trusted.overlay.opaque")
            .ok()
            .flatten()
            .is_some_and(|v| v == b"y")
        {
            return true;
        }
    }
    false
}

/// Changes between two full trees (vfs): `layer` against its `parent` copy.
pub(crate) fn tree_changes(layer: &Path, parent: Option<&Path>) -> Result<Vec<Change>> {
    let parent_root = parent.map(Root::open).transpose()?;
    let layer_root = Root::open(layer)?;
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(layer)
        .follow_links(false)
        .min_depth(1)
    {
        let entry = entry.map_err(walk_err)?;
        let rel = entry
            .path()
            .strip_prefix(layer)
            .unwrap_or(entry.path())
            .to_path_buf();
        let Some(st) = lstat_in(&layer_root, &rel) else {
            continue;
        };
        let kind = match parent_root.as_ref().and_then(|p| lstat_in(p, &rel)) {
            None => ChangeKind::Added,
            Some(old) if differs(&old, &st, layer, parent, &rel) => ChangeKind::Modified,
            Some(_) => continue,
        };
        out.push(Change {
            path: show(&rel),
            kind,
        });
    }
    if let (Some(parent), Some(_)) = (parent, parent_root.as_ref()) {
        let mut walker = walkdir::WalkDir::new(parent)
            .follow_links(false)
            .min_depth(1)
            .into_iter();
        while let Some(entry) = walker.next() {
            let entry = entry.map_err(walk_err)?;
            let rel = entry
                .path()
                .strip_prefix(parent)
                .unwrap_or(entry.path())
                .to_path_buf();
            if lstat_in(&layer_root, &rel).is_none() {
                out.push(Change {
                    path: show(&rel),
                    kind: ChangeKind::Deleted,
                });
                if entry.file_type().is_dir() {
                    walker.skip_current_dir();
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn differs(
    old: &FileStat,
    new: &FileStat,
    layer: &Path,
    parent: Option<&Path>,
    rel: &Path,
) -> bool {
    let fmt = SFlag::S_IFMT.bits();
    if old.st_mode != new.st_mode
        || old.st_uid != new.st_uid
        || old.st_gid != new.st_gid
        || old.st_rdev != new.st_rdev
        || old.st_mtime != new.st_mtime
        || old.st_mtime_nsec != new.st_mtime_nsec
    {
        return true;
    }
    if new.st_mode & fmt == SFlag::S_IFDIR.bits() {
        return false;
    }
    if old.st_size != new.st_size {
        return true;
    }
    if new.st_mode & fmt == SFlag::S_IFLNK.bits() {
        let a = std::fs::read_link(layer.join(rel)).ok();
        let b = parent.and_then(|p| std::fs::read_link(p.join(rel)).ok());
        return a != b;
    }
    false
}
