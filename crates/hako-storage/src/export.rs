//! A layer's own changes as an OCI layer tar (`docker diff` as a stream, the new top
//! layer of `docker commit`). The reverse of [`crate::unpack`]:
//!
//! - overlay2: the upper dir is the diff. A 0/0 character device (overlay's whiteout)
//!   becomes an empty `.wh.NAME` file; a directory marked `trusted.overlay.opaque=y`
//!   becomes the directory followed by `DIR/.wh..wh..opq`.
//! - vfs: the layer is a full copy, so the diff is built from [`crate::Change`]s: added
//!   and modified paths are read from the layer, deleted ones become `.wh.NAME`.
//!
//! Entries keep mode, owner, times, device numbers and xattrs (as PAX `SCHILY.xattr.*`
//! records; overlay's own `trusted.overlay.*` are left out); hard links inside the
//! layer are written once and linked after.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::changes::{Change, ChangeKind};
use crate::error::{Error, IoContext, Result};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Builds a layer tar entry by entry.
struct LayerTar<'a> {
    b: tar::Builder<&'a mut dyn Write>,
    /// (dev, ino) of files with several links → the first name written.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<'a> LayerTar<'a> {
    fn new(out: &'a mut dyn Write) -> LayerTar<'a> {
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        LayerTar {
            b,
            links: HashMap::new(),
        }
    }

    /// An empty regular file (whiteouts and opaque markers).
    fn marker(&mut self, rel: &Path) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(0);
        h.set_mtime(0);
        self.b
            .append_data(&mut h, rel, std::io::empty())
            .ctx(|| format!("write {}", rel.display()))
    }

    fn whiteout(&mut self, rel: &Path) -> Result<()> {
        let name = rel.file_name().unwrap_or_default();
        let mut wh = std::ffi::OsString::from(".wh.");
        wh.push(name);
        let path = rel.parent().unwrap_or(Path::new("")).join(wh);
        self.marker(&path)
    }

    /// `full` (on disk) as `rel` in the tar.
    fn entry(&mut self, full: &Path, rel: &Path) -> Result<()> {
        let md = std::fs::symlink_metadata(full).ctx(|| format!("stat {}", full.display()))?;
        if md.file_type().is_socket() {
            // Sockets cannot be archived (Docker leaves them out too).
            return Ok(());
        }
        self.xattrs(full)?;
        if md.file_type().is_file() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key) {
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&md);
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                let first = first.clone();
                return self
                    .b
                    .append_link(&mut h, rel, &first)
                    .ctx(|| format!("write {}", rel.display()));
            }
            self.links.insert(key, rel.to_path_buf());
        }
        let ft = md.file_type();
        if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            // tar's append_path_with_name drops the name of special files (tar-rs #327):
            // the header is made here, device numbers included.
            let mut h = tar::Header::new_gnu();
            h.set_metadata(&md);
            h.set_entry_type(if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            let rdev = md.rdev();
            let num = |n: u64| {
                u32::try_from(n).map_err(|_| {
                    Error::io(
                        format!("write {}", rel.display()),
                        std::io::Error::other("device number out of range"),
                    )
                })
            };
            h.set_device_major(num(nix::sys::stat::major(rdev))?)
                .ctx(|| format!("write {}", rel.display()))?;
            h.set_device_minor(num(nix::sys::stat::minor(rdev))?)
                .ctx(|| format!("write {}", rel.display()))?;
            h.set_size(0);
            return self
                .b
                .append_data(&mut h, rel, std::io::empty())
                .ctx(|| format!("write {}", rel.display()));
        }
        self.b
            .append_path_with_name(full, rel)
            .ctx(|| format!("write {}", rel.display()))
    }

    /// PAX xattr records for the next entry.
    fn xattrs(&mut self, full: &Path) -> Result<()> {
        let Ok(names) = xattr::list(full) else {
            return Ok(());
        };
        let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
        for name in names {
            let n = name.to_string_lossy().into_owned();
            if n.starts_with("trusted.overlay.") {
                continue;
            }
            if let Ok(Some(v)) = xattr::get(full, &name) {
                recs.push((format!("SCHILY.xattr.{n}"), v));
            }
        }
        if recs.is_empty() {
            return Ok(());
        }
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .ctx(|| format!("write xattrs of {}", full.display()))
    }

    fn finish(self) -> Result<()> {
        self.b
            .into_inner()
            .and_then(|w| w.flush())
            .ctx(|| "finish layer tar".into())
    }
}

/// The layer tar of an overlay upper dir.
pub(crate) fn overlay_diff(upper: &Path, out: &mut dyn Write) -> Result<()> {
    let mut t = LayerTar::new(out);
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
                t.whiteout(rel)?;
                continue;
            }
        }
        t.entry(e.path(), rel)?;
        if ft.is_dir() && is_opaque(e.path()) {
            t.marker(&rel.join(".wh..wh..opq"))?;
        }
    }
    t.finish()
}

fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// The layer tar of `changes`, reading added and modified files from `layer`.
pub(crate) fn changes_diff(layer: &Path, changes: &[Change], out: &mut dyn Write) -> Result<()> {
    let mut t = LayerTar::new(out);
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
            ChangeKind::Deleted => t.whiteout(rel)?,
            ChangeKind::Added | ChangeKind::Modified => t.entry(&layer.join(rel), rel)?,
        }
    }
    t.finish()
}
