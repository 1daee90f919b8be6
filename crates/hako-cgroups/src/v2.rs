//! cgroup v2: one directory in the unified hierarchy.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::{FreezerState, freezer, fs};

#[derive(Debug, Clone)]
pub(crate) struct V2 {
    pub(crate) mount: PathBuf,
    pub(crate) resolved: String,
}

impl V2 {
    pub(crate) fn dir(&self) -> PathBuf {
        self.mount.join(self.resolved.trim_start_matches('/'))
    }

    /// `mkdir -p`; before each level is created, its parent delegates every controller
    /// it has (like runc), because a v2 controller's files appear in a child only if
    /// the parent lists it in cgroup.subtree_control.
    pub(crate) fn create(&self) -> Result<(), Error> {
        let mut cur = self.mount.clone();
        for part in self.resolved.split('/').filter(|p| !p.is_empty()) {
            enable_controllers(&cur)?;
            cur.push(part);
            fs::create_dir(&cur)?;
        }
        Ok(())
    }

    pub(crate) fn add_task(&self, pid: i32) -> Result<(), Error> {
        fs::write(&self.dir(), "cgroup.procs", &pid.to_string())
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>, Error> {
        let mut pids = Vec::new();
        fs::procs_recursive(&self.dir(), &mut pids)?;
        Ok(pids)
    }

    pub(crate) fn freeze(&self) -> Result<(), Error> {
        freezer::v2_set(&self.dir(), true)
    }

    pub(crate) fn thaw(&self) -> Result<(), Error> {
        freezer::v2_set(&self.dir(), false)
    }

    pub(crate) fn freezer_state(&self) -> Result<FreezerState, Error> {
        freezer::v2_state(&self.dir())
    }

    /// True if the kernel has cgroup.kill (5.14+), which kills the whole subtree at once,
    /// with no race against forks.
    pub(crate) fn has_kill(&self) -> bool {
        self.dir().join("cgroup.kill").exists()
    }

    pub(crate) fn kill(&self) -> Result<(), Error> {
        fs::write(&self.dir(), "cgroup.kill", "1")
    }

    pub(crate) fn oom_kill_count(&self) -> Result<u64, Error> {
        crate::stats::oom_kill_v2(&self.dir())
    }
}

/// Writes "+ctrl" for every controller of `dir` not yet in its subtree_control. Failures
/// are logged, not fatal (as in runc): a cgroup with processes, or a threaded one,
/// cannot delegate some controllers, and the container then simply lacks them, which
/// `apply` reports as `Unsupported` if it needs one.
fn enable_controllers(dir: &Path) -> Result<(), Error> {
    let available = fs::read_optional(dir, "cgroup.controllers")?.unwrap_or_default();
    let enabled = fs::read_optional(dir, "cgroup.subtree_control")?.unwrap_or_default();
    let missing: Vec<String> = available
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if fs::write(dir, "cgroup.subtree_control", &missing.join(" ")).is_ok() {
        return Ok(());
    }
    for c in &missing {
        if let Err(e) = fs::write(dir, "cgroup.subtree_control", c) {
            tracing::debug!(error = %e, "cannot delegate controller");
        }
    }
    Ok(())
}
