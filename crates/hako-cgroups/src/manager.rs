//! [`Manager`]: the concrete manager that dispatches to the v1, v2 or hybrid internals.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use crate::error::Error;
use crate::mounts::{Mounts, host_mounts, scan_root};
use crate::stats::{self, Stats};
use crate::systemd::{Instance, Systemd};
use crate::v1::V1;
use crate::v2::V2;
use crate::{CgroupManager, CgroupMount, FreezerState, Layout, destroy, resources};

/// The cgroups of one container, in every hierarchy of the host.
///
/// Building a manager never touches the filesystem beyond reading mountinfo; nothing
/// exists until [`CgroupManager::create`].
#[derive(Debug)]
pub struct Manager {
    layout: Layout,
    resolved: String,
    inner: Inner,
    /// v2 device rules from the last `apply`, for the runtime's eBPF program.
    device_rules: Mutex<Vec<LinuxDeviceCgroup>>,
}

#[derive(Debug)]
enum Inner {
    V1(V1),
    V2(V2),
    /// v1 controllers plus the (usually controller-less) unified tree, which still gives
    /// cgroup.kill, cgroup.freeze and a complete process list.
    Hybrid(V1, V2),
    /// A transient scope made by systemd (pure v2 only).
    Systemd(Box<Systemd>),
    /// No cgroup at all: a rootless container on a host that delegates no cgroup to the
    /// user (as runc in rootless mode: fine as long as nothing asks for a limit).
    None,
}

/// [`Manager::saved`] of a container without a cgroup.
const SAVED_NONE: &str = "none";

impl Manager {
    /// A manager for a container on this host: resolves `cgroups_path` (see
    /// [`crate::resolve_path`]) and finds the hierarchies. No filesystem writes.
    pub fn new(cgroups_path: Option<&str>, container_id: &str) -> Result<Manager, Error> {
        let resolved = crate::resolve_path(cgroups_path, container_id)?;
        Manager::from_resolved(&resolved)
    }

    /// A manager for a container whose cgroup is a transient systemd scope: `cgroups_path`
    /// in `slice:prefix:name` form (missing: `<default slice>:hako:<id>`). Fails at once,
    /// in one line, when systemd is not running or the host is not pure cgroup v2.
    pub fn new_systemd(
        cgroups_path: Option<&str>,
        container_id: &str,
        instance: Instance,
    ) -> Result<Manager, Error> {
        if instance == Instance::System && !crate::systemd::booted() {
            return Err(Error::SystemdNotRunning {
                what: "systemd is not PID 1 on this host (no /run/systemd/system)".into(),
            });
        }
        let mounts = host_mounts()?;
        let layout = mounts.layout()?;
        let (Layout::V2, Some((mount, _))) = (layout, mounts.unified) else {
            return Err(Error::SystemdNeedsV2);
        };
        let sd = Systemd::new(mount, cgroups_path, container_id, instance)?;
        Ok(Manager::systemd(layout, sd))
    }

    /// The manager a cgroupsPath asks for by its form: `slice:prefix:name` is a systemd
    /// scope (the system manager's for root, the user's otherwise), anything else a
    /// cgroupfs path. For callers that read a container's cgroup without knowing which
    /// driver made it (the engine's stats and top).
    pub fn for_cgroups_path(
        cgroups_path: Option<&str>,
        container_id: &str,
    ) -> Result<Manager, Error> {
        match cgroups_path {
            Some(p) if crate::path::is_systemd_form(p) => {
                Manager::new_systemd(Some(p), container_id, Instance::for_caller())
            }
            _ => Manager::new(cgroups_path, container_id),
        }
    }

    /// A container without a cgroup (rootless, no delegation): every write is refused
    /// in one line naming the setting, reads find no processes.
    pub fn none() -> Manager {
        Manager {
            layout: detect_or_v1(),
            resolved: String::new(),
            inner: Inner::None,
            device_rules: Mutex::new(Vec::new()),
        }
    }

    /// True for [`Manager::none`].
    pub fn is_none(&self) -> bool {
        matches!(self.inner, Inner::None)
    }

    fn systemd(layout: Layout, sd: Systemd) -> Manager {
        Manager {
            layout,
            resolved: sd.v2.resolved.clone(),
            inner: Inner::Systemd(Box::new(sd)),
            device_rules: Mutex::new(Vec::new()),
        }
    }

    /// What to store to rebuild this manager in a later process with
    /// [`Manager::from_saved`]: the resolved path, or for a systemd scope
    /// `systemd:<system|user>:<path>`.
    pub fn saved(&self) -> String {
        match &self.inner {
            Inner::Systemd(sd) => sd.saved(),
            Inner::None => SAVED_NONE.into(),
            _ => self.resolved.clone(),
        }
    }

