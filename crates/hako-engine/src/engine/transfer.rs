//! Images in and out: pull, push, import, load, save, registry login. Progress comes as
//! events through the store's callback; the front end draws bars (CLI) or writes Docker's
//! JSON progress lines (API).

use std::io::{Read, Write};

use hako_image::registry::{Credentials, PullOptions, PullReport, PushOptions, PushReport};
use hako_image::{Digest, ImportOptions, LoadedImage};

use crate::error::{Error, Result};

use super::Engine;

impl Engine {
    /// `docker pull` (with a `pull` event once the image is in the store).
    pub fn image_pull(&self, reference: &str, opts: &PullOptions<'_>) -> Result<PullReport> {
        let report = self.images.pull(reference, opts)?;
        self.image_event("pull", &report.reference, &report.reference);
        Ok(report)
    }

    /// The tags `repository` (no tag, no digest) has in its registry, in the registry's
    /// order: what `docker pull --all-tags` pulls one by one.
    pub fn registry_tags(&self, repository: &str, opts: &PullOptions<'_>) -> Result<Vec<String>> {
        let r = hako_image::Reference::parse(repository)?;
        if r.tag().is_some() || r.digest().is_some() {
            return Err(Error::InvalidArgument(
                "tag can't be used with --all-tags/-a".into(),
            ));
        }
        Ok(hako_image::registry::list_tags(
            repository,
            opts.insecure,
            opts.credentials.clone(),
        )?)
    }

    /// The local tags of `repository` (`docker push --all-tags` pushes each), sorted.
    pub fn local_tags(&self, repository: &str) -> Result<Vec<String>> {
        let r = hako_image::Reference::parse(repository)?;
        if r.tag().is_some() || r.digest().is_some() {
            return Err(Error::InvalidArgument(
                "tag can't be used with --all-tags/-a".into(),
            ));
        }
        let repo = r.repository();
        let mut tags: Vec<String> = self
            .images
            .list()?
            .iter()
            .flat_map(|i| i.repo_tags.iter())
            .filter_map(|t| hako_image::Reference::parse(t).ok())
            .filter(|t| t.repository() == repo)
            .filter_map(|t| t.tag().map(str::to_string))
            .collect();
        tags.sort();
        tags.dedup();
        if tags.is_empty() {
            return Err(Error::NoSuchImage(r.familiar_repository()));
        }
        Ok(tags)
    }

    /// `docker push` (with a `push` event).
    pub fn image_push(&self, reference: &str, opts: &PushOptions<'_>) -> Result<PushReport> {
        let report = self
            .images
            .push(reference, opts)
            .map_err(|e| self.image_error(e, reference))?;
        self.image_event("push", reference, reference);
        Ok(report)
    }

    /// `docker import`: a root filesystem tar as a one-layer image.
    pub fn image_import(&self, tar: &mut dyn Read, opts: &ImportOptions) -> Result<Digest> {
        let id = self.images.import(tar, opts)?;
        self.image_event(
            "import",
            id.as_str(),
            opts.reference.as_deref().unwrap_or(id.as_str()),
        );
        Ok(id)
    }

    /// `docker load`: a `docker save` archive or an OCI layout tar.
    pub fn image_load(&self, tar: &mut dyn Read) -> Result<Vec<LoadedImage>> {
        let loaded = self.images.load(tar)?;
        for img in &loaded {
            let name = img.tags.first().map_or(img.id.as_str(), String::as_str);
            self.image_event("load", img.id.as_str(), name);
        }
        Ok(loaded)
    }

    /// `docker save`: the images as one archive (Docker's and OCI's layout in one).
    pub fn image_save(&self, names: &[&str], out: &mut dyn Write) -> Result<()> {
        for n in names {
            self.images.resolve(n).map_err(|e| self.image_error(e, n))?;
        }
        self.images.save(names, out)?;
        for n in names {
            if let Ok(id) = self.images.resolve(n) {
                self.image_event("save", id.as_str(), n);
            }
        }
        Ok(())
    }

    /// `POST /auth`: checks `credentials` against `registry` without storing them
    /// anywhere (the client keeps its own credentials, as with dockerd).
    pub fn registry_check_login(
        &self,
        registry: &str,
        credentials: &Credentials,
        insecure: bool,
    ) -> Result<()> {
        Ok(hako_image::registry::check_login(
            registry,
            credentials,
            insecure,
        )?)
    }
}
