//! Unix sockets at paths of any length.
//!
//! `sun_path` holds 107 bytes, and `<exec-root>/containers/<64 hex>/console.sock` alone
//! takes 88 of them: an exec root longer than 19 characters would not do (Docker's
//! `/var/run/docker/containerd/daemon/...` are longer). A socket whose path does not fit is
//! reached through a descriptor of its directory instead: `/proc/<pid>/fd/<fd>/<name>`
//! names the same inode for any process allowed to look into `<pid>` (root, here), and
//! `bind`/`connect` resolve it like any other path.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// The longest path `sun_path` takes (108 bytes with the terminating NUL).
pub const SUN_PATH_MAX: usize = 107;

/// A directory held open, so that names in it have a short path however long its own is.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens `path` (`O_PATH`: nothing is read through it).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// `name` in this directory as a path a socket call (ours, or another process's while
    /// this `Dir` lives) accepts: the real path when it fits, else one through our
    /// descriptor.
    pub fn socket_path(&self, name: &str) -> PathBuf {
        let full = self.path.join(name);
        if fits(&full) {
            return full;
        }
        PathBuf::from(format!(
            "/proc/{}/fd/{}/{name}",
            std::process::id(),
            self.fd.as_raw_fd()
        ))
    }
}

fn fits(path: &Path) -> bool {
    path.as_os_str().len() <= SUN_PATH_MAX
}

/// Splits `path` into its directory (opened) and file name.
fn split(path: &Path) -> io::Result<(Dir, String)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a socket path: {}", path.display()),
        ));
    };
    Ok((Dir::open(dir)?, name.to_string()))
}

/// Listens at `path` (a stale socket there is replaced), mode 0600: only root talks to a
/// shim. The socket is made under a temporary name and renamed once its mode is set, so
/// that whoever finds `path` finds it 0600 (under a umask of 000 it is 0777 between the
/// bind and the chmod).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a socket path: {}", path.display()),
        ));
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".new");
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let listener = if fits(&tmp) {
        UnixListener::bind(&tmp)?
    } else {
        let (dir, name) = split(&tmp)?;
        UnixListener::bind(dir.socket_path(&name))?
    };
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    // Replaces a stale socket at `path` in the same step.
    std::fs::rename(&tmp, path)?;
    Ok(listener)
}

/// Connects to the socket at `path`.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    if fits(path) {
        return UnixStream::connect(path);
    }
    let (dir, name) = split(path)?;
    UnixStream::connect(dir.socket_path(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_bind_and_connect() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("d".repeat(120));
        std::fs::create_dir(&deep).unwrap();
        let path = deep.join("attach.sock");
        assert!(!fits(&path));
        let l = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _c = connect(&path).unwrap();
        assert!(l.accept().is_ok());
        let dir = Dir::open(&deep).unwrap();
        assert!(dir.socket_path("x.sock").starts_with("/proc/"));
        let short = Dir::open(tmp.path()).unwrap();
        assert_eq!(short.socket_path("x.sock"), tmp.path().join("x.sock"));
    }
}
