//! The container's root filesystem, set up by the init inside its new mount namespace.
//!
//! [`prepare`] runs while the host's filesystem is still visible (mounts need host
//! sources), [`pivot`] switches the root, [`finalize`] makes what must be made from
//! inside (masked and read-only paths, read-only root, sysctls, rootfsPropagation).
//!
//! Propagation, in runc's order: before anything is mounted `/` becomes rslave (or what
//! rootfsPropagation says for shared and private: with `rshared`, mounts that are shared
//! with the host stay in the host's peer groups, so an `rbind,rshared` volume is two-way,
//! which Kubernetes' Bidirectional mounts need); the mount holding the rootfs is made
//! private, so binding the rootfs onto itself neither reaches the host nor stops
//! pivot_root; shared and unbindable are set on the new `/` as the very last step
//! (unbindable earlier would make every later bind from the rootfs fail).
//!
//! Without a mount namespace of its own (runc and crun accept that) the container shares
//! the caller's: the config's mounts are made under the rootfs there, the root is entered
//! with `chroot`, and nothing else of the caller's mount table changes; `delete` detaches
//! those mounts (runc leaves them behind).

mod devices;
pub mod mounts;
pub mod options;

use std::os::fd::OwnedFd;
use std::path::Path;

use hako_sys::fs::{Kind, Root, Rules};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::error::{Context, Error, Result};
pub use mounts::{CgroupSource, CgroupView};

use crate::state::HostMount;

/// rootfsPropagation as mount flags, `None` when unset.
fn root_propagation(spec: &Spec) -> Result<Option<(&str, MsFlags)>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
        .map(|p| {
            options::propagation(p)
                .map(|f| (p, f))
                .ok_or_else(|| Error::ConfigInvalid(format!("unknown rootfsPropagation {p:?}")))
        })
        .transpose()
}

/// Mount everything the config asks for under `rootfs` (still from the host's view).
/// `own_ns`: the init has a mount namespace of its own (else it works in the caller's).
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    cgroups: &CgroupView,
    in_userns: bool,
    own_ns: bool,
    before_cgroup_mount: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let linux = spec.linux().as_ref();
    if own_ns {
        prepare_root(spec, rootfs)?;
    }
    let root = Root::open(rootfs, Rules::InRoot)
        .context(|| format!("open rootfs {}", rootfs.display()))?;

    let mut dev_from_host = false;
    let all: Vec<&oci_spec::runtime::Mount> = spec.mounts().iter().flatten().collect();
    // A cgroup mount waits for the cgroup (`before_cgroup_mount`): it goes last unless a
    // later mount is on it, in it or over it (then the order of the list holds).
    let mut deferred = Vec::new();
    for (i, m) in all.iter().enumerate() {
        if m.destination() == Path::new("/dev")
            && m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
        {
            dev_from_host = true;
        }
        if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            let d = m.destination();
            let related = |x: &Path| x.starts_with(d) || d.starts_with(x);
            if all[i + 1..]
                .iter()
                .any(|later| related(later.destination()))
            {
                before_cgroup_mount()?;
            } else {
                deferred.push(*m);
                continue;
            }
        }
        mounts::mount_entry(&root, m, cgroups, in_userns)?;
    }
    if !dev_from_host {
        let devices = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
        devices::create(&root, &devices, in_userns)?;
        devices::symlinks(&root)?;
    }
    if !deferred.is_empty() {
        before_cgroup_mount()?;
    }
    for m in deferred {
        mounts::mount_entry(&root, m, cgroups, in_userns)?;
    }
    Ok(())
}

/// `path` inside the rootfs, made (missing directories, the last component as `kind`)
/// if it does not exist, as an `O_PATH` descriptor to mount on (`/proc/self/fd/N`): the
/// object resolved, never a path that could be swapped in between. Symlinks, dangling ones
/// too, resolve as if the rootfs were `/` (CVE-2021-30465).
fn ensure_in_root(root: &Root, path: &Path, kind: Kind) -> Result<OwnedFd> {
    root.ensure(path, kind, OFlag::O_PATH)
        .context(|| format!("resolve {} in rootfs", path.display()))
}

