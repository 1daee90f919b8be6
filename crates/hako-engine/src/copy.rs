//! `docker export` and `docker cp` on the engine side: a container's root filesystem as a
//! tar, a path in it as a tar, and a tar extracted into it. Every container path is
//! resolved inside the container's root (see [`crate::archive`]), for running and stopped
//! containers alike ([`Engine::rootfs`] mounts a stopped one).
//!
//! Paths under the container's own mounts (volumes, `/etc/hosts`) are seen as they are in
//! the root filesystem below those mounts: the mounts live in the container's namespace.

use std::ffi::OsStr;
use std::io::{Read, Write};

use crate::archive::{Owner, PathStat, Root};
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};

impl Engine {
    fn container_root(&self, what: &str) -> Result<(crate::Record, Root)> {
        let (rec, path) = self.rootfs(what)?;
        let root = Root::open(&path).ctx(|| format!("open the root of {}", &rec.id[..12]))?;
        Ok((rec, root))
    }

    /// `docker export`: the container's whole filesystem as a tar.
    pub fn export(&self, what: &str, out: &mut dyn Write) -> Result<()> {
        let (rec, root) = self.container_root(what)?;
        root.write_tar("/", false, None, None, out)
            .ctx(|| format!("export {}", &rec.id[..12]))
    }

    /// What `path` is in the container (a final symlink followed if `follow`); `None`
    /// when it does not exist.
    pub fn path_stat(&self, what: &str, path: &str, follow: bool) -> Result<Option<PathStat>> {
        let (_, root) = self.container_root(what)?;
        root.stat(path, follow)
            .ctx(|| format!("stat {path} in container {what}"))
    }

    /// `docker cp CONTAINER:PATH ...`: `path` as a tar, its top entry named `name` (or only
    /// a directory's contents with `None`).
    pub fn copy_out(
        &self,
        what: &str,
        path: &str,
        follow: bool,
        name: Option<&OsStr>,
        out: &mut dyn Write,
    ) -> Result<()> {
        let (_, root) = self.container_root(what)?;
        if root
            .stat(path, follow)
            .ctx(|| format!("stat {path}"))?
            .is_none()
        {
            return Err(Error::InvalidArgument(format!(
                "Could not find the file {path} in container {what}"
            )));
        }
        root.write_tar(path, follow, name, None, out)
            .ctx(|| format!("copy {path} from container {what}"))
    }

    /// `docker cp ... CONTAINER:DIR`: extracts a tar into the existing directory `dir`;
    /// files keep the tar's owners with `keep_owner` (`-a`), else they belong to root.
    pub fn copy_in(
        &self,
        what: &str,
        dir: &str,
        tar: &mut dyn Read,
        keep_owner: bool,
    ) -> Result<()> {
        let (rec, root) = self.container_root(what)?;
        if rec.host_config.readonly_rootfs == Some(true) {
            return Err(Error::InvalidArgument(
                "container rootfs is marked read-only".into(),
            ));
        }
        match root.stat(dir, true).ctx(|| format!("stat {dir}"))? {
            None => {
                return Err(Error::InvalidArgument(format!(
                    "Could not find the file {dir} in container {what}"
                )));
            }
            Some(s) if !s.is_dir => {
                return Err(Error::InvalidArgument(format!(
                    "extraction point is not a directory: {dir}"
                )));
            }
            Some(_) => {}
        }
        let owner = if keep_owner {
            Owner::Keep
        } else {
            Owner::Set(0, 0)
        };
        root.extract(dir, tar, owner)
            .ctx(|| format!("copy into {dir} of container {what}"))
    }
}
