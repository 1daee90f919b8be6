//! Named volumes.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::volumes;

use super::Engine;

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
