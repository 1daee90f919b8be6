//! [`ImageStore::push`]: blobs first, the manifest last, so a registry never holds a
//! manifest whose blobs are missing.
//!
//! A layer is pushed as the blob it is known by, when the target repository has one
//! (`HEAD`) or can mount one from another repository of the same registry: the digest the
//! image was pulled with, or any digest recorded for its diff id in `blob_sources` (Docker's
//! v2metadata: pulls and pushes record where a layer's tar lives as which blob). Otherwise
//! its tar is uploaded: the kept blob if the store has one; else the tar rebuilt from the
//! layer's tar-split record, as is when the layer came uncompressed (same digest), gzip- or
//! zstd-compressed anew when it came compressed (a new digest, as `docker push` does:
//! compressors do not reproduce each other's bytes). Per upload: `POST /blobs/uploads/`, then
//! one `PUT ?digest=` with the whole blob or `PATCH` chunks and an empty `PUT ?digest=`.
//!
//! The manifest pushed is the one the image came with when every layer is pushed as the
//! blob it names (so the digest stays the same, as with Docker), that manifest with the new
//! layer descriptors when some were compressed anew, else an OCI manifest built from the
//! layers.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::client::{Body, Client, expect};
use super::{Progress, ProgressStatus as S, PushOptions, PushReport, emit, short_id};
use crate::digest::{Digest, Hashing};
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::spec::{self, Descriptor};
use crate::store::{ImageRecord, ImageStore, LayerRecord};

/// A blob to push from a file.
#[derive(Debug, Clone)]
struct Blob {
    digest: Digest,
    size: u64,
    path: PathBuf,
    /// Progress is shown for layers only, as Docker does.
    progress: Option<String>,
}

/// A blob a layer is known by somewhere: its descriptor and, if known, the repository
/// (`registry/path`) that has it.
#[derive(Debug, Clone)]
struct Known {
    desc: Descriptor,
    repository: Option<String>,
}

/// Where one layer of the image stands before its push.
#[derive(Debug)]
struct LayerPlan<'a> {
    layer: &'a LayerRecord,
    /// The descriptor of the manifest the image came with, if any.
    original: Option<Descriptor>,
    /// The blob file kept in the store, if any.
    kept: Option<Descriptor>,
    /// Blobs it may already be known by (the original first).
    known: Vec<Known>,
}

impl ImageStore {
    /// `docker push`: uploads the image `reference` (`registry/repo[:tag]`) names to
    /// that registry and tag, and records the pushed manifest's digest in the image's
    /// `RepoDigests`.
    pub fn push(&self, reference: &str, opts: &PushOptions<'_>) -> Result<PushReport> {
        let r = Reference::parse(reference)?.with_default_tag();
        let Some(tag) = r.tag().filter(|_| r.digest().is_none()).map(str::to_string) else {
            return Err(Error::InvalidReference {
                reference: reference.to_string(),
                reason: "push needs a tag, not a digest",
            });
        };
        let id = self.resolve(reference)?;
        // Blobs and layers must stay while they are uploaded: hold off garbage collection,
        // and pin the layers against a concurrent `rmi`.
        let flight = self.in_flight()?;
        let r = (|| -> Result<PushReport> {
            let rec = self.image_record(&id)?;
            if let Some(top) = rec.layers.last() {
                flight.pin(self.chain_id_of(&top.cache_id)?.as_str())?;
            }
            let config_bytes = self.blobs.read(&id)?;
            let client = Client::new(
                r.domain(),
                opts.insecure,
                opts.credentials.clone(),
                format!("repository:{}:pull,push", r.path()),
            );
            let plans = self.push_plans(&id, &rec)?;
            for p in &plans {
                emit(opts.progress, &layer_id(p.layer), S::Preparing, 0, 0);
            }
            let config = Blob {
                digest: id.clone(),
                size: config_bytes.len() as u64,
                path: self.blobs.path(&id),
                progress: None,
            };
            let pushed = self.push_all(&client, &r, &config, &plans, opts)?;

            let (manifest_bytes, media_type) =
                self.manifest_for_push(&id, &config_bytes, &rec, &plans, &pushed)?;
            let digest = Digest::of(&manifest_bytes);
            let url = client.url(&format!("/v2/{}/manifests/{tag}", r.path()))?;
            let resp = client.call(
                "PUT",
                &url,
                &[("Content-Type", media_type.as_str())],
                &Body::Bytes(&manifest_bytes),
            )?;
            let resp = expect(resp, &[], || format!("push manifest {}", r.familiar()))?;
            if let Some(h) = resp.header("docker-content-digest")
                && let Ok(h) = Digest::parse(h)
                && h != digest
            {
                return Err(Error::DigestMismatch {
                    what: format!("manifest pushed to {}", r.familiar()),
                    expected: digest.to_string(),
                    actual: h.to_string(),
                });
            }
            self.add_repo_digest(&id, &format!("{}@{digest}", r.repository()))?;
            tracing::info!(reference = %r, %digest, "pushed");
            Ok(PushReport {
                tag,
                digest,
                size: manifest_bytes.len() as u64,
            })
        })();
        flight.complete();
        r
    }

