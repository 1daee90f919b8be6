//! cgroup managers for hako: one trait, [`CgroupManager`], implemented by [`Manager`]
//! for the three host layouts (v1, v2, hybrid), plus cgroupsPath resolution and stats.
//!
//! Lifecycle, as the runtime uses it:
//!
//! ```text
//! create:  Manager::new(spec.cgroupsPath, id) -> create() -> apply(resources)
//!          -> add_task(init pid)            (on pure v2, or CLONE_INTO_CGROUP v2_dir())
//!             the runtime's init: CLONE_INTO_CGROUP clone_into_dir() (v2, hybrid's
//!             unified), then writes 0 to self_join_files() (v1), add_task_rest()
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

/// Moves the calling thread into the cgroups whose [`CgroupManager::self_join_files`] these
/// are (writes `0` to each): the whole process, when it is single-threaded, as a freshly
/// cloned init or exec child is.
pub fn self_join(files: &[std::os::fd::OwnedFd]) -> std::io::Result<()> {
    for f in files {
        nix::unistd::write(f, b"0")?;
    }
    Ok(())
}

/// [`self_join`] by path ([`Manager::self_join_paths`]): opens each `tasks` file and
/// writes `0`.
pub fn self_join_paths(paths: &[std::path::PathBuf]) -> std::io::Result<()> {
    for p in paths {
        let f = std::fs::OpenOptions::new().write(true).open(p)?;
        nix::unistd::write(&f, b"0")?;
    }
    Ok(())
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
    /// The cgroup2 directory a new process can be cloned straight into
    /// (CLONE_INTO_CGROUP): pure v2's, and on hybrid the unified tree's, the v1
    /// hierarchies then still to be joined. `None` for systemd scopes and no cgroup.
    fn clone_into_dir(&self) -> Option<PathBuf>;
    /// The v1 hierarchies' `tasks` files, opened for writing (empty on pure v2, systemd
    /// and no cgroup). A single-threaded process that writes `0` to each moves itself in.
    ///
    /// Why: moving another process (`cgroup.procs`, or `tasks` with a pid) takes the
    /// kernel's global `cgroup_threadgroup_rwsem` for writing, and the first writer after
    /// a quiet spell waits for an RCU grace period (`rcu_sync_enter`): 5-12 ms on every
    /// container start here, the largest wait of `hako run`. A thread moving itself does
    /// not take it (`cgroup_procs_write_start`: "If the thread is `current`, it won't
    /// exit(2) under our hands..."): 9 hierarchies in 0.4 ms.
    fn self_join_files(&self) -> Result<Vec<std::os::fd::OwnedFd>, Error>;
    /// [`CgroupManager::add_task`] for the parts that cloning into
    /// [`CgroupManager::clone_into_dir`] (`cloned_into`) and writing to
    /// [`CgroupManager::self_join_files`] (`self_joined`) did not place the process in.
    fn add_task_rest(&self, pid: i32, cloned_into: bool, self_joined: bool) -> Result<(), Error>;
    /// Usage numbers, shaped like runc's `events --stats` data.
    fn stats(&self) -> Result<Stats, Error>;
    /// How many processes the OOM killer has killed in this cgroup.
    fn oom_kill_count(&self) -> Result<u64, Error>;
}
