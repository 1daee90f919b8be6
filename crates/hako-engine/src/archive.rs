//! Tar streams of paths inside a root directory, and their extraction into one, without
//! ever resolving a path outside that root (`docker cp`, `docker export`).
//!
//! A container's root filesystem is hostile ground: a symlink `/evil -> /etc` inside it must
//! mean the container's `/etc`, never the host's (CVE-2018-15664 and CVE-2019-14271 were
//! this bug in Docker's `cp`). So:
//!
//! - a path named by the user is looked up by the one resolver, [`hako_sys::fs::Root`]
//!   (`openat2(RESOLVE_IN_ROOT)`): symlinks and `..` are resolved as if the root were `/`;
//! - below that, a tree is walked by file descriptor, every entry opened `O_NOFOLLOW`
//!   relative to its parent's descriptor, so nothing in the tree is followed at all;
//! - an extracted entry's parent directory is looked up the same way (in the root), and
//!   the entry itself is made with `*at` calls that never follow its last component.
//!
//! The host side of `cp` uses the same code with `/` as the root.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hako_storage::TarWriter;
use hako_sys::fs::Rules;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, fstatat, mkdirat, mknodat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, linkat, symlinkat, unlinkat};

/// What a path is (Docker's `ContainerPathStat`, the `X-Docker-Container-Path-Stat` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// The last component of the path.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `st_mode`.
    pub mode: u32,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// The symlink's target when the path itself is a symlink (not followed).
    pub link_target: Option<String>,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
}

impl PathStat {
    /// Docker's `X-Docker-Container-Path-Stat` JSON: `mode` as Go's `os.FileMode` (the
    /// permission bits plus a type bit each: clients test `Mode.IsDir()`), `mtime` as
    /// RFC 3339.
    pub fn docker_json(&self) -> serde_json::Value {
        const S_IFMT: u32 = 0o170_000;
        let kind: u32 = match self.mode & S_IFMT {
            0o040_000 => 1 << 31,               // ModeDir
            0o120_000 => 1 << 27,               // ModeSymlink
            0o060_000 => 1 << 26,               // ModeDevice
            0o020_000 => (1 << 26) | (1 << 21), // ModeDevice | ModeCharDevice
            0o010_000 => 1 << 25,               // ModeNamedPipe
            0o140_000 => 1 << 24,               // ModeSocket
            _ => 0,
        };
        let mut mode = kind | (self.mode & 0o777);
        if self.mode & 0o4000 != 0 {
            mode |= 1 << 23; // ModeSetuid
        }
        if self.mode & 0o2000 != 0 {
            mode |= 1 << 22; // ModeSetgid
        }
        if self.mode & 0o1000 != 0 {
            mode |= 1 << 20; // ModeSticky
        }
        let when = std::time::UNIX_EPOCH
            + std::time::Duration::new(self.mtime.0.max(0).unsigned_abs(), self.mtime.1);
        let mtime = humantime::format_rfc3339_nanos(when).to_string();
        serde_json::json!({
            "name": self.name,
            "size": self.size,
            "mode": mode,
            "mtime": mtime,
            "linkTarget": self.link_target.clone().unwrap_or_default(),
        })
    }
}

/// Who owns extracted files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The uid/gid recorded in the tar (`cp -a`).
    Keep,
    /// This uid/gid (`cp` into a container: root).
    Set(u32, u32),
    /// Whoever extracts (`cp` to the host without `-a`: the user running it); device
    /// nodes are left out and set-uid/set-gid bits dropped.
    Caller,
}

/// A directory that every path is resolved inside of (the workspace's one resolver,
/// [`hako_sys::fs::Root`], with [`Rules::InRoot`]).
#[derive(Debug)]
pub struct Root {
    root: hako_sys::fs::Root,
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// The components of a tar entry name; `..` and absolute names are refused (a tar that
/// has them was made to escape its extraction directory).
fn entry_parts(raw: &[u8]) -> io::Result<Vec<OsString>> {
    hako_sys::fs::entry_name(raw).map_err(|why| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unsafe tar entry {:?}: {why}", String::from_utf8_lossy(raw)),
        )
    })
}

