//! `pause` / `resume`: stop and restart every process of a container with the cgroup
//! freezer (v1 freezer.state, or cgroup.freeze where the unified tree has it). The status
//! "paused" is not stored: `Container::status` reads it back from the freezer.

use std::path::Path;

use hako_cgroups::{CgroupManager, Manager};

use crate::container::Container;
use crate::error::{Error, Result};
use crate::state::Status;

/// Freeze a running container. A created container is refused: its init is parked on the
/// exec fifo, and `start` on a frozen init would hang (runc allows it; we do not).
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let cg = freezer_of(root, id, "pause", Status::Running)?;
    cg.freeze()?;
    Ok(())
}

/// Thaw a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let cg = freezer_of(root, id, "resume", Status::Paused)?;
    cg.thaw()?;
    Ok(())
}

/// The container's cgroup, after checking the container is in status `want`.
fn freezer_of(root: &Path, id: &str, op: &'static str, want: Status) -> Result<Manager> {
    let c = Container::load(root, id)?;
    let status = c.status();
    if status != want {
        return Err(Error::IllegalTransition {
            op,
            id: id.to_owned(),
            status: status.as_str(),
        });
    }
    c.cgroup().ok_or_else(|| {
        Error::Unsupported(format!(
            "cannot {op} container {id}: it has no cgroup to freeze"
        ))
    })
}
