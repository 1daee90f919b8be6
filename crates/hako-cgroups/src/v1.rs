//! cgroup v1: one directory per hierarchy, each controller in the hierarchy it is
//! mounted in (possibly co-mounted, like "cpu,cpuacct").

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fs;
use crate::mounts::Hierarchy;
use crate::{CgroupMount, FreezerState, freezer};

#[derive(Debug, Clone)]
pub(crate) struct V1 {
    pub(crate) hierarchies: Vec<Hierarchy>,
    pub(crate) resolved: String,
}

impl V1 {
    fn dir_in(&self, h: &Hierarchy) -> PathBuf {
        h.mount.join(self.resolved.trim_start_matches('/'))
    }

    /// The container's directory in the hierarchy holding `controller`.
    pub(crate) fn dir(&self, controller: &str) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .find(|h| h.has(controller))
            .map(|h| self.dir_in(h))
    }

    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        self.hierarchies.iter().map(|h| self.dir_in(h)).collect()
    }

    /// `mkdir -p` in every hierarchy. A new cpuset cgroup starts with empty cpus and
    /// mems, and a task cannot join it until they are set, so each level inherits them
    /// from its parent when empty.
    pub(crate) fn create(&self) -> Result<(), Error> {
        for h in &self.hierarchies {
            let cpuset = h.has("cpuset");
            let mut cur = h.mount.clone();
            for part in self.resolved.split('/').filter(|p| !p.is_empty()) {
                let parent = cur.clone();
                cur.push(part);
                fs::create_dir(&cur)?;
                if cpuset {
                    inherit_if_empty(&parent, &cur, "cpuset.cpus")?;
                    inherit_if_empty(&parent, &cur, "cpuset.mems")?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn add_task(&self, pid: i32) -> Result<(), Error> {
        for dir in self.dirs() {
            fs::write(&dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Every hierarchy's `tasks` file, opened for writing (close-on-exec).
    pub(crate) fn tasks_files(&self) -> Result<Vec<std::os::fd::OwnedFd>, Error> {
        self.dirs()
            .into_iter()
            .map(|dir| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("tasks"))
                    .map(std::os::fd::OwnedFd::from)
                    .map_err(|source| Error::Write {
                        value: "0".to_owned(),
                        file: "tasks".to_owned(),
                        dir,
                        source,
                    })
            })
            .collect()
    }

    /// Where to list processes: the freezer hierarchy (the one `pause` acts on), else
    /// the first.
    pub(crate) fn pids_dir(&self) -> Option<PathBuf> {
        self.dir("freezer")
            .or_else(|| self.hierarchies.first().map(|h| self.dir_in(h)))
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>, Error> {
        let mut pids = Vec::new();
        if let Some(dir) = self.pids_dir() {
            fs::procs_recursive(&dir, &mut pids)?;
        }
        Ok(pids)
    }

    pub(crate) fn has_freezer(&self) -> bool {
        self.dir("freezer").is_some()
    }

    fn freezer_dir(&self) -> Result<PathBuf, Error> {
        self.dir("freezer").ok_or(Error::ControllerNotMounted {
            controller: "freezer",
            setting: "pause/resume",
        })
    }

    pub(crate) fn freeze(&self) -> Result<(), Error> {
        freezer::v1_freeze(&self.freezer_dir()?)
    }

    pub(crate) fn thaw(&self) -> Result<(), Error> {
        freezer::v1_thaw(&self.freezer_dir()?)
    }

    pub(crate) fn freezer_state(&self) -> Result<FreezerState, Error> {
        freezer::v1_state(&self.freezer_dir()?)
    }

    pub(crate) fn mounts(&self) -> Vec<CgroupMount> {
        self.hierarchies
            .iter()
            .map(|h| CgroupMount {
                name: h.name.clone(),
                host_dir: self.dir_in(h),
            })
            .collect()
    }

    pub(crate) fn oom_kill_count(&self) -> Result<u64, Error> {
        let dir = self.dir("memory").ok_or(Error::ControllerNotMounted {
            controller: "memory",
            setting: "oom_kill count",
        })?;
        crate::stats::oom_kill_v1(&dir)
    }
}

fn inherit_if_empty(parent: &Path, dir: &Path, file: &str) -> Result<(), Error> {
    if fs::read(dir, file)?.is_empty() {
        let value = fs::read(parent, file)?;
        fs::write(dir, file, &value)?;
    }
    Ok(())
}
