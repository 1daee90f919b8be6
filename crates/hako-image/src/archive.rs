//! `docker load` / `docker save`: image archives in Docker's format (`manifest.json`,
//! configs, layer tars) and the OCI image layout (`oci-layout`, `index.json`, `blobs/`).
//!
//! We write both in one archive, the way Docker 25+ does: every file lives under
//! `blobs/sha256/<hex>`, `index.json` names the OCI manifests, and `manifest.json` points
//! at the same blobs for readers of the Docker format. Layers are written uncompressed, so
//! each layer file's digest is its diff id.
//!
//! Loading reads the archive in one pass: files under `blobs/sha256/` go straight into the
//! blob store (verified against their names), other layer files too (digest computed),
//! small JSON files stay in memory. Then `manifest.json` (or else `index.json`) says which
//! images to build. Nothing is listed until the final database transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use hako_storage::TarWriter;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::digest::{Digest, Hashing};
use crate::error::{Error, Result};
use crate::flight::Flight;
use crate::import::parse_tag;
use crate::reference::Reference;
use crate::spec::{self, Descriptor, ImageConfig};
use crate::store::{ImageStore, LayerSource};

/// One image a load added or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The image id.
    pub id: Digest,
    /// Tags it got, as Docker prints them.
    pub tags: Vec<String>,
}

/// One entry of Docker's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// What the single pass over the archive collected.
#[derive(Default)]
struct Collected {
    /// Small metadata files by path.
    json: HashMap<String, Vec<u8>>,
    /// Stored files by path.
    blobs: HashMap<String, Digest>,
    /// Symlinks by path -> target path.
    links: HashMap<String, String>,
}

impl Collected {
    fn resolve(&self, path: &str) -> String {
        let mut p = normalize(path);
        for _ in 0..16 {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        p
    }

    fn blob(&self, path: &str) -> Result<Digest> {
        let p = self.resolve(path);
        self.blobs
            .get(&p)
            .cloned()
            .ok_or_else(|| Error::bad(format!("archive has no file {path:?}")))
    }
}

fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

const MAX_JSON: u64 = 16 << 20;

impl ImageStore {
    /// Loads the images of an archive (Docker `save` format or OCI layout tar, optionally
    /// gzip/zstd compressed) and returns them. A digest mismatch, a truncated archive or a
    /// manifest for another platform is an error and no image of the archive is listed.
    pub fn load(&self, archive: &mut dyn Read) -> Result<Vec<LoadedImage>> {
        let flight = self.in_flight()?;
        let r = (|| -> Result<Vec<LoadedImage>> {
            let mut buffered = BufReader::with_capacity(256 * 1024, archive);
            let compression = hako_storage::unpack::detect_compression(&mut buffered)?;
            let decoded = hako_storage::unpack::decoder(Box::new(buffered), compression)?;
            let collected = self.collect_archive(decoded)?;
            let loaded = if let Some(m) = collected.json.get("manifest.json") {
                let entries: Vec<DockerEntry> = serde_json::from_slice(m)
                    .map_err(|e| Error::bad(format!("manifest.json: {e}")))?;
                let mut out = Vec::new();
                for e in entries {
                    out.push(self.load_docker_entry(&flight, &collected, &e)?);
                }
                out
            } else if let Some(idx) = collected.json.get("index.json") {
                let index = spec::parse_index(idx)?;
                let mut out: Vec<LoadedImage> = Vec::new();
                for d in &index.manifests {
                    let img = self.load_oci_descriptor(&flight, d, 0)?;
                    match out.iter_mut().find(|o| o.id == img.id) {
                        Some(o) => o.tags.extend(img.tags),
                        None => out.push(img),
                    }
                }
                out
            } else {
                return Err(Error::bad(
                    "archive has neither manifest.json nor index.json",
                ));
            };
            // Every file of the archive went into the blob store as it streamed by; what
            // no loaded image refers to (the OCI manifest and index of a `docker save`
            // archive read through its manifest.json, platforms not picked, stray files)
            // is the flight's garbage, collected when it ends.
            for d in collected.blobs.values() {
                if !self.blob_referenced(d)? {
                    tracing::debug!(blob = %d, "load: a blob of the archive no image uses");
                    flight.leaves_garbage();
                    break;
                }
            }
            Ok(loaded)
        })();
        flight.finish(r)
    }

