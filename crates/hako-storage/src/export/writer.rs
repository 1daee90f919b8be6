//! The workspace's one tar writer: layer diffs (`diff`, `commit`), `export`, `cp` out of
//! a container and `save` all write through [`TarWriter`], with one set of rules:
//!
//! - entries are read by descriptor: a tree is walked with every entry opened
//!   `O_PATH | O_NOFOLLOW` relative to its parent's descriptor, so nothing in it is
//!   followed (a container's `/etc -> /host/etc` is written as that symlink);
//! - mode, owner, mtime, device numbers (tar-rs leaves them 0 from metadata, and a 0/0
//!   character device is a whiteout), symlink targets and xattrs (PAX `SCHILY.xattr.*`;
//!   overlay's own `trusted.overlay.*` are left out) are kept;
//! - a file with several links is written once, and linked after;
//! - sockets are left out (tar has none; Docker leaves them out too);
//! - a tree's entries come sorted by name, so the same tree makes the same bytes.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use hako_sys::fs::fd_path;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::Mode;

/// Builds a tar entry by entry (see the module docs for its rules).
pub struct TarWriter<'a> {
    b: tar::Builder<&'a mut dyn Write>,
    /// (dev, ino) of files with several links → the first name written.
    links: HashMap<(u64, u64), PathBuf>,
    owner: Option<(u32, u32)>,
}

