//! Unit tests against fake cgroupfs trees in a tempdir. Files must exist before they
//! are written (as on cgroupfs), and every write is recorded in order (`fs::log`).

mod hybrid;
mod v1;
mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use tempfile::TempDir;

use crate::{Layout, Manager};

/// A fake cgroup root.
pub(crate) struct Fake {
    dir: TempDir,
}

impl Fake {
    pub(crate) fn new(dirs: &[&str]) -> Fake {
        let fake = Fake {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in dirs {
            std::fs::create_dir_all(fake.path(d)).unwrap();
        }
        fake
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }

    /// Creates `dir` with the given empty files.
    pub(crate) fn touch(&self, dir: &str, files: &[&str]) {
        let d = self.path(dir);
        std::fs::create_dir_all(&d).unwrap();
        for f in files {
            std::fs::write(d.join(f), "").unwrap();
        }
    }

    pub(crate) fn put(&self, file: &str, content: &str) {
        let p = self.path(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub(crate) fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).unwrap()
    }

    pub(crate) fn manager(&self, layout: Layout) -> Manager {
        crate::fs::log::take(self.root());
        Manager::with_root(self.root(), layout, "/hako/c1")
    }

    /// Writes since the last call, as (path relative to the root, value).
    pub(crate) fn writes(&self) -> Vec<(String, String)> {
        crate::fs::log::take(self.root())
    }
}

/// `linux.resources` from OCI JSON, so tests read like config.json.
pub(crate) fn res(json: serde_json::Value) -> LinuxResources {
    serde_json::from_value(json).unwrap()
}

/// Expected writes, written compactly.
pub(crate) fn w(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, v)| ((*p).to_owned(), (*v).to_owned()))
        .collect()
}
