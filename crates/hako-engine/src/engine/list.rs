//! `docker ps` / `GET /containers/json`: Docker's summaries, filters and `Status` text.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerSummary, ContainerSummaryHostConfig, ContainerSummaryNetworkSettings,
    ContainerSummaryStateEnum, MountPoint,
};

use crate::error::{Error, Result};
use crate::filters::Filters;
use crate::records::Record;
use crate::state::Status;
use crate::units::{human_duration, now, parse_rfc3339, parse_rfc3339_nanos};

use super::Engine;
use super::status::LiveState;

/// The filter keys `ps` accepts (Docker's).
pub const CONTAINER_FILTERS: &[&str] = &[
    "id",
    "name",
    "label",
    "status",
    "exited",
    "ancestor",
    "before",
    "since",
    "volume",
    "network",
    "health",
    "isolation",
    "is-task",
    "publish",
    "expose",
];

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ContainerListOptions {
    /// Stopped containers too.
    pub all: bool,
    /// Only the `n` most recently created (of any status).
    pub limit: Option<usize>,
    /// Fill `SizeRw` and `SizeRootFs` (walks the writable layers: slow).
    pub size: bool,
    /// Docker's `ps` filters.
    pub filters: Filters,
}

/// What a summary needs beyond the record, read once for the whole listing.
struct Parts<'a> {
    health: Option<&'a str>,
    mounts: Vec<MountPoint>,
    net: hako_net::ContainerNet,
    /// The image id the container's image name means now.
    current_image: Option<&'a str>,
}

