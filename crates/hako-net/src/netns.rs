//! Network namespaces as files: made by a short-lived thread that unshares its own network
//! namespace and bind-mounts `/proc/thread-self/ns/net` onto a file, so the namespace
//! lives (with nobody in it) until that mount goes. The OCI runtime joins it by path
//! (`linux.namespaces[{type: network, path}]`), and it outlives restarts of the container.
//!
//! Network namespaces are per *thread*: only the helper thread ever changes namespace, so
//! the caller's threads stay where they are.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::error::{Error, IoContext, Result};
use crate::netlink::Socket;

/// A network namespace held open by a file descriptor.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

fn nix_io(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

/// Runs `f` on a new thread that first joins the namespace of `ns` (or, with `None`, a
/// brand-new one). The namespace change dies with the thread.
fn on_thread<T: Send>(ns: Option<&File>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            match ns {
                Some(file) => nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(nix_io)
                    .ctx(|| "enter a network namespace".into())?,
                None => nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(nix_io)
                    .ctx(|| "create a network namespace".into())?,
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Io {
                context: "network namespace thread".into(),
                source: std::io::Error::other("panicked"),
            })
        })
    })
}

impl Netns {
    /// Makes a new network namespace bound at `path` (a file that must not exist yet),
    /// with its loopback up.
    pub fn create(path: &Path) -> Result<Netns> {
        if let Some(dir) = path.parent() {
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(dir)
            .ctx(|| format!("create {}", dir.display()))?;
        }
        mount_point(path)?;
        let made = on_thread(None, || {
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(nix_io)
            .ctx(|| format!("bind-mount a network namespace on {}", path.display()))?;
            hako_sys::netif::loopback_up_here().ctx(|| "bring up lo".into())
        });
        if let Err(e) = made {
            let _ = remove(path);
            return Err(e);
        }
        Netns::open(path)
    }

    /// Opens the namespace bound at `path`.
    pub fn open(path: &Path) -> Result<Netns> {
        let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
        Ok(Netns {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Where it is bound.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace file (for `IFLA_NET_NS_FD`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A netlink socket that talks to this namespace.
    pub fn socket(&self) -> Result<Socket> {
        self.run(Socket::new)
    }

    /// Runs `f` inside the namespace (on a helper thread).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        on_thread(Some(&self.file), f)
    }
}

/// Makes the empty file a namespace is bound onto (it must not exist yet).
pub(crate) fn mount_point(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .ctx(|| format!("create {}", path.display()))?;
    Ok(())
}

/// Unmounts and removes a namespace file; one already gone is fine. The namespace itself
/// dies when its last process and mount are gone.
pub fn remove(path: &Path) -> Result<()> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => {}
        Err(e) => {
            return Err(nix_io(e)).ctx(|| format!("unmount {}", path.display()));
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx(|| format!("remove {}", path.display())),
    }
}

/// Writes a sysctl (`net/ipv4/ip_forward` style path) in the calling thread's namespace.
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key);
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).ctx(|| format!("set sysctl {key}={value}"))
}
