//! `--pid container:NAME` and `--ipc container:NAME`: the container joins another one's
//! PID or IPC namespace. The other container must exist at create and run at each start
//! (Docker's rules); the bundle's namespace gets the path of that container's init at
//! every start, since a restarted container has a new init.

use bollard_stubs::models::HostConfig;

use crate::error::{Error, IoContext, Result};
use crate::records::Record;

use super::Engine;

/// The namespaces `h` joins: (spec type, Docker's word for it, the other container).
fn joins(h: &HostConfig) -> Vec<(&'static str, &'static str, &str)> {
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
        if wanted.is_empty() {
            return Ok(());
        }
        let mut paths = Vec::new();
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
        let bytes = serde_json::to_vec_pretty(&spec)
            .map_err(|e| Error::InvalidArgument(format!("write config.json: {e}")))?;
        crate::files::write(&file, &bytes, crate::files::PRIVATE).ctx(|| "write config.json".into())
    }
}
