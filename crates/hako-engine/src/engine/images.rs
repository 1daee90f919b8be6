//! Images as both front ends see them: Docker's list, inspect, history, tag, remove and
//! prune, over the image store, with their events.

use std::collections::{BTreeMap, HashMap};

use bollard_stubs::models::{
    ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect, ImagePruneResponse,
    ImageSummary,
};
use hako_image::{BlobStore, RemoveAction, spec::ImageConfig};

use crate::error::{Error, Result};
use crate::filters::{Filters, glob};
use crate::units::{parse_rfc3339, parse_rfc3339_nanos};

use super::Engine;

/// The filter keys `images` accepts (Docker's).
pub const IMAGE_FILTERS: &[&str] = &["reference", "dangling", "before", "since", "label", "until"];
/// The filter keys `image prune` accepts (Docker's).
pub const IMAGE_PRUNE_FILTERS: &[&str] = &["dangling", "label", "label!", "until"];

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ImageListOptions {
    /// Intermediate images too (hako keeps none).
    pub all: bool,
    /// Docker's image filters.
    pub filters: Filters,
}

impl Engine {
    /// `docker images`: newest first. A `reference` filter also narrows `RepoTags`.
    pub fn image_list(&self, o: &ImageListOptions) -> Result<Vec<ImageSummary>> {
        let f = &o.filters;
        f.validate(IMAGE_FILTERS)?;
        let dangling = f.bool("dangling")?;
        let created_of = |name: &str| -> Result<(i64, u32)> {
            let v = self
                .images
                .inspect(name)
                .map_err(|e| self.image_error(e, name))?;
            Ok(precise(v["Created"].as_str()).unwrap_or((0, 0)))
        };
        let before = f.get("before").first().map(|n| created_of(n)).transpose()?;
        let since = f.get("since").first().map(|n| created_of(n)).transpose()?;
        let until = f
            .get("until")
            .first()
            .map(|u| crate::events::parse_time(u))
            .transpose()?;
        let mut list = self.images.list()?;
        list.sort_by_key(|i| std::cmp::Reverse(precise(i.created.as_deref())));
        // The labels cache keeps only images that still exist.
        self.image_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| list.iter().any(|i| i.id.as_str() == id));
        let mut out = Vec::new();
        for img in list {
            let created = precise(img.created.as_deref());
            if dangling.is_some_and(|d| d != img.repo_tags.is_empty())
                || before.is_some_and(|b| created.is_none_or(|c| c >= b))
                || since.is_some_and(|s| created.is_none_or(|c| c <= s))
                || until.is_some_and(|u| created.is_none_or(|c| nanos(c) > u))
            {
                continue;
            }
            let labels = if f.contains("label") || f.contains("label!") {
                self.image_labels(img.id.as_str())
            } else {
                HashMap::new()
            };
            if (f.contains("label") && !f.labels_match("label", &labels))
                || (f.contains("label!") && !f.labels_match("label!", &labels))
            {
                continue;
            }
            let mut tags = img.repo_tags.clone();
            if f.contains("reference") {
                tags.retain(|t| {
                    let repo = t.rsplit_once(':').map_or(t.as_str(), |(r, _)| r);
                    f.get("reference")
                        .iter()
                        .any(|p| glob(p, t) || glob(p, repo))
                });
                if tags.is_empty() {
                    continue;
                }
            }
            let labels = if labels.is_empty() {
                self.image_labels(img.id.as_str())
            } else {
                labels
            };
            out.push(ImageSummary {
                id: img.id.to_string(),
                parent_id: String::new(),
                repo_tags: tags,
                repo_digests: img.repo_digests.clone(),
                created: img.created.as_deref().and_then(parse_rfc3339).unwrap_or(0),
                size: i64::try_from(img.size).unwrap_or(i64::MAX),
                shared_size: -1,
                labels,
                containers: i64::try_from(img.containers).unwrap_or(0),
                ..Default::default()
            });
        }
        Ok(out)
    }

    fn image_labels(&self, id: &str) -> HashMap<String, String> {
        if let Some(l) = self
            .image_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return l.clone();
        }
        // The config blob alone (the image id is its digest): a whole inspect per image
        // (record, tags, layers, driver paths) made `images` on 1,000 images take ~0.3 s.
        let Ok(config) = hako_image::Digest::parse(id)
            .and_then(|d| self.images.image_config(&d))
            .and_then(|b| ImageConfig::parse(&b))
        else {
            return HashMap::new();
        };
        let labels: HashMap<String, String> = config
            .config
            .as_ref()
            .and_then(|c| c.get("Labels"))
            .and_then(serde_json::Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        self.image_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), labels.clone());
        labels
    }

    /// `docker image inspect`.
    pub fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        let v = self
            .images
            .inspect(name)
            .map_err(|e| self.image_error(e, name))?;
        serde_json::from_value(v)
            .map_err(|e| Error::InvalidArgument(format!("image {name}: bad record: {e}")))
    }

    /// `docker history`: newest first; each layer's size is the one the image's `Size`
    /// adds up (so `history` and `images` agree).
    pub fn image_history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>> {
        let id = self
            .images
            .resolve(name)
            .map_err(|e| self.image_error(e, name))?;
        let config = ImageConfig::parse(&BlobStore::open(self.images.root())?.read(&id)?)?;
        let inspect = self.images.inspect(id.as_str())?;
        let tags: Vec<String> = inspect["RepoTags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut sizes = self.images.layer_sizes(id.as_str())?.into_iter();
        let mut rows = Vec::new();
        for h in &config.history {
            let empty = h["empty_layer"].as_bool().unwrap_or(false);
            let size = if empty { Some(0) } else { sizes.next() };
            rows.push(ImageHistoryResponseItem {
                id: "<missing>".into(),
                created: h["created"].as_str().and_then(parse_rfc3339).unwrap_or(0),
                created_by: h["created_by"].as_str().unwrap_or("").to_string(),
                tags: Vec::new(),
                size: size.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1),
                comment: h["comment"].as_str().unwrap_or("").to_string(),
            });
        }
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top.id = id.to_string();
            top.tags = tags;
        }
        Ok(rows)
    }

    /// `docker tag SOURCE TARGET`.
    pub fn image_tag(&self, source: &str, target: &str) -> Result<()> {
        self.images
            .tag(source, target)
            .map_err(|e| self.image_error(e, source))?;
        let id = self.images.resolve(target)?;
        self.image_event("tag", id.as_str(), &familiar(target));
        Ok(())
    }

    /// `docker rmi`: Docker's `Untagged`/`Deleted` items.
    pub fn image_remove(&self, name: &str, force: bool) -> Result<Vec<ImageDeleteResponseItem>> {
        let id = self.images.resolve(name).ok();
        let actions = self
            .images
            .remove(name, force)
            .map_err(|e| self.image_error(e, name))?;
        let id = id.map(|d| d.to_string()).unwrap_or_default();
        Ok(actions
            .into_iter()
            .map(|a| match a {
                RemoveAction::Untagged(t) => {
                    self.image_event("untag", &id, &t);
                    ImageDeleteResponseItem {
                        untagged: Some(t),
                        deleted: None,
                    }
                }
                RemoveAction::Deleted(d) => {
                    self.image_event("delete", d.as_str(), d.as_str());
                    ImageDeleteResponseItem {
                        untagged: None,
                        deleted: Some(d.to_string()),
                    }
                }
            })
            .collect())
    }

    /// `docker image prune`: dangling images, or every image no container uses with
    /// `dangling=false`; `until` and `label` narrow it.
    pub fn image_prune(&self, filters: &Filters) -> Result<ImagePruneResponse> {
        filters.validate(IMAGE_PRUNE_FILTERS)?;
        let all = filters.bool("dangling")? == Some(false);
        if !filters.contains("until") && !filters.contains("label") && !filters.contains("label!") {
            let report = self.images.prune(all)?;
            for d in &report.images_deleted {
                self.image_event("delete", d.as_str(), d.as_str());
            }
            return Ok(ImagePruneResponse {
                images_deleted: Some(
                    report
                        .images_deleted
                        .iter()
                        .map(|d| ImageDeleteResponseItem {
                            untagged: None,
                            deleted: Some(d.to_string()),
                        })
                        .collect(),
                ),
                space_reclaimed: Some(i64::try_from(report.space_reclaimed).unwrap_or(0)),
            });
        }
        let until = filters
            .get("until")
            .first()
            .map(|u| crate::events::parse_time(u))
            .transpose()?;
        let mut deleted = Vec::new();
        let mut space = 0i64;
        for img in self.images.list()? {
            if (!all && !img.repo_tags.is_empty()) || img.containers > 0 {
                continue;
            }
            let created = precise(img.created.as_deref());
            if until.is_some_and(|u| created.is_none_or(|c| nanos(c) > u)) {
                continue;
            }
            let labels = self.image_labels(img.id.as_str());
            if (filters.contains("label") && !filters.labels_match("label", &labels))
                || (filters.contains("label!") && !filters.labels_match("label!", &labels))
            {
                continue;
            }
            match self.image_remove(img.id.as_str(), false) {
                Ok(items) => {
                    if items.iter().any(|i| i.deleted.is_some()) {
                        space += i64::try_from(img.size).unwrap_or(0);
                    }
                    deleted.extend(items);
                }
                // In use by a container made meanwhile, or gone already.
                Err(_) => continue,
            }
        }
        let _ = self.images.prune(false);
        Ok(ImagePruneResponse {
            images_deleted: Some(deleted),
            space_reclaimed: Some(space),
        })
    }

    /// An image event; `name` is the reference it is about.
    pub(super) fn image_event(&self, action: &str, id: &str, name: &str) {
        let mut a = BTreeMap::new();
        a.insert("name".to_string(), name.to_string());
        self.emit("image", action, id, a);
    }

    /// The store's "no such image" in Docker's words (`No such image: busybox:latest`).
    pub(super) fn image_error(&self, e: hako_image::Error, name: &str) -> Error {
        match e {
            hako_image::Error::NoSuchImage(_) => {
                Error::Image(hako_image::Error::NoSuchImage(familiar(name)))
            }
            other => other.into(),
        }
    }
}

/// `busybox` → `busybox:latest` (what Docker names in its messages and events).
pub(super) fn familiar(name: &str) -> String {
    if name.starts_with("sha256:") || name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return name.to_string();
    }
    hako_image::Reference::parse(name)
        .map(|r| r.with_default_tag().familiar())
        .unwrap_or_else(|_| name.to_string())
}

fn precise(s: Option<&str>) -> Option<(i64, u32)> {
    s.and_then(parse_rfc3339_nanos)
}

fn nanos((secs, n): (i64, u32)) -> i64 {
    secs.saturating_mul(1_000_000_000)
        .saturating_add(i64::from(n))
}
