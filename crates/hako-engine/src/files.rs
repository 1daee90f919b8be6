//! Files and directories with the modes they need, set explicitly (never left to the
//! umask: a user's `umask 077` must not make `/etc/hosts` unreadable inside a container,
//! and `umask 000` must not make a config holding `Env` world-readable).
//!
//! | what | mode |
//! |---|---|
//! | `--root` | 0710 (Docker's `/var/lib/docker`) |
//! | `--exec-root`, `<exec-root>/containers/<id>/` (shim state, sockets) | 0700 |
//! | `<root>/containers/`, `<root>/containers/<id>/` | 0700 / 0710 |
//! | `config.json` (Env), `mounts.json`, exec process files | 0600 |
//! | `hostname`, `hosts`, `resolv.conf` (bind-mounted, read by any container user) | 0644 |
//!
//! The database is 0600 (hako-image), the shim's sockets 0600 (`hako_shim::sockpath`), its
//! json logs 0640.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of files that hold secrets (Env, exec processes).
pub(crate) const PRIVATE: u32 = 0o600;
/// Mode of files every container user reads.
pub(crate) const PUBLIC: u32 = 0o644;

/// Creates `dir` (and missing parents) and sets its mode to `mode`.
pub(crate) fn dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(mode).create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(mode))
}

/// Writes `data` to `path` (replacing it) with mode `mode`, set before any byte is
/// written.
pub(crate) fn write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.set_permissions(Permissions::from_mode(mode))?;
    f.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn modes_are_exact() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        dir(&d, 0o710).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o7777, 0o710);
        let f = d.join("f");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o666)).unwrap();
        write(&f, b"new", PRIVATE).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
    }
}
