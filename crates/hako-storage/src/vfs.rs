//! The `vfs` driver: every layer is a full copy of its parent plus its own changes.
//!
//! ```text
//! <root>/vfs/dir/<id>/      the complete filesystem of layer <id>
//! <root>/vfs/dir/tmp-XXXX/  a layer being built (renamed to <id> when done)
//! ```
//!
//! Nothing is mounted: a container's rootfs is its layer directory. Whiteouts in layer
//! tars become deletions. Slow and big, but it works on any filesystem.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::changes::{self, Change};
use crate::copy::copy_tree;
use crate::error::{Error, IoContext, Result};
use crate::unpack::{self, LayerDigests, WhiteoutMode};
use crate::{Driver, LayerPaths, MountInfo, check_id, random_name};

/// Docker's `vfs` driver layout under `<root>/vfs/dir`. See the module docs.
#[derive(Debug)]
pub struct Vfs {
    home: PathBuf,
}

impl Vfs {
    /// Opens (creating if needed) the driver under `<root>/vfs/dir`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let home = root.into().join("vfs").join("dir");
        std::fs::create_dir_all(&home).ctx(|| format!("create {}", home.display()))?;
        Ok(Vfs { home })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.home.join(id)
    }

    fn build(
        &self,
        id: &str,
        parent: Option<&str>,
        fill: impl FnOnce(&Path) -> Result<LayerDigests>,
    ) -> Result<LayerDigests> {
        check_id(id)?;
        if self.exists(id) {
            return Err(Error::Exists(id.to_string()));
        }
        if let Some(p) = parent
            && !self.exists(p)
        {
            return Err(Error::NotFound(p.to_string()));
        }
        let tmp = self.home.join(format!("tmp-{}", random_name(20)));
        let result = (|| {
            std::fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
            // The container's `/` when empty: 0755 whatever the umask (see overlay.rs).
            crate::overlay::set_mode(&tmp, 0o755)?;
            if let Some(p) = parent {
                copy_tree(&self.dir(p), &tmp)?;
            }
            let digests = fill(&tmp)?;
            std::fs::rename(&tmp, self.dir(id)).ctx(|| format!("rename layer into {id}"))?;
            Ok(digests)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }
}

impl Driver for Vfs {
    fn name(&self) -> &'static str {
        "vfs"
    }

    fn unpack_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        stream: &mut dyn Read,
        split: Option<&mut (dyn std::io::Write + Send)>,
    ) -> Result<LayerDigests> {
        self.build(id, parent, |dir| {
            unpack::apply_split(stream, dir, WhiteoutMode::Delete, split)
        })
    }

    fn create_rw(&self, id: &str, parent: Option<&str>) -> Result<()> {
        self.build(id, parent, |_| Ok(unpack::empty_layer()))
            .map(drop)
    }

    fn mount(&self, id: &str) -> Result<MountInfo> {
        check_id(id)?;
        if !self.exists(id) {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(MountInfo {
            rootfs: self.dir(id),
            options: None,
        })
    }

    fn unmount(&self, id: &str) -> Result<()> {
        check_id(id)
    }

    fn changes(&self, id: &str, parent: Option<&str>) -> Result<Vec<Change>> {
        check_id(id)?;
        let parent_dir = parent
            .map(|p| check_id(p).map(|()| self.dir(p)))
            .transpose()?;
        changes::tree_changes(&self.dir(id), parent_dir.as_deref())
    }

    fn diff(&self, id: &str, parent: Option<&str>, out: &mut dyn std::io::Write) -> Result<()> {
        let changes = self.changes(id, parent)?;
        crate::export::changes_diff(&self.dir(id), &changes, out)
    }

    fn remove(&self, id: &str) -> Result<()> {
        check_id(id)?;
        if !self.dir(id).exists() {
            return Ok(());
        }
        let trash = self.home.join(format!("tmp-rm-{}", random_name(20)));
        match std::fs::rename(self.dir(id), &trash) {
            Ok(()) => {}
            // Removed by someone else since the check: already gone is done.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).ctx(|| format!("remove layer {id}")),
        }
        std::fs::remove_dir_all(&trash).ctx(|| format!("remove {}", trash.display()))
    }

    fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.dir(id).is_dir()
    }

    fn size(&self, id: &str) -> Result<u64> {
        crate::dir_size(&self.dir(id))
    }

    fn paths(&self, id: &str) -> Result<LayerPaths> {
        check_id(id)?;
        Ok(LayerPaths {
            upper_dir: self.dir(id),
            ..LayerPaths::default()
        })
    }

    fn list(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&self.home).ctx(|| format!("list {}", self.home.display()))? {
            let name = e
                .ctx(|| format!("list {}", self.home.display()))?
                .file_name();
            let name = name.to_string_lossy().into_owned();
            if check_id(&name).is_ok() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn cleanup(&self) -> Result<()> {
        for e in std::fs::read_dir(&self.home).ctx(|| format!("list {}", self.home.display()))? {
            let e = e.ctx(|| format!("list {}", self.home.display()))?;
            if e.file_name().to_string_lossy().starts_with("tmp-") {
                tracing::info!(dir = %e.path().display(), "removing leftover of an interrupted operation");
                std::fs::remove_dir_all(e.path())
                    .ctx(|| format!("remove {}", e.path().display()))?;
            }
        }
        Ok(())
    }
}
