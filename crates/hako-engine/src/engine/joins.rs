//! `--pid container:NAME` and `--ipc container:NAME`: the container joins another one's
//! PID or IPC namespace. The other container must exist at create and run at each start
//! (Docker's rules); the bundle's namespace gets the path of that container's init at
//! every start, since a restarted container has a new init.
//!
//! `--ipc shareable` (Docker's ShmPath): the container's `/dev/shm` is a tmpfs the host
//! mounts at `<container dir>/shm` at start (unmounted when it stops or is removed), so
//! that a container with `--ipc container:NAME` binds the same one; only a shareable
//! container may be joined, as with Docker.

use std::path::PathBuf;

use bollard_stubs::models::HostConfig;

use crate::error::{Error, IoContext, Result};
use crate::records::Record;

use super::Engine;

/// The namespaces `h` joins: (spec type, Docker's word for it, the other container).
pub(super) fn joins(h: &HostConfig) -> Vec<(&'static str, &'static str, &str)> {
    [
        ("pid", "PID", h.pid_mode.as_deref()),
        ("ipc", "IPC", h.ipc_mode.as_deref()),
    ]
    .into_iter()
    .filter_map(|(t, word, m)| Some((t, word, m?.strip_prefix("container:")?)))
    .collect()
}

impl Engine {
    /// At create: the containers named exist (and are not this one's name).
    pub(super) fn check_joins(&self, h: &HostConfig) -> Result<()> {
        for (_, word, other) in joins(h) {
            if other.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "invalid {word} mode: container: needs a container name or id"
                )));
            }
            self.get(other)?;
        }
        Ok(())
    }

    /// At start, before the runtime runs: points the bundle's PID/IPC namespaces at the
    /// running containers they join.
    pub(super) fn join_namespaces(&self, rec: &Record) -> Result<()> {
        let wanted = joins(&rec.host_config);
        let shareable = rec.host_config.ipc_mode.as_deref() == Some("shareable");
        if wanted.is_empty() && !shareable {
            return Ok(());
        }
        let mut paths = Vec::new();
        // The /dev/shm to bind: its own (shareable) or the one of the container it joins.
        let mut shm: Option<PathBuf> = None;
        if shareable {
            self.mount_shm(rec)?;
            shm = Some(self.shm_dir(&rec.id));
        }
        for (typ, word, other) in wanted {
            let not_running = || {
                Error::InvalidArgument(format!(
                    "cannot join {word} of a non running container: {other}"
                ))
            };
            let o = self.get(other).map_err(|_| not_running())?;
            let live = self.live(&o);
            let pid = live
                .pid
                .filter(|_| live.status.is_active())
                .ok_or_else(not_running)?;
            if typ == "ipc" {
                let dir = self.shm_dir(&o.id);
                if o.host_config.ipc_mode.as_deref() != Some("shareable")
                    || !hako_sys::mountinfo::is_mounted(&dir)
                {
                    return Err(Error::InvalidArgument(format!(
                        "container {other}: non-shareable IPC (hint: use --ipc shareable for the donor container)"
                    )));
                }
                shm = Some(dir);
            }
            paths.push((typ, format!("/proc/{pid}/ns/{typ}")));
        }
        let file = self.container_dir(&rec.id).join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).ctx(|| "read config.json".into())?)
                .map_err(|e| Error::InvalidArgument(format!("config.json: {e}")))?;
        for n in spec["linux"]["namespaces"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some((_, p)) = paths.iter().find(|(t, _)| n["type"] == *t) {
                n["path"] = serde_json::json!(p);
            }
        }
        if let Some(dir) = &shm {
            for m in spec["mounts"].as_array_mut().into_iter().flatten() {
                if m["destination"] == "/dev/shm" {
                    *m = serde_json::json!({
                        "destination": "/dev/shm", "type": "bind", "source": dir,
                        "options": ["rbind", "nosuid", "noexec", "nodev"],
                    });
                }
            }
        }
        let bytes = serde_json::to_vec_pretty(&spec)
            .map_err(|e| Error::InvalidArgument(format!("write config.json: {e}")))?;
        crate::files::write(&file, &bytes, crate::files::PRIVATE).ctx(|| "write config.json".into())
    }

    /// Where a shareable container's /dev/shm is mounted on the host.
    pub(super) fn shm_dir(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("shm")
    }

    /// Mounts a shareable container's /dev/shm tmpfs (`--shm-size`, 64 MiB by default),
    /// unless it is mounted already (a restart).
    fn mount_shm(&self, rec: &Record) -> Result<()> {
        use nix::mount::{MsFlags, mount};
        let dir = self.shm_dir(&rec.id);
        if hako_sys::mountinfo::is_mounted(&dir) {
            return Ok(());
        }
        crate::files::dir(&dir, 0o700).ctx(|| format!("create {}", dir.display()))?;
        let size = rec
            .host_config
            .shm_size
            .filter(|s| *s > 0)
            .unwrap_or(64 << 20);
        mount(
            Some("shm"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
            Some(format!("mode=1777,size={size}").as_str()),
        )
        .map_err(|e| Error::Io {
            context: format!("mount the shareable /dev/shm at {}", dir.display()),
            source: e.into(),
        })
    }

    /// Unmounts a container's shareable /dev/shm if it is mounted (stop, exit, rm); a
    /// container that joined it keeps its own bind of it.
    pub(super) fn unmount_shm(&self, id: &str) {
        let dir = self.shm_dir(id);
        if hako_sys::mountinfo::is_mounted(&dir)
            && let Err(e) = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH)
        {
            tracing::warn!(container = %id, error = %e, "unmount the shareable /dev/shm");
        }
    }
}
