//! cgroup managers for hako: one trait, [`CgroupManager`], implemented by [`Manager`]
//! for the three host layouts (v1, v2, hybrid), plus cgroupsPath resolution and stats.
//!
//! Lifecycle, as the runtime uses it:
//!
//! ```text
//! create:  Manager::new(spec.cgroupsPath, id) -> create() -> apply(resources)
//!          -> add_task(init pid)            (on pure v2, or CLONE_INTO_CGROUP v2_dir())
//!          save resolved_path() in the container state
//! later:   Manager::from_resolved(saved) -> freeze/thaw/kill_all/stats/pids/apply
//! delete:  Manager::from_resolved(saved) -> destroy()
//! ```
//!
//! Two drivers: cgroupfs (this crate makes the directories: [`Manager::new`]) and systemd
//! (systemd makes a transient scope over D-Bus: [`Manager::new_systemd`], module
//! [`systemd`]). The cgroupsPath says which: `slice:prefix:name` is the systemd form, and
//! each driver refuses the other's form. What to save for later processes is
//! [`Manager::saved`], read back by [`Manager::from_saved`].

mod destroy;
mod error;
mod freezer;
mod fs;
mod manager;
mod mounts;
mod path;
pub mod resources;
pub mod stats;
pub mod systemd;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use error::Error;
pub use manager::Manager;
pub use path::resolve_path;
pub use stats::Stats;

/// Which cgroup hierarchies a host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies (one per controller or co-mounted group).
    V1,
    /// Only the unified v2 hierarchy, normally at /sys/fs/cgroup.
    V2,
    /// v1 controllers plus a cgroup2 mount (systemd's "hybrid", /sys/fs/cgroup/unified)
    /// that holds no controllers but offers cgroup.procs, cgroup.freeze, cgroup.kill.
    Hybrid,
}

/// The host's layout, from /proc/self/mountinfo: any v1 hierarchy with a real
/// controller makes it V1 (or Hybrid if cgroup2 is mounted too); otherwise cgroup2 is V2.
pub fn detect_layout() -> Result<Layout, Error> {
    mounts::host_mounts()?.layout()
}

/// Freezer state, as `runc state`/`pause` know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    /// Freezing has started but some task has not stopped yet.
    Freezing,
    Frozen,
}

/// One directory the runtime bind-mounts into the container's /sys/fs/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Directory name below /sys/fs/cgroup in the container: "memory", "cpu,cpuacct",
    /// "systemd" (for name=systemd), "unified" (hybrid), or "" (pure v2: the mount
    /// itself).
    pub name: String,
    /// The container's cgroup directory on the host.
    pub host_dir: PathBuf,
}

/// What the runtime and the engine do with a container's cgroups.
pub trait CgroupManager {
    /// `mkdir -p` in every hierarchy; idempotent. v1 cpuset levels inherit cpus/mems
    /// from their parents; v2 parents delegate their controllers.
    fn create(&self) -> Result<(), Error>;
    /// Moves a process (and its threads) into the cgroup in every hierarchy.
    fn add_task(&self, pid: i32) -> Result<(), Error>;
    /// Writes `linux.resources`: validated first, absent fields untouched.
    fn apply(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<(), Error>;
    /// Pids in the cgroup and its descendants; empty if the cgroup does not exist.
    fn pids(&self) -> Result<Vec<i32>, Error>;
    /// Freezes every process and waits (up to 2 s) until they are all stopped.
    fn freeze(&self) -> Result<(), Error>;
    fn thaw(&self) -> Result<(), Error>;
    fn freezer_state(&self) -> Result<FreezerState, Error>;
    /// Signals every process. SIGKILL uses cgroup.kill where the kernel has it (v2 and
    /// the hybrid unified tree), which cannot miss a process forked meanwhile.
    fn kill_all(&self, signal: i32) -> Result<(), Error>;
    /// Kills everything inside and removes every directory in every hierarchy.
    /// Missing directories are fine; all failures are gathered into one error.
    fn destroy(&self) -> Result<(), Error>;
    /// What to bind-mount into the container's /sys/fs/cgroup.
    fn mounts(&self) -> Vec<CgroupMount>;
    /// The directory on pure v2 (for CLONE_INTO_CGROUP); `None` on v1 and hybrid, where
    /// a process must be placed with [`CgroupManager::add_task`].
    fn v2_dir(&self) -> Option<PathBuf>;
    /// Usage numbers, shaped like runc's `events --stats` data.
    fn stats(&self) -> Result<Stats, Error>;
    /// How many processes the OOM killer has killed in this cgroup.
    fn oom_kill_count(&self) -> Result<u64, Error>;
}
