//! A layer's own changes as an OCI layer tar (`docker diff` as a stream, the new top
//! layer of `docker commit`). The reverse of [`crate::unpack`]:
//!
//! - overlay2: the upper dir is the diff. A 0/0 character device (overlay's whiteout)
//!   becomes an empty `.wh.NAME` file; a directory marked `trusted.overlay.opaque=y`
//!   becomes the directory followed by `DIR/.wh..wh..opq`.
//! - vfs: the layer is a full copy, so the diff is built from [`crate::Change`]s: added
//!   and modified paths are read from the layer, deleted ones become `.wh.NAME`.
//!
//! Entries are written by the workspace's one tar writer, [`TarWriter`] (its docs say
//! what it keeps); this file says which entries a layer has.

mod writer;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

pub use writer::TarWriter;

use crate::changes::{Change, ChangeKind};
use crate::error::{Error, IoContext, Result};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The layer tar of an overlay upper dir.
pub(crate) fn overlay_diff(upper: &Path, out: &mut dyn Write) -> Result<()> {
    let mut t = TarWriter::new(out);
    for e in walkdir::WalkDir::new(upper)
        .follow_links(false)
        .min_depth(1)
        .sort_by_file_name()
    {
        let e = e.map_err(|e| Error::io(format!("walk {}", upper.display()), e.into()))?;
        let rel = e.path().strip_prefix(upper).unwrap_or(e.path());
        let ft = e.file_type();
        if ft.is_char_device() {
            let md = e
                .metadata()
                .map_err(|err| Error::io(format!("stat {}", e.path().display()), err.into()))?;
            if md.rdev() == 0 {
                t.whiteout(rel).ctx(|| format!("write {}", rel.display()))?;
                continue;
            }
        }
        t.path(e.path(), rel)
            .ctx(|| format!("write {}", rel.display()))?;
        if ft.is_dir() && is_opaque(e.path()) {
            let marker = rel.join(".wh..wh..opq");
            t.file(&marker, 0, std::io::empty())
                .ctx(|| format!("write {}", marker.display()))?;
        }
    }
    t.finish().ctx(|| "finish layer tar".into())
}

fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// The layer tar of `changes`, reading added and modified files from `layer`.
pub(crate) fn changes_diff(layer: &Path, changes: &[Change], out: &mut dyn Write) -> Result<()> {
    let mut t = TarWriter::new(out);
    let mut sorted: Vec<&Change> = changes.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut deleted_dirs: Vec<String> = Vec::new();
    for c in sorted {
        // Below a deleted directory, its whiteout says it all.
        if deleted_dirs.iter().any(|d| {
            c.path.starts_with(d.as_str()) && c.path.as_bytes().get(d.len()) == Some(&b'/')
        }) {
            continue;
        }
        if c.kind == ChangeKind::Deleted {
            deleted_dirs.push(c.path.clone());
        }
        let rel = Path::new(OsStr::from_bytes(c.path.trim_start_matches('/').as_bytes()));
        if rel.as_os_str().is_empty() {
            continue;
        }
        match c.kind {
            ChangeKind::Deleted => t.whiteout(rel),
            ChangeKind::Added | ChangeKind::Modified => t.path(&layer.join(rel), rel),
        }
        .ctx(|| format!("write {}", rel.display()))?;
    }
    t.finish().ctx(|| "finish layer tar".into())
}
