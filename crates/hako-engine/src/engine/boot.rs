//! `hako system boot`: without a daemon, nothing brings `--restart always` and
//! `unless-stopped` containers back after a reboot (or after every hako process and shim
//! was killed). This step does, run once at boot by `scripts/hako-boot.service`.
//!
//! Docker's rules: `always` comes back even if it was stopped by hand before; an
//! `unless-stopped` one only if it was not (the marker `stopped` in the container's
//! directory, written by `stop`/`kill` and removed by every start). `on-failure` and `no`
//! stay down.

use bollard_stubs::models::RestartPolicyNameEnum;

use crate::error::Result;
use crate::records::Record;

use super::Engine;
use super::runtime::runtime_error;

/// The marker of a container stopped by hand (`stop`, `kill`).
const STOPPED_MARKER: &str = "stopped";

/// What [`Engine::boot`] did: the containers started, and those that failed with why.
#[derive(Debug, Default)]
pub struct BootReport {
    /// Ids of the containers started.
    pub started: Vec<String>,
    /// Ids and errors of those that did not start.
    pub failed: Vec<(String, String)>,
}

impl Engine {
    /// Records that `rec` was stopped by hand (see the module doc).
    pub(super) fn mark_stopped(&self, rec: &Record, stopped: bool) {
        let marker = self.container_dir(&rec.id).join(STOPPED_MARKER);
        if stopped {
            let _ = crate::files::write(&marker, b"", crate::files::PRIVATE);
        } else {
            let _ = std::fs::remove_file(marker);
        }
    }

    /// Starts every `always` / `unless-stopped` container that is not running, clearing
    /// what a killed shim left behind (runtime state, shim files) first.
    pub fn boot(&self) -> Result<BootReport> {
        let mut report = BootReport::default();
        for (rec, live) in self.list()? {
            let policy = rec
                .host_config
                .restart_policy
                .as_ref()
                .and_then(|p| p.name)
                .unwrap_or(RestartPolicyNameEnum::EMPTY);
            let wanted = match policy {
                RestartPolicyNameEnum::ALWAYS => true,
                RestartPolicyNameEnum::UNLESS_STOPPED => {
                    !self.container_dir(&rec.id).join(STOPPED_MARKER).exists()
                }
                _ => false,
            };
            if !wanted || (live.status.is_active() && live.monitor) {
                continue;
            }
            if let Err(e) = self
                .reset_leftovers(&rec)
                .and_then(|()| self.start(&rec.id).map(|_| ()))
            {
                report.failed.push((rec.id.clone(), e.to_string()));
            } else {
                report.started.push(rec.id.clone());
            }
        }
        Ok(report)
    }

    /// After a crash or a reboot: the runtime's state of the dead container and the shim's
    /// files go, so the container is merely created again.
    fn reset_leftovers(&self, rec: &Record) -> Result<()> {
        let _ = self.runtime_run(rec, "delete", &["delete", "--force", &rec.id]);
        let dir = self.state_dir(&rec.id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(runtime_error(
                "start",
                format!("remove the dead shim's state {}: {e}", dir.display()),
            )),
        }
    }
}
