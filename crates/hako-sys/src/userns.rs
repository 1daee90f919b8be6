//! User namespaces: where this process stands, and joining the namespaces of another
//! process (rootless hako joins the user and mount namespaces its pause process keeps).

use std::fs::File;
use std::io;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

/// True in the host's own user namespace (uid_map is the identity over every id).
pub fn in_initial() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").map_or(true, |m| is_identity_map(&m))
}

/// The identity map `0 0 4294967295` of the initial user namespace.
pub fn is_identity_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    matches!(lines.as_slice(), [f] if f.as_slice() == ["0", "0", "4294967295"])
}

/// Joins the user namespace, then the mount namespace, of `pid` (/proc/PID/ns/...).
/// Must be called while the process is single-threaded (setns(2) refuses a user
/// namespace otherwise). Afterwards this process has every capability in that user
/// namespace and sees its ids as mapped there.
pub fn join(pid: i32) -> io::Result<()> {
    let dir = Path::new("/proc").join(pid.to_string()).join("ns");
    let user = File::open(dir.join("user"))?;
    let mnt = File::open(dir.join("mnt"))?;
    setns(&user, CloneFlags::CLONE_NEWUSER).map_err(io::Error::from)?;
    setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    Ok(())
}

/// Leaves for a new user and mount namespace of its own (the pause process of rootless
/// hako, before its parent writes the id maps).
pub fn unshare_user_and_mount() -> io::Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_identity_map_is_told_apart() {
        assert!(super::is_identity_map("         0          0 4294967295\n"));
        assert!(!super::is_identity_map("0 1000 1\n"));
        assert!(!super::is_identity_map("0 1000 1\n1 100000 65536\n"));
    }
}
