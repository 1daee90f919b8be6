//! Finishing what killed processes left half-done.
//!
//! Engine operations that make or remove state outside one transaction (a container's
//! create and removal, volume removal) run as *flights* of kind [`KIND_ENGINE`] (see
//! hako-image's flight.rs): each holds the store's GC lock shared and a marker file. When
//! an open finds a marker nobody holds, a process died mid-flight; if no flight is in
//! progress now (the exclusive lock is free), every claim still in the database is such a
//! leftover:
//!
//! ```text
//! containers.creating = 1   create died: remove what it made (the container never existed)
//! containers.removing = 1   rm died: finish the removal
//! volumes.removing = 1      volume rm died: finish it
//! <root>/containers/<id>/, <exec-root>/containers/<id>/ without a record: remove
//! <root>/volumes/<name>/ without a record: remove
//! container_layers rows without a container record: release the root filesystem
//! builds whose lock nobody holds: their RUN containers, root filesystems, directories
//! network endpoints without an attachment (connect/disconnect killed): remove
//! ```
//!
//! and then the image store collects its own garbage. All of it under the exclusive lock,
//! so no other process is creating or removing anything meanwhile.

use std::collections::HashSet;
use std::path::Path;

use hako_image::{Exclusive, KIND_IMAGE};

use crate::engine::Engine;
use crate::error::Result;
use crate::{records, volumes};

/// Marker kind of the engine's flights.
pub(crate) const KIND_ENGINE: &str = "eng";

impl Engine {
    /// Cleans up after processes killed mid-flight, if there were any and no other process
    /// is in a flight now (else a later open does it).
    ///
    /// A step that fails is logged and the others still run; the markers then stay, so
    /// the next open tries again (and `hako system check` shows what is left). Opening
    /// never fails because of it.
    pub(crate) fn recover(&self) {
        if let Err(e) = self.images().recover(
            &[KIND_IMAGE, KIND_ENGINE, crate::engine::KIND_BUILD],
            |lock| self.recover_engine(lock),
        ) {
            tracing::warn!(error = %e, "cleaning up after an interrupted operation failed; the next command tries again");
        }
    }

    pub(crate) fn recover_engine(&self, _lock: &Exclusive) -> Result<()> {
        let mut first_error = None;
        let mut note = |r: Result<()>| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "recovery step failed");
                first_error.get_or_insert(e);
            }
        };
        // Builds that died: their RUN containers go before their root filesystems (below).
        self.collect_dead_builds_locked();
        note(
            self.net()
                .remove_stale_endpoints()
                .map(|_| ())
                .map_err(Into::into),
        );
        // (Bound first: a guard in a `for` head would be held through the loop.)
        let unfinished = records::unfinished(&self.conn())?;
        for (rec, creating, with_volumes) in unfinished {
            tracing::info!(container = %rec.id, "finishing the create or removal a killed process left");
            let made = volumes::made_by(&self.conn(), &rec.id)?;
            note(self.teardown(
                &rec,
                with_volumes || creating || rec.host_config.auto_remove == Some(true),
                None,
            ));
            if creating {
                for v in made {
                    // In use by another container meanwhile: it stays.
                    let _ = volumes::remove(&self.conn(), &self.options().root, &v);
                }
            }
        }
        let unfinished = volumes::unfinished(&self.conn())?;
        for name in unfinished {
            tracing::info!(volume = %name, "finishing the removal a killed process left");
            note(volumes::finish_removal(
                &self.conn(),
                &self.options().root,
                &name,
            ));
        }
        // Directories are listed before the records are read: what is made after the
        // listing is not looked at, and what was listed had its record committed first.
        let dirs: Vec<(std::path::PathBuf, Vec<String>)> = [
            self.options().root.join("containers"),
            self.options().exec_root.join("containers"),
        ]
        .into_iter()
        .map(|d| {
            let names = container_dirs(&d);
            (d, names)
        })
        .collect();
        let vdir = self.options().root.join("volumes");
        let vol_dirs: Vec<String> = std::fs::read_dir(&vdir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let lock_files: Vec<String> = std::fs::read_dir(self.options().exec_root.join("locks"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let known: HashSet<String> = records::all_ids(&self.conn())?.into_iter().collect();
        for n in lock_files {
            let id = n.strip_suffix(".attached").unwrap_or(&n);
            if id.len() == 64 && !known.contains(id) {
                crate::locks::remove(&self.options().exec_root, id);
            }
        }
        let vols: HashSet<String> = volumes::all_names(&self.conn())?.into_iter().collect();
        for (dir, names) in dirs {
            for name in names {
                let path = dir.join(&name);
                if !known.contains(&name) && !shim_alive(&path) {
                    tracing::info!(dir = %path.display(), "removing the directory of a container without a record");
                    note(remove_tree(&path));
                }
            }
        }
        // Network state of containers without a record: a server killed while it finished
        // a removal after its answer (remove.rs's `Tail`) left it. (A build's RUN
        // containers have none: `hb-`.)
        for c in self.net().containers()? {
            if !known.contains(&c) && !c.starts_with("hb-") {
                tracing::info!(container = %c, "releasing the network of a container without a record");
                note(self.net().forget(&c).map_err(Into::into));
            }
        }
        for id in self.images().container_layer_ids()? {
            if !known.contains(&id) {
                tracing::info!(container = %id, "releasing the root filesystem of a container without a record");
                note(match self.images().release_rootfs(&id) {
                    Ok(()) | Err(hako_image::Error::NoSuchContainer(_)) => Ok(()),
                    Err(e) => Err(e.into()),
                });
            }
        }
        for name in vol_dirs {
            if !vols.contains(&name) {
                tracing::info!(volume = %name, "removing a volume directory without a record");
                note(remove_tree(&vdir.join(&name)));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Names in `dir` that look like container ids (64 hex digits).
pub(crate) fn container_dirs(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// Whether the shim whose state dir is `dir` still runs.
pub(crate) fn shim_alive(dir: &Path) -> bool {
    hako_shim::protocol::shim_alive(dir)
}

/// Removes a tree; already gone is done.
pub(crate) fn remove_tree(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::error::Error::Io {
            context: format!("remove {}", p.display()),
            source: e,
        }),
    }
}