    /// Pushes the config and every layer with `parallel` threads; the first error stops the
    /// others. Returns each layer's descriptor as pushed.
    fn push_all(
        &self,
        client: &Client,
        r: &Reference,
        config: &Blob,
        plans: &[LayerPlan<'_>],
        opts: &PushOptions<'_>,
    ) -> Result<Vec<Descriptor>> {
        let parallel = match opts.max_concurrent_uploads {
            0 => 5,
            n => n,
        };
        // Job 0 is the config, job i + 1 layer i.
        let jobs = plans.len() + 1;
        let next = AtomicUsize::new(0);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let pushed: Mutex<Vec<Option<Descriptor>>> = Mutex::new(vec![None; plans.len()]);
        std::thread::scope(|s| {
            for _ in 0..parallel.min(jobs) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= jobs || first_error.lock().is_ok_and(|e| e.is_some()) {
                            return;
                        }
                        let result = if i == 0 {
                            self.push_blob(client, r, config, &[], opts.chunk_size, None)
                                .map(|_| None)
                        } else {
                            self.push_layer(client, r, &plans[i - 1], opts).map(Some)
                        };
                        match result {
                            Ok(Some(d)) => {
                                pushed.lock().unwrap_or_else(|p| p.into_inner())[i - 1] = Some(d);
                            }
                            Ok(None) => {}
                            Err(e) => {
                                first_error
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .get_or_insert(e);
                                return;
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        pushed
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|d| d.ok_or_else(|| Error::bad("a layer was not pushed")))
            .collect()
    }

    /// What is known about each layer: the manifest the image came with, the blob kept in
    /// the store, the blobs recorded for its diff id.
    fn push_plans<'a>(&self, id: &Digest, rec: &'a ImageRecord) -> Result<Vec<LayerPlan<'a>>> {
        let original: Option<Vec<Descriptor>> = rec
            .manifest
            .as_ref()
            .and_then(|m| self.blobs.read(m).ok())
            .and_then(|b| spec::parse_manifest(&b).ok())
            .filter(|m| m.config.digest == id.as_str() && m.layers.len() == rec.layers.len())
            .map(|m| m.layers);
        // Repositories the image came from or went to: mount sources for the original blobs.
        let repos: Vec<String> = rec
            .repo_digests_full
            .iter()
            .filter_map(|n| n.split_once('@').map(|(name, _)| name.to_string()))
            .collect();
        let mut plans = Vec::new();
        for (i, l) in rec.layers.iter().enumerate() {
            let media_type = l
                .media_type
                .clone()
                .unwrap_or_else(|| spec::OCI_LAYER.into());
            let kept = match &l.blob {
                Some(b) if self.blobs.contains(b) => {
                    let size = std::fs::metadata(self.blobs.path(b))
                        .map_err(|e| Error::io(format!("stat blob {b}"), e))?
                        .len();
                    Some(Descriptor {
                        media_type: media_type.clone(),
                        digest: b.to_string(),
                        size,
                        platform: None,
                        annotations: Default::default(),
                    })
                }
                _ => None,
            };
            let original = original.as_ref().map(|o| o[i].clone());
            let mut known: Vec<Known> = Vec::new();
            if let Some(o) = &original {
                known.extend(repos.iter().map(|r| Known {
                    desc: o.clone(),
                    repository: Some(r.clone()),
                }));
                known.push(Known {
                    desc: o.clone(),
                    repository: None,
                });
            }
            if l.blob.as_ref() == Some(&l.diff_id) {
                // Came uncompressed: the rebuilt tar is that very blob.
                known.push(Known {
                    desc: Descriptor {
                        media_type: media_type.clone(),
                        digest: l.diff_id.to_string(),
                        size: l.diff_size,
                        platform: None,
                        annotations: Default::default(),
                    },
                    repository: None,
                });
            }
            known.extend(self.blob_sources(&l.diff_id)?);
            plans.push(LayerPlan {
                layer: l,
                original,
                kept,
                known,
            });
        }
        Ok(plans)
    }

    /// The blobs recorded for `diff_id`, newest first.
    fn blob_sources(&self, diff_id: &Digest) -> Result<Vec<Known>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT digest, media_type, size, repository FROM blob_sources
             WHERE diff_id = ?1 ORDER BY rowid DESC LIMIT 16",
        )?;
        let rows = stmt
            .query_map([diff_id.as_str()], |r| {
                Ok(Known {
                    desc: Descriptor {
                        digest: r.get(0)?,
                        media_type: r.get(1)?,
                        size: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        platform: None,
                        annotations: Default::default(),
                    },
                    repository: Some(r.get(3)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Records that `repository` has the tar of layer `diff_id` as blob `desc`.
    pub(crate) fn add_blob_source(
        &self,
        diff_id: &Digest,
        desc: &Descriptor,
        repository: &str,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO blob_sources (diff_id, digest, media_type, size, repository)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                diff_id.as_str(),
                desc.digest,
                desc.media_type,
                i64::try_from(desc.size).unwrap_or(i64::MAX),
                repository
            ],
        )?;
        Ok(())
    }

    /// Pushes one layer (see the module docs) and returns the descriptor it was pushed as.
    fn push_layer(
        &self,
        client: &Client,
        r: &Reference,
        plan: &LayerPlan<'_>,
        opts: &PushOptions<'_>,
    ) -> Result<Descriptor> {
        let l = plan.layer;
        let id = layer_id(l);
        let target = r.repository();
        // Mount sources: repositories of the same registry that are not the target.
        let mounts: Vec<(Digest, String)> = plan
            .known
            .iter()
            .filter_map(|k| {
                let repo = Reference::parse(k.repository.as_deref()?).ok()?;
                let digest = Digest::parse(&k.desc.digest).ok()?;
                (repo.domain() == r.domain() && repo.path() != r.path())
                    .then(|| (digest, repo.path().to_string()))
            })
            .take(3)
            .collect();
        if let Some(kept) = &plan.kept {
            let digest = Digest::parse(&kept.digest)?;
            let blob = Blob {
                digest: digest.clone(),
                size: kept.size,
                path: self.blobs.path(&digest),
                progress: Some(id),
            };
            self.push_blob(client, r, &blob, &mounts, opts.chunk_size, opts.progress)?;
            self.add_blob_source(&l.diff_id, kept, &target)?;
            return Ok(kept.clone());
        }
        // Already there under a known digest?
        let mut checked: Vec<&str> = Vec::new();
        for k in &plan.known {
            if checked.len() >= 3 || checked.contains(&k.desc.digest.as_str()) {
                continue;
            }
            checked.push(&k.desc.digest);
            let digest = Digest::parse(&k.desc.digest)?;
            if self.blob_exists(client, r, &digest)? {
                emit(opts.progress, &id, S::LayerAlreadyExists, 0, 0);
                self.add_blob_source(&l.diff_id, &k.desc, &target)?;
                return Ok(k.desc.clone());
            }
        }
        for (digest, from) in &mounts {
            if self.mount_blob(client, r, digest, from)? {
                emit(opts.progress, &id, S::Mounted, 0, 0);
                let k = plan
                    .known
                    .iter()
                    .find(|k| k.desc.digest == digest.as_str())
                    .ok_or_else(|| Error::bad("mounted an unknown blob"))?;
                self.add_blob_source(&l.diff_id, &k.desc, &target)?;
                return Ok(k.desc.clone());
            }
        }
        // Nowhere: rebuild the tar (and compress it anew if it came compressed).
        let media_type = plan
            .original
            .as_ref()
            .map(|o| o.media_type.clone())
            .or_else(|| l.media_type.clone())
            .unwrap_or_else(|| spec::OCI_LAYER.into());
        let (tmp, desc) = self.rebuild_layer_blob(l, &media_type)?;
        let digest = Digest::parse(&desc.digest)?;
        let blob = Blob {
            digest,
            size: desc.size,
            path: tmp.temp_path().to_path_buf(),
            progress: Some(id),
        };
        self.push_blob(client, r, &blob, &[], opts.chunk_size, opts.progress)?;
        drop(tmp);
        self.add_blob_source(&l.diff_id, &desc, &target)?;
        Ok(desc)
    }

    /// Writes layer `l`'s tar to a temporary blob, compressed as `media_type` says, after
    /// checking that the tar is the layer's (its diff id). Returns the temporary blob (gone
    /// when dropped) and its descriptor.
    fn rebuild_layer_blob(
        &self,
        l: &LayerRecord,
        media_type: &str,
    ) -> Result<(crate::blobs::BlobWriter, Descriptor)> {
        let mut out = self.blobs.writer()?;
        let mut tar = Hashing::new(self.layer_tar(l)?);
        let fail = |e| Error::io(format!("rebuild layer {}", l.diff_id), e);
        if media_type.ends_with("gzip") {
            let mut gz = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
            std::io::copy(&mut tar, &mut gz).map_err(fail)?;
            gz.finish().map_err(fail)?;
        } else if media_type.ends_with("zstd") {
            let mut z = zstd::stream::write::Encoder::new(&mut out, 3).map_err(fail)?;
            std::io::copy(&mut tar, &mut z).map_err(fail)?;
            z.finish().map_err(fail)?;
        } else {
            std::io::copy(&mut tar, &mut out).map_err(fail)?;
        }
        out.flush().map_err(fail)?;
        if tar.count != l.diff_size || tar.digest() != l.diff_id {
            return Err(Error::DigestMismatch {
                what: format!("rebuilt layer {}", l.diff_id),
                expected: l.diff_id.to_string(),
                actual: tar.digest().to_string(),
            });
        }
        let size = std::fs::metadata(out.temp_path())
            .map_err(|e| Error::io("stat rebuilt layer", e))?
            .len();
        let desc = Descriptor {
            media_type: media_type.to_string(),
            digest: out.digest().to_string(),
            size,
            platform: None,
            annotations: Default::default(),
        };
        Ok((out, desc))
    }

    /// The manifest to push (bytes, media type), given the descriptor each layer was
    /// pushed as.
    fn manifest_for_push(
        &self,
        id: &Digest,
        config: &[u8],
        rec: &ImageRecord,
        plans: &[LayerPlan<'_>],
        pushed: &[Descriptor],
    ) -> Result<(Vec<u8>, String)> {
        let same = |a: &Descriptor, b: &Descriptor| a.digest == b.digest && a.size == b.size;
        // The manifest the image came with, unchanged or with new layer descriptors.
        if let Some(m) = &rec.manifest
            && plans.iter().all(|p| p.original.is_some())
            && let Ok(bytes) = self.blobs.read(m)
            && let Ok(mut parsed) = spec::parse_manifest(&bytes)
        {
            let media_type = parsed.media_type.clone().unwrap_or_else(|| {
                if parsed.config.media_type == spec::DOCKER_CONFIG {
                    spec::DOCKER_MANIFEST.to_string()
                } else {
                    spec::OCI_MANIFEST.to_string()
                }
            });
            if parsed.layers.iter().zip(pushed).all(|(a, b)| same(a, b)) {
                return Ok((bytes, media_type));
            }
            for (l, p) in parsed.layers.iter_mut().zip(pushed) {
                *l = p.clone();
            }
            let bytes = serde_json::to_vec(&parsed).map_err(|e| Error::bad(e.to_string()))?;
            return Ok((bytes, media_type));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": spec::OCI_MANIFEST,
            "config": {"mediaType": spec::OCI_CONFIG, "digest": id.as_str(), "size": config.len()},
            "layers": pushed,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::bad(e.to_string()))?;
        Ok((bytes, spec::OCI_MANIFEST.to_string()))
    }

    /// Whether the target repository has blob `d`.
    fn blob_exists(&self, client: &Client, r: &Reference, d: &Digest) -> Result<bool> {
        let head = client.url(&format!("/v2/{}/blobs/{d}", r.path()))?;
        let resp = expect(
            client.call("HEAD", &head, &[], &Body::Empty)?,
            &[404],
            || format!("check blob {d} in {}", r.familiar_repository()),
        )?;
        Ok(resp.status() == 200)
    }

    /// Asks the registry to mount blob `d` from repository path `from` into the target;
    /// false if it would not (the upload session it opened instead is left to expire).
    fn mount_blob(&self, client: &Client, r: &Reference, d: &Digest, from: &str) -> Result<bool> {
        let url = client.url(&format!(
            "/v2/{}/blobs/uploads/?mount={d}&from={from}",
            r.path()
        ))?;
        let resp = expect(client.call("POST", &url, &[], &Body::Empty)?, &[], || {
            format!("mount blob {d} into {}", r.familiar_repository())
        })?;
        Ok(resp.status() == 201)
    }

    /// Uploads the blob `b` from its file unless the registry has it or mounts it from one
    /// of `mounts` (blobs of the same content in other repositories: digest, path).
    fn push_blob(
        &self,
        client: &Client,
        r: &Reference,
        b: &Blob,
        mounts: &[(Digest, String)],
        chunk_size: Option<u64>,
        progress: Option<Progress<'_>>,
    ) -> Result<()> {
        let progress = progress.filter(|_| b.progress.is_some());
        let id = b.progress.clone().unwrap_or_default();
        let what = || format!("push blob {} to {}", b.digest, r.familiar_repository());
        if self.blob_exists(client, r, &b.digest)? {
            emit(progress, &id, S::LayerAlreadyExists, 0, 0);
            return Ok(());
        }
        for (digest, from) in mounts.iter().filter(|(d, _)| *d == b.digest) {
            if self.mount_blob(client, r, digest, from)? {
                emit(progress, &id, S::Mounted, 0, 0);
                return Ok(());
            }
        }
        let url = client.url(&format!("/v2/{}/blobs/uploads/", r.path()))?;
        let resp = expect(client.call("POST", &url, &[], &Body::Empty)?, &[], what)?;
        let mut location = location_of(&resp, what)?;
        let path = b.path.clone();
        let report = |done: u64| emit(progress, &id, S::Pushing, done, b.size);
        let chunk = chunk_size.filter(|c| *c > 0 && *c < b.size);
        let final_body = if let Some(chunk) = chunk {
            let mut offset = 0;
            while offset < b.size {
                let len = chunk.min(b.size - offset);
                let range = format!("{offset}-{}", offset + len - 1);
                let sent = |n: u64| report(offset + n);
                let url = client.url(&location)?;
                let resp = client.call(
                    "PATCH",
                    &url,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", &range),
                    ],
                    &Body::File {
                        path: &path,
                        offset,
                        len,
                        progress: &sent,
                    },
                )?;
                let resp = expect(resp, &[], what)?;
                location = location_of(&resp, what)?;
                offset += len;
            }
            None
        } else {
            Some(b.size)
        };
        let url = client.url(&location)?;
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}digest={}", b.digest);
        let body = match final_body {
            Some(len) => Body::File {
                path: &path,
                offset: 0,
                len,
                progress: &report,
            },
            None => Body::Empty,
        };
        let resp = client.call(
            "PUT",
            &url,
            &[("Content-Type", "application/octet-stream")],
            &body,
        )?;
        expect(resp, &[], what)?;
        emit(progress, &id, S::Pushed, b.size, b.size);
        Ok(())
    }

    /// Records `name@digest` for image `id`.
    fn add_repo_digest(&self, id: &Digest, name: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?1, ?2)",
            rusqlite::params![name, id.as_str()],
        )?;
        Ok(())
    }
}

fn location_of(resp: &ureq::Response, what: impl FnOnce() -> String) -> Result<String> {
    resp.header("location")
        .map(str::to_string)
        .ok_or_else(|| Error::bad(format!("{}: registry sent no upload location", what())))
}

/// A layer's id in progress output: the short diff id, as Docker shows it.
fn layer_id(l: &LayerRecord) -> String {
    short_id(l.diff_id.as_str())
}