    /// Rebuilds a manager from [`Manager::saved`] (no D-Bus connection is made until an
    /// operation needs one).
    pub fn from_saved(saved: &str) -> Result<Manager, Error> {
        if saved == SAVED_NONE {
            return Ok(Manager::none());
        }
        if saved.starts_with("systemd:") {
            let mounts = host_mounts()?;
            let layout = mounts.layout()?;
            let Some((mount, _)) = mounts.unified else {
                return Err(Error::SystemdNeedsV2);
            };
            let sd = Systemd::from_saved(mount, saved).expect("systemd: prefix checked")?;
            return Ok(Manager::systemd(layout, sd));
        }
        Manager::from_resolved(saved)
    }

    /// The systemd unit of the container's scope, if the systemd driver made it.
    pub fn systemd_unit(&self) -> Option<&str> {
        match &self.inner {
            Inner::Systemd(sd) => Some(&sd.unit),
            _ => None,
        }
    }

    /// Rebuilds the manager in a later process (e.g. the runtime's `delete`) from
    /// [`Manager::resolved_path`] saved in the container state.
    pub fn from_resolved(resolved: &str) -> Result<Manager, Error> {
        crate::path::validate_resolved(resolved)?;
        let mounts = host_mounts()?;
        let layout = mounts.layout()?;
        Ok(Manager::build(mounts, layout, resolved))
    }

    /// A manager over a fake cgroupfs tree under `root`, for tests. For [`Layout::V1`]
    /// each subdirectory of `root` is a hierarchy named after it ("cpu,cpuacct",
    /// "systemd" for name=systemd); [`Layout::Hybrid`] adds `root/unified` as the cgroup2
    /// mount; for [`Layout::V2`] `root` is the cgroup2 mount. `resolved` is used as is.
    pub fn with_root(root: &Path, layout: Layout, resolved: &str) -> Manager {
        Manager::build(scan_root(root, layout), layout, resolved)
    }

    fn build(mounts: Mounts, layout: Layout, resolved: &str) -> Manager {
        let v1 = V1 {
            hierarchies: mounts.v1,
            resolved: resolved.to_owned(),
        };
        let v2 = mounts.unified.map(|(mount, _)| V2 {
            mount,
            resolved: resolved.to_owned(),
        });
        let inner = match (layout, v2) {
            (Layout::V2, Some(v2)) => Inner::V2(v2),
            (Layout::Hybrid, Some(v2)) => Inner::Hybrid(v1, v2),
            _ => Inner::V1(v1),
        };
        Manager {
            layout,
            resolved: resolved.to_owned(),
            inner,
            device_rules: Mutex::new(Vec::new()),
        }
    }

