//! `docker diff`, `docker commit`, `docker container prune` and `docker volume prune` on the
//! engine side.

use std::path::Path;

use hako_image::{Change, CommitOptions, Digest};

use crate::engine::{Engine, LiveState};
use crate::error::{Error, Result};
use crate::records::Record;
use crate::state::Status;

/// Mount points the runtime makes in every container's layer (Docker keeps them in an
/// "init" layer below the container's, so `diff` never shows them).
const INIT_PATHS: &[&str] = &[
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/.dockerenv",
];

impl Engine {
    /// `docker diff`: the container's changes to its image, sorted by path.
    pub fn changes(&self, what: &str) -> Result<Vec<Change>> {
        let rec = self.get(what)?;
        if !rec.rootfs_managed {
            return Err(Error::InvalidArgument(format!(
                "container {} runs a --rootfs directory: it has no image to compare with",
                &rec.id[..12]
            )));
        }
        let mut all = self.images().container_changes(&rec.id)?;
        all.retain(|c| {
            !(c.kind == hako_image::ChangeKind::Added && INIT_PATHS.contains(&c.path.as_str()))
        });
        all.sort();
        Ok(all)
    }

    /// `docker commit`: a new image of the container's image, its changes and its
    /// configuration (command, entrypoint, env, workdir, user; `opts.changes` applied
    /// after). A running container is frozen meanwhile when `opts.pause` is set.
    pub fn commit(&self, what: &str, opts: &CommitOptions) -> Result<Digest> {
        let rec = self.get(what)?;
        if !rec.rootfs_managed {
            return Err(Error::InvalidArgument(format!(
                "container {} runs a --rootfs directory: it has no image to commit on",
                &rec.id[..12]
            )));
        }
        let mut o = opts.clone();
        o.changes = config_changes(&rec);
        o.changes.extend(opts.changes.iter().cloned());
        let pause = opts.pause && self.live(&rec).status == Status::Running;
        if pause {
            self.pause(&rec.id)?;
        }
        let res = self.images().commit(&rec.id, &o);
        if pause {
            let _ = self.unpause(&rec.id);
        }
        Ok(res?)
    }

    /// `docker container prune`: removes every container that is not running, paused or
    /// restarting and that `keep` does not keep; returns the ids removed and the bytes
    /// their writable layers held. A container that fails to go is reported and skipped.
    pub fn prune_containers(
        &self,
        keep: impl Fn(&Record, &LiveState) -> bool,
    ) -> Result<(Vec<String>, u64, Vec<Error>)> {
        let (mut removed, mut space, mut errors) = (Vec::new(), 0, Vec::new());
        for (rec, live) in self.list()? {
            if live.status.is_active() || keep(&rec, &live) {
                continue;
            }
            let size = self
                .images()
                .container_paths(&rec.id)
                .ok()
                .and_then(|p| {
                    p.get("UpperDir")
                        .map(|u| crate::units::dir_size(Path::new(u)))
                })
                .unwrap_or(0);
            match self.remove(&rec.id, false, false) {
                Ok(_) => {
                    removed.push(rec.id);
                    space += size;
                }
                // Started or removed by another process meanwhile: not prune's to remove.
                Err(Error::IllegalTransition { .. } | Error::NoSuchContainer(_)) => {}
                Err(e) => errors.push(e),
            }
        }
        Ok((removed, space, errors))
    }

    /// `docker volume prune`: removes volumes no container uses, only anonymous ones
    /// unless `all` (Docker 23+), and only those `keep` does not keep.
    pub fn prune_volumes(
        &self,
        all: bool,
        keep: impl Fn(&bollard_stubs::models::Volume) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let (mut removed, mut space) = (Vec::new(), 0);
        for (v, anonymous) in self.volume_list()? {
            if (!all && !anonymous) || keep(&v) || !self.volume_users(&v.name)?.is_empty() {
                continue;
            }
            let size = crate::units::dir_size(Path::new(&v.mountpoint));
            match self.volume_remove(&v.name) {
                Ok(()) => {
                    space += size;
                    removed.push(v.name);
                }
                // Taken by a container created meanwhile.
                Err(Error::VolumeInUse { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((removed, space))
    }
}

/// The container's configuration as Dockerfile instructions for the new image.
fn config_changes(rec: &Record) -> Vec<String> {
    let c = &rec.config;
    let mut out = Vec::new();
    for e in c.env.iter().flatten() {
        if let Some((k, v)) = e.split_once('=')
            && !k.is_empty()
            && !k.contains(char::is_whitespace)
        {
            out.push(format!("ENV {k} {v}"));
        }
    }
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    if let Some(ep) = &c.entrypoint {
        out.push(format!("ENTRYPOINT {}", json(ep)));
    }
    if let Some(cmd) = &c.cmd {
        out.push(format!("CMD {}", json(cmd)));
    }
    if let Some(w) = c.working_dir.as_deref().filter(|w| !w.is_empty()) {
        out.push(format!("WORKDIR {w}"));
    }
    if let Some(u) = c.user.as_deref().filter(|u| !u.is_empty()) {
        out.push(format!("USER {u}"));
    }
    out
}
