//! `docker update`: new resource limits for a container, applied to its cgroup now if it
//! runs (the runtime's `update`) and kept in its record and its bundle for every later start.

use std::time::Duration;

use bollard_stubs::models::ContainerUpdateBody;
use hako_shim::protocol::{Reply, Request};

use crate::error::{Error, IoContext, Result};
use crate::records;

use super::Engine;
use super::status::request_timeout;
use super::validate::{restart_arg, validate_host_config};

impl Engine {
    /// Docker's update: zero or empty fields keep their value (the docker CLI sends every
    /// field). Returns Docker's warnings. A new restart policy applies at once: the running
    /// container's shim is told (as dockerd's monitor follows it), and the record keeps it.
    pub fn update(&self, what: &str, u: &ContainerUpdateBody) -> Result<Vec<String>> {
        let mut rec = self.get(what)?;
        let h = &mut rec.host_config;
        let set = |dst: &mut Option<i64>, v: Option<i64>| {
            if let Some(v) = v.filter(|v| *v != 0) {
                *dst = Some(v);
            }
        };
        set(&mut h.memory, u.memory);
        set(&mut h.memory_swap, u.memory_swap);
        set(&mut h.memory_reservation, u.memory_reservation);
        set(&mut h.nano_cpus, u.nano_cpus);
        set(&mut h.cpu_shares, u.cpu_shares);
        set(&mut h.cpu_quota, u.cpu_quota);
        set(&mut h.cpu_period, u.cpu_period);
        set(&mut h.pids_limit, u.pids_limit);
        if let Some(w) = u.blkio_weight.filter(|w| *w != 0) {
            h.blkio_weight = Some(w);
        }
        for (dst, v) in [
            (&mut h.cpuset_cpus, &u.cpuset_cpus),
            (&mut h.cpuset_mems, &u.cpuset_mems),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                *dst = Some(v.clone());
            }
        }
        if u.nano_cpus.is_some_and(|n| n != 0) && (h.cpu_quota.is_some_and(|q| q > 0)) {
            return Err(Error::InvalidArgument(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
                    .into(),
            ));
        }
        let new_policy = u.restart_policy.as_ref().filter(|p| p.name.is_some());
        if let Some(p) = new_policy {
            if h.auto_remove == Some(true)
                && p.name
                    .as_ref()
                    .is_some_and(|n| n.to_string() != "no" && !n.to_string().is_empty())
            {
                return Err(Error::InvalidArgument(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container"
                        .into(),
                ));
            }
            h.restart_policy = Some(p.clone());
        }
        validate_host_config(h)?;
        let active = self.live(&rec).status.is_active();
        if active {
            let mut res = crate::spec::resources(&rec.host_config);
            if let Some(o) = res.as_object_mut() {
                o.remove("devices");
            }
            let file = self.state_dir(&rec.id).join("update-resources.json");
            std::fs::write(&file, serde_json::to_vec(&res).unwrap_or_default())
                .ctx(|| format!("write {}", file.display()))?;
            let path = file.to_string_lossy().into_owned();
            let r = self.runtime_run(&rec, "update", &["update", "--resources", &path, &rec.id]);
            let _ = std::fs::remove_file(&file);
            r?;
        }
        self.update_bundle_resources(&rec)?;
        records::update(&self.conn(), &rec)?;
        let mut warnings = Vec::new();
        if active && new_policy.is_some() {
            let policy = restart_arg(&rec.host_config);
            let asked = request_timeout(
                &self.state_dir(&rec.id),
                &Request::SetRestartPolicy {
                    policy: policy.clone(),
                },
                Duration::from_secs(5),
            );
            if !matches!(asked, Ok(Reply::Ok)) {
                warnings.push(format!(
                    "the restart policy {policy} is saved but applies from the next start: the container's monitor did not take it ({asked:?})"
                ));
            }
        }
        self.container_event(&rec, "update", &[]);
        Ok(warnings)
    }

    /// Writes the new resources into the bundle's config.json, so the next start (of a
    /// stopped container, or a restart) runs with them; the devices stay as created.
    fn update_bundle_resources(&self, rec: &records::Record) -> Result<()> {
        let file = self.container_dir(&rec.id).join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).ctx(|| "read config.json".into())?)
                .map_err(|e| Error::InvalidArgument(format!("config.json: {e}")))?;
        let serde_json::Value::Object(new) = crate::spec::resources(&rec.host_config) else {
            return Ok(());
        };
        let res = &mut spec["linux"]["resources"];
        if !res.is_object() {
            *res = serde_json::json!({});
        }
        for (k, v) in new {
            if k != "devices" {
                res[k] = v;
            }
        }
        let json = serde_json::to_vec(&spec)
            .map_err(|e| Error::InvalidArgument(format!("config.json: {e}")))?;
        crate::files::write(&file, &json, crate::files::PRIVATE).ctx(|| "write config.json".into())
    }
}
