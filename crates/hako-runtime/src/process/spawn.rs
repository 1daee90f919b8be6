//! The parent's side of container creation: prepare, clone, answer the init's requests
//! until it is ready, and undo everything if any step fails.

use std::os::fd::{AsFd, OwnedFd};

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::channel::{self, Down, Up};
use super::init::{self, InitArgs};
use super::namespaces::{Plan, setns_flag};
use crate::config::Config;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, HookState};

/// What the parent hands to [`spawn`].
#[derive(Debug)]
pub struct SpawnArgs<'a> {
    pub id: &'a str,
    pub config: &'a Config,
    pub init: InitArgs<'a>,
    /// The container's cgroup v2 directory (pure v2's, hybrid's unified tree's): the
    /// first child is cloned straight into it (CLONE_INTO_CGROUP, Linux 5.7), so it never
    /// runs a step in the caller's cgroup and the limits hold from its first instruction.
    pub cgroup: Option<std::os::fd::BorrowedFd<'a>>,
}

/// Kills the half-made container's processes if creation fails.
struct Reaper(Vec<i32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
}

/// Clone the container's init and drive it to "created". Returns the init's host pid.
/// `add_to_cgroup` is called with the init's pid before it may run any container step,
/// and whether it was cloned into `args.cgroup`.
pub fn spawn(args: SpawnArgs<'_>, add_to_cgroup: &dyn Fn(i32, bool) -> Result<()>) -> Result<i32> {
    let plan = args.init.plan;
    let spec = &args.config.spec;
    let (parent, child) = channel::pair()?;

    let restore = ParentNamespaces::enter(plan, spec)?;
    let (cloned, cloned_into) = hako_sys::clone3_fork_into(plan.clone_flags, args.cgroup);
    let cloned = match cloned {
        Ok(hako_sys::CloneResult::Child) => {
            drop(parent);
            if plan.intermediate {
                super::intermediate::run(args.init, child)
            } else {
                init::run(args.init, child)
            }
        }
        Ok(hako_sys::CloneResult::Parent(pid)) => Ok(pid),
        Err(e) => Err(e).context(|| "clone container init".into()),
    };
    restore.leave()?;
    drop(child);
    let first = cloned?;
    tracing::debug!(pid = first, flags = ?plan.clone_flags, intermediate = plan.intermediate, into_cgroup = cloned_into, "cloned");
    let mut reaper = Reaper(vec![first]);

    let init_pid = if plan.intermediate {
        let pid = loop {
            match parent.recv()? {
                Some(Up::MappingRequest) => {
                    write_mappings(first, spec)?;
                    parent.send(Down::MappingWritten)?;
                }
                Some(Up::InitPid(pid)) => break pid,
                Some(Up::Failed(msg)) => return Err(Error::Init(msg)),
                other => return Err(unexpected(other)),
            }
        };
        let _ = waitpid(Pid::from_raw(first), None);
        reaper.0 = vec![pid];
        pid
    } else {
        first
    };

    // (An intermediate process's child, the init, inherits its cgroup v2 placement.)
    add_to_cgroup(init_pid, cloned_into)?;
    if plan.new_user && !plan.child_new_user {
        write_mappings(init_pid, spec)?;
    }
    parent.send(Down::Proceed(init_pid))?;
    loop {
        match parent.recv()? {
            Some(Up::MappingRequest) => {
                write_mappings(init_pid, spec)?;
                parent.send(Down::MappingWritten)?;
            }
            Some(Up::RuntimeHooks) => {
                let hooks = spec.hooks().as_ref().expect("init asked for hooks");
                let state = HookState {
                    oci_version: spec.version(),
                    id: args.id,
                    status: "creating",
                    pid: Some(init_pid),
                    bundle: &args.config.bundle,
                    annotations: spec.annotations().as_ref(),
                };
                let res = hooks::run_all(
                    "prestart",
                    hooks.prestart().as_deref().unwrap_or_default(),
                    &state,
                )
                .and_then(|()| {
                    hooks::run_all(
                        "createRuntime",
                        hooks.create_runtime().as_deref().unwrap_or_default(),
                        &state,
                    )
                });
                if let Err(e) = res {
                    let _ = parent.send(Down::Abort);
                    return Err(e);
                }
                parent.send(Down::HooksDone)?;
            }
            Some(Up::Ready) => {
                tracing::debug!(pid = init_pid, "init ready");
                break;
            }
            Some(Up::Failed(msg)) => return Err(Error::Init(msg)),
            other => return Err(unexpected(other)),
        }
    }
    reaper.0.clear();
    Ok(init_pid)
}

fn unexpected(msg: Option<Up>) -> Error {
    match msg {
        None => Error::Init("container init exited before it was ready".into()),
        Some(m) => Error::Init(format!("protocol error: unexpected {m:?}")),
    }
}

fn format_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Write `/proc/<pid>/{uid,gid}_map` from the config.
fn write_mappings(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref().expect("validated");
    let uid = format_map(linux.uid_mappings().as_deref().unwrap_or_default());
    let gid = format_map(linux.gid_mappings().as_deref().unwrap_or_default());
    std::fs::write(format!("/proc/{pid}/uid_map"), &uid)
        .context(|| format!("write uid_map {:?}", uid.trim()))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), &gid)
        .context(|| format!("write gid_map {:?}", gid.trim()))?;
    Ok(())
}

/// pid and time namespaces apply to children only: the parent enters them (or makes a new
/// time namespace and sets its offsets) right before the clone and returns right after.
struct ParentNamespaces {
    restore: Vec<(OwnedFd, CloneFlags)>,
}

impl ParentNamespaces {
    fn enter(plan: &Plan, spec: &Spec) -> Result<ParentNamespaces> {
        let mut restore = Vec::new();
        let mut save = |name: &str, flag| -> Result<()> {
            let fd: OwnedFd = std::fs::File::open(format!("/proc/self/ns/{name}"))
                .context(|| format!("open own {name} namespace"))?
                .into();
            restore.push((fd, flag));
            Ok(())
        };
        for j in &plan.parent_join {
            let flag = setns_flag(j.typ);
            save(
                if flag == CloneFlags::CLONE_NEWPID {
                    "pid"
                } else {
                    "time"
                },
                flag,
            )?;
            let f = std::fs::File::open(&j.path)
                .context(|| format!("open {} namespace {}", j.typ, j.path.display()))?;
            setns(f.as_fd(), flag)
                .context(|| format!("join {} namespace {}", j.typ, j.path.display()))?;
        }
        if plan.parent_new_time {
            let flag = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
            save("time", flag)?;
            unshare(flag).context(|| "unshare time namespace".into())?;
            let offsets = spec
                .linux()
                .as_ref()
                .and_then(|l| l.time_offsets().as_ref());
            let mut text = String::new();
            for (clock, off) in offsets.into_iter().flatten() {
                text.push_str(&format!(
                    "{clock} {} {}\n",
                    off.secs().unwrap_or(0),
                    off.nanosecs().unwrap_or(0)
                ));
            }
            if !text.is_empty() {
                std::fs::write("/proc/self/timens_offsets", &text)
                    .context(|| format!("write time offsets {:?}", text.trim()))?;
            }
        }
        Ok(ParentNamespaces { restore })
    }

    fn leave(self) -> Result<()> {
        for (fd, flag) in self.restore.into_iter().rev() {
            setns(fd.as_fd(), flag).context(|| "return to own namespace".into())?;
        }
        Ok(())
    }
}
