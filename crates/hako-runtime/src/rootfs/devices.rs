//! `/dev` inside the container: the default devices every container gets, the config's
//! `linux.devices`, and the conventional symlinks.

use std::os::fd::AsFd;
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, makedev, mknodat, umask};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use hako_sys::fs::{Kind, Root, fd_path};

use super::ensure_in_root;
use crate::error::{Context, Error, Result};

/// (path, major, minor) of the devices the runtime spec says every container has.
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

const SYMLINKS: [(&str, &str); 5] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
];

/// Create the default and configured devices. In a user namespace mknod is not allowed,
/// so the host's device nodes are bind-mounted instead (runc does the same).
pub fn create(root: &Root, devices: &[LinuxDevice], in_userns: bool) -> Result<()> {
    let old = umask(Mode::empty());
    let res = (|| {
        for (path, major, minor) in DEFAULT_DEVICES {
            if devices.iter().any(|d| d.path() == Path::new(path)) {
                continue;
            }
            node(
                root,
                Path::new(path),
                SFlag::S_IFCHR,
                major,
                minor,
                0o666,
                None,
                None,
                in_userns,
            )?;
        }
        for d in devices {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
                LinuxDeviceType::B => SFlag::S_IFBLK,
                LinuxDeviceType::P => SFlag::S_IFIFO,
                LinuxDeviceType::A => {
                    return Err(Error::ConfigInvalid(format!(
                        "device {} has type \"a\", which is only valid in cgroup rules",
                        d.path().display()
                    )));
                }
            };
            let major = u64::try_from(d.major()).unwrap_or(0);
            let minor = u64::try_from(d.minor()).unwrap_or(0);
            node(
                root,
                d.path(),
                kind,
                major,
                minor,
                d.file_mode().unwrap_or(0o666),
                d.uid(),
                d.gid(),
                in_userns,
            )?;
        }
        Ok(())
    })();
    umask(old);
    res
}

#[allow(clippy::too_many_arguments)]
fn node(
    root: &Root,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    in_userns: bool,
) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/dev"));
    let name = path
        .file_name()
        .ok_or_else(|| Error::ConfigInvalid(format!("bad device path {}", path.display())))?;
    ensure_in_root(root, parent, Kind::Dir)?;
    let dir = root
        .open_dir(parent)
        .context(|| format!("open {}", parent.display()))?;
    if in_userns {
        let target = ensure_in_root(root, path, Kind::File)?;
        return nix::mount::mount(
            Some(path),
            &fd_path(&target),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .context(|| format!("bind device {}", path.display()));
    }
    // A file already there (from the image) is replaced, as runc does.
    let _ = nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    let perm = Mode::from_bits_truncate(mode & 0o7777);
    mknodat(dir.as_fd(), name, kind, perm, makedev(major, minor))
        .context(|| format!("mknod {}", path.display()))?;
    if uid.is_some() || gid.is_some() {
        nix::unistd::fchownat(
            dir.as_fd(),
            name,
            uid.map(Uid::from_raw),
            gid.map(Gid::from_raw),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// `/dev/fd`, `/dev/std{in,out,err}`, `/dev/ptmx` (to the container's own devpts), and
/// `/dev/core` when the kernel has `/proc/kcore`.
pub fn symlinks(root: &Root) -> Result<()> {
    ensure_in_root(root, Path::new("/dev"), Kind::Dir)?;
    let dev = root.open_dir("/dev").context(|| "open /dev".into())?;
    let kcore = Path::new("/proc/kcore").exists();
    let links = SYMLINKS
        .iter()
        .copied()
        .chain(kcore.then_some(("/proc/kcore", "core")));
    for (target, name) in links {
        if name == "ptmx" {
            let _ =
                nix::unistd::unlinkat(dev.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        match nix::unistd::symlinkat(target, dev.as_fd(), name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).context(|| format!("symlink /dev/{name}")),
        }
    }
    Ok(())
}
