//! Mounting one `config.json` mount entry inside the container's root filesystem.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};
use oci_spec::runtime::Mount;

use super::options::Options;
use hako_sys::fs::{Kind, Root, fd_path};

use super::ensure_in_root;
use crate::error::{Context, Error, Result};

/// A host cgroup directory to show in the container, as given by the cgroup manager.
#[derive(Debug, Clone)]
pub struct CgroupSource {
    /// `memory`, `cpu,cpuacct`, `unified`, or empty for a pure v2 host.
    pub name: String,
    pub host_dir: std::path::PathBuf,
}

/// Where the container's cgroup mount comes from.
#[derive(Debug, Clone, Default)]
pub struct CgroupView {
    pub sources: Vec<CgroupSource>,
    /// Pure cgroup v2 host with a new cgroup namespace: mount cgroup2 directly.
    pub mount_cgroup2: bool,
}

/// Mount `m` under `root` (a descriptor of the rootfs, resolved in-root).
pub fn mount_entry(root: &Root, m: &Mount, cgroups: &CgroupView, in_userns: bool) -> Result<()> {
    let opts = Options::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroups(root, dest, &opts, cgroups);
    }
    if opts.is_bind() || typ == "bind" {
        let source = m.source().as_deref().ok_or_else(|| {
            Error::ConfigInvalid(format!("bind mount on {} has no source", dest.display()))
        })?;
        return bind(root, source, dest, &opts, in_userns);
    }
    let target = ensure_in_root(root, dest, Kind::Dir)?;
    let flags = opts.flags;
    let source = m
        .source()
        .as_deref()
        .map(Path::as_os_str)
        .unwrap_or(typ.as_ref());
    let data = opts.data();
    let res = mount(
        Some(source),
        &fd_path(&target),
        Some(typ),
        flags,
        data.as_deref(),
    );
    match res {
        Ok(()) => {}
        // sysfs cannot be mounted in a user namespace that does not own the network
        // namespace: bind the host's /sys instead, as runc does.
        Err(nix::errno::Errno::EPERM) if typ == "sysfs" => {
            let ro = Options {
                flags: flags | MsFlags::MS_BIND | MsFlags::MS_REC,
                ..opts.clone()
            };
            return bind(root, Path::new("/sys"), dest, &ro, in_userns);
        }
        // devpts' gid=5 where gid 5 is not mapped (a user namespace that maps a single
        // id): without it the pty group is the caller's, as runc's rootless spec has it.
        Err(nix::errno::Errno::EINVAL)
            if in_userns
                && typ == "devpts"
                && data.as_deref().is_some_and(|d| d.contains("gid=")) =>
        {
            let kept: Vec<&str> = data
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .filter(|o| !o.starts_with("gid="))
                .collect();
            mount(
                Some(source),
                &fd_path(&target),
                Some(typ),
                flags,
                Some(kept.join(",").as_str()),
            )
            .context(|| format!("mount {typ} on {}", dest.display()))?;
        }
        Err(nix::errno::Errno::ENODEV) => {
            return Err(Error::ConfigInvalid(format!(
                "mount {} on {}: unknown filesystem type {typ:?} (see /proc/filesystems)",
                source.to_string_lossy(),
                dest.display()
            )));
        }
        Err(e) => {
            return Err(e).context(|| format!("mount {typ} on {}", dest.display()));
        }
    }
    if opts.propagation.is_empty() {
        return Ok(());
    }
    // The O_PATH descriptor names the covered directory; reopen to reach the new mount.
    let target = ensure_in_root(root, dest, Kind::Dir)?;
    set_propagation(&target, dest, &opts)
}

fn set_propagation(target: &OwnedFd, dest: &Path, opts: &Options) -> Result<()> {
    for p in &opts.propagation {
        mount(
            None::<&str>,
            &fd_path(target),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .context(|| format!("set propagation of {}", dest.display()))?;
    }
    Ok(())
}

/// Bind `source` (a host path) onto `dest` inside root, then apply the per-mount flags with
/// a remount (a bind mount ignores them on creation).
pub fn bind(
    root: &Root,
    source: &Path,
    dest: &Path,
    opts: &Options,
    in_userns: bool,
) -> Result<()> {
    let meta =
        std::fs::metadata(source).context(|| format!("bind mount source {}", source.display()))?;
    let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
    let target = ensure_in_root(root, dest, kind)?;
    let rec = opts.flags & MsFlags::MS_REC;
    mount(
        Some(source),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )
    .context(|| format!("bind {} on {}", source.display(), dest.display()))?;
    // The new mount is on top of the O_PATH fd's dentry; reopen to reach it.
    let target = ensure_in_root(root, dest, kind)?;
    let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount(&target, dest, extra, in_userns)?;
    }
    set_propagation(&target, dest, opts)
}