impl std::fmt::Debug for TarWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarWriter")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// `O_PATH | O_NOFOLLOW` of `name` in `dir`; `None` if it is gone since it was listed.
fn open_entry(dir: &impl AsFd, name: &OsStr) -> io::Result<Option<File>> {
    match openat(
        dir.as_fd(),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

impl<'a> TarWriter<'a> {
    /// A writer to `out`.
    pub fn new(out: &'a mut dyn Write) -> TarWriter<'a> {
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        TarWriter {
            b,
            links: HashMap::new(),
            owner: None,
        }
    }

    /// Every entry gets this uid and gid instead of its own (`cp` into a container).
    #[must_use]
    pub fn with_owner(mut self, owner: Option<(u32, u32)>) -> TarWriter<'a> {
        self.owner = owner;
        self
    }

    /// The host path `full` (its last component not followed) as the one entry `name`.
    pub fn path(&mut self, full: &Path, name: &Path) -> io::Result<()> {
        let f = File::from(
            nix::fcntl::open(
                full,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?,
        );
        self.entry(&f, name).map(drop)
    }

    /// `f` (an `O_PATH` descriptor, not followed) as `name`, a directory with everything
    /// below it.
    pub fn tree(&mut self, f: &File, name: &Path) -> io::Result<()> {
        match self.entry(f, name)? {
            Some(dir) => self.children(dir, name),
            None => Ok(()),
        }
    }

    /// Everything in the directory `dir` (opened for reading), sorted, as `prefix/NAME`.
    pub fn children(&mut self, dir: OwnedFd, prefix: &Path) -> io::Result<()> {
        let mut names: Vec<OsString> = Vec::new();
        let mut it = nix::dir::Dir::from_fd(dir.try_clone()?).map_err(errno)?;
        for ent in it.iter() {
            let ent = ent.map_err(errno)?;
            let n = ent.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        drop(it);
        names.sort();
        for n in names {
            // Gone since the listing (a running container): nothing to write.
            if let Some(f) = open_entry(&dir, &n)? {
                self.tree(&f, &prefix.join(&n))?;
            }
        }
        Ok(())
    }

    /// Writes the one entry `f` as `name`; a directory's descriptor (for reading) is
    /// returned for its children.
    fn entry(&mut self, f: &File, name: &Path) -> io::Result<Option<OwnedFd>> {
        let md = f.metadata()?;
        let ft = md.file_type();
        if ft.is_socket() {
            return Ok(None);
        }
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
        if let Some((u, g)) = self.owner {
            h.set_uid(u.into());
            h.set_gid(g.into());
        }
        if ft.is_symlink() {
            let target = readlinkat(f.as_fd(), "").map_err(errno)?;
            h.set_size(0);
            self.b.append_link(&mut h, name, target)?;
            return Ok(None);
        }
        if !ft.is_dir() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                let first = first.clone();
                self.b.append_link(&mut h, name, first)?;
                return Ok(None);
            }
            self.links.insert(key, name.to_path_buf());
        }
        self.xattrs(f)?;
        if ft.is_dir() {
            h.set_size(0);
            self.b.append_data(&mut h, name, io::empty())?;
            let dir = openat(
                f.as_fd(),
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?;
            return Ok(Some(dir));
        }
        if ft.is_file() {
            // Reopened through the descriptor: the same inode, whatever the name is now.
            let data = File::open(fd_path(f))?;
            let size = md.len();
            self.b.append_data(&mut h, name, data.take(size))?;
            return Ok(None);
        }
        if ft.is_char_device() || ft.is_block_device() {
            let rdev = md.rdev();
            let num = |n: u64| {
                u32::try_from(n).map_err(|_| io::Error::other("device number out of range"))
            };
            h.set_device_major(num(nix::sys::stat::major(rdev))?)?;
            h.set_device_minor(num(nix::sys::stat::minor(rdev))?)?;
        }
        h.set_size(0);
        self.b.append_data(&mut h, name, io::empty())?;
        Ok(None)
    }

    /// PAX `SCHILY.xattr.*` records for the next entry (`f` is not a symlink: the magic
    /// link `/proc/self/fd/N` is followed to exactly that inode).
    fn xattrs(&mut self, f: &File) -> io::Result<()> {
        let p = fd_path(f);
        let Ok(names) = xattr::list_deref(&p) else {
            return Ok(());
        };
        let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
        for n in names {
            let key = n.to_string_lossy().into_owned();
            if key.starts_with("trusted.overlay.") {
                continue;
            }
            if let Ok(Some(v)) = xattr::get_deref(&p, &n) {
                recs.push((format!("SCHILY.xattr.{key}"), v));
            }
        }
        if recs.is_empty() {
            return Ok(());
        }
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    /// A regular file `name` (0644, root's, mtime 0) of `size` bytes read from `data`:
    /// what hako makes itself (whiteouts, `save`'s manifests and layers).
    pub fn file(&mut self, name: &Path, size: u64, data: impl Read) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(0);
        h.set_device_major(0)?;
        h.set_device_minor(0)?;
        self.b.append_data(&mut h, name, data)
    }

    /// The whiteout of `rel` (an empty `.wh.NAME` beside it).
    pub fn whiteout(&mut self, rel: &Path) -> io::Result<()> {
        let mut wh = OsString::from(".wh.");
        wh.push(rel.file_name().unwrap_or_default());
        self.file(
            &rel.parent().unwrap_or(Path::new("")).join(wh),
            0,
            io::empty(),
        )
    }

    /// The end-of-archive blocks, then a flush.
    pub fn finish(self) -> io::Result<()> {
        self.b.into_inner()?.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// What the tar says of each entry: (name, type, link target, device, xattrs).
    type Seen = (
        String,
        tar::EntryType,
        Option<String>,
        (u32, u32),
        Vec<String>,
    );

    fn list(bytes: &[u8]) -> Vec<Seen> {
        let mut ar = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut xattrs = Vec::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for x in exts {
                    xattrs.push(x.unwrap().key().unwrap().to_string());
                }
            }
            out.push((
                e.path().unwrap().display().to_string(),
                h.entry_type(),
                e.link_name().unwrap().map(|l| l.display().to_string()),
                (
                    h.device_major().unwrap().unwrap_or(0),
                    h.device_minor().unwrap().unwrap_or(0),
                ),
                xattrs,
            ));
        }
        out
    }

    #[test]
    fn a_tree_keeps_links_devices_and_xattrs_and_follows_nothing() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("top");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(r.join("b"), "data").unwrap();
        std::fs::hard_link(r.join("b"), r.join("a")).unwrap();
        symlink("/etc", r.join("etc")).unwrap();
        xattr::set(r.join("b"), "user.hako", b"1").unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(r.join("sock")).unwrap();
        let root = nix::unistd::geteuid().is_root();
        if root {
            nix::sys::stat::mknod(
                &r.join("null"),
                nix::sys::stat::SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(1, 3),
            )
            .unwrap();
        }
        let mut out = Vec::new();
        let mut w = TarWriter::new(&mut out);
        let top = File::open(&r).unwrap();
        w.tree(&top, Path::new("t")).unwrap();
        w.whiteout(Path::new("t/gone")).unwrap();
        w.finish().unwrap();
        let seen = list(&out);
        let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        let mut want = vec!["t", "t/a", "t/b", "t/etc"];
        if root {
            want.push("t/null");
        }
        want.push("t/.wh.gone");
        // Sorted, no socket, a link written once.
        assert_eq!(names, want);
        assert_eq!(seen[1].1, tar::EntryType::Regular);
        assert_eq!(seen[1].4, vec!["SCHILY.xattr.user.hako".to_string()]);
        assert_eq!(seen[2].1, tar::EntryType::Link);
        assert_eq!(seen[2].2.as_deref(), Some("t/a"));
        assert_eq!(seen[3].1, tar::EntryType::Symlink);
        assert_eq!(seen[3].2.as_deref(), Some("/etc"));
        if root {
            assert_eq!(seen[4].1, tar::EntryType::Char);
            assert_eq!(seen[4].3, (1, 3), "device numbers kept");
        }
    }
}
