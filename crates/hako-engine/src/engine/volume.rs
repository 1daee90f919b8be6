//! Named volumes.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::volumes;

use super::Engine;
use crate::filters::Filters;

/// The filter keys `volume ls` accepts.
pub const VOLUME_FILTERS: &[&str] = &["dangling", "name", "label", "label!", "driver"];

impl Engine {
    /// Volumes: create.
    pub fn volume_create(
        &self,
        name: Option<&str>,
        labels: &HashMap<String, String>,
    ) -> Result<bollard_stubs::models::Volume> {
        let (v, new) = volumes::create(&self.conn(), &self.opts.root, name, labels, None)?;
        if new {
            self.volume_event(&v.name, "create");
        }
        Ok(v)
    }

    /// A volume event (`create`, `destroy`).
    pub(super) fn volume_event(&self, name: &str, action: &str) {
        let mut a = std::collections::BTreeMap::new();
        a.insert("driver".to_string(), "local".to_string());
        self.emit("volume", action, name, a);
    }

    /// Volumes: all, with whether each is anonymous.
    pub fn volume_list(&self) -> Result<Vec<(bollard_stubs::models::Volume, bool)>> {
        volumes::list(&self.conn(), &self.opts.root)
    }

    /// `docker volume ls` with Docker's filters (`dangling`, `name`, `label`, `driver`):
    /// each volume with how many containers use it.
    pub fn volumes(&self, f: &Filters) -> Result<Vec<(bollard_stubs::models::Volume, usize)>> {
        f.validate(VOLUME_FILTERS)?;
        let dangling = f.bool("dangling")?;
        let mut out = Vec::new();
        for (v, _) in self.volume_list()? {
            let links = self.volume_users(&v.name)?.len();
            if dangling.is_some_and(|d| d != (links == 0))
                || !f.any("name", |n| v.name.contains(n))
                || !f.any("driver", |d| v.driver == d)
                || !f.labels_match("label", &v.labels)
                || !f.labels_match("label!", &v.labels)
            {
                continue;
            }
            out.push((v, links));
        }
        Ok(out)
    }

    /// Volumes: one.
    pub fn volume_inspect(&self, name: &str) -> Result<bollard_stubs::models::Volume> {
        volumes::get(&self.conn(), &self.opts.root, name)?
            .ok_or_else(|| Error::NoSuchVolume(name.to_string()))
    }

    /// Volumes: containers using one.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        volumes::users(&self.conn(), name)
    }

    /// Volumes: remove.
    pub fn volume_remove(&self, name: &str) -> Result<()> {
        self.images.make_room();
        let flight = self.images.begin_flight(crate::recovery::KIND_ENGINE)?;
        let r = volumes::remove(&self.conn(), &self.opts.root, name);
        if matches!(r, Err(Error::NoSuchVolume(_) | Error::VolumeInUse { .. })) {
            flight.complete();
            return r;
        }
        flight.finish(r)?;
        self.volume_event(name, "destroy");
        Ok(())
    }
}
