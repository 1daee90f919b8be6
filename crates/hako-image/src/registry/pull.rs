//! [`ImageStore::pull`]: manifest → config → layers → unpack → register.
//!
//! Each blob is streamed into `blobs/partial/<hex>` under an exclusive `flock` (two pulls
//! of one blob, in threads or processes, download it once), hashed on the way, and renamed
//! into the blob store only when its size and digest are the announced ones. A partial
//! file left by an interrupted pull is re-hashed and continued with `Range: bytes=N-`; a
//! registry that answers 200 instead of 206 sends the whole blob again.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest as _, Sha256};

use super::client::{Body, Client, expect, read_limited};
use super::{Progress, ProgressStatus as S, PullOptions, PullReport, emit, short_id};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::spec::{self, Descriptor, ImageConfig};
use crate::store::{ImageStore, LayerSource};

/// Manifests and indexes are small; refuse anything absurd.
const MAX_MANIFEST: u64 = 4 << 20;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

impl ImageStore {
    /// `docker pull`: fetches `reference` (`[registry/]repo[:tag|@digest]`) and registers
    /// it, tagged (unless pulled by digest) and with its `RepoDigests`. The image is
    /// listed only after every blob was verified and every layer unpacked; on error
    /// nothing new is listed. Blobs already in the store are not downloaded again, and a
    /// download interrupted earlier resumes.
    pub fn pull(&self, reference: &str, opts: &PullOptions<'_>) -> Result<PullReport> {
        let r = Reference::parse(reference)?.with_default_tag();
        let platform = opts
            .platform
            .clone()
            .unwrap_or_else(|| self.platform.clone());
        let client = Client::new(
            r.domain(),
            opts.insecure,
            opts.credentials.clone(),
            format!("repository:{}:pull", r.path()),
        );
        let flight = self.in_flight()?;
        let r = (|| -> Result<PullReport> {
            let wanted = match (r.digest(), r.tag()) {
                (Some(d), _) => d.to_string(),
                (None, Some(t)) => t.to_string(),
                (None, None) => "latest".to_string(),
            };
            let (top_bytes, top_type, top_digest) = fetch_manifest(&client, &r, &wanted)?;
            if let Some(d) = r.digest()
                && *d != top_digest
            {
                return Err(mismatch(
                    format!("manifest {}", r.familiar()),
                    d,
                    &top_digest,
                ));
            }
            let (bytes, manifest_digest) = if spec::is_index(&top_type) {
                let index = spec::parse_index(&top_bytes)?;
                let pick = index.pick(&platform)?;
                let d = Digest::parse(&pick.digest)?;
                let (bytes, media_type, got) = fetch_manifest(&client, &r, d.as_str())?;
                if got != d {
                    return Err(mismatch(format!("manifest {d}"), &d, &got));
                }
                if spec::is_index(&media_type) {
                    return Err(Error::bad(format!("{}: nested image index", r.familiar())));
                }
                (bytes, d)
            } else {
                (top_bytes, top_digest.clone())
            };
            let manifest = spec::parse_manifest(&bytes)?;

            fetch_blob(
                self,
                &client,
                &r,
                &manifest.config,
                None,
                &AtomicBool::new(false),
            )?;
            let config_digest = Digest::parse(&manifest.config.digest)?;
            let config = ImageConfig::parse(&self.blobs.read(&config_digest)?)?;
            if config.os != platform.os || config.architecture != platform.architecture {
                return Err(Error::NoMatchingPlatform {
                    wanted: platform.to_string(),
                    available: format!("{}/{}", config.os, config.architecture),
                });
            }
            let diff_ids = config.diff_ids()?;
            if diff_ids.len() != manifest.layers.len() {
                return Err(Error::bad(format!(
                    "{}: config has {} layers, manifest {}",
                    r.familiar(),
                    diff_ids.len(),
                    manifest.layers.len()
                )));
            }

            // Layers whose chain is already unpacked need no download ("Already exists").
            let mut parent: Option<Digest> = None;
            let mut downloads = Vec::new();
            for (l, diff_id) in manifest.layers.iter().zip(&diff_ids) {
                let chain = Digest::chain(parent.as_ref(), diff_id);
                let id = short_id(&l.digest);
                if self.has_layer(&chain)? {
                    emit(opts.progress, &id, S::AlreadyExists, 0, 0);
                } else {
                    emit(opts.progress, &id, S::PullingFsLayer, 0, 0);
                    downloads.push(l.clone());
                }
                parent = Some(chain);
            }
            let parallel = match opts.max_concurrent_downloads {
                0 => 3,
                n => n,
            };
            for l in downloads.iter().skip(parallel) {
                emit(opts.progress, &short_id(&l.digest), S::Waiting, 0, 0);
            }
            fetch_parallel(self, &client, &r, &downloads, opts.progress, parallel)?;
            self.blobs.write_bytes(&bytes)?;

            let sources: Vec<LayerSource> = manifest
                .layers
                .iter()
                .zip(diff_ids)
                .map(|(l, diff_id)| {
                    Ok(LayerSource {
                        diff_id: Some(diff_id),
                        blob: Digest::parse(&l.digest)?,
                        media_type: l.media_type.clone(),
                    })
                })
                .collect::<Result<_>>()?;
            let new = self.resolve(config_digest.as_str()).is_err();
            let _layers = self.lock_layers()?;
            let step = |i: usize, done: bool| {
                let l = &manifest.layers[i];
                let was_downloaded = downloads.iter().any(|d| d.digest == l.digest);
                match (done, was_downloaded) {
                    (false, _) => emit(
                        opts.progress,
                        &short_id(&l.digest),
                        S::Extracting,
                        0,
                        l.size,
                    ),
                    (true, true) => {
                        emit(opts.progress, &short_id(&l.digest), S::PullComplete, 0, 0)
                    }
                    (true, false) => {}
                }
            };
            let (pending, top) = self.unpack_layers_with(&flight, &sources, &step)?;
            let tags: Vec<Reference> = if r.digest().is_none() {
                vec![r.clone()]
            } else {
                vec![]
            };
            let repo_digest = format!("{}@{}", r.repository(), top_digest);
            let result = self.commit_image(
                &config_digest,
                config.created.as_deref(),
                &pending,
                top.as_ref(),
                Some(&manifest_digest),
                &tags,
                Some(&repo_digest),
            );
            if result.is_err() {
                for p in pending.iter().rev() {
                    let _ = self.driver.remove(&p.cache_id);
                }
            }
            result?;
            // Where each layer's tar lives as a blob: a later push mounts it from here.
            for (l, diff_id) in manifest.layers.iter().zip(config.diff_ids()?) {
                self.add_blob_source(&diff_id, l, &r.repository())?;
            }
            tracing::info!(reference = %r, id = %config_digest, digest = %top_digest, "pulled");
            Ok(PullReport {
                id: config_digest,
                digest: top_digest,
                reference: r.familiar(),
                new,
            })
        })();
        flight.finish(r)
    }