impl Engine {
    /// `docker ps`: newest first.
    pub fn containers(&self, o: &ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        let f = &o.filters;
        f.validate(CONTAINER_FILTERS)?;
        for s in f.get("status") {
            if !matches!(
                s.as_str(),
                "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
            ) {
                return Err(Error::InvalidArgument(format!(
                    "invalid filter 'status={s}'"
                )));
            }
        }
        for h in f.get("health") {
            if !matches!(h.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
                return Err(Error::InvalidArgument(format!(
                    "Unrecognised filter value for health: {h}"
                )));
            }
        }
        let name_res = f
            .get("name")
            .iter()
            .map(|n| {
                regex::Regex::new(n)
                    .map_err(|e| Error::InvalidArgument(format!("invalid filter 'name={n}': {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let list = self.list_with(true)?;
        let created_of = |what: &str| -> Result<Option<(i64, u32)>> {
            let rec = self.get(what)?;
            Ok(parse_rfc3339_nanos(&rec.created))
        };
        let before = f
            .get("before")
            .first()
            .map(|b| created_of(b))
            .transpose()?
            .flatten();
        let since = f
            .get("since")
            .first()
            .map(|s| created_of(s))
            .transpose()?
            .flatten();
        let all = o.all || o.limit.is_some() || f.contains("status") || f.contains("exited");
        // Every container's network records and image names in a few queries, not a few
        // per container (a list of 100 spent most of its time preparing SQL).
        let mut nets = self.net.snapshot().unwrap_or_default();
        let mut resolved: HashMap<String, Option<String>> = HashMap::new();
        // With sizes: every image's size from one list, not a list per container (a store
        // of 1,000 containers and images spent minutes in `system df`: bench/check.sh).
        let image_sizes: Option<HashMap<String, i64>> = o
            .size
            .then(|| -> Result<_> {
                Ok(self
                    .images
                    .list()?
                    .into_iter()
                    .map(|i| {
                        (
                            i.id.as_str().to_string(),
                            i64::try_from(i.size).unwrap_or(i64::MAX),
                        )
                    })
                    .collect())
            })
            .transpose()?;
        let mut out = Vec::new();
        for (rec, live) in &list {
            if !all && !live.status.is_active() {
                continue;
            }
            let created = parse_rfc3339_nanos(&rec.created);
            if before.is_some_and(|b| created.is_none_or(|c| c >= b))
                || since.is_some_and(|s| created.is_none_or(|c| c <= s))
            {
                continue;
            }
            let health = self.health_status(rec, live);
            let labels = rec.config.labels.clone().unwrap_or_default();
            let mounts = self.mount_points(&rec.id);
            let slash_name = format!("/{}", rec.name);
            let keep = f.any("id", |v| rec.id.starts_with(v))
                && (name_res.is_empty() || name_res.iter().any(|r| r.is_match(&slash_name)))
                && f.labels_match("label", &labels)
                && f.any("status", |v| state_name(rec, live) == v)
                && f.any("exited", |v| {
                    live.status == Status::Exited && v.parse::<i32>().ok() == Some(live.exit_code)
                })
                && f.any("ancestor", |v| self.is_ancestor(rec, v))
                && f.any("volume", |v| {
                    mounts.iter().any(|m| {
                        m.name.as_deref() == Some(v) || m.destination.as_deref() == Some(v)
                    })
                })
                && f.any("health", |v| health.as_deref().unwrap_or("none") == v)
                && f.any("network", |v| {
                    rec.host_config.network_mode.as_deref().unwrap_or("default") == v
                })
                && f.any("is-task", |v| v == "false")
                && f.any("isolation", |v| v == "default")
                && f.any("publish", |_| false)
                && f.any("expose", |_| false);
            if !keep {
                continue;
            }
            let cn = nets.containers.remove(&rec.id).unwrap_or_default();
            let current = resolved
                .entry(rec.image.clone())
                .or_insert_with(|| {
                    self.images
                        .resolve(&rec.image)
                        .ok()
                        .map(|d| d.as_str().to_string())
                })
                .clone();
            out.push(self.summary(
                rec,
                live,
                Parts {
                    health: health.as_deref(),
                    mounts,
                    net: cn,
                    current_image: current.as_deref(),
                },
                image_sizes.as_ref(),
            ));
            if o.limit.is_some_and(|n| out.len() >= n) {
                break;
            }
        }
        Ok(out)
    }

    /// `ancestor=IMAGE`: the container runs that image (name, `name:tag`, or id prefix).
    fn is_ancestor(&self, rec: &Record, v: &str) -> bool {
        if rec.image_id.is_empty() {
            return false;
        }
        let hex = rec.image_id.trim_start_matches("sha256:");
        let want = v.trim_start_matches("sha256:");
        if want.len() >= 4 && hex.starts_with(want) {
            return true;
        }
        rec.image == v
            || self
                .images
                .resolve(v)
                .is_ok_and(|d| d.as_str() == rec.image_id)
    }

    fn summary(
        &self,
        rec: &Record,
        live: &LiveState,
        parts: Parts<'_>,
        image_sizes: Option<&HashMap<String, i64>>,
    ) -> ContainerSummary {
        let Parts {
            health,
            mounts,
            net: cn,
            current_image,
        } = parts;
        let (size_rw, size_root_fs) = match image_sizes {
            Some(sizes) => {
                let rw = self.rw_size(&rec.id);
                let image = sizes.get(&rec.image_id).copied().unwrap_or(0);
                (Some(rw), Some(rw + image))
            }
            None => (None, None),
        };
        let command = std::iter::once(rec.path.as_str())
            .chain(rec.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        // Docker's refreshImage: the name the container was made from while it still means
        // the same image, else the image id (after an untag or a retag).
        let image = if rec.image_id.is_empty()
            || rec.image == rec.image_id
            || current_image == Some(rec.image_id.as_str())
        {
            rec.image.clone()
        } else {
            rec.image_id.clone()
        };
        ContainerSummary {
            id: Some(rec.id.clone()),
            names: Some(vec![format!("/{}", rec.name)]),
            image: Some(image),
            image_id: Some(rec.image_id.clone()),
            command: Some(command),
            created: parse_rfc3339(&rec.created),
            ports: Some(if live.status.is_active() {
                self.port_summaries(rec)
            } else {
                Vec::new()
            }),
            size_rw,
            size_root_fs,
            labels: Some(rec.config.labels.clone().unwrap_or_default()),
            state: Some(match live.status {
                _ if in_removal(rec, live) => ContainerSummaryStateEnum::REMOVING,
                Status::Created => ContainerSummaryStateEnum::CREATED,
                Status::Running => ContainerSummaryStateEnum::RUNNING,
                Status::Paused => ContainerSummaryStateEnum::PAUSED,
                Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
                Status::Exited => ContainerSummaryStateEnum::EXITED,
                Status::Dead => ContainerSummaryStateEnum::DEAD,
            }),
            status: Some(if in_removal(rec, live) {
                "Removal In Progress".into()
            } else {
                status_text(live, health)
            }),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: Some(
                    rec.host_config
                        .network_mode
                        .clone()
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| "default".into()),
                ),
                annotations: None,
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: self.network_settings_of(rec, cn).networks,
            }),
            mounts: Some(mounts),
            ..Default::default()
        }
    }

    /// Bytes in a container's writable layer; 0 for `--rootfs` ones.
    pub fn rw_size(&self, id: &str) -> i64 {
        self.images
            .container_paths(id)
            .ok()
            .and_then(|p| p.get("UpperDir").map(crate::units::dir_size))
            .and_then(|n| i64::try_from(n).ok())
            .unwrap_or(0)
    }

    /// The mount points recorded at create (`mounts.json`).
    pub(super) fn mount_points(&self, id: &str) -> Vec<MountPoint> {
        std::fs::read(self.container_dir(id).join("mounts.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// Docker's `RemovalInProgress` as `ps` and `inspect` show it: a container whose removal
/// a process has claimed reads `removing` once its process is gone (until then, as
/// Docker, it reads as running).
pub(super) fn in_removal(rec: &Record, live: &LiveState) -> bool {
    rec.removing && !live.status.is_active()
}

/// Docker's lower-case state name (`State` of `ps`, the `status` filter).
fn state_name(rec: &Record, live: &LiveState) -> &'static str {
    if in_removal(rec, live) {
        "removing"
    } else {
        live.status.as_str()
    }
}

fn ago(t: Option<&str>) -> String {
    let then = t.and_then(parse_rfc3339).unwrap_or_else(now);
    human_duration(u64::try_from(now() - then).unwrap_or(0))
}

/// Docker's `Status` column: `Up 5 minutes (healthy)`, `Exited (0) 2 hours ago`, ...
pub fn status_text(l: &LiveState, health: Option<&str>) -> String {
    let health = match health {
        Some("starting") => " (health: starting)".to_string(),
        Some(h) => format!(" ({h})"),
        None => String::new(),
    };
    match l.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}{health}", ago(l.started_at.as_deref())),
        Status::Paused => format!("Up {} (Paused)", ago(l.started_at.as_deref())),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            l.exit_code,
            ago(l.finished_at.as_deref())
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            l.exit_code,
            ago(l.finished_at.as_deref())
        ),
        Status::Dead => "Dead".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(status: Status) -> LiveState {
        LiveState {
            status,
            pid: None,
            started_at: Some(crate::now_rfc3339()),
            finished_at: Some(crate::now_rfc3339()),
            exit_code: 3,
            restart_count: 0,
            oom_killed: false,
            monitor: false,
        }
    }

    #[test]
    fn status_texts() {
        assert_eq!(status_text(&live(Status::Created), None), "Created");
        assert_eq!(
            status_text(&live(Status::Running), Some("healthy")),
            "Up Less than a second (healthy)"
        );
        assert_eq!(
            status_text(&live(Status::Running), Some("starting")),
            "Up Less than a second (health: starting)"
        );
        assert_eq!(
            status_text(&live(Status::Exited), None),
            "Exited (3) Less than a second ago"
        );
        assert_eq!(
            status_text(&live(Status::Paused), None),
            "Up Less than a second (Paused)"
        );
    }
}
