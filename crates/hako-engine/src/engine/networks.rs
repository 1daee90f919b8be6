//! Network listing and pruning with Docker's filters, and network events: what `hako
//! network ls|prune` and `GET /networks`, `POST /networks/prune` share.

use std::collections::BTreeMap;

use bollard_stubs::models::NetworkInspect;

use crate::error::Result;
use crate::filters::Filters;

use super::Engine;

/// The filters of `network ls` (Docker's).
pub const NETWORK_FILTERS: &[&str] =
    &["dangling", "driver", "id", "label", "name", "scope", "type"];
/// The filters of `network prune`.
pub const NETWORK_PRUNE_FILTERS: &[&str] = &["label", "label!", "until"];

/// Whether `n` is one of the networks hako makes itself.
fn builtin(n: &NetworkInspect) -> bool {
    matches!(n.name.as_deref(), Some("bridge" | "host" | "none"))
}

impl Engine {
    /// `network ls`: the networks `f` keeps (name and id match substrings, labels all
    /// match, `type=custom|builtin`, `dangling=true|false` for no containers), sorted by
    /// name, without their containers (as Docker's list).
    pub fn networks(&self, f: &Filters) -> Result<Vec<NetworkInspect>> {
        f.validate(NETWORK_FILTERS)?;
        for t in f.get("type") {
            if t != "custom" && t != "builtin" {
                return Err(crate::Error::InvalidArgument(format!(
                    "invalid filter: 'type'='{t}'"
                )));
            }
        }
        let dangling = f.bool("dangling")?;
        let mut out = Vec::new();
        for n in self.network_list()? {
            let id = n.id.clone().unwrap_or_default();
            let name = n.name.clone().unwrap_or_default();
            let labels = n.labels.clone().unwrap_or_default();
            let keep = f.any("name", |v| name.contains(v))
                && f.any("id", |v| id.contains(v))
                && f.any("driver", |v| n.driver.as_deref() == Some(v))
                && f.any("scope", |v| v == "local")
                && f.any("type", |v| (v == "builtin") == builtin(&n))
                && f.labels_match("label", &labels);
            if !keep {
                continue;
            }
            if let Some(d) = dangling {
                // Docker: the built-in networks are never dangling.
                let unused = !builtin(&n) && self.net().network_containers(&id)?.is_empty();
                if d != unused {
                    continue;
                }
            }
            out.push(n);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `network prune`: removes the user networks no container is attached to (a created
    /// container counts) that `f` keeps (`label`, `label!`, `until`); their names.
    pub fn networks_prune(&self, f: &Filters) -> Result<Vec<String>> {
        f.validate(NETWORK_PRUNE_FILTERS)?;
        let until = match f.get("until").last() {
            Some(u) => Some(crate::events::parse_time(u)?),
            None => None,
        };
        let mut out = Vec::new();
        for n in self.network_list()? {
            let id = n.id.clone().unwrap_or_default();
            let labels = n.labels.clone().unwrap_or_default();
            if builtin(&n)
                || !f.labels_match("label", &labels)
                || !f.labels_match("label!", &labels)
                || !self.net().network_containers(&id)?.is_empty()
            {
                continue;
            }
            if let Some(until) = until {
                let created = n
                    .created
                    .as_deref()
                    .and_then(|c| crate::events::parse_time(c).ok())
                    .unwrap_or(i64::MAX);
                if created >= until {
                    continue;
                }
            }
            // Taken by a container meanwhile, or removed by another process: not ours.
            if self.network_remove(&id).is_ok() {
                out.push(n.name.unwrap_or_default());
            }
        }
        Ok(out)
    }

    /// A network event: `create`, `destroy` (the network's name and driver), `connect`,
    /// `disconnect` (with the container's id), as Docker's.
    pub(crate) fn network_event(
        &self,
        action: &str,
        id: &str,
        name: &str,
        driver: &str,
        container: Option<&str>,
    ) {
        let mut a = BTreeMap::new();
        a.insert("name".to_string(), name.to_string());
        a.insert("type".to_string(), driver.to_string());
        if let Some(c) = container {
            a.insert("container".to_string(), c.to_string());
        }
        self.emit("network", action, id, a);
    }
}
