//! A jail for one thread: its own mount namespace and root directory.
//!
//! The tar target must see *every* write a hostile layer could make, also one that escapes
//! through an absolute symlink to `/etc`, and must never let it reach the host. So its worker
//! thread gets a mount namespace of its own (`unshare(CLONE_NEWNS)` implies `CLONE_FS`: the
//! root directory becomes per-thread too), a fresh size-limited tmpfs over the temp dir, and
//! `chroot`s into it. Every path the unpacker could reach, absolute or through `..`, is then
//! inside that tmpfs, where the target compares it before and after. Threads the worker
//! starts (the unpack pipeline) share its namespace and root. Nothing is mounted in the
//! host's namespace, so nothing is left behind when the process dies.
//!
//! ```text
//!  /            tmpfs (nosuid, nodev, 16 MiB), private to the worker thread
//!  ├── proc     procfs, read-only (the unpacker names directories as /proc/self/fd/N/...)
//!  ├── etc, tmp, outside   sentinels that must never change
//!  └── target   the layer directory
//! ```

use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{chdir, chroot};

/// Moves the calling thread into its jail; `/` is then the new tmpfs (see the module docs).
/// Needs CAP_SYS_ADMIN and CAP_SYS_CHROOT.
pub(crate) fn enter() -> nix::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS)?;
    // Before anything is mounted: a shared `/` would propagate the tmpfs to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    let tmp = std::env::temp_dir();
    mount(
        Some("tmpfs"),
        &tmp,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=16m,mode=0755"),
    )?;
    let root = tmp.join("jail");
    let proc_dir = root.join("proc");
    std::fs::create_dir_all(&proc_dir).map_err(io_errno)?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )?;
    chroot(&root)?;
    chdir(Path::new("/"))
}

fn io_errno(e: std::io::Error) -> nix::Error {
    e.raw_os_error()
        .map_or(nix::Error::EIO, nix::Error::from_raw)
}