/// Remount a bind mount with `flags`, keeping the flags the kernel locks in a user namespace
/// (nosuid/nodev/noexec/atime of the source mount), which may not be cleared there.
pub fn remount(target: &OwnedFd, dest: &Path, flags: MsFlags, in_userns: bool) -> Result<()> {
    let path = fd_path(target);
    let mut all = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    let locked = locked_flags(&path);
    all |= locked;
    match mount(None::<&str>, &path, None::<&str>, all, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) if in_userns => {
            // Retry once with exactly the current flags plus what we want on top.
            mount(
                None::<&str>,
                &path,
                None::<&str>,
                all | locked,
                None::<&str>,
            )
            .context(|| format!("remount {}", dest.display()))
        }
        Err(e) => Err(e).context(|| format!("remount {}", dest.display())),
    }
}

fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (a, b) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(a) {
            out |= b;
        }
    }
    out
}

/// The container's `/sys/fs/cgroup`: cgroup2 itself on a pure v2 host with a cgroup
/// namespace, otherwise a tmpfs with one bind mount of the container's own cgroup directory
/// per hierarchy (so the container sees only its own subtree, and nothing of the host's).
fn mount_cgroups(root: &Root, dest: &Path, opts: &Options, view: &CgroupView) -> Result<()> {
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    let base = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    let target = ensure_in_root(root, dest, Kind::Dir)?;
    if view.mount_cgroup2 {
        return mount(
            Some("cgroup2"),
            &fd_path(&target),
            Some("cgroup2"),
            opts.flags,
            None::<&str>,
        )
        .context(|| format!("mount cgroup2 on {}", dest.display()));
    }
    if let [only] = view.sources.as_slice()
        && only.name.is_empty()
    {
        let b = Options {
            flags: base
                | MsFlags::MS_BIND
                | if ro {
                    MsFlags::MS_RDONLY
                } else {
                    MsFlags::empty()
                },
            ..Options::default()
        };
        return bind(root, &only.host_dir, dest, &b, false);
    }
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .context(|| format!("mount tmpfs on {}", dest.display()))?;
    // The tmpfs is new and empty: its directories are made by descriptor, one bind per
    // hierarchy is mounted on each, and one recursive mount_setattr(2) makes the tmpfs and
    // every bind read-only, nosuid, nodev and noexec: not a path walk, a bind and a remount
    // per hierarchy (~20 mounts and ~200 system calls fewer at every start on a v1 host).
    let top = root
        .open_dir(dest)
        .context(|| format!("open {}", dest.display()))?;
    let mut subs = Vec::with_capacity(view.sources.len());
    for src in &view.sources {
        let name = src.name.as_str();
        match nix::sys::stat::mkdirat(
            top.as_fd(),
            name,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).context(|| format!("mkdir {}/{name}", dest.display())),
        }
        let sub = nix::fcntl::openat(
            top.as_fd(),
            name,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context(|| format!("open {}/{name}", dest.display()))?;
        mount(
            Some(&src.host_dir),
            &fd_path(&sub),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .context(|| {
            format!(
                "bind {} on {}/{name}",
                src.host_dir.display(),
                dest.display()
            )
        })?;
        subs.push(name);
        // Co-mounted controllers ("cpu,cpuacct") get one symlink per controller name.
        if name.contains(',') {
            for part in name.split(',') {
                match nix::unistd::symlinkat(name, top.as_fd(), part) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(e).context(|| format!("symlink {}/{part}", dest.display()));
                    }
                }
            }
        }
    }
    let mut attrs = 0;
    for (ms, a) in [
        (MsFlags::MS_NOSUID, hako_sys::mount::attr::NOSUID),
        (MsFlags::MS_NODEV, hako_sys::mount::attr::NODEV),
        (MsFlags::MS_NOEXEC, hako_sys::mount::attr::NOEXEC),
    ] {
        if base.contains(ms) {
            attrs |= a;
        }
    }
    if ro {
        attrs |= hako_sys::mount::attr::RDONLY;
    }
    if attrs == 0 || hako_sys::mount::set_attrs(top.as_fd(), attrs, true).is_ok() {
        return Ok(());
    }
    // A kernel before 5.12 (or a seccomp filter around this runtime): a remount each.
    let bind_flags = base
        | if ro {
            MsFlags::MS_RDONLY
        } else {
            MsFlags::empty()
        };
    for name in &subs {
        let sub = ensure_in_root(root, &dest.join(name), Kind::Dir)?;
        remount(&sub, &dest.join(name), bind_flags, false)?;
    }
    if ro {
        let target = ensure_in_root(root, dest, Kind::Dir)?;
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
            Some("mode=755"),
        )
        .context(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}
