//! `--storage-opt size=`: per-container disk quotas with XFS project quotas, as Docker's
//! `overlay2.size` does it.
//!
//! XFS counts the blocks of every inode against the inode's *project id*, and enforces a
//! per-project limit when the filesystem is mounted with `pquota` (`prjquota`). A
//! container layer gets a project id of its own on its layer directory, with
//! `FS_XFLAG_PROJINHERIT` so that everything created below (`diff/`, `work/`, files copied
//! up by overlay) inherits it; then a block hard limit for that project is set with
//! `quotactl(Q_XSETQLIM)`.
//!
//! quotactl(2) names the filesystem by a block device path. The device the driver home
//! lives on may have no node in `/dev` (inside a container, for example), so, like Docker,
//! we make our own node `<home>/backingFsBlockDev` with the `st_dev` of the home.
//!
//! Project ids: the next free id is one more than the highest id found on the layer
//! directories (and on the home itself, so an administrator can reserve a range by
//! giving the home a project id). Allocation runs under `flock(<home>/quota.lock)` so two
//! hako processes never hand out the same id. A removed layer's limit is reset to 0,
//! which frees the project for reuse.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hako_sys::quota::{self as sys, FS_XFLAG_PROJINHERIT};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Error, IoContext, Result};

/// Options for a container layer (`--storage-opt KEY=VALUE`, and what the engine adds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOpts {
    /// `size=`: the most bytes the container layer may use.
    pub size: Option<u64>,
    /// The layer goes with its container and never outlives a crash (`run --rm`): overlay
    /// mounts it `volatile`, so neither the container's syncs nor the unmount sync the
    /// host's filesystem (podman does the same for `--rm`). Not a `--storage-opt`.
    pub volatile: bool,
}

impl StorageOpts {
    /// Parses `KEY=VALUE` options as Docker's overlay2 does: only `size` is known; its
    /// value takes Docker's units (`20G`, `512m`, `100MB`, plain bytes; powers of 1024).
    pub fn parse<S: AsRef<str>>(opts: &[S]) -> Result<StorageOpts> {
        let mut out = StorageOpts::default();
        for opt in opts {
            let opt = opt.as_ref();
            let (key, value) = opt
                .split_once('=')
                .ok_or_else(|| Error::BadStorageOpt(format!("invalid option {opt:?}")))?;
            match key.trim().to_ascii_lowercase().as_str() {
                "size" => out.size = Some(parse_size(value.trim())?),
                other => return Err(Error::BadStorageOpt(format!("unknown option {other}"))),
            }
        }
        Ok(out)
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.size.is_none()
    }
}

/// Docker's `units.RAMInBytes`: a number with an optional b/k/m/g/t/p suffix (an extra
/// `b`/`ib` allowed), powers of 1024.
fn parse_size(s: &str) -> Result<u64> {
    let bad = || Error::BadStorageOpt(format!("invalid size: {s:?}"));
    let lower = s.to_ascii_lowercase();
    let unit_start = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(unit_start);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(unit);
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "sizes are far below 2^53; fractional bytes are dropped like Docker does"
    )]
    let bytes = (num * mult as f64) as u64;
    Ok(bytes)
}

/// What a container layer uses of its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    /// The XFS project id of the layer.
    pub project_id: u32,
    /// The hard limit in bytes.
    pub limit_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
}

/// Project quota control for one driver home on XFS with `pquota`.
#[derive(Debug)]
pub(crate) struct ProjectQuotas {
    home: PathBuf,
    dev: CString,
}

