//! `docker container prune` and `docker volume prune` with Docker's filters (the removal
//! itself is in `housekeeping.rs`).

use bollard_stubs::models::{ContainerPruneResponse, VolumePruneResponse};

use crate::error::{Error, Result};
use crate::filters::Filters;
use crate::units::parse_rfc3339_nanos;

use super::Engine;

/// The filter keys `container prune` accepts.
pub const CONTAINER_PRUNE_FILTERS: &[&str] = &["until", "label", "label!"];
/// The filter keys `volume prune` accepts.
pub const VOLUME_PRUNE_FILTERS: &[&str] = &["label", "label!", "all"];

impl Engine {
    /// Removes stopped containers created before `until` whose labels match. Containers
    /// that fail to go are skipped and returned as errors.
    pub fn container_prune(&self, f: &Filters) -> Result<(ContainerPruneResponse, Vec<Error>)> {
        f.validate(CONTAINER_PRUNE_FILTERS)?;
        let until = f
            .get("until")
            .first()
            .map(|u| crate::events::parse_time(u))
            .transpose()?;
        let (removed, space, errors) = self.prune_containers(|rec, _| {
            let created = parse_rfc3339_nanos(&rec.created)
                .map(|(s, n)| s.saturating_mul(1_000_000_000).saturating_add(i64::from(n)));
            if until.is_some_and(|u| created.is_none_or(|c| c >= u)) {
                return true;
            }
            let labels = rec.config.labels.clone().unwrap_or_default();
            !(f.labels_match("label", &labels) && f.labels_match("label!", &labels))
        })?;
        Ok((
            ContainerPruneResponse {
                containers_deleted: Some(removed),
                space_reclaimed: Some(i64::try_from(space).unwrap_or(i64::MAX)),
            },
            errors,
        ))
    }

    /// Removes volumes no container uses: anonymous ones, or all with `all=true`
    /// (Docker 23+); `label` narrows it.
    pub fn volume_prune(&self, f: &Filters) -> Result<VolumePruneResponse> {
        f.validate(VOLUME_PRUNE_FILTERS)?;
        let all = f.bool("all")?.unwrap_or(false);
        let (removed, space) = self.prune_volumes(all, |v| {
            !(f.labels_match("label", &v.labels) && f.labels_match("label!", &v.labels))
        })?;
        Ok(VolumePruneResponse {
            volumes_deleted: Some(removed),
            space_reclaimed: Some(i64::try_from(space).unwrap_or(i64::MAX)),
        })
    }
}