/// What `/` becomes before anything is mounted, then the rootfs bound onto itself (see the
/// module docs).
fn prepare_root(spec: &Spec, rootfs: &Path) -> Result<()> {
    let pre = match root_propagation(spec)? {
        Some((_, p)) if p.contains(MsFlags::MS_SHARED) => p,
        Some((_, p)) if p.contains(MsFlags::MS_PRIVATE) => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mount(None::<&str>, "/", None::<&str>, pre, None::<&str>)
        .context(|| "set the propagation of /".into())?;
    if pre.contains(MsFlags::MS_SHARED) {
        // Only a shared / can make the mount holding the rootfs a peer of the host's.
        let real = std::fs::canonicalize(rootfs)
            .context(|| format!("resolve rootfs {}", rootfs.display()))?;
        if let Some(parent) =
            hako_sys::mountinfo::containing(&real).context(|| "read /proc/self/mountinfo".into())?
        {
            mount(
                None::<&str>,
                &parent,
                None::<&str>,
                MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .context(|| format!("make {} private", parent.display()))?;
        }
    }
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .context(|| format!("bind {} on itself", rootfs.display()))
}

/// Make `rootfs` the root: `pivot_root(".", ".")` then detach the old root, which is
/// stacked under the new one (runc's trick: no temporary directory in the image). Without a
/// mount namespace of its own: `chroot`, as runc does.
pub fn pivot(rootfs: &Path, no_pivot: bool, own_ns: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).context(|| format!("chdir {}", rootfs.display()))?;
    if !own_ns {
        nix::unistd::chroot(".").context(|| "chroot".into())?;
    } else if no_pivot {
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .context(|| "move rootfs to /".into())?;
        nix::unistd::chroot(".").context(|| "chroot".into())?;
    } else {
        // After pivot_root(".", ".") the old root is stacked on the new one, and "." (our
        // cwd, the new root) would name the new root's mount, not the old one's: reach the
        // old root through a descriptor opened before (runc's way). Making the *new* tree a
        // slave would turn every volume into a one-way copy.
        let old_root = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .context(|| "open old root".into())?;
        nix::unistd::pivot_root(".", ".").context(|| "pivot_root".into())?;
        nix::unistd::fchdir(&old_root).context(|| "enter old root".into())?;
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
pub fn finalize(spec: &Spec, in_userns: bool, own_ns: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
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
    if !own_ns {
        // The caller's mount table is not ours to change: a read-only root or a root
        // propagation would change the caller's mounts (runc ignores both here too).
        return Ok(());
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
    // Private and slave were set on / before the first mount (and the volumes' own flags
    // since, which a recursive change now would undo); shared and unbindable go on the new
    // root here, last.
    if let Some((p, flags)) = root_propagation(spec)?
        && flags.intersects(MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE)
    {
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .context(|| format!("set rootfsPropagation {p}"))?;
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

/// The mounts under `rootfs` right now (in our mount namespace).
pub fn host_mounts(rootfs: &Path) -> Result<Vec<HostMount>> {
    let real =
        std::fs::canonicalize(rootfs).context(|| format!("resolve rootfs {}", rootfs.display()))?;
    Ok(hako_sys::mountinfo::mounts_with_ids_under(&real)
        .context(|| "read /proc/self/mountinfo".into())?
        .into_iter()
        .map(|m| HostMount {
            id: m.id,
            point: m.point,
        })
        .collect())
}

/// Detach `mounts` (what a container without a mount namespace of its own made under its
/// rootfs) that are still mounted, deepest first; the caller's own mounts stay.
pub fn detach_host_mounts(rootfs: &Path, mounts: &[HostMount]) -> Result<()> {
    if mounts.is_empty() {
        return Ok(());
    }
    let now = match host_mounts(rootfs) {
        Ok(now) => now,
        // No rootfs, no mounts under it.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut ours: Vec<&HostMount> = now.iter().filter(|m| mounts.contains(m)).collect();
    // Later mounts stack on earlier ones: last mounted, first detached.
    ours.sort_by_key(|m| std::cmp::Reverse(now.iter().position(|n| n == *m)));
    for m in ours {
        match umount2(&m.point, MntFlags::MNT_DETACH) {
            // Already gone with a detached parent.
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e).context(|| format!("detach {}", m.point.display())),
        }
    }
    Ok(())
}