    fn has_layer(&self, chain: &Digest) -> Result<bool> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM layers WHERE chain_id = ?1",
                [chain.as_str()],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false))
    }
}

fn mismatch(what: String, expected: &Digest, actual: &Digest) -> Error {
    Error::DigestMismatch {
        what,
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

/// GETs a manifest by tag or digest: its bytes, media type and digest (computed; a
/// `Docker-Content-Digest` header that disagrees is an error).
fn fetch_manifest(
    client: &Client,
    r: &Reference,
    tag_or_digest: &str,
) -> Result<(Vec<u8>, String, Digest)> {
    let url = client.url(&format!("/v2/{}/manifests/{tag_or_digest}", r.path()))?;
    let resp = client.call("GET", &url, &[("Accept", ACCEPT)], &Body::Empty)?;
    let name = if tag_or_digest.starts_with("sha256:") {
        format!("{}@{tag_or_digest}", r.familiar_repository())
    } else {
        format!("{}:{tag_or_digest}", r.familiar_repository())
    };
    let resp =
        expect(resp, &[], || format!("manifest for {name} not found")).map_err(|e| match e {
            // Docker's wording for a missing tag or repository.
            Error::Registry {
                status: 404,
                code,
                detail,
            } if code != "manifest unknown" => Error::Registry {
                status: 404,
                code: "manifest unknown".into(),
                detail: format!("{detail} ({code})"),
            },
            e => e,
        })?;
    let header_digest = resp.header("docker-content-digest").map(str::to_string);
    let content_type = resp
        .header("content-type")
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
        .unwrap_or_default();
    let bytes = read_limited(resp, MAX_MANIFEST, &format!("manifest {name}"))?;
    let digest = Digest::of(&bytes);
    if let Some(h) = header_digest
        && let Ok(h) = Digest::parse(&h)
        && h != digest
    {
        return Err(mismatch(format!("manifest {name}"), &h, &digest));
    }
    // The body's own mediaType wins over a generic Content-Type.
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let head: Head =
        serde_json::from_slice(&bytes).map_err(|e| Error::bad(format!("manifest {name}: {e}")))?;
    let media_type = match (head.media_type, head.manifests) {
        (Some(m), _) => m,
        (None, Some(_)) => spec::OCI_INDEX.to_string(),
        (None, None) if spec::is_index(&content_type) => content_type,
        (None, None) => spec::OCI_MANIFEST.to_string(),
    };
    Ok((bytes, media_type, digest))
}

/// Downloads `layers` with `parallel` threads; the first error stops the others.
fn fetch_parallel(
    store: &ImageStore,
    client: &Client,
    r: &Reference,
    layers: &[Descriptor],
    progress: Option<Progress<'_>>,
    parallel: usize,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..parallel.min(layers.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= layers.len() || cancel.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Err(e) = fetch_blob(store, client, r, &layers[i], progress, &cancel) {
                        cancel.store(true, Ordering::SeqCst);
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
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Downloads one blob into the store (see the module docs). Returns at once if the store
/// has it.
fn fetch_blob(
    store: &ImageStore,
    client: &Client,
    r: &Reference,
    desc: &Descriptor,
    progress: Option<Progress<'_>>,
    cancel: &AtomicBool,
) -> Result<()> {
    let d = Digest::parse(&desc.digest)?;
    let id = short_id(d.as_str());
    let total = desc.size;
    if store.blobs.contains(&d) {
        emit(progress, &id, S::DownloadComplete, total, total);
        return Ok(());
    }
    let path = store.blobs.partial_path(&d);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx(|| format!("open {}", path.display()))?;
    let mut file = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io(format!("lock {}", path.display()), e.into()))?;
    if store.blobs.contains(&d) {
        // Another thread or process finished it while we waited for the lock.
        emit(progress, &id, S::DownloadComplete, total, total);
        return Ok(());
    }
    let what = format!("blob {d} of {}", r.familiar_repository());
    let url = client.url(&format!("/v2/{}/blobs/{d}", r.path()))?;
    let mut restarted = false;
    loop {
        // Re-hash what an earlier attempt left.
        let mut have = file
            .metadata()
            .ctx(|| format!("stat {}", path.display()))?
            .len();
        if have > total {
            file.set_len(0)
                .ctx(|| format!("truncate {}", path.display()))?;
            have = 0;
        }
        let mut hasher = Sha256::new();
        file.seek(SeekFrom::Start(0))
            .ctx(|| format!("seek {}", path.display()))?;
        std::io::copy(&mut (&mut *file).take(have), &mut HashWriter(&mut hasher))
            .ctx(|| format!("read {}", path.display()))?;
        if have < total {
            let range = format!("bytes={have}-");
            let headers: Vec<(&str, &str)> = if have > 0 {
                vec![("Range", &range)]
            } else {
                vec![]
            };
            let resp = client.call("GET", &url, &headers, &Body::Empty)?;
            let resp = expect(resp, &[416], || what.clone())?;
            match resp.status() {
                206 => {}
                416 if !restarted => {
                    file.set_len(0)
                        .ctx(|| format!("truncate {}", path.display()))?;
                    restarted = true;
                    continue;
                }
                _ => {
                    // A full answer: start over.
                    file.set_len(0)
                        .ctx(|| format!("truncate {}", path.display()))?;
                    hasher = Sha256::new();
                    have = 0;
                }
            }
            file.seek(SeekFrom::Start(have))
                .ctx(|| format!("seek {}", path.display()))?;
            emit(progress, &id, S::Downloading, have, total);
            let mut body = resp.into_reader();
            let mut buf = vec![0u8; 128 * 1024];
            let mut last_report = have;
            loop {
                if cancel.load(Ordering::SeqCst) {
                    return Err(Error::bad(format!("{what}: cancelled")));
                }
                let n = body.read(&mut buf).ctx(|| format!("download {what}"))?;
                if n == 0 {
                    break;
                }
                if have + n as u64 > total {
                    let _ = std::fs::remove_file(&path);
                    return Err(Error::bad(format!(
                        "{what}: registry sent more than {total} bytes"
                    )));
                }
                file.write_all(&buf[..n])
                    .ctx(|| format!("write {}", path.display()))?;
                hasher.update(&buf[..n]);
                have += n as u64;
                if have - last_report >= 512 * 1024 || have == total {
                    emit(progress, &id, S::Downloading, have, total);
                    last_report = have;
                }
            }
            if have < total {
                // Keep what we have: the next pull resumes from here.
                return Err(Error::bad(format!(
                    "{what}: download ended after {have} of {total} bytes"
                )));
            }
        }
        emit(progress, &id, S::VerifyingChecksum, total, total);
        let got = Digest::parse(&format!("sha256:{}", hex::encode(hasher.finalize())))?;
        if got != d {
            let _ = std::fs::remove_file(&path);
            return Err(mismatch(what, &d, &got));
        }
        file.sync_all()
            .ctx(|| format!("fsync {}", path.display()))?;
        store.blobs.commit_partial(&path, &d)?;
        emit(progress, &id, S::DownloadComplete, total, total);
        return Ok(());
    }
}

/// Feeds written bytes to a hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
