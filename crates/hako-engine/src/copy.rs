//! `docker export` and `docker cp` on the engine side: a container's root filesystem as a
//! tar, a path in it as a tar, and a tar extracted into it. Every container path is
//! resolved inside the container's root (see [`crate::archive`]), for running and stopped
//! containers alike ([`Engine::rootfs`] mounts a stopped one for the operation only).
//!
//! Volumes and bind mounts exist only in the container's mount namespace, so a path under
//! a mount's destination (`/data/x` with `-v vol:/data`) is looked up in the mount's
//! source instead, with that source as the root; which mount applies is decided on the
//! path as written (a symlink in the container that leads into a mount is not noticed).

use std::ffi::OsStr;
use std::io::{Read, Write};

use std::path::Path;

use bollard_stubs::models::MountPoint;

use crate::archive::{Owner, PathStat, Root};
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};

/// `path` made absolute with `.` and `..` applied as written (never above `/`).
fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Where a container path is looked up.
struct Located {
    root: Root,
    /// The path inside `root`.
    path: String,
    /// False for the read-only root filesystem or a read-only mount.
    writable: bool,
    /// Whether `root` is a mount's source.
    mount: bool,
    /// A stopped container's lock, for as long as the operation (see [`Engine::rootfs`]).
    _lock: Option<crate::locks::ContainerLock>,
}

impl Engine {
    /// The root (the container's, or that of the mount `path` is under) and the path in it.
    fn locate(&self, what: &str, path: &str) -> Result<Located> {
        let (rec, container_root, lock) = self.rootfs(what)?;
        let dir = self.options().root.join("containers").join(&rec.id);
        let mut mounts: Vec<MountPoint> = std::fs::read(dir.join("mounts.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // The files every container gets mounted from its directory: `cp C:/etc/hostname -`
        // returns what the container sees, not the image's file under the mount.
        for (name, dest) in [
            ("hostname", "/etc/hostname"),
            ("hosts", "/etc/hosts"),
            ("resolv.conf", "/etc/resolv.conf"),
        ] {
            let src = dir.join(name);
            if src.is_file()
                && !mounts
                    .iter()
                    .any(|m| m.destination.as_deref() == Some(dest))
            {
                mounts.push(MountPoint {
                    source: Some(src.display().to_string()),
                    destination: Some(dest.into()),
                    rw: Some(true),
                    ..Default::default()
                });
            }
        }
        let want = lexical(path);
        let hit = mounts
            .iter()
            .filter_map(|m| {
                let dest = lexical(m.destination.as_deref()?);
                let rest = if want == dest {
                    "/".to_string()
                } else {
                    want.strip_prefix(&dest)?
                        .strip_prefix('/')
                        .map(|r| format!("/{r}"))?
                };
                (dest != "/").then_some((dest.len(), m, rest))
            })
            .max_by_key(|(len, _, _)| *len);
        if let Some((_, m, rest)) = hit
            && let Some(src) = m.source.as_deref()
        {
            let src = Path::new(src);
            let writable = m.rw != Some(false);
            if src.is_dir() {
                let root = Root::open(src).ctx(|| format!("open {}", src.display()))?;
                return Ok(Located {
                    root,
                    path: rest,
                    writable,
                    mount: true,
                    _lock: lock,
                });
            }
            // A file mounted on a file: its directory, and its name in there.
            if rest == "/"
                && let (Some(dir), Some(name)) = (src.parent(), src.file_name())
            {
                let root = Root::open(dir).ctx(|| format!("open {}", dir.display()))?;
                let path = format!("/{}", name.to_string_lossy());
                return Ok(Located {
                    root,
                    path,
                    writable,
                    mount: true,
                    _lock: lock,
                });
            }
        }
        let writable = rec.host_config.readonly_rootfs != Some(true);
        Ok(Located {
            root: container_root,
            _lock: lock,
            path: want,
            writable,
            mount: false,
        })
    }

    /// `docker export`: the container's whole filesystem as a tar.
    pub fn export(&self, what: &str, out: &mut dyn Write) -> Result<()> {
        let (rec, root, _lock) = self.rootfs(what)?;
        root.write_tar("/", false, None, None, out)
            .ctx(|| format!("export {}", &rec.id[..12]))
    }

    /// What `path` is in the container (a final symlink followed if `follow`); `None`
    /// when it does not exist.
    pub fn path_stat(&self, what: &str, path: &str, follow: bool) -> Result<Option<PathStat>> {
        let l = self.locate(what, path)?;
        let st = l
            .root
            .stat(&l.path, follow)
            .ctx(|| format!("stat {path} in container {what}"))?;
        // Named as the container sees it (a file bind mount's source has its own name;
        // the root is `/`, as dockerd names it).
        Ok(st.map(|mut s| {
            let p = lexical(path);
            if let Some(n) = Path::new(&p).file_name() {
                s.name = n.to_string_lossy().into_owned();
            } else if p == "/" {
                s.name = "/".into();
            }
            s
        }))
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
        let l = self.locate(what, path)?;
        if l.root
            .stat(&l.path, follow)
            .ctx(|| format!("stat {path}"))?
            .is_none()
        {
            return Err(Error::InvalidArgument(format!(
                "Could not find the file {path} in container {what}"
            )));
        }
        l.root
            .write_tar(&l.path, follow, name, None, out)
            .ctx(|| format!("copy {path} from container {what}"))
    }

    /// `docker cp ... CONTAINER:DIR`: extracts a tar into the existing directory `dir`;
    /// files keep the tar's owners with `keep_owner` (`-a`), else they belong to root.
    /// With `no_overwrite_dir_non_dir` a directory never replaces a file (nor a file a
    /// directory): a clear error, as dockerd's.
    pub fn copy_in(
        &self,
        what: &str,
        dir: &str,
        tar: &mut dyn Read,
        keep_owner: bool,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<()> {
        let l = self.locate(what, dir)?;
        if !l.writable {
            return Err(Error::InvalidArgument(if l.mount {
                format!("mounted volume is marked read-only: {dir}")
            } else {
                "container rootfs is marked read-only".into()
            }));
        }
        match l.root.stat(&l.path, true).ctx(|| format!("stat {dir}"))? {
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
        match l
            .root
            .extract_checked(&l.path, tar, owner, no_overwrite_dir_non_dir)
        {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::IsADirectory | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Err(Error::InvalidArgument(format!(
                    "copy into {dir} of container {what}: {e}"
                )))
            }
            r => r.ctx(|| format!("copy into {dir} of container {what}")),
        }
    }
}
