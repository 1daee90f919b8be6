//! [`ImageStore::push`]: blobs first, the manifest last, so a registry never holds a
//! manifest whose blobs are missing.
//!
//! Per blob: `HEAD` (already there?), a cross-repository mount when the image came from
//! another repository of the same registry, else `POST /blobs/uploads/` and either one
//! `PUT ?digest=` with the whole blob or `PATCH` chunks then an empty `PUT ?digest=`.
//! The manifest pushed is the one the image was pulled with when the store still has it
//! (so the digest stays the same, as with Docker), else an OCI manifest built from the
//! stored blobs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::client::{Body, Client, expect};
use super::{Progress, ProgressStatus as S, PushOptions, PushReport, emit, short_id};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::spec;
use crate::store::ImageStore;

/// The manifest to push: bytes, media type, layer blobs (digest, size).
type PushManifest = (Vec<u8>, String, Vec<(Digest, u64)>);

/// A blob to push.
#[derive(Debug, Clone)]
struct Blob {
    digest: Digest,
    size: u64,
    /// Progress is shown for layers only, as Docker does.
    layer: bool,
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
        // Blobs must stay while they are uploaded: hold off garbage collection.
        let flight = self.in_flight()?;
        let r = (|| -> Result<PushReport> {
            let rec = self.image_record(&id)?;
            let config_bytes = self.blobs.read(&id)?;
            let (manifest_bytes, media_type, layers) =
                self.manifest_for_push(&id, &config_bytes, &rec)?;
            let mut blobs = vec![Blob {
                digest: id.clone(),
                size: config_bytes.len() as u64,
                layer: false,
            }];
            blobs.extend(layers.into_iter().map(|(digest, size)| Blob {
                digest,
                size,
                layer: true,
            }));

            let client = Client::new(
                r.domain(),
                opts.insecure,
                opts.credentials.clone(),
                format!("repository:{}:pull,push", r.path()),
            );
            // A repository of the same registry the image came from: blobs can be mounted.
            let mount_from: Option<String> = rec.repo_digests_full.iter().find_map(|n| {
                let (name, _) = n.split_once('@')?;
                let src = Reference::parse(name).ok()?;
                (src.domain() == r.domain() && src.path() != r.path())
                    .then(|| src.path().to_string())
            });
            for b in blobs.iter().filter(|b| b.layer) {
                emit(
                    opts.progress,
                    &short_id(b.digest.as_str()),
                    S::Preparing,
                    0,
                    0,
                );
            }
            let parallel = match opts.max_concurrent_uploads {
                0 => 5,
                n => n,
            };
            let next = AtomicUsize::new(0);
            let first_error: Mutex<Option<Error>> = Mutex::new(None);
            std::thread::scope(|s| {
                for _ in 0..parallel.min(blobs.len()) {
                    s.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            if i >= blobs.len() || first_error.lock().is_ok_and(|e| e.is_some()) {
                                return;
                            }
                            let progress = if blobs[i].layer { opts.progress } else { None };
                            let pushed = self.push_blob(
                                &client,
                                &r,
                                &blobs[i],
                                mount_from.as_deref(),
                                opts.chunk_size,
                                progress,
                            );
                            if let Err(e) = pushed {
                                first_error
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .get_or_insert(e);
                                return;
                            }
                        }
                    });
                }
            });
            if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(e);
            }

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

    /// The manifest to push (bytes, media type) and its layer blobs (digest, size).
    fn manifest_for_push(
        &self,
        id: &Digest,
        config: &[u8],
        rec: &crate::store::ImageRecord,
    ) -> Result<PushManifest> {
        let mut layers = Vec::new();
        for l in &rec.layers {
            let blob = l
                .blob
                .clone()
                .ok_or_else(|| Error::bad(format!("layer {} has no stored content", l.diff_id)))?;
            let size = std::fs::metadata(self.blobs.path(&blob))
                .map_err(|e| Error::io(format!("stat blob {blob}"), e))?
                .len();
            layers.push((blob, size));
        }
        // The manifest the image came with, if it still describes exactly these blobs.
        if let Some(m) = &rec.manifest
            && let Ok(bytes) = self.blobs.read(m)
            && let Ok(parsed) = spec::parse_manifest(&bytes)
            && parsed.config.digest == id.as_str()
            && parsed.layers.len() == layers.len()
            && parsed
                .layers
                .iter()
                .zip(&layers)
                .all(|(a, (d, s))| a.digest == d.as_str() && a.size == *s)
        {
            let media_type = parsed.media_type.clone().unwrap_or_else(|| {
                if parsed.config.media_type == spec::DOCKER_CONFIG {
                    spec::DOCKER_MANIFEST.to_string()
                } else {
                    spec::OCI_MANIFEST.to_string()
                }
            });
            return Ok((bytes, media_type, layers));
        }
        let mut descs = Vec::new();
        for (d, size) in &layers {
            descs.push(
                json!({"mediaType": self.layer_media_type(d)?, "digest": d.as_str(), "size": size}),
            );
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": spec::OCI_MANIFEST,
            "config": {"mediaType": spec::OCI_CONFIG, "digest": id.as_str(), "size": config.len()},
            "layers": descs,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::bad(e.to_string()))?;
        Ok((bytes, spec::OCI_MANIFEST.to_string(), layers))
    }

    /// The OCI media type of a stored layer blob, from its first bytes.
    fn layer_media_type(&self, d: &Digest) -> Result<&'static str> {
        use std::io::Read;
        let mut head = [0u8; 4];
        let mut f = self.blobs.open_blob(d)?;
        let n = f
            .read(&mut head)
            .map_err(|e| Error::io(format!("read blob {d}"), e))?;
        Ok(match &head[..n] {
            [0x1f, 0x8b, ..] => spec::OCI_LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => spec::OCI_LAYER_ZSTD,
            _ => spec::OCI_LAYER,
        })
    }

    /// Uploads one blob unless the registry has it.
    fn push_blob(
        &self,
        client: &Client,
        r: &Reference,
        b: &Blob,
        mount_from: Option<&str>,
        chunk_size: Option<u64>,
        progress: Option<Progress<'_>>,
    ) -> Result<()> {
        let id = short_id(b.digest.as_str());
        let what = || format!("push blob {} to {}", b.digest, r.familiar_repository());
        let head = client.url(&format!("/v2/{}/blobs/{}", r.path(), b.digest))?;
        let resp = expect(client.call("HEAD", &head, &[], &Body::Empty)?, &[404], what)?;
        if resp.status() == 200 {
            emit(progress, &id, S::LayerAlreadyExists, 0, 0);
            return Ok(());
        }
        let mut start = format!("/v2/{}/blobs/uploads/", r.path());
        if let Some(from) = mount_from {
            start = format!("{start}?mount={}&from={from}", b.digest);
        }
        let url = client.url(&start)?;
        let resp = expect(client.call("POST", &url, &[], &Body::Empty)?, &[], what)?;
        if resp.status() == 201 {
            emit(progress, &id, S::Mounted, 0, 0);
            return Ok(());
        }
        let mut location = location_of(&resp, what)?;
        let path = self.blobs.path(&b.digest);
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