    /// The absolute path below every hierarchy's mount; store it to rebuild the manager
    /// with [`Manager::from_resolved`].
    pub fn resolved_path(&self) -> &str {
        &self.resolved
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Device rules recorded by the last `apply` on pure v2, where devices are
    /// controlled by an eBPF program (attached by the runtime) rather than files.
    /// Always empty on v1 and hybrid, where `apply` writes devices.allow/deny itself.
    pub fn device_rules(&self) -> Vec<LinuxDeviceCgroup> {
        self.device_rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes only what cloning into [`CgroupManager::clone_into_dir`] needs (pure v2's
    /// directory, hybrid's unified one): the rest can be made after the clone, while the
    /// new process sets itself up ([`Manager::self_join_paths`]). Nothing on v1 or
    /// systemd.
    pub fn create_clone_target(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::V2(v2) | Inner::Hybrid(_, v2) => v2.create(),
            _ => Ok(()),
        }
    }

    /// The v1 hierarchies' `tasks` files ([`CgroupManager::self_join_files`]) as paths,
    /// which need not exist yet: a process that has them made before it writes `0` to
    /// each ([`crate::self_join_paths`]) moves itself in.
    pub fn self_join_paths(&self) -> Vec<PathBuf> {
        match &self.inner {
            Inner::V1(v1) | Inner::Hybrid(v1, _) => {
                v1.dirs().into_iter().map(|d| d.join("tasks")).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Every directory of this container, in every hierarchy.
    pub(crate) fn all_dirs(&self) -> Vec<PathBuf> {
        match &self.inner {
            Inner::V1(v1) => v1.dirs(),
            Inner::V2(v2) => vec![v2.dir()],
            Inner::Systemd(sd) => vec![sd.v2.dir()],
            Inner::None => Vec::new(),
            Inner::Hybrid(v1, v2) => {
                let mut dirs = v1.dirs();
                dirs.push(v2.dir());
                dirs
            }
        }
    }

    /// The systemd half, for destroy.
    pub(crate) fn systemd_part(&self) -> Option<&Systemd> {
        match &self.inner {
            Inner::Systemd(sd) => Some(sd),
            _ => None,
        }
    }

    /// Writes `r` to a v2 directory and attaches the device program.
    fn apply_v2_files(&self, v2: &V2, r: &LinuxResources) -> Result<(), Error> {
        let rules = resources::apply_v2(&v2.dir(), r)?;
        // In a user namespace (rootless, in a cgroup delegated to the user) the kernel
        // refuses device programs (CAP_BPF of the initial namespace), and there is nothing
        // to guard: the user cannot mknod, and devices are bind mounts of the user's own
        // access. runc's rootless mode skips them the same way.
        if r.devices().is_some() && hako_sys::userns::in_initial() {
            resources::devices_bpf::attach(&v2.dir(), &rules)?;
            *self
                .device_rules
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = rules;
        }
        Ok(())
    }

    /// The v2 side that can kill the whole cgroup at once, if any.
    fn killer(&self) -> Option<&V2> {
        match &self.inner {
            Inner::V2(v2) | Inner::Hybrid(_, v2) => Some(v2).filter(|v2| v2.has_kill()),
            Inner::Systemd(sd) => Some(&sd.v2).filter(|v2| v2.has_kill()),
            Inner::V1(_) | Inner::None => None,
        }
    }
}

/// The host's layout, for a manager that has no directories of its own.
fn detect_or_v1() -> Layout {
    crate::detect_layout().unwrap_or(Layout::V1)
}

fn signal_all(pids: &[i32], signal: i32) -> Result<(), Error> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    // 0 sends nothing and only checks the processes exist, as kill(2).
    let sig = match signal {
        0 => None,
        n => Some(Signal::try_from(n).map_err(|_| Error::InvalidSignal(n))?),
    };
    for &pid in pids {
        match kill(Pid::from_raw(pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(source) => {
                return Err(Error::Signal {
                    pid,
                    signal,
                    source,
                });
            }
        }
    }
    Ok(())
}

impl CgroupManager for Manager {
    fn create(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(v1) => v1.create(),
            Inner::V2(v2) => v2.create(),
            // systemd makes the scope when the first process joins; here: is it there?
            Inner::Systemd(sd) => sd.create(),
            Inner::None => Ok(()),
            Inner::Hybrid(v1, v2) => {
                v1.create()?;
                v2.create()
            }
        }
    }

    fn add_task(&self, pid: i32) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(v1) => v1.add_task(pid),
            Inner::V2(v2) => v2.add_task(pid),
            Inner::Systemd(sd) if sd.exists() => sd.v2.add_task(pid),
            Inner::Systemd(sd) => match sd.start(pid)? {
                Some(r) => self.apply_v2_files(&sd.v2, &r),
                None => Ok(()),
            },
            Inner::Hybrid(v1, v2) => {
                v1.add_task(pid)?;
                v2.add_task(pid)
            }
            Inner::None => Ok(()),
        }
    }

    fn apply(&self, resources: &LinuxResources) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(v1) => resources::apply_v1(&|c| v1.dir(c), None, resources),
            Inner::Hybrid(v1, v2) => {
                resources::apply_v1(&|c| v1.dir(c), Some(&v2.dir()), resources)
            }
            Inner::V2(v2) => self.apply_v2_files(v2, resources),
            Inner::Systemd(sd) => {
                resources::validate(resources)?;
                if sd.apply(resources)? {
                    self.apply_v2_files(&sd.v2, resources)?;
                }
                Ok(())
            }
            Inner::None => match resources::first_limit(resources) {
                Some(setting) => Err(Error::NoDelegation { setting }),
                None => Ok(()),
            },
        }
    }

    fn pids(&self) -> Result<Vec<i32>, Error> {
        match &self.inner {
            Inner::V1(v1) => v1.pids(),
            Inner::V2(v2) => v2.pids(),
            Inner::Systemd(sd) => sd.v2.pids(),
            // Every process is in the unified tree, even with no controllers there; if
            // that directory is missing (made by another tool), fall back to v1.
            Inner::Hybrid(v1, v2) if !v2.dir().exists() => v1.pids(),
            Inner::Hybrid(_, v2) => v2.pids(),
            Inner::None => Ok(Vec::new()),
        }
    }