impl ProjectQuotas {
    /// Sets up quotas for `home`, or says why they are not available.
    pub(crate) fn probe(home: &Path) -> std::result::Result<ProjectQuotas, String> {
        let fs = nix::sys::statfs::statfs(home).map_err(|e| format!("statfs: {e}"))?;
        if fs.filesystem_type() != nix::sys::statfs::XFS_SUPER_MAGIC {
            return Err("not on xfs".into());
        }
        let md = std::fs::metadata(home).map_err(|e| format!("stat: {e}"))?;
        let node = home.join("backingFsBlockDev");
        // A stale node from another boot may name another device: always make it anew.
        let _ = std::fs::remove_file(&node);
        nix::sys::stat::mknod(
            &node,
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o600),
            md.dev(),
        )
        .map_err(|e| format!("mknod {}: {e}", node.display()))?;
        let dev = CString::new(node.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        match sys::xfs_project_quota_enforced(&dev) {
            Ok(true) => Ok(ProjectQuotas {
                home: home.to_path_buf(),
                dev,
            }),
            Ok(false) => Err("project quotas are not enforced (mount without pquota)".into()),
            Err(e) => Err(format!("quotactl: {e}")),
        }
    }

    /// Gives `dir` (an empty, new layer directory) a project id of its own with a block
    /// limit of `bytes`, inherited by everything created below it. Returns the id.
    pub(crate) fn set(&self, dir: &Path, bytes: u64) -> Result<u32> {
        let lock_path = self.home.join("quota.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx(|| format!("open {}", lock_path.display()))?;
        let _lock = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io("lock quota.lock", e.into()))?;
        let projid = self.next_project_id()?;
        let f = File::open(dir).ctx(|| format!("open {}", dir.display()))?;
        let mut attr =
            sys::fs_get_xattr(f.as_fd()).ctx(|| format!("get attrs of {}", dir.display()))?;
        attr.projid = projid;
        attr.xflags |= FS_XFLAG_PROJINHERIT;
        sys::fs_set_xattr(f.as_fd(), &attr)
            .ctx(|| format!("set project id {projid} on {}", dir.display()))?;
        sys::xfs_set_project_limit(&self.dev, projid, bytes)
            .ctx(|| format!("set quota of project {projid} to {bytes} bytes"))?;
        tracing::debug!(dir = %dir.display(), projid, bytes, "set project quota");
        Ok(projid)
    }

    /// One more than the highest project id on the home and its entries.
    fn next_project_id(&self) -> Result<u32> {
        let mut max = project_id(&self.home).unwrap_or(0);
        let entries =
            std::fs::read_dir(&self.home).ctx(|| format!("list {}", self.home.display()))?;
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                max = max.max(project_id(&e.path()).unwrap_or(0));
            }
        }
        max.checked_add(1).ok_or_else(|| {
            Error::io(
                "allocate project id",
                std::io::ErrorKind::StorageFull.into(),
            )
        })
    }

    /// Usage and limit of the project of `dir`, if it has one.
    pub(crate) fn usage(&self, dir: &Path) -> Result<Option<QuotaUsage>> {
        let projid = project_id(dir).ctx(|| format!("get project id of {}", dir.display()))?;
        if projid == 0 || Some(projid) == project_id(&self.home).ok() {
            return Ok(None);
        }
        let q = sys::xfs_get_project_quota(&self.dev, projid)
            .ctx(|| format!("get quota of project {projid}"))?;
        Ok(Some(QuotaUsage {
            project_id: projid,
            limit_bytes: q.hard_limit_bytes,
            used_bytes: q.used_bytes,
        }))
    }

    /// Removes the limit of project `projid` (its directory is gone), freeing the id.
    pub(crate) fn release(&self, projid: u32) -> Result<()> {
        if projid == 0 || Some(projid) == project_id(&self.home).ok() {
            return Ok(());
        }
        sys::xfs_set_project_limit(&self.dev, projid, 0)
            .ctx(|| format!("clear quota of project {projid}"))
    }
}

/// The project id of a file (0 if none).
pub(crate) fn project_id(path: &Path) -> std::io::Result<u32> {
    let f = File::open(path)?;
    Ok(sys::fs_get_xattr(f.as_fd())?.projid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_sizes() {
        assert_eq!(parse_size("20M").unwrap(), 20 << 20);
        assert_eq!(parse_size("20mb").unwrap(), 20 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("10x").is_err());
        let o = StorageOpts::parse(&["size=10G"]).unwrap();
        assert_eq!(o.size, Some(10 << 30));
        assert!(StorageOpts::parse(&["foo=1"]).is_err());
        assert!(StorageOpts::parse(&["size"]).is_err());
    }
}