/// What an extracted entry may replace when the path exists with the other kind (a
/// directory vs anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// Neither (the API's `noOverwriteDirNonDir`).
    Nothing,
    /// A directory replaces a file; a file never replaces a directory (`hako cp` to the
    /// host, builds).
    FilesOnly,
    /// Either replaces the other (the API without the flag, as dockerd).
    Anything,
}

impl Root {
    /// Opens `path` as the root.
    pub fn open(path: &Path) -> io::Result<Root> {
        let root = hako_sys::fs::Root::open(path, Rules::InRoot).map_err(|e| match e {
            Errno::ENOTDIR => io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ),
            e => errno(e),
        })?;
        Ok(Root { root })
    }

    /// Opens `path` (absolute or not, always taken from the root) inside the root.
    fn resolve(&self, path: &str, flags: OFlag) -> io::Result<OwnedFd> {
        self.root.open_at(path, flags).map_err(errno)
    }

    /// The content of the regular file `path` (symlinks followed inside the root), `None`
    /// if it does not exist. Anything but a regular file, or more than `cap` bytes, is an
    /// error: an image's `/etc/passwd` may be a FIFO (open would block; `O_NONBLOCK`
    /// avoids that), `/dev/zero` or a sparse 1 TB file.
    pub fn read_file(&self, path: &str, cap: u64) -> io::Result<Option<Vec<u8>>> {
        self.root.read_file(path, cap)
    }

    /// What `path` is, following a final symlink if `follow`; `None` if it does not exist.
    pub fn stat(&self, path: &str, follow: bool) -> io::Result<Option<PathStat>> {
        let mut flags = OFlag::O_PATH;
        if !follow {
            flags |= OFlag::O_NOFOLLOW;
        }
        let fd = match self.resolve(path, flags) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let f = File::from(fd);
        let md = f.metadata()?;
        let link_target = if md.file_type().is_symlink() {
            Some(readlinkat(f.as_fd(), "").map_err(errno)?)
                .map(|t| t.to_string_lossy().into_owned())
        } else {
            None
        };
        let name = Path::new(path.trim_end_matches('/'))
            .file_name()
            .map_or_else(|| "/".into(), |n| n.to_string_lossy().into_owned());
        Ok(Some(PathStat {
            name,
            size: md.len(),
            mode: md.mode(),
            is_dir: md.is_dir(),
            link_target,
            mtime: (md.mtime(), u32::try_from(md.mtime_nsec()).unwrap_or(0)),
        }))
    }

    /// Writes `path` as a tar to `out`: as `name` (a directory with everything below it),
    /// or with `name` `None` only what a directory contains. A final symlink is followed
    /// if `follow`; nothing below it ever is. With `owner`, every entry gets that uid/gid.
    pub fn write_tar(
        &self,
        path: &str,
        follow: bool,
        name: Option<&OsStr>,
        owner: Option<(u32, u32)>,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let mut flags = OFlag::O_PATH;
        if !follow {
            flags |= OFlag::O_NOFOLLOW;
        }
        let top = File::from(self.resolve(path, flags)?);
        let mut w = TarWriter::new(out).with_owner(owner);
        match name {
            Some(n) => w.tree(&top, Path::new(n))?,
            None => {
                let dir = openat(
                    top.as_fd(),
                    ".",
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno)?;
                w.children(dir, Path::new(""))?;
            }
        }
        w.finish()
    }

    /// Extracts the tar `input` into the directory `dir` (which must exist). Parent
    /// directories missing from the tar are made (0755).
    /// A non-directory never replaces a directory here.
    pub fn extract(&self, dir: &str, input: &mut dyn Read, owner: Owner) -> io::Result<()> {
        self.extract_with(dir, input, owner, Replace::FilesOnly)
    }

    /// The API's `PUT archive` as dockerd's untar: with `no_overwrite_dir_non_dir` (Docker's
    /// `noOverwriteDirNonDir`, which `docker cp` always sets) neither a directory of the tar
    /// replaces an existing non-directory nor the other way round: both are refused;
    /// without it, either replaces the other (an existing directory is removed with
    /// everything in it, as dockerd's `RemoveAll`).
    pub fn extract_checked(
        &self,
        dir: &str,
        input: &mut dyn Read,
        owner: Owner,
        no_overwrite_dir_non_dir: bool,
    ) -> io::Result<()> {
        let how = if no_overwrite_dir_non_dir {
            Replace::Nothing
        } else {
            Replace::Anything
        };
        self.extract_with(dir, input, owner, how)
    }

    fn extract_with(
        &self,
        dir: &str,
        input: &mut dyn Read,
        owner: Owner,
        how: Replace,
    ) -> io::Result<()> {
        let base = dir.trim_end_matches('/').to_string();
        let st = self.resolve(&base, OFlag::O_PATH)?;
        if !File::from(st).metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{dir} is not a directory"),
            ));
        }
        let mut ar = tar::Archive::new(input);
        for entry in ar.entries()? {
            let mut e = entry?;
            let parts = entry_parts(&e.path_bytes())?;
            let Some((name, parents)) = parts.split_last() else {
                continue;
            };
            let pfd = self.mkdir_all(&base, parents)?;
            self.extract_entry(&pfd, name, &base, &mut e, owner, how)
                .map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!(
                            "extract {}: {err}",
                            String::from_utf8_lossy(&e.path_bytes())
                        ),
                    )
                })?;
        }
        Ok(())
    }

    /// Opens (making what is missing) the directory `base/parts...` inside the root.
    fn mkdir_all(&self, base: &str, parts: &[OsString]) -> io::Result<OwnedFd> {
        let mut path = PathBuf::from(base);
        path.extend(parts);
        self.root.ensure_dir(&path).map_err(errno)
    }

    fn extract_entry<R: Read>(
        &self,
        pfd: &OwnedFd,
        name: &OsStr,
        base: &str,
        e: &mut tar::Entry<'_, R>,
        owner: Owner,
        how: Replace,
    ) -> io::Result<()> {
        let h = e.header();
        let kind = h.entry_type();
        let mut mode = h.mode()? & 0o7777;
        if matches!(owner, Owner::Caller) {
            // `cp` to the host without `-a` (Docker's rules): no device nodes, and no
            // set-uid/set-gid bits on files the caller now owns.
            if kind.is_character_special() || kind.is_block_special() {
                return Ok(());
            }
            mode &= !0o6000;
        }
        let mtime = h.mtime().unwrap_or(0);
        let (uid, gid) = (h.uid()?, h.gid()?);
        let is_dir = kind.is_dir();
        let mut existing = fstatat(pfd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        if let Some(st) = existing {
            let old_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
            match (old_dir, is_dir) {
                (true, true) => {}
                (true, false) if how == Replace::Anything => {
                    // The entry is a directory (not followed if a symlink: checked above
                    // without following); its parent is a descriptor inside the root.
                    let path =
                        PathBuf::from(format!("/proc/self/fd/{}", pfd.as_raw_fd())).join(name);
                    std::fs::remove_dir_all(&path)?;
                    existing = None;
                }
                (true, false) => {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "cannot overwrite a directory with a non-directory",
                    ));
                }
                (false, true) if how == Replace::Nothing => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "cannot overwrite a non-directory with a directory",
                    ));
                }
                (false, _) => {
                    unlinkat(pfd.as_fd(), name, UnlinkatFlags::NoRemoveDir).map_err(errno)?;
                    existing = None;
                }
            }
        }
        let file_mode = Mode::from_bits_truncate(mode);
        let mut opened: Option<File> = None;
        if kind.is_file() || kind == tar::EntryType::Continuous {
            let fd = openat(
                pfd.as_fd(),
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(errno)?;
            let mut f = File::from(fd);
            io::copy(e, &mut f)?;
            opened = Some(f);
        } else if is_dir {
            if existing.is_none() {
                mkdirat(pfd.as_fd(), name, Mode::from_bits_truncate(0o700)).map_err(errno)?;
            }
            let fd = openat(
                pfd.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?;
            opened = Some(File::from(fd));
        } else if kind.is_symlink() {
            let target = e.link_name_bytes().unwrap_or_default().into_owned();
            symlinkat(OsStr::from_bytes(&target), pfd.as_fd(), name).map_err(errno)?;
        } else if kind.is_hard_link() {
            let target = entry_parts(&e.link_name_bytes().unwrap_or_default())?;
            let Some((tname, tparents)) = target.split_last() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "empty link target",
                ));
            };
            let tdir = self.mkdir_all(base, tparents)?;
            linkat(
                tdir.as_fd(),
                tname.as_os_str(),
                pfd.as_fd(),
                name,
                AtFlags::empty(),
            )
            .map_err(errno)?;
            return Ok(());
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let sflag = if kind.is_character_special() {
                SFlag::S_IFCHR
            } else if kind.is_block_special() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            let dev = nix::sys::stat::makedev(
                u64::from(h.device_major()?.unwrap_or(0)),
                u64::from(h.device_minor()?.unwrap_or(0)),
            );
            mknodat(pfd.as_fd(), name, sflag, file_mode, dev).map_err(errno)?;
        } else {
            // PAX and GNU long-name records are consumed by the tar reader; anything else
            // (sockets, sparse oddities) has nothing to make.
            return Ok(());
        }
        let ids = match owner {
            Owner::Keep => Some((
                u32::try_from(uid).unwrap_or(0),
                u32::try_from(gid).unwrap_or(0),
            )),
            Owner::Set(u, g) => Some((u, g)),
            Owner::Caller => None,
        };
        if let Some((u, g)) = ids {
            fchownat(
                pfd.as_fd(),
                name,
                Some(Uid::from_raw(u)),
                Some(Gid::from_raw(g)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(errno)?;
        }
        // After chown, which clears set-id bits; through the descriptor, never the name.
        if let Some(f) = &opened {
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        let t = TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
        let _ = utimensat(pfd.as_fd(), name, &t, &t, UtimensatFlags::NoFollowSymlink);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_cannot_climb_out() {
        assert!(entry_parts(b"../x").is_err());
        assert!(entry_parts(b"a/../../x").is_err());
        assert!(entry_parts(b"/etc/passwd").is_err());
        assert_eq!(entry_parts(b"./a//b/").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let host = tempfile::tempdir().unwrap();
        let secret = host.path().join("secret");
        std::fs::write(&secret, "host").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/secret"), "container").unwrap();
        std::os::unix::fs::symlink(host.path(), root.path().join("evil")).unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("evil2")).unwrap();
        let r = Root::open(root.path()).unwrap();
        // `evil` names a host directory: inside the root it does not exist.
        assert_eq!(r.stat("/evil/secret", true).unwrap(), None);
        let s = r.stat("/evil2/secret", true).unwrap().unwrap();
        assert_eq!(s.size, "container".len() as u64);

        let mut tar = Vec::new();
        r.write_tar("/evil2/secret", true, Some(OsStr::new("s")), None, &mut tar)
            .unwrap();
        let dest = tempfile::tempdir().unwrap();
        let d = Root::open(dest.path()).unwrap();
        d.extract("/", &mut tar.as_slice(), Owner::Caller).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.path().join("s")).unwrap(),
            "container"
        );

        // Writing through `evil2/` lands in the root's etc, not the host's.
        let mut tar2 = Vec::new();
        d.write_tar("/s", false, Some(OsStr::new("new")), None, &mut tar2)
            .unwrap();
        r.extract("/evil2", &mut tar2.as_slice(), Owner::Keep)
            .unwrap();
        assert!(root.path().join("etc/new").exists());
        // `evil` (a host path) is no directory inside the root: nothing lands on the host.
        assert!(
            r.extract("/evil", &mut tar2.as_slice(), Owner::Keep)
                .is_err()
        );
        assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 1);
    }
}
