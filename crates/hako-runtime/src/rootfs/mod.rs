//! The container's root filesystem, set up by the init inside its new mount namespace.
//!
//! [`prepare`] runs while the host's filesystem is still visible (mounts need host
//! sources), [`pivot`] switches the root, [`finalize`] makes what must be made from
//! inside (masked and read-only paths, read-only root, sysctls).

mod devices;
pub mod mounts;
pub mod options;
pub mod resolve;

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::error::{Context, Error, Result};
pub use mounts::{CgroupSource, CgroupView};

/// Mount everything the config asks for under `rootfs` (still from the host's view).
pub fn prepare(spec: &Spec, rootfs: &Path, cgroups: &CgroupView, in_userns: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    // Nothing we mount may propagate back to the host: make the whole tree a slave (or
    // what rootfsPropagation says, as long as pivot_root can still work).
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
        .map(|p| {
            options::propagation(p)
                .ok_or_else(|| Error::ConfigInvalid(format!("unknown rootfsPropagation {p:?}")))
        })
        .transpose()?;
    let pre = match prop {
        Some(p) if !p.contains(MsFlags::MS_SHARED) => p | MsFlags::MS_REC,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mount(None::<&str>, "/", None::<&str>, pre, None::<&str>)
        .context(|| "make / a slave mount".into())?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .context(|| format!("bind {} on itself", rootfs.display()))?;
    let root: OwnedFd = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| format!("open rootfs {}", rootfs.display()))?;

    let mut dev_from_host = false;
    for m in spec.mounts().iter().flatten() {
        if m.destination() == Path::new("/dev")
            && m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
        {
            dev_from_host = true;
        }
        mounts::mount_entry(&root, m, cgroups, in_userns)?;
    }
    if !dev_from_host {
        let devices = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
        devices::create(&root, &devices, in_userns)?;
        devices::symlinks(&root)?;
    }
    Ok(())
}

/// Make `rootfs` the root: `pivot_root(".", ".")` then detach the old root, which is
/// stacked under the new one (runc's trick: no temporary directory in the image).
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).context(|| format!("chdir {}", rootfs.display()))?;
    if no_pivot {
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .context(|| "move rootfs to /".into())?;
        nix::unistd::chroot(".").context(|| "chroot".into())?;
    } else {
        nix::unistd::pivot_root(".", ".").context(|| "pivot_root".into())?;
        // The old root must not propagate the unmount to the host.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .context(|| "make old root a slave".into())?;
        umount2(".", MntFlags::MNT_DETACH).context(|| "detach old root".into())?;
    }
    nix::unistd::chdir("/").context(|| "chdir /".into())
}

/// Steps that need the container's own `/` and `/proc`.
pub fn finalize(spec: &Spec, in_userns: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    if let Some(p) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
        && let Some(flags) = options::propagation(p)
        && flags.contains(MsFlags::MS_SHARED)
    {
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .context(|| format!("set rootfsPropagation {p}"))?;
    }
    for (key, value) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        write_sysctl(key, value)?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(Path::new(p), in_userns)?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(Path::new(p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let root = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .context(|| "open /".into())?;
        mounts::remount(&root, Path::new("/"), MsFlags::MS_RDONLY, in_userns)?;
    }
    Ok(())
}

fn write_sysctl(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.contains("..") || key.starts_with('/') {
        return Err(Error::ConfigInvalid(format!("invalid sysctl name {key:?}")));
    }
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).context(|| format!("sysctl {key}={value}"))
}

/// Bind a path onto itself read-only (recursively), keeping its other flags.
fn readonly_path(path: &Path, in_userns: bool) -> Result<()> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).context(|| format!("readonly path {}", path.display())),
    }
    let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .context(|| format!("open {}", path.display()))?;
    mounts::remount(&fd, path, MsFlags::MS_RDONLY | MsFlags::MS_REC, in_userns)
}

/// Hide a path: `/dev/null` over a file, an empty read-only tmpfs over a directory.
fn mask_path(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context(|| format!("masked path {}", path.display())),
    };
    let res = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    res.context(|| format!("mask {}", path.display()))
}
