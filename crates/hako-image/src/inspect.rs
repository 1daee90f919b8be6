//! `docker image inspect` output.

use serde_json::{Value, json};

use crate::digest::Digest;
use crate::error::Result;
use crate::spec::ImageConfig;
use crate::store::ImageStore;

impl ImageStore {
    /// The `config` of image `id` (what a container starts from: `Cmd`, `Env`,
    /// `ExposedPorts`...; `Config` of [`ImageStore::inspect`]), or null: only its config blob
    /// is read (a container's create needs nothing else of the image).
    pub fn run_config(&self, id: &Digest) -> Result<Value> {
        let config = ImageConfig::parse(&self.config_blob(id)?)?;
        Ok(config.config.map(Value::Object).unwrap_or(Value::Null))
    }

    /// The config blob of image `id`; one that `system check --repair` removed says so.
    fn config_blob(&self, id: &Digest) -> Result<Vec<u8>> {
        match self.blobs.read(id) {
            Ok(b) => Ok(b),
            Err(e) => match self.damage(id)? {
                Some(reason) => Err(crate::Error::Damaged {
                    image: id.short().to_string(),
                    reason,
                }),
                None => Err(e),
            },
        }
    }

    /// The image `name` as `docker image inspect` shows it: `Id`, `RepoTags`,
    /// `RepoDigests`, `Created`, `Config`, `Architecture`, `Os`, `Size`, `GraphDriver`
    /// (`LowerDir`/`UpperDir`/`MergedDir`/`WorkDir` of the top layer), `RootFS.Layers`.
    pub fn inspect(&self, name: &str) -> Result<Value> {
        let id = self.resolve(name)?;
        let rec = self.image_record(&id)?;
        let config = ImageConfig::parse(&self.config_blob(&id)?)?;
        let comment = config
            .history
            .last()
            .and_then(|h| h.get("comment"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let graph_data = match rec.layers.last() {
            Some(top) if self.driver_name() == "overlay2" => {
                let p = self.driver.paths(&top.cache_id)?;
                let mut data = serde_json::Map::new();
                if !p.lower_dirs.is_empty() {
                    let lower: Vec<String> = p
                        .lower_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect();
                    data.insert("LowerDir".into(), json!(lower.join(":")));
                }
                data.insert("UpperDir".into(), json!(p.upper_dir.display().to_string()));
                if let Some(m) = &p.merged_dir {
                    data.insert("MergedDir".into(), json!(m.display().to_string()));
                }
                let work = p
                    .work_dir
                    .clone()
                    .unwrap_or_else(|| p.upper_dir.with_file_name("work"));
                data.insert("WorkDir".into(), json!(work.display().to_string()));
                Value::Object(data)
            }
            _ => Value::Null,
        };
        let mut out = json!({
            "Id": id.as_str(),
            "RepoTags": rec.repo_tags,
            "RepoDigests": rec.repo_digests,
            "Parent": "",
            "Comment": comment,
            "Created": rec.created.clone().or(config.created.clone()).unwrap_or_default(),
            "DockerVersion": config.extra.get("docker_version").cloned().unwrap_or(json!("")),
            "Author": config.author.clone().unwrap_or_default(),
            "Config": config.config.clone().map(Value::Object).unwrap_or(Value::Null),
            "Architecture": config.architecture,
            "Os": config.os,
            "Size": rec.size,
            "GraphDriver": { "Data": graph_data, "Name": self.driver_name() },
            "RootFS": {
                "Type": "layers",
                "Layers": rec.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
            },
            "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
        });
        if let Some(v) = config.extra.get("variant") {
            out["Variant"] = v.clone();
        }
        Ok(out)
    }
}
