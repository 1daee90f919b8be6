//! The `overlay2` driver, in Docker's on-disk layout.
//!
//! ```text
//! <root>/overlay2/
//!   l/ABCDEFGHIJKLMNOPQRSTUVWXYZ -> ../<id>/diff     short names keep mount options short
//!   <id>/diff/                                        the layer's own files (upper dir)
//!   <id>/link                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
//!   <id>/lower                                        "l/PARENT:l/GRANDPARENT" (absent for a base layer)
//!   <id>/work/                                        overlay's scratch dir (layers with a parent)
//!   <id>/merged/                                      mount point
//!   tmp-XXXX/                                         a layer being built (renamed to <id> when done)
//!   backingFsBlockDev, quota.lock                     XFS project quotas (see quota.rs)
//! ```
//!
//! mount(2) takes at most one page of options. Absolute lowerdirs of 128 layers need
//! ~10 KiB; relative `l/SHORT` names need 29 bytes per layer. When the absolute form fits
//! (most images) the mount uses it; else, as Docker, paths relative to `<root>/overlay2`,
//! which need that directory as the current directory: to keep the rest of the process
//! (other threads) where it is, that mount runs on a short-lived thread that first
//! unshares its filesystem context (`unshare(CLONE_FS)`), so its `chdir` is private to it.

use std::io::Read;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use crate::changes::{self, Change};
use crate::error::{Error, IoContext, Result};
use crate::quota::{self, ProjectQuotas, QuotaUsage, StorageOpts};
use crate::unpack::{self, LayerDigests, WhiteoutMode};
use crate::{Driver, LayerPaths, MountInfo, check_id, mountinfo, random_name};

/// Length of the short names under `l/`, as in Docker.
const SHORT_LEN: usize = 26;
/// The kernel copies at most one page of mount data.
const MAX_MOUNT_DATA: usize = 4096 - 1;
/// The marker file of a layer mounted `volatile` ([`StorageOpts::volatile`]).
const VOLATILE: &str = "volatile";

/// Docker's `overlay2` driver layout under `<root>/overlay2`. See the module docs.
#[derive(Debug)]
pub struct Overlay2 {
    home: PathBuf,
    /// Project quotas, probed on first use: the controller, or why there is none.
    quotas: std::sync::OnceLock<std::result::Result<ProjectQuotas, String>>,
}

