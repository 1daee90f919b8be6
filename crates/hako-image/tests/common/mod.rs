//! Shared by the hako-image integration tests.

use std::path::{Path, PathBuf};

/// A temp store root under /var/tmp (a real filesystem, so overlay can mount); drop
/// unmounts anything below it, deepest first, then removes it.
pub struct Root(Option<tempfile::TempDir>);

impl Root {
    pub fn new(prefix: &str) -> Root {
        Root(Some(
            tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in("/var/tmp")
                .unwrap(),
        ))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<PathBuf> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(self.path()))
            .collect();
        mounts.reverse();
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        drop(self.0.take());
    }
}