    /// Whether a committed row refers to blob `d` (what garbage collection keeps).
    fn blob_referenced(&self, d: &Digest) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM images WHERE id = ?1 OR manifest_digest = ?1)
                 OR EXISTS (SELECT 1 FROM layers WHERE COALESCE(tar_split, blob_digest) = ?1)",
            [d.as_str()],
            |r| r.get(0),
        )?)
    }

    fn collect_archive(&self, r: Box<dyn Read + '_>) -> Result<Collected> {
        let mut c = Collected::default();
        let mut ar = tar::Archive::new(r);
        let entries = ar
            .entries()
            .map_err(|e| Error::bad(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::bad(format!("read archive: {e}")))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = normalize(&raw);
            match entry.header().entry_type() {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                        path.rsplit_once('/')
                            .map(|(d, _)| d.to_string())
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    c.links.insert(path, normalize(&format!("{base}/{target}")));
                }
                t if t.is_file() => {
                    let size = entry.header().size().unwrap_or(u64::MAX);
                    let named = path
                        .strip_prefix("blobs/sha256/")
                        .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok());
                    if let Some(d) = named {
                        let (got, _) =
                            self.blobs
                                .write(&mut entry, Some(&d))
                                .map_err(|e| match e {
                                    Error::Io { context, source }
                                        if source.kind() == io::ErrorKind::UnexpectedEof =>
                                    {
                                        Error::bad(format!("truncated archive ({context})"))
                                    }
                                    e => e,
                                })?;
                        c.blobs.insert(path, got);
                    } else if size <= MAX_JSON
                        && (path.ends_with(".json")
                            || path == "repositories"
                            || path == "oci-layout")
                    {
                        let mut buf = Vec::new();
                        entry
                            .read_to_end(&mut buf)
                            .map_err(|e| Error::bad(format!("read {path}: {e}")))?;
                        c.json.insert(path, buf);
                    } else {
                        let (got, _) = self.blobs.write(&mut entry, None)?;
                        c.blobs.insert(path, got);
                    }
                }
                _ => {}
            }
        }
        // The archive must end cleanly: a truncated one fails here.
        io::copy(&mut ar.into_inner(), &mut io::sink())
            .map_err(|e| Error::bad(format!("read archive: {e}")))?;
        Ok(c)
    }

    fn json_or_blob(&self, c: &Collected, path: &str) -> Result<(Vec<u8>, Digest)> {
        let p = c.resolve(path);
        if let Some(bytes) = c.json.get(&p) {
            let d = self.blobs.write_bytes(bytes)?;
            return Ok((bytes.clone(), d));
        }
        let d = c.blob(&p)?;
        Ok((self.blobs.read(&d)?, d))
    }

    fn load_docker_entry(
        &self,
        flight: &Flight<'_>,
        c: &Collected,
        e: &DockerEntry,
    ) -> Result<LoadedImage> {
        let tags: Vec<Reference> = e
            .repo_tags
            .iter()
            .flatten()
            .map(|t| parse_tag(t))
            .collect::<Result<_>>()?;
        let (config_bytes, id) = self.json_or_blob(c, &e.config)?;
        let config = ImageConfig::parse(&config_bytes)?;
        let diff_ids = config.diff_ids()?;
        if diff_ids.len() != e.layers.len() {
            return Err(Error::bad(format!(
                "config has {} layers, manifest.json lists {}",
                diff_ids.len(),
                e.layers.len()
            )));
        }
        let sources: Vec<LayerSource> = diff_ids
            .into_iter()
            .zip(&e.layers)
            .map(|(diff_id, path)| {
                Ok(LayerSource {
                    diff_id: Some(diff_id),
                    blob: c.blob(path)?,
                    media_type: spec::OCI_LAYER.into(),
                })
            })
            .collect::<Result<_>>()?;
        self.add_image(flight, &id, &config, &sources, None, &tags)
    }

    fn load_oci_descriptor(
        &self,
        flight: &Flight<'_>,
        d: &Descriptor,
        depth: u32,
    ) -> Result<LoadedImage> {
        let digest = Digest::parse(&d.digest)?;
        let bytes = self
            .blobs
            .read(&digest)
            .map_err(|_| Error::bad(format!("archive lacks blob {digest}")))?;
        if spec::is_index(&d.media_type) {
            if depth > 4 {
                return Err(Error::bad("index nesting too deep"));
            }
            let nested = spec::parse_index(&bytes)?;
            let pick = nested.pick(&self.platform)?.clone();
            let mut img = self.load_oci_descriptor(flight, &pick, depth + 1)?;
            img.tags.extend(self.tag_from_annotations(d, &img.id)?);
            return Ok(img);
        }
        if let Some(p) = &d.platform
            && (p.os != self.platform.os || p.architecture != self.platform.architecture)
        {
            return Err(Error::NoMatchingPlatform {
                wanted: self.platform.to_string(),
                available: p.to_string(),
            });
        }
        let manifest = spec::parse_manifest(&bytes)?;
        let config_digest = Digest::parse(&manifest.config.digest)?;
        let config = ImageConfig::parse(&self.blobs.read(&config_digest)?)?;
        if config.os != self.platform.os || config.architecture != self.platform.architecture {
            return Err(Error::NoMatchingPlatform {
                wanted: self.platform.to_string(),
                available: format!("{}/{}", config.os, config.architecture),
            });
        }
        let diff_ids = config.diff_ids()?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::bad(
                "config and manifest disagree on the number of layers",
            ));
        }
        let sources: Vec<LayerSource> = diff_ids
            .into_iter()
            .zip(&manifest.layers)
            .map(|(diff_id, l)| {
                let blob = Digest::parse(&l.digest)?;
                Ok(LayerSource {
                    diff_id: Some(diff_id),
                    blob,
                    media_type: l.media_type.clone(),
                })
            })
            .collect::<Result<_>>()?;
        let tags = self.tag_from_annotations(d, &config_digest)?;
        let tag_refs: Vec<Reference> = tags.iter().map(|t| parse_tag(t)).collect::<Result<_>>()?;
        self.add_image(
            flight,
            &config_digest,
            &config,
            &sources,
            Some(&digest),
            &tag_refs,
        )
    }

    fn tag_from_annotations(&self, d: &Descriptor, _id: &Digest) -> Result<Vec<String>> {
        let name = d.annotations.get("io.containerd.image.name").or_else(|| {
            d.annotations
                .get("org.opencontainers.image.ref.name")
                .filter(|n| n.contains(':') || n.contains('/'))
        });
        Ok(name
            .and_then(|n| parse_tag(n).ok())
            .map(|r| r.familiar())
            .into_iter()
            .collect())
    }

    /// Unpacks and registers one image of the archive, in the load's `flight`.
    fn add_image(
        &self,
        flight: &Flight<'_>,
        id: &Digest,
        config: &ImageConfig,
        sources: &[LayerSource],
        manifest: Option<&Digest>,
        tags: &[Reference],
    ) -> Result<LoadedImage> {
        {
            let _layers = self.lock_layers()?;
            let (pending, top) = self.unpack_layers(flight, sources)?;
            let result = self.commit_image(
                id,
                config.created.as_deref(),
                &pending,
                top.as_ref(),
                manifest,
                tags,
                None,
            );
            if result.is_err() {
                for p in pending.iter().rev() {
                    let _ = self.driver.remove(&p.cache_id);
                }
            }
            result?;
            Ok(LoadedImage {
                id: id.clone(),
                tags: tags.iter().map(Reference::familiar).collect(),
            })
        }
    }

    /// Writes the images `names` (tags, ids) to `out` as one archive that is both a Docker
    /// save archive (`manifest.json`) and an OCI image layout (`index.json`).
    pub fn save(&self, names: &[&str], out: &mut dyn Write) -> Result<()> {
        let mut images: Vec<(Digest, Vec<String>)> = Vec::new();
        for name in names {
            let id = self.resolve(name)?;
            let rec = self.image_record(&id)?;
            let tags = match Reference::parse(name).map(|r| r.with_default_tag()) {
                Ok(r) if r.digest().is_none() && rec.tags_full.contains(&r.to_string()) => {
                    vec![r.to_string()]
                }
                _ => rec.tags_full.clone(),
            };
            match images.iter_mut().find(|(i, _)| *i == id) {
                Some((_, t)) => t.extend(tags),
                None => images.push((id, tags)),
            }
        }
        // Layers must stay while they are read: a concurrent `rmi` leaves pinned ones.
        let flight = self.in_flight()?;
        let r = (|| {
            for (id, _) in &images {
                if let Some(top) = self.image_record(id)?.layers.last() {
                    let chain = self.chain_id_of(&top.cache_id)?;
                    flight.pin(chain.as_str())?;
                }
            }
            self.save_images(&images, out)
        })();
        flight.complete();
        r
    }

    fn save_images(&self, images: &[(Digest, Vec<String>)], out: &mut dyn Write) -> Result<()> {
        let mut tar = TarWriter::new(out);
        let mut written: HashSet<String> = HashSet::new();
        let mut docker_manifest = Vec::new();
        let mut index_entries = Vec::new();
        append(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for (id, tags) in images {
            let rec = self.image_record(id)?;
            let config_bytes = self.blobs.read(id)?;
            let config_path = format!("blobs/sha256/{}", id.hex());
            if written.insert(config_path.clone()) {
                append(&mut tar, &config_path, &config_bytes)?;
            }
            let mut layer_paths = Vec::new();
            let mut layer_descs = Vec::new();
            for l in &rec.layers {
                let path = format!("blobs/sha256/{}", l.diff_id.hex());
                if written.insert(path.clone()) {
                    self.append_layer(&mut tar, &path, l)?;
                }
                layer_paths.push(path);
                layer_descs.push(json!({"mediaType": spec::OCI_LAYER, "digest": l.diff_id.as_str(), "size": l.diff_size}));
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": spec::OCI_MANIFEST,
                "config": {"mediaType": spec::OCI_CONFIG, "digest": id.as_str(), "size": config_bytes.len()},
                "layers": layer_descs,
            });
            let manifest_bytes =
                serde_json::to_vec(&manifest).map_err(|e| Error::bad(e.to_string()))?;
            let md = Digest::of(&manifest_bytes);
            let mpath = format!("blobs/sha256/{}", md.hex());
            if written.insert(mpath.clone()) {
                append(&mut tar, &mpath, &manifest_bytes)?;
            }
            let mut familiar_tags = Vec::new();
            for t in tags {
                let r = Reference::parse(t)?;
                familiar_tags.push(r.familiar());
                let mut ann = BTreeMap::new();
                ann.insert("io.containerd.image.name".to_string(), t.clone());
                ann.insert(
                    "org.opencontainers.image.ref.name".to_string(),
                    r.tag().unwrap_or("latest").to_string(),
                );
                index_entries.push(Descriptor {
                    media_type: spec::OCI_MANIFEST.into(),
                    digest: md.to_string(),
                    size: manifest_bytes.len() as u64,
                    platform: None,
                    annotations: ann,
                });
            }
            if tags.is_empty() {
                index_entries.push(Descriptor {
                    media_type: spec::OCI_MANIFEST.into(),
                    digest: md.to_string(),
                    size: manifest_bytes.len() as u64,
                    platform: None,
                    annotations: BTreeMap::new(),
                });
            }
            docker_manifest.push(DockerEntry {
                config: config_path,
                repo_tags: Some(familiar_tags),
                layers: layer_paths,
            });
        }
        let index =
            json!({"schemaVersion": 2, "mediaType": spec::OCI_INDEX, "manifests": index_entries});
        let index_bytes = serde_json::to_vec(&index).map_err(|e| Error::bad(e.to_string()))?;
        append(&mut tar, "index.json", &index_bytes)?;
        let dm = serde_json::to_vec(&docker_manifest).map_err(|e| Error::bad(e.to_string()))?;
        append(&mut tar, "manifest.json", &dm)?;
        tar.finish().map_err(|e| Error::io("write archive", e))
    }

    /// Writes a layer as an uncompressed tar whose digest is its diff id.
    fn append_layer(
        &self,
        tar: &mut TarWriter<'_>,
        path: &str,
        l: &crate::store::LayerRecord,
    ) -> Result<()> {
        let mut hashing = Hashing::new(self.layer_tar(l)?.take(l.diff_size));
        tar.file(Path::new(path), l.diff_size, &mut hashing)
            .map_err(|e| Error::io(format!("save layer {}", l.diff_id), e))?;
        if hashing.count != l.diff_size || hashing.digest() != l.diff_id {
            return Err(Error::DigestMismatch {
                what: format!("stored layer {}", l.diff_id),
                expected: l.diff_id.to_string(),
                actual: hashing.digest().to_string(),
            });
        }
        Ok(())
    }
}

fn append(tar: &mut TarWriter<'_>, path: &str, data: &[u8]) -> Result<()> {
    tar.file(Path::new(path), data.len() as u64, data)
        .map_err(|e| Error::io(format!("write {path}"), e))
}
