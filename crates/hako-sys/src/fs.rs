//! The one in-root path resolver of the workspace.
//!
//! Every path that names something inside a directory hako does not trust (a container's
//! or an image's root filesystem, a layer being unpacked, a build context, the host side of
//! `cp`) is opened through a [`Root`], relative to a descriptor of that directory, under one
//! of three [`Rules`]:
//!
//! | rules | a symlink in the path | `..` at the top | kernel flags |
//! |---|---|---|---|
//! | [`Rules::InRoot`] | followed as if the root were `/` | stays at the top | `RESOLVE_IN_ROOT` |
//! | [`Rules::Beneath`] | followed while it stays below the root | `EXDEV` | `RESOLVE_BENEATH` |
//! | [`Rules::NoSymlinks`] | `ELOOP` | stays at the top | `RESOLVE_IN_ROOT \| RESOLVE_NO_SYMLINKS` |
//!
//! Magic links (`/proc/self/fd/N`, `/proc/PID/root`) are never followed (`RESOLVE_NO_MAGICLINKS`).
//! A path is always taken from the root: `/etc/passwd` and `etc/passwd` are the same path.
//!
//! The kernel does the work (`openat2`, Linux 5.6+). Where it cannot, the same rules are
//! applied in user space by [`walk`](Root::open) one component at a time, every component
//! opened `O_PATH | O_NOFOLLOW` relative to the descriptor of its parent, symlink targets
//! read and resolved by us, and `..` taken from a stack of descriptors we opened (never
//! from the directory's own `..`, which a concurrent rename could move out of the root):
//! - on kernels without `openat2` (or a seccomp filter that answers `ENOSYS` for it);
//! - when `openat2` keeps answering `EAGAIN` (a rename raced with a `..`);
//! - to *create* what is missing ([`Root::ensure`]): the kernel cannot resolve a dangling
//!   symlink, but a mount target `/dev/log -> /run/systemd/journal/dev-log` in an image must
//!   become the image's `/run/systemd/journal/dev-log` (CVE-2021-30465 is the runc bug of
//!   creating such a target through a path).
//!
//! This is the class of bug it exists for: CVE-2018-15664 and CVE-2019-14271 (`docker cp`
//! through a container's symlinks), CVE-2021-30465 (runc mount targets), layer tars that
//! write through their own symlinks (`a -> /etc`, then `a/passwd`).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};

/// How symlinks and `..` are treated on the way to a path (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Symlinks are followed as if the root were `/`; nothing resolves outside it.
    InRoot,
    /// Symlinks are followed, but a path that would leave the root fails with `EXDEV`.
    Beneath,
    /// Any symlink on the way (or at the end, unless `O_NOFOLLOW`) fails with `ELOOP`.
    NoSymlinks,
}

/// What [`Root::ensure`] creates when the path does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every missing component is a directory (0755).
    Dir,
    /// Missing parents are directories (0755), the last component an empty file (0644).
    File,
}

/// Symlinks followed on one lookup before `ELOOP`, as the kernel's `MAXSYMLINKS`.
const MAX_SYMLINKS: u32 = 40;

