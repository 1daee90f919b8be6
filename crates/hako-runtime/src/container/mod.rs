//! One file per lifecycle verb. Each verb loads what it needs from the state directory,
//! checks the transition is legal for the current status, and acts.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use std::path::Path;

use hako_cgroups::{CgroupManager, FreezerState, Manager};

use crate::error::Result;
use crate::id;
use crate::state::{Persisted, StateDir, Status};

/// A container as read from its state directory.
#[derive(Debug)]
pub struct Container {
    pub dir: StateDir,
    pub st: Persisted,
}

impl Container {
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        id::validate(id)?;
        let dir = StateDir::new(root, id);
        let st = dir.load(id)?;
        Ok(Container { dir, st })
    }

    /// The status right now, derived from the init process, the freezer and the exec
    /// fifo. A frozen container is paused even before `start` (runc's rule), so `start`
    /// refuses it instead of waiting on a frozen init.
    pub fn status(&self) -> Status {
        if !self.st.init_alive() {
            return Status::Stopped;
        }
        if let Some(cg) = self.cgroup()
            && matches!(cg.freezer_state(), Ok(FreezerState::Frozen))
        {
            return Status::Paused;
        }
        if self.dir.fifo().exists() {
            return Status::Created;
        }
        Status::Running
    }

    pub fn cgroup(&self) -> Option<Manager> {
        if self.st.cgroup_path.is_empty() {
            return None;
        }
        Manager::from_saved(&self.st.cgroup_path).ok()
    }
}
