//! Writing to the event log (read back through [`crate::events`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use hako_shim::events::{ATTRIBUTES_FILE, EVENTS_FILE, Event};

use super::Engine;
use crate::events::{EventQuery, EventReader, container_attributes};
use crate::records::Record;

impl Engine {
    /// The event log every hako process on this root appends to.
    pub fn events_path(&self) -> PathBuf {
        self.opts.root.join(EVENTS_FILE)
    }

    /// A reader of the event log (`hako events`, `GET /events`).
    pub fn events(&self, query: EventQuery) -> EventReader {
        EventReader::new(&self.events_path(), query)
    }

    /// Appends an event; best effort (a full disk must not fail the operation itself).
    pub fn emit(&self, typ: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        if let Err(e) = hako_shim::events::append(
            &self.events_path(),
            &Event::now(typ, action, id, attributes),
        ) {
            tracing::warn!(error = %e, "cannot write the event log");
        }
    }

    /// A container event with its name, image and labels plus `extra`.
    pub(crate) fn container_event(&self, rec: &Record, action: &str, extra: &[(&str, String)]) {
        let mut a = container_attributes(rec);
        for (k, v) in extra {
            a.insert((*k).to_string(), v.clone());
        }
        self.emit("container", action, &rec.id, a);
    }

    /// Leaves the container's event attributes where its shim reads them (for `die`,
    /// `health_status`, `exec_die`).
    pub(crate) fn write_event_attributes(&self, rec: &Record) {
        let path = self.container_dir(&rec.id).join(ATTRIBUTES_FILE);
        let _ = std::fs::write(
            path,
            serde_json::to_vec(&container_attributes(rec)).unwrap_or_default(),
        );
    }
}