impl Overlay2 {
    /// Opens (creating if needed) the driver under `<root>/overlay2`.
    ///
    /// Fails with [`Error::NotSupported`] if the kernel has no overlayfs.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !filesystems
            .lines()
            .any(|l| l.trim_end().ends_with("\toverlay"))
        {
            return Err(Error::NotSupported {
                driver: "overlay2",
                reason: "the kernel has no overlay filesystem".into(),
            });
        }
        let home = root.into().join("overlay2");
        std::fs::create_dir_all(home.join("l")).ctx(|| format!("create {}", home.display()))?;
        Ok(Overlay2 {
            home,
            quotas: std::sync::OnceLock::new(),
        })
    }

    /// Like [`Overlay2::new`], and also mounts a tiny overlay to prove that overlay works
    /// on the filesystem of `root` (it does not on top of another overlay, for example).
    pub fn probe(root: impl Into<PathBuf>) -> Result<Self> {
        let driver = Overlay2::new(root)?;
        let lower = format!("tmp-probe-{}", random_name(12));
        let upper = format!("tmp-probe-{}", random_name(12));
        let guard = TempDirs(vec![driver.home.join(&lower), driver.home.join(&upper)]);
        for d in [&lower, &upper] {
            for sub in ["diff", "work", "merged"] {
                std::fs::create_dir_all(driver.home.join(d).join(sub))
                    .ctx(|| format!("create probe dir in {}", driver.home.display()))?;
            }
        }
        let opts = format!("lowerdir={lower}/diff,upperdir={upper}/diff,workdir={upper}/work");
        let target = PathBuf::from(&upper).join("merged");
        driver
            .mount_relative(&target, &opts)
            .map_err(|e| Error::NotSupported {
                driver: "overlay2",
                reason: format!("test mount failed: {e}"),
            })?;
        let merged = driver.home.join(&target);
        umount2(&merged, MntFlags::MNT_DETACH).map_err(|source| Error::Mount {
            op: "unmount",
            path: merged,
            source,
        })?;
        drop(guard);
        Ok(driver)
    }

    /// `<root>/overlay2`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.home.join(id)
    }

    fn quotas(&self) -> Option<&ProjectQuotas> {
        let q = self.quotas.get_or_init(|| {
            let q = ProjectQuotas::probe(&self.home);
            if let Err(why) = &q {
                tracing::debug!(home = %self.home.display(), why, "no project quotas");
            }
            q
        });
        q.as_ref().ok()
    }

    fn read_small(&self, id: &str, file: &str) -> Result<Option<String>> {
        match std::fs::read_to_string(self.dir(id).join(file)) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {file} of layer {id}"), e)),
        }
    }

    /// Builds layer `id` in a temporary dir: `fill` writes the diff, then rename.
    /// With `quota`, the layer directory gets a project quota of that many bytes before
    /// anything is created in it, so all of it inherits the project.
    fn build(
        &self,
        id: &str,
        parent: Option<&str>,
        quota: Option<u64>,
        fill: impl FnOnce(&Path) -> Result<LayerDigests>,
    ) -> Result<LayerDigests> {
        check_id(id)?;
        let quotas = match quota {
            Some(bytes) => Some((self.quotas().ok_or(Error::QuotaNotSupported)?, bytes)),
            None => None,
        };
        if self.exists(id) {
            return Err(Error::Exists(id.to_string()));
        }
        let lower = match parent {
            Some(p) => {
                check_id(p)?;
                let link = self
                    .read_small(p, "link")?
                    .ok_or_else(|| Error::NotFound(p.to_string()))?;
                Some(match self.read_small(p, "lower")? {
                    Some(l) if !l.is_empty() => format!("l/{link}:{l}"),
                    _ => format!("l/{link}"),
                })
            }
            None => None,
        };
        let tmp = self.home.join(format!("tmp-{}", random_name(20)));
        let guard = TempDirs(vec![tmp.clone()]);
        std::fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        if let Some((q, bytes)) = quotas {
            q.set(&tmp, bytes)?;
        }
        std::fs::create_dir(tmp.join("diff")).ctx(|| format!("create {}/diff", tmp.display()))?;
        // 0755 whatever the umask (Docker's): an empty container layer's `diff` is the mode
        // of `/` in the container, and a 0700 root locks out every non-root user there.
        set_mode(&tmp.join("diff"), 0o755)?;
        let link = random_name(SHORT_LEN);
        std::fs::write(tmp.join("link"), &link).ctx(|| format!("write {}/link", tmp.display()))?;
        if let Some(lower) = &lower {
            std::fs::write(tmp.join("lower"), lower)
                .ctx(|| format!("write {}/lower", tmp.display()))?;
            std::fs::create_dir(tmp.join("work"))
                .ctx(|| format!("create {}/work", tmp.display()))?;
        }
        std::fs::create_dir(tmp.join("merged"))
            .ctx(|| format!("create {}/merged", tmp.display()))?;
        let digests = fill(&tmp.join("diff"))?;
        hako_sys::crash::point("layer.filled");
        let dest = self.dir(id);
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &tmp,
            nix::fcntl::AT_FDCWD,
            &dest,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(|e| match e {
            Errno::EEXIST | Errno::ENOTEMPTY => Error::Exists(id.to_string()),
            e => Error::io(format!("rename layer into {}", dest.display()), e.into()),
        })?;
        guard.disarm();
        hako_sys::crash::point("layer.renamed");
        self.ensure_link(id, &link)?;
        Ok(digests)
    }

    fn ensure_link(&self, id: &str, link: &str) -> Result<()> {
        let path = self.home.join("l").join(link);
        match std::os::unix::fs::symlink(format!("../{id}/diff"), &path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Error::io(
                format!("create short link {}", path.display()),
                e,
            )),
        }
    }

    /// mount(2) of the overlay `opts` (paths relative to the driver home) on `target`
    /// (relative too): with the paths made absolute when that fits in a page (most
    /// images), else from a thread whose cwd is the home (Docker's way for deep images).
    /// The thread cost ~0.1-0.3 ms of every `docker run` while the CPUs are busy.
    fn mount_relative(&self, target: &Path, opts: &str) -> nix::Result<()> {
        if let Some(abs) = self.absolute_options(opts)
            && abs.len() <= MAX_MOUNT_DATA
        {
            return mount(
                Some("overlay"),
                &self.home.join(target),
                Some("overlay"),
                MsFlags::empty(),
                Some(abs.as_str()),
            );
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                unshare(CloneFlags::CLONE_FS)?;
                nix::unistd::chdir(&self.home)?;
                mount(
                    Some("overlay"),
                    target,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(opts),
                )
            })
            .join()
            .unwrap_or(Err(Errno::EINTR))
        })
    }

    /// `lowerdir=a:b,upperdir=c,workdir=d[,...]` with every path made absolute under the
    /// home; `None` when the home's path cannot appear in mount options (relative, or with
    /// a `,`, `:` or `=`).
    fn absolute_options(&self, opts: &str) -> Option<String> {
        let home = self.home.to_str()?;
        if !self.home.is_absolute() || home.contains([',', ':', '=']) {
            return None;
        }
        let mut out = String::with_capacity(opts.len() * 2);
        for (i, opt) in opts.split(',').enumerate() {
            if i > 0 {
                out.push(',');
            }
            match opt.split_once('=') {
                Some((key @ ("lowerdir" | "upperdir" | "workdir"), paths)) => {
                    out.push_str(key);
                    out.push('=');
                    for (j, p) in paths.split(':').enumerate() {
                        if j > 0 {
                            out.push(':');
                        }
                        out.push_str(home);
                        out.push('/');
                        out.push_str(p);
                    }
                }
                _ => out.push_str(opt),
            }
        }
        Some(out)
    }
}

