//! `docker commit` and `docker diff` as a stream: a container's own changes (its
//! writable layer) become a layer tar, and with commit the new top layer of a new image.
//!
//! ```text
//!   driver.diff(container) ──pipe──► blobs.write ──► blob (uncompressed tar, kept: save
//!                                                    and push need the layer as it was)
//!                                         │
//!   image layers + blob ──► unpack_layers ──► new layer dir ──► config (parent's config,
//!   --change applied, diff id and history appended) ──► commit_image (one transaction)
//! ```
//!
//! The container layer itself is not touched: the new image's top layer is a fresh
//! unpack of the tar, so the container can keep running and be removed independently.

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::import::{apply_change, now_rfc3339_nanos, parse_tag};
use crate::spec::ImageConfig;
use crate::store::{ImageStore, LayerSource};

/// Options of [`ImageStore::commit`] (`docker commit`'s flags).
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `repo[:tag]` to tag the new image with.
    pub reference: Option<String>,
    /// Dockerfile instructions applied to the config (`--change 'CMD ["sh"]'`), as for import.
    pub changes: Vec<String>,
    /// The history comment (`--message`).
    pub message: Option<String>,
    /// The image author (`--author`).
    pub author: Option<String>,
    /// `--pause` (Docker's default: true). The store knows no processes: the caller (the
    /// engine) freezes the container around [`ImageStore::commit`] when this is set.
    pub pause: bool,
    /// Docker-shaped config fields that replace the image's before `changes` apply:
    /// `Env` by variable and `Labels`, `ExposedPorts`, `Volumes` by key (as ENV, LABEL,
    /// EXPOSE and VOLUME do); any other field as given (`null` clears it).
    pub config: Option<Map<String, Value>>,
    /// The history's `created_by`: Docker writes the container's command there (the
    /// engine fills it in).
    pub created_by: Option<String>,
}

impl ImageStore {
    /// The container's writable layer and the cache id of the image layer below it.
    fn container_layers(&self, container_id: &str) -> Result<(Digest, Option<String>)> {
        let image = self.container_image(container_id)?;
        let top: Option<String> = self.conn().query_row(
            "SELECT top_layer FROM container_layers WHERE container_id = ?1",
            [container_id],
            |r| r.get(0),
        )?;
        let parent = match top {
            Some(t) => Some(self.conn().query_row(
                "SELECT cache_id FROM layers WHERE chain_id = ?1",
                [t],
                |r| r.get(0),
            )?),
            None => None,
        };
        Ok((image, parent))
    }

    /// Writes what the container changed relative to its image as an uncompressed OCI
    /// layer tar (deletions as `.wh.NAME`, opaque directories as `.wh..wh..opq`).
    pub fn export_diff(&self, container_id: &str, out: &mut dyn Write) -> Result<()> {
        let (_, parent) = self.container_layers(container_id)?;
        Ok(self.driver.diff(container_id, parent.as_deref(), out)?)
    }