    fn freeze(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(v1) => v1.freeze(),
            Inner::V2(v2) => v2.freeze(),
            Inner::Systemd(sd) => sd.v2.freeze(),
            // The v1 freezer is what a container sees in its own /sys/fs/cgroup/freezer.
            Inner::Hybrid(v1, _) if v1.has_freezer() => v1.freeze(),
            Inner::Hybrid(_, v2) => v2.freeze(),
            Inner::None => Err(Error::NoCgroup { what: "pause" }),
        }
    }

    fn thaw(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(v1) => v1.thaw(),
            Inner::V2(v2) => v2.thaw(),
            Inner::Systemd(sd) => sd.v2.thaw(),
            Inner::Hybrid(v1, _) if v1.has_freezer() => v1.thaw(),
            Inner::Hybrid(_, v2) => v2.thaw(),
            Inner::None => Err(Error::NoCgroup { what: "unpause" }),
        }
    }

    fn freezer_state(&self) -> Result<FreezerState, Error> {
        match &self.inner {
            Inner::V1(v1) => v1.freezer_state(),
            Inner::V2(v2) => v2.freezer_state(),
            Inner::Systemd(sd) => sd.v2.freezer_state(),
            Inner::Hybrid(v1, _) if v1.has_freezer() => v1.freezer_state(),
            Inner::Hybrid(_, v2) => v2.freezer_state(),
            Inner::None => Ok(FreezerState::Thawed),
        }
    }

    fn kill_all(&self, signal: i32) -> Result<(), Error> {
        if signal == nix::libc::SIGKILL
            && let Some(v2) = self.killer()
        {
            return match v2.kill() {
                Err(e) if e.is_not_found() => Ok(()),
                r => r,
            };
        }
        signal_all(&self.pids()?, signal)
    }

    fn destroy(&self) -> Result<(), Error> {
        destroy::destroy(self)
    }

    fn mounts(&self) -> Vec<CgroupMount> {
        let unified = |v2: &V2, name: &str| CgroupMount {
            name: name.to_owned(),
            host_dir: v2.dir(),
        };
        match &self.inner {
            Inner::V1(v1) => v1.mounts(),
            Inner::V2(v2) => vec![unified(v2, "")],
            Inner::Systemd(sd) => vec![unified(&sd.v2, "")],
            Inner::Hybrid(v1, v2) => {
                let mut m = v1.mounts();
                m.push(unified(v2, "unified"));
                m
            }
            Inner::None => Vec::new(),
        }
    }

    fn v2_dir(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::V2(v2) => Some(v2.dir()),
            _ => None,
        }
    }

    fn clone_into_dir(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::V2(v2) | Inner::Hybrid(_, v2) => Some(v2.dir()),
            _ => None,
        }
    }

    fn self_join_files(&self) -> Result<Vec<std::os::fd::OwnedFd>, Error> {
        match &self.inner {
            Inner::V1(v1) | Inner::Hybrid(v1, _) => v1.tasks_files(),
            _ => Ok(Vec::new()),
        }
    }

    fn add_task_rest(&self, pid: i32, cloned_into: bool, self_joined: bool) -> Result<(), Error> {
        match &self.inner {
            Inner::V1(v1) if !self_joined => v1.add_task(pid),
            Inner::V1(_) => Ok(()),
            Inner::V2(v2) if !cloned_into => v2.add_task(pid),
            Inner::V2(_) => Ok(()),
            Inner::Hybrid(v1, v2) => {
                if !self_joined {
                    v1.add_task(pid)?;
                }
                if !cloned_into {
                    v2.add_task(pid)?;
                }
                Ok(())
            }
            _ => self.add_task(pid),
        }
    }

    fn stats(&self) -> Result<Stats, Error> {
        match &self.inner {
            Inner::V1(v1) | Inner::Hybrid(v1, _) => stats::v1(&|c| v1.dir(c)),
            Inner::V2(v2) => stats::v2(&v2.dir()),
            Inner::Systemd(sd) => stats::v2(&sd.v2.dir()),
            Inner::None => Err(Error::NoCgroup { what: "read stats" }),
        }
    }

    fn oom_kill_count(&self) -> Result<u64, Error> {
        match &self.inner {
            Inner::V1(v1) | Inner::Hybrid(v1, _) => v1.oom_kill_count(),
            Inner::V2(v2) => v2.oom_kill_count(),
            Inner::Systemd(sd) => sd.v2.oom_kill_count(),
            Inner::None => Ok(0),
        }
    }
}

#[cfg(test)]
mod none_tests {
    use super::*;
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};

    #[test]
    fn a_manager_without_cgroup_refuses_limits_and_survives_a_round_trip() {
        let m = Manager::none();
        assert!(m.is_none());
        assert_eq!(Manager::from_saved(&m.saved()).unwrap().saved(), "none");
        m.create().unwrap();
        m.apply(&LinuxResources::default()).unwrap();
        assert_eq!(m.pids().unwrap(), Vec::<i32>::new());
        m.destroy().unwrap();
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let e = m.apply(&r).unwrap_err().to_string();
        assert!(e.starts_with("memory.limit needs a cgroup"), "{e}");
        assert!(m.freeze().unwrap_err().to_string().contains("no cgroup"));
    }
}
