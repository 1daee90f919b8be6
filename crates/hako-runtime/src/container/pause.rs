//! `pause` / `resume`: stop and restart every process of a container with the cgroup
//! freezer (v1 freezer.state, or cgroup.freeze where the unified tree has it). The status
//! "paused" is not stored: `Container::status` reads it back from the freezer.

use std::path::Path;

use hako_cgroups::{CgroupManager, Manager};

use crate::container::Container;
use crate::error::{Error, Refusal, Result};
use crate::state::Status;

/// Freeze a running or created container (runc allows both; a frozen created container
/// reads as paused, and `start` refuses it until `resume`).
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    if !matches!(c.status(), Status::Running | Status::Created) {
        return Err(Refusal::NotRunning.into());
    }
    freezer_of(&c, "pause")?.freeze()?;
    Ok(())
}

/// Thaw a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    if c.status() != Status::Paused {
        return Err(Refusal::NotPaused.into());
    }
    freezer_of(&c, "resume")?.thaw()?;
    Ok(())
}

/// The container's cgroup.
fn freezer_of(c: &Container, op: &'static str) -> Result<Manager> {
    let id = &c.st.id;
    c.cgroup().ok_or_else(|| {
        Error::Unsupported(format!(
            "cannot {op} container {id}: it has no cgroup to freeze"
        ))
    })
}