    /// `docker commit`: a new image made of the container's image plus one layer with
    /// the container's changes. Returns the new image id.
    pub fn commit(&self, container_id: &str, opts: &CommitOptions) -> Result<Digest> {
        let tag = opts.reference.as_deref().map(parse_tag).transpose()?;
        let flight = self.in_flight()?;
        let r = (|| -> Result<Digest> {
            let (image, parent) = self.container_layers(container_id)?;
            let mut config: ImageConfig = serde_json::from_slice(&self.blobs.read(&image)?)
                .map_err(|e| Error::bad(format!("config of image {image}: {e}")))?;
            let mut container_config = config.config.take().unwrap_or_default();
            if let Some(over) = &opts.config {
                overlay(&mut container_config, over);
            }
            for c in &opts.changes {
                apply_change(&mut container_config, c)?;
            }
            let record = self.image_record(&image)?;

            let blob = self.write_diff_blob(container_id, parent.as_deref())?;
            let _layers = self.lock_layers()?;
            let mut sources: Vec<LayerSource> = record
                .layers
                .iter()
                .map(|l| LayerSource {
                    diff_id: Some(l.diff_id.clone()),
                    // Present already, so never read.
                    blob: l.blob.clone().unwrap_or_else(|| l.diff_id.clone()),
                    media_type: crate::spec::OCI_LAYER.into(),
                })
                .collect();
            sources.push(LayerSource {
                diff_id: None,
                blob: blob.clone(),
                media_type: crate::spec::OCI_LAYER.into(),
            });
            let (pending, top) = self.unpack_layers(&flight, &sources)?;
            let result = (|| {
                let top = top
                    .as_ref()
                    .ok_or_else(|| Error::bad("commit produced no layer"))?;
                let diff_id: String = self
                    .conn()
                    .query_row(
                        "SELECT diff_id FROM layers WHERE chain_id = ?1",
                        [top.as_str()],
                        |r| r.get(0),
                    )
                    .or_else(|_| {
                        pending
                            .last()
                            .map(|p| p.diff_id.to_string())
                            .ok_or(rusqlite::Error::QueryReturnedNoRows)
                    })?;
                let now = now_rfc3339_nanos();
                config.rootfs.diff_ids.push(diff_id);
                config.created = Some(now.clone());
                config.author = opts.author.clone();
                config.config = Some(container_config);
                let mut history = serde_json::Map::new();
                history.insert("created".into(), json!(now));
                if let Some(a) = &opts.author {
                    history.insert("author".into(), json!(a));
                }
                if let Some(c) = opts.created_by.as_deref().filter(|c| !c.is_empty()) {
                    history.insert("created_by".into(), json!(c));
                }
                if let Some(m) = &opts.message {
                    history.insert("comment".into(), json!(m));
                }
                config.history.push(Value::Object(history));
                let bytes = serde_json::to_vec(&config)
                    .map_err(|e| Error::bad(format!("encode config: {e}")))?;
                let id = self.blobs.write_bytes(&bytes)?;
                self.commit_image(
                    &id,
                    Some(&now),
                    &pending,
                    Some(top),
                    None,
                    tag.as_slice(),
                    None,
                )?;
                Ok(id)
            })();
            if result.is_err() {
                for p in &pending {
                    let _ = self.driver.remove(&p.cache_id);
                }
            }
            result
        })();
        flight.finish(r)
    }

    /// Streams the container's diff into the blob store through a pipe (no temp file,
    /// no copy in memory).
    pub(crate) fn write_diff_blob(
        &self,
        container_id: &str,
        parent: Option<&str>,
    ) -> Result<Digest> {
        let (mut reader, mut writer) = std::io::pipe().map_err(|e| Error::io("create pipe", e))?;
        let driver = &*self.driver;
        let (written, diffed) = std::thread::scope(|s| {
            let h = s.spawn(move || {
                let r = driver.diff(container_id, parent, &mut writer);
                drop(writer);
                r
            });
            let written = self.blobs.write(&mut reader, None);
            drop(reader);
            (written, h.join())
        });
        let diffed = diffed.map_err(|_| Error::bad("diff thread panicked"))?;
        match (written, diffed) {
            (Ok((blob, _)), Ok(())) => Ok(blob),
            (Ok((blob, _)), Err(e)) => {
                let _ = self.blobs.remove(&blob);
                Err(e.into())
            }
            (Err(e), _) => Err(e),
        }
    }
}

/// Puts `over`'s fields into the config `base` (see [`CommitOptions::config`]).
pub fn overlay(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (k.as_str(), v) {
            ("Env", Value::Array(vars)) => {
                let mut env = match base.remove("Env") {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                for var in vars {
                    let key = |e: &Value| {
                        e.as_str()
                            .map(|s| s.split_once('=').map_or(s, |(k, _)| k).to_string())
                    };
                    let name = key(var);
                    env.retain(|e| key(e) != name);
                    env.push(var.clone());
                }
                base.insert(k.clone(), Value::Array(env));
            }
            ("Labels" | "ExposedPorts" | "Volumes", Value::Object(add)) => {
                let mut map = match base.remove(k) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                map.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
                base.insert(k.clone(), Value::Object(map));
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_merges_env_and_maps_by_key_and_replaces_the_rest() {
        let mut base = json!({
            "Env": ["PATH=/bin", "A=1"], "Labels": {"a": "1"}, "Cmd": ["sh"], "User": "u"
        })
        .as_object()
        .cloned()
        .unwrap();
        let over = json!({"Env": ["A=2", "B"], "Labels": {"b": "2"}, "Cmd": null, "User": "v"});
        overlay(&mut base, over.as_object().unwrap());
        assert_eq!(
            Value::Object(base),
            json!({
                "Env": ["PATH=/bin", "A=2", "B"], "Labels": {"a": "1", "b": "2"},
                "Cmd": null, "User": "v"
            })
        );
    }
}