/// Set once `openat2` answered `ENOSYS`: every later lookup walks.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A directory that paths are resolved inside of.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    rules: Rules,
    walk_only: bool,
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Root {
    /// Opens the directory `path` (resolved as the host resolves it: the caller chose it)
    /// as a root.
    pub fn open(path: &Path, rules: Rules) -> Result<Root, Errno> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root::from_fd(fd, rules))
    }

    /// A root on a descriptor the caller already holds (a directory).
    pub fn from_fd(fd: OwnedFd, rules: Rules) -> Root {
        Root {
            fd,
            rules,
            walk_only: false,
        }
    }

    /// The same directory under other rules.
    pub fn with_rules(&self, rules: Rules) -> io::Result<Root> {
        Ok(Root {
            fd: self.fd.try_clone()?,
            rules,
            walk_only: self.walk_only,
        })
    }

    /// Resolves every path in user space, as on a kernel without `openat2`. The rules are
    /// the same; the tests run every escape through both ways.
    #[must_use]
    pub fn walk_only(mut self) -> Root {
        self.walk_only = true;
        self
    }

    /// The rules this root resolves with.
    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// Opens `path` inside the root with `flags` (`O_CLOEXEC` is added; `O_CREAT` is not
    /// for this call: see [`Root::ensure`]). With `O_NOFOLLOW` a final symlink is not
    /// followed (with `O_PATH`, the symlink itself is opened).
    pub fn open_at(&self, path: impl AsRef<Path>, flags: OFlag) -> Result<OwnedFd, Errno> {
        let path = path.as_ref();
        if !self.walk_only && !NO_OPENAT2.load(Ordering::Relaxed) {
            let how = OpenHow::new()
                .flags(flags | OFlag::O_CLOEXEC)
                .resolve(self.kernel_rules());
            let rel = relative(path);
            for _ in 0..4 {
                match openat2(self.fd.as_fd(), rel.as_os_str(), how) {
                    Err(Errno::EAGAIN) => continue,
                    Err(Errno::ENOSYS) => {
                        NO_OPENAT2.store(true, Ordering::Relaxed);
                        break;
                    }
                    r => return r,
                }
            }
        }
        self.walk(path, flags, None)
    }

    /// Opens the directory `path` for `*at` calls (`O_RDONLY | O_DIRECTORY`).
    pub fn open_dir(&self, path: impl AsRef<Path>) -> Result<OwnedFd, Errno> {
        self.open_at(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
    }

    /// Makes sure `path` exists (missing directories 0755; the last component as `kind`)
    /// and opens it with `flags`. Symlinks on the way, dangling ones too, are treated by
    /// the root's rules, so whatever is created is inside the root.
    pub fn ensure(
        &self,
        path: impl AsRef<Path>,
        kind: Kind,
        flags: OFlag,
    ) -> Result<OwnedFd, Errno> {
        let path = path.as_ref();
        match self.open_at(path, flags) {
            Err(Errno::ENOENT) => self.walk(path, flags, Some(kind)),
            r => r,
        }
    }

    /// [`Root::ensure`] of a directory, opened for `*at` calls.
    pub fn ensure_dir(&self, path: impl AsRef<Path>) -> Result<OwnedFd, Errno> {
        self.ensure(path, Kind::Dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
    }

    /// The content of the regular file `path`, `None` if it does not exist. Anything but a
    /// regular file, or more than `cap` bytes, is an error (`InvalidData`): an image's
    /// `/etc/passwd` may be a FIFO (opened `O_NONBLOCK`, so the open cannot hang), a device
    /// such as `/dev/zero`, or a sparse 1 TB file. The caller names the path in errors.
    pub fn read_file(&self, path: impl AsRef<Path>, cap: u64) -> io::Result<Option<Vec<u8>>> {
        let path = path.as_ref();
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        let f = match self.open_at(path, flags) {
            Ok(fd) => File::from(fd),
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        let md = f.metadata()?;
        if !md.is_file() {
            return Err(invalid("not a regular file".into()));
        }
        let mut buf = Vec::new();
        f.take(cap + 1).read_to_end(&mut buf)?;
        if md.len() > cap || buf.len() as u64 > cap {
            return Err(invalid(format!("larger than {cap} bytes")));
        }
        Ok(Some(buf))
    }

    fn kernel_rules(&self) -> ResolveFlag {
        ResolveFlag::RESOLVE_NO_MAGICLINKS
            | match self.rules {
                Rules::InRoot => ResolveFlag::RESOLVE_IN_ROOT,
                Rules::Beneath => ResolveFlag::RESOLVE_BENEATH,
                Rules::NoSymlinks => {
                    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS
                }
            }
    }

    /// The rules in user space; with `create`, what is missing is made on the way.
    fn walk(&self, path: &Path, flags: OFlag, create: Option<Kind>) -> Result<OwnedFd, Errno> {
        // Directories below the root we went through: `..` pops one (never past the root).
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut todo: VecDeque<OsString> = components(path);
        let mut links = 0;
        let mut made = 0;
        let flags = flags | OFlag::O_CLOEXEC;
        loop {
            let cur = stack.last().map_or(self.fd.as_fd(), AsFd::as_fd);
            let Some(name) = todo.pop_front() else {
                // The path named a directory we hold (or the root): open it as asked.
                return openat(cur, ".", flags & !OFlag::O_NOFOLLOW, Mode::empty());
            };
            if name == ".." {
                if stack.pop().is_none() && self.rules == Rules::Beneath {
                    return Err(Errno::EXDEV);
                }
                continue;
            }
            let last = todo.is_empty();
            let probe = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = match openat(cur, name.as_os_str(), probe, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create.is_some() => {
                    // Made, then looked at again like anything that existed; a bounded
                    // number of times, in case something keeps removing it.
                    made += 1;
                    if made > 4 * MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    make(cur, &name, last && create == Some(Kind::File))?;
                    todo.push_front(name);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let st = fstat(fd.as_fd())?;
            let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            if fmt == SFlag::S_IFLNK {
                if last && flags.contains(OFlag::O_NOFOLLOW) {
                    return openat(cur, name.as_os_str(), flags, Mode::empty());
                }
                if self.rules == Rules::NoSymlinks {
                    return Err(Errno::ELOOP);
                }
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = PathBuf::from(readlinkat(fd.as_fd(), "")?);
                if is_magic(fd.as_fd(), &target) {
                    return Err(Errno::ELOOP);
                }
                if target.is_absolute() {
                    if self.rules == Rules::Beneath {
                        return Err(Errno::EXDEV);
                    }
                    stack.clear();
                }
                let mut next = components(&target);
                next.extend(todo);
                todo = next;
                continue;
            }
            if last {
                // Opened again by name: if it was swapped for a symlink since, O_NOFOLLOW
                // refuses it rather than follow it.
                return openat(
                    cur,
                    name.as_os_str(),
                    flags | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                );
            }
            if fmt != SFlag::S_IFDIR {
                return Err(Errno::ENOTDIR);
            }
            stack.push(fd);
        }
    }
}

/// `openat2` is the one call in the workspace that may name it (clippy.toml bans it
/// elsewhere): every other lookup goes through [`Root`].
#[allow(clippy::disallowed_methods)]
fn openat2(dir: BorrowedFd<'_>, path: &OsStr, how: OpenHow) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat2(dir, path, how)
}

/// A procfs "magic link" (`/proc/PID/root`, `/proc/self/fd/N`, `/proc/PID/exe`), which
/// the kernel follows to an object rather than by its text and `RESOLVE_NO_MAGICLINKS`
/// refuses. Their text is absolute or `type:[inode]`; procfs's ordinary symlinks
/// (`/proc/self`, `/proc/mounts`) are relative.
fn is_magic(link: BorrowedFd<'_>, target: &Path) -> bool {
    let on_proc = nix::sys::statfs::fstatfs(link)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
    on_proc
        && (target.is_absolute() || target.as_os_str().as_bytes().windows(2).any(|w| w == b":["))
}

fn make(dir: BorrowedFd<'_>, name: &OsStr, file: bool) -> Result<(), Errno> {
    let r = if file {
        openat(
            dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop)
    } else {
        mkdirat(dir, name, Mode::from_bits_truncate(0o755))
    };
    match r {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `path` without its root: what `openat2` takes relative to the root's descriptor.
fn relative(path: &Path) -> PathBuf {
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

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
            Component::ParentDir => Some(OsString::from("..")),
            Component::Normal(n) => Some(n.to_os_string()),
        })
        .collect()
}

/// `/proc/self/fd/N`: a path naming exactly the open file, for APIs that only take paths
/// (mount, `File::open` of an `O_PATH` descriptor, xattrs).
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `/proc/self/fd/N/NAME`: `name` inside the directory open as `dir`; the `l*` calls that
/// take it do not follow its last component.
pub fn fd_child_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = fd_path(&dir.as_raw_fd());
    if !name.is_empty() {
        p.push(name);
    }
    p
}

/// Why a tar entry name was refused by [`entry_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    /// It starts with `/`.
    Absolute,
    /// It has a `..` component.
    DotDot,
    /// It has a NUL byte.
    Nul,
}

impl BadName {
    /// The reason, as a phrase.
    pub fn as_str(self) -> &'static str {
        match self {
            BadName::Absolute => "absolute path",
            BadName::DotDot => "`..` component",
            BadName::Nul => "NUL byte in name",
        }
    }
}

impl std::fmt::Display for BadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The components of an archive entry's name (`a//./b/` → `a`, `b`). Absolute names and
/// `..` are refused, not rewritten: an archive that has them was made to escape the
/// directory it is extracted into.
pub fn entry_name(raw: &[u8]) -> Result<Vec<OsString>, BadName> {
    if raw.first() == Some(&b'/') {
        return Err(BadName::Absolute);
    }
    if raw.contains(&0) {
        return Err(BadName::Nul);
    }
    let mut parts = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(BadName::DotDot),
            c => parts.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests;
