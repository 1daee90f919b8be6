//! The new mount API calls that `nix` does not wrap.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)`: a detached bind mount of
/// `path` (a file or directory) that belongs to no mount namespace. Nobody can reach it
/// by path, and it disappears when the last reference to it goes.
pub fn open_tree_clone(path: &CStr) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call; the
    // other arguments are integers.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that only we own.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `struct mount_attr` from `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `MOUNT_ATTR_*` of `<linux/mount.h>`: what [`set_attrs`] can set.
pub mod attr {
    /// Read-only.
    pub const RDONLY: u64 = 0x1;
    /// No set-user-ID or set-group-ID.
    pub const NOSUID: u64 = 0x2;
    /// No device files.
    pub const NODEV: u64 = 0x4;
    /// No execution.
    pub const NOEXEC: u64 = 0x8;
}

/// Make the (detached) mount behind `fd` read-only with `mount_setattr(2)`.
pub fn set_readonly(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_attrs(fd, attr::RDONLY, false)
}

/// `mount_setattr(2)`: sets `attrs` ([`attr`]) on the mount `fd` names (an `O_PATH` of its
/// root, or an `open_tree` mount) and, with `recursive`, on every mount below it, in one
/// call instead of a remount per mount (Linux 5.12; `ENOSYS` before).
pub fn set_attrs(fd: BorrowedFd<'_>, attrs: u64, recursive: bool) -> io::Result<()> {
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid `mount_attr` of the size we pass and outlives the call; the
    // empty path with AT_EMPTY_PATH makes the call act on `fd` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A detached read-only bind mount of the directory holding `bin`, and `bin`'s name in it:
/// a program executed as `/proc/self/fd/<tree>/<name>` runs from an image that cannot be
/// written through `/proc/<pid>/exe` (CVE-2019-5736). `None` where the new mount API is not
/// allowed (no privilege).
pub fn readonly_tree(bin: &std::path::Path) -> Option<(OwnedFd, std::ffi::OsString)> {
    use std::os::fd::AsFd;
    let real = std::fs::canonicalize(bin).ok()?;
    let name = real.file_name()?.to_owned();
    let dir = std::ffi::CString::new(real.parent()?.as_os_str().as_encoded_bytes()).ok()?;
    let tree = open_tree_clone(&dir).ok()?;
    set_readonly(tree.as_fd()).ok()?;
    Some((tree, name))
}

/// The path to execute `name` by in a [`readonly_tree`].
pub fn in_tree(tree: &OwnedFd, name: &std::ffi::OsStr) -> std::path::PathBuf {
    let mut path = std::ffi::OsString::from(format!("/proc/self/fd/{}/", tree.as_raw_fd()));
    path.push(name);
    path.into()
}

/// Whether `path` is the root of a mount (something is mounted exactly there), from one
/// `statx` (`STATX_ATTR_MOUNT_ROOT`, Linux 5.8): `None` when the kernel does not report
/// the attribute or the path cannot be looked up, for the caller to read mountinfo.
pub fn is_mount_root(path: &Path) -> Option<bool> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `statx` is plain old data; all zeroes is a valid value of it.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a writable `statx` on this frame; both
    // outlive the call.
    let ret = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_NO_AUTOMOUNT,
            0,
            &raw mut st,
        )
    };
    if ret != 0 {
        let gone = matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOENT | libc::ENOTDIR)
        );
        return gone.then_some(false);
    }
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (st.stx_attributes_mask & bit != 0).then_some(st.stx_attributes & bit != 0)
}
