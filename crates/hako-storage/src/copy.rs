//! Copying a layer tree with everything a layer holds (vfs driver).

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, lchown, symlink};
use std::path::Path;

use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, mknod, utimensat};
use nix::sys::time::TimeSpec;

use crate::error::{IoContext, Result};

/// Copies the contents of `src` into the existing, empty directory `dst`: files, dirs,
/// symlinks, devices and fifos with ownership, modes, xattrs, mtimes and hard links.
/// Symlinks are copied, never followed.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut links: HashMap<(u64, u64), std::path::PathBuf> = HashMap::new();
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(src).follow_links(false) {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            crate::Error::io(format!("walk {path}"), e.into())
        })?;
        let rel = entry.path().strip_prefix(src).unwrap_or(Path::new(""));
        let to = dst.join(rel);
        let md = entry
            .metadata()
            .map_err(|e| crate::Error::io(format!("stat {}", entry.path().display()), e.into()))?;
        let ft = md.file_type();
        if entry.depth() == 0 {
            dirs.push((to, md));
            continue;
        }
        if ft.is_dir() {
            std::fs::create_dir(&to).ctx(|| format!("mkdir {}", to.display()))?;
            dirs.push((to, md));
            continue;
        }
        if md.nlink() > 1 {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                std::fs::hard_link(first, &to).ctx(|| format!("link {}", to.display()))?;
                continue;
            }
            links.insert((md.dev(), md.ino()), to.clone());
        }
        if ft.is_file() {
            std::fs::copy(entry.path(), &to).ctx(|| format!("copy {}", to.display()))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())
                .ctx(|| format!("readlink {}", entry.path().display()))?;
            symlink(&target, &to).ctx(|| format!("symlink {}", to.display()))?;
        } else {
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else if ft.is_fifo() {
                SFlag::S_IFIFO
            } else {
                SFlag::S_IFSOCK
            };
            mknod(
                &to,
                kind,
                Mode::from_bits_truncate(md.mode() & 0o7777),
                md.rdev(),
            )
            .ctx(|| format!("mknod {}", to.display()))?;
        }
        copy_meta(entry.path(), &to, &md)?;
    }
    // Directories last and deepest first, so adding children does not bump their mtimes.
    for (to, md) in dirs.iter().rev() {
        let from = src.join(to.strip_prefix(dst).unwrap_or(Path::new("")));
        copy_meta(&from, to, md)?;
    }
    Ok(())
}

fn copy_meta(from: &Path, to: &Path, md: &std::fs::Metadata) -> Result<()> {
    lchown(to, Some(md.uid()), Some(md.gid())).ctx(|| format!("chown {}", to.display()))?;
    if !md.file_type().is_symlink() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(md.mode() & 0o7777))
            .ctx(|| format!("chmod {}", to.display()))?;
    }
    // xattr::list/get/set do not follow symlinks.
    for name in xattr::list(from).ctx(|| format!("list xattrs of {}", from.display()))? {
        if let Some(value) =
            xattr::get(from, &name).ctx(|| format!("get xattr of {}", from.display()))?
        {
            xattr::set(to, &name, &value).ctx(|| format!("set xattr on {}", to.display()))?;
        }
    }
    let mtime = TimeSpec::new(md.mtime(), md.mtime_nsec());
    let atime = TimeSpec::new(md.atime(), md.atime_nsec());
    utimensat(
        AT_FDCWD,
        to,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .ctx(|| format!("set times of {}", to.display()))
}
