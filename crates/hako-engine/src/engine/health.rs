//! Healthchecks as the engine sees them: the shim runs them and keeps the result in
//! `<state-dir>/health.json` (Docker's `State.Health`).

use bollard_stubs::models::{Health, HealthConfig};

use crate::records::Record;

use super::Engine;
use super::exec::ExecOptions;
use super::status::LiveState;

/// The file the shim writes.
pub(super) const HEALTH_FILE: &str = "health.json";

impl Engine {
    /// `State.Health` of a running container with a healthcheck.
    pub(super) fn health(&self, rec: &Record, live: &LiveState) -> Option<Health> {
        if !live.status.is_active() || !has_healthcheck(rec) {
            return None;
        }
        let h = std::fs::read(self.state_dir(&rec.id).join(HEALTH_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Health>(&b).ok());
        Some(h.unwrap_or_else(|| Health {
            status: Some(bollard_stubs::models::HealthStatusEnum::STARTING),
            failing_streak: Some(0),
            log: Some(Vec::new()),
        }))
    }

    /// `starting`, `healthy` or `unhealthy` for a running container with a healthcheck.
    pub(super) fn health_status(&self, rec: &Record, live: &LiveState) -> Option<String> {
        self.health(rec, live)
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none")
    }
}

/// Whether the container's (merged) config has a healthcheck that is not `NONE`.
pub(super) fn has_healthcheck(rec: &Record) -> bool {
    rec.config
        .healthcheck
        .as_ref()
        .and_then(|h| h.test.as_ref())
        .and_then(|t| t.first())
        .is_some_and(|first| first != "NONE")
}

/// The probe's command: `CMD` runs as given, `CMD-SHELL` through `/bin/sh -c`.
pub(super) fn health_probe(h: &HealthConfig) -> ExecOptions {
    let test = h.test.clone().unwrap_or_default();
    let cmd = match test.split_first() {
        Some((kind, rest)) if kind == "CMD-SHELL" => {
            vec!["/bin/sh".to_string(), "-c".to_string(), rest.join(" ")]
        }
        Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
        _ => test,
    };
    ExecOptions {
        cmd,
        ..Default::default()
    }
}