/// Removes the listed directories on drop unless disarmed.
struct TempDirs(Vec<PathBuf>);

impl TempDirs {
    fn disarm(mut self) {
        self.0.clear();
    }
}

impl Drop for TempDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            for m in mountinfo::mounts_under(d).iter().rev() {
                let _ = umount2(m, MntFlags::MNT_DETACH);
            }
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Driver for Overlay2 {
    fn name(&self) -> &'static str {
        "overlay2"
    }

    fn unpack_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        stream: &mut dyn Read,
        split: Option<&mut (dyn std::io::Write + Send)>,
    ) -> Result<LayerDigests> {
        self.build(id, parent, None, |diff| {
            unpack::apply_split(stream, diff, WhiteoutMode::Overlay, split)
        })
    }

    fn create_rw(&self, id: &str, parent: Option<&str>) -> Result<()> {
        self.create_rw_with(id, parent, &StorageOpts::default())
    }

    fn create_rw_with(&self, id: &str, parent: Option<&str>, opts: &StorageOpts) -> Result<()> {
        self.build(id, parent, opts.size, |_| Ok(unpack::empty_layer()))?;
        if opts.volatile {
            // Read by `mount` (a crash before it leaves an ordinary layer: harmless).
            let marker = self.dir(id).join(VOLATILE);
            std::fs::write(&marker, "").ctx(|| format!("write {}", marker.display()))?;
        }
        Ok(())
    }

    fn quota_supported(&self) -> bool {
        self.quotas().is_some()
    }

    fn quota_usage(&self, id: &str) -> Result<Option<QuotaUsage>> {
        check_id(id)?;
        if !self.exists(id) {
            return Err(Error::NotFound(id.to_string()));
        }
        match self.quotas() {
            Some(q) => q.usage(&self.dir(id)),
            None => Ok(None),
        }
    }

    fn mount(&self, id: &str) -> Result<MountInfo> {
        check_id(id)?;
        if !self.exists(id) {
            return Err(Error::NotFound(id.to_string()));
        }
        let merged = self.dir(id).join("merged");
        std::fs::create_dir_all(&merged).ctx(|| format!("create {}", merged.display()))?;
        let Some(lower) = self.read_small(id, "lower")? else {
            // A base layer alone: nothing to stack, show its diff as is.
            if !mountinfo::is_mounted(&merged) {
                let diff = self.dir(id).join("diff");
                mount(
                    Some(&diff),
                    &merged,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|source| Error::Mount {
                    op: "bind mount",
                    path: merged.clone(),
                    source,
                })?;
            }
            return Ok(MountInfo {
                rootfs: merged,
                options: None,
            });
        };
        let mut opts = format!("lowerdir={lower},upperdir={id}/diff,workdir={id}/work");
        let volatile = self.dir(id).join(VOLATILE).exists();
        if volatile {
            opts.push_str(",volatile");
        }
        if mountinfo::is_mounted(&merged) {
            return Ok(MountInfo {
                rootfs: merged,
                options: Some(opts),
            });
        }
        if opts.len() > MAX_MOUNT_DATA {
            return Err(Error::MountOptionsTooLong {
                id: id.to_string(),
                len: opts.len(),
                max: MAX_MOUNT_DATA,
            });
        }
        if volatile {
            // The kernel leaves this behind a volatile mount and refuses the next mount
            // while it is there (its sign of a crash). This layer is thrown away with its
            // container, never trusted after a crash: mounting it again after a clean
            // unmount (a `create` then its `start`) is what the marker would stop.
            let incompat = self.dir(id).join("work/work/incompat/volatile");
            match std::fs::remove_dir_all(&incompat) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("remove {}", incompat.display()), e));
                }
                _ => {}
            }
        }
        let target = PathBuf::from(id).join("merged");
        let mounted = match self.mount_relative(&target, &opts) {
            // A kernel before 5.10 has no `volatile`: an ordinary mount then.
            Err(Errno::EINVAL) if volatile => {
                opts.truncate(opts.len() - ",volatile".len());
                self.mount_relative(&target, &opts)
            }
            r => r,
        };
        mounted.map_err(|source| Error::Mount {
            op: "mount overlay on",
            path: merged.clone(),
            source,
        })?;
        tracing::debug!(layer = id, options = %opts, "mounted overlay");
        Ok(MountInfo {
            rootfs: merged,
            options: Some(opts),
        })
    }

    fn unmount(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let merged = self.dir(id).join("merged");
        while mountinfo::is_mounted(&merged) {
            umount2(&merged, MntFlags::MNT_DETACH).map_err(|source| Error::Mount {
                op: "unmount",
                path: merged.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn changes(&self, id: &str, _parent: Option<&str>) -> Result<Vec<Change>> {
        let paths = self.paths(id)?;
        changes::overlay_changes(&paths.upper_dir, &paths.lower_dirs)
    }

    fn diff(&self, id: &str, _parent: Option<&str>, out: &mut dyn std::io::Write) -> Result<()> {
        let paths = self.paths(id)?;
        crate::export::overlay_diff(&paths.upper_dir, out)
    }

    fn remove(&self, id: &str) -> Result<()> {
        check_id(id)?;
        if !self.dir(id).exists() {
            return Ok(());
        }
        self.unmount(id)?;
        if let Some(link) = self.read_small(id, "link")?
            && !link.is_empty()
            && !link.contains('/')
        {
            let _ = std::fs::remove_file(self.home.join("l").join(link));
        }
        let projid = quota::project_id(&self.dir(id)).unwrap_or(0);
        // Rename first: a crash mid-removal leaves a tmp- dir for cleanup, not half a layer.
        let trash = self.home.join(format!("tmp-rm-{}", random_name(20)));
        match std::fs::rename(self.dir(id), &trash) {
            Ok(()) => {}
            // Removed by someone else since the check: already gone is done.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).ctx(|| format!("remove layer {id}")),
        }
        std::fs::remove_dir_all(&trash).ctx(|| format!("remove {}", trash.display()))?;
        if projid != 0
            && let Some(q) = self.quotas()
        {
            q.release(projid)?;
        }
        Ok(())
    }

    fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.dir(id).join("diff").is_dir()
    }

    fn size(&self, id: &str) -> Result<u64> {
        crate::dir_size(&self.dir(id).join("diff"))
    }

    fn paths(&self, id: &str) -> Result<LayerPaths> {
        check_id(id)?;
        if !self.exists(id) {
            return Err(Error::NotFound(id.to_string()));
        }
        let mut lower_dirs = Vec::new();
        if let Some(lower) = self.read_small(id, "lower")? {
            for short in lower.split(':').filter(|s| !s.is_empty()) {
                let link = self.home.join(short);
                let target =
                    std::fs::read_link(&link).ctx(|| format!("read {}", link.display()))?;
                // "../<id>/diff" relative to l/: normalize to <home>/<id>/diff.
                let target_id = target.parent().and_then(|p| p.file_name()).ok_or_else(|| {
                    Error::io(
                        format!("bad link {}", link.display()),
                        std::io::ErrorKind::InvalidData.into(),
                    )
                })?;
                lower_dirs.push(self.home.join(target_id).join("diff"));
            }
        }
        let dir = self.dir(id);
        let work = dir.join("work");
        Ok(LayerPaths {
            lower_dirs,
            upper_dir: dir.join("diff"),
            work_dir: work.is_dir().then_some(work),
            merged_dir: Some(dir.join("merged")),
        })
    }

    fn list(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&self.home).ctx(|| format!("list {}", self.home.display()))? {
            let e = e.ctx(|| format!("list {}", self.home.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if check_id(&name).is_ok() && self.exists(&name) {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn cleanup(&self) -> Result<()> {
        for e in std::fs::read_dir(&self.home).ctx(|| format!("list {}", self.home.display()))? {
            let e = e.ctx(|| format!("list {}", self.home.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("tmp-") {
                tracing::info!(dir = %e.path().display(), "removing leftover of an interrupted operation");
                drop(TempDirs(vec![e.path()]));
            } else if self.exists(&name)
                && let Some(link) = self.read_small(&name, "link")?
            {
                self.ensure_link(&name, &link)?;
            }
        }
        let l = self.home.join("l");
        for e in std::fs::read_dir(&l).ctx(|| format!("list {}", l.display()))? {
            let e = e.ctx(|| format!("list {}", l.display()))?;
            if !e.path().exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }
}

/// Sets `path`'s mode exactly (the umask only applies at creation).
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .ctx(|| format!("chmod {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(home: &str) -> Overlay2 {
        Overlay2 {
            home: PathBuf::from(home),
            quotas: std::sync::OnceLock::new(),
        }
    }

    #[test]
    fn overlay_options_are_made_absolute_under_the_home() {
        let d = at("/var/lib/hako/overlay2");
        assert_eq!(
            d.absolute_options("lowerdir=l/AB:l/CD,upperdir=x/diff,workdir=x/work,volatile")
                .as_deref(),
            Some(
                "lowerdir=/var/lib/hako/overlay2/l/AB:/var/lib/hako/overlay2/l/CD,\
                 upperdir=/var/lib/hako/overlay2/x/diff,workdir=/var/lib/hako/overlay2/x/work,\
                 volatile"
            )
        );
        // Paths that cannot be written in the options, or relative ones: relative mount.
        assert_eq!(at("/a,b/overlay2").absolute_options("lowerdir=l/A"), None);
        assert_eq!(at("/a:b/overlay2").absolute_options("lowerdir=l/A"), None);
        assert_eq!(at("rel/overlay2").absolute_options("lowerdir=l/A"), None);
    }
}
