//! Space held back for removals. On a full disk every write fails, and so would `rm`,
//! `rmi` and `volume rm`, the very commands that free space: their database transactions
//! need room in the write-ahead log. The store keeps `<root>/reserved-space`, 1 MiB of
//! allocated blocks (a ballast file); a removal that finds less than that free deletes it
//! first, and an open makes it again once there is room (8 MiB free) for it.

use std::path::Path;

use crate::error::{IoContext, Result};
use crate::store::ImageStore;

/// The file's name in the store root.
pub const FILE: &str = "reserved-space";
/// Its size.
pub const SIZE: u64 = 1 << 20;
/// Free space needed before an open makes it again.
const REMAKE_AT: u64 = 8 * SIZE;

fn available(root: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(root).ok()?;
    Some(s.blocks_available().saturating_mul(s.fragment_size()))
}

/// Makes the reserve if it is missing and there is room. Best effort: a store without it
/// works (only a removal on a full disk fails as any write does).
pub(crate) fn ensure(root: &Path) {
    let path = root.join(FILE);
    if path.exists() || available(root).is_none_or(|a| a < REMAKE_AT) {
        return;
    }
    if let Err(e) = make(root, &path) {
        tracing::debug!(error = %e, "could not make {}", path.display());
    }
}

fn make(root: &Path, path: &Path) -> Result<()> {
    // Whole or not at all: allocated under a temporary name, then renamed.
    let tmp = root.join(format!("{FILE}.tmp-{}", crate::random_hex(8)));
    let made = (|| {
        let f = std::fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        nix::fcntl::posix_fallocate(&f, 0, SIZE as i64)
            .map_err(std::io::Error::from)
            .ctx(|| format!("allocate {}", tmp.display()))?;
        std::fs::rename(&tmp, path).ctx(|| format!("rename to {}", path.display()))
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

impl ImageStore {
    /// Before a removal: frees the reserve if less than its size is left, so that the
    /// removal has room for its database writes.
    pub fn make_room(&self) {
        let root = self.root();
        if available(root).is_some_and(|a| a < SIZE)
            && std::fs::remove_file(root.join(FILE)).is_ok()
        {
            tracing::info!(
                "the disk of {} is full: the reserved space is freed for this removal",
                root.display()
            );
        }
    }
}
