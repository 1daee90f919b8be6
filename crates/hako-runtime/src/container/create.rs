//! `create`: everything up to the point where only the user's program is left to run.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use hako_cgroups::{CgroupManager, Layout, Manager};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use crate::config::Config;
use crate::error::{Context, Error, Result};
use crate::process::init::InitArgs;
use crate::process::namespaces::Plan;
use crate::process::security::CapPlan;
use crate::process::{SpawnArgs, spawn};
use crate::rootfs::{CgroupSource, CgroupView};
use crate::state::{HostMount, Persisted, StateDir, now_rfc3339, proc_stat};

/// Flags of `create` (and `run`).
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `--systemd-cgroup`: the cgroup is a transient systemd scope (cgroupsPath
    /// slice:prefix:name), made by the system manager, or the user's for rootless.
    pub systemd_cgroup: bool,
}

/// Where the console master goes when the caller gives no socket (foreground `run`).
#[derive(Debug)]
pub enum Console {
    Path(PathBuf),
    Fd(OwnedFd),
    None,
}

/// A created container.
#[derive(Debug)]
pub struct Created {
    pub pid: i32,
    pub dir: StateDir,
    pub state: Persisted,
}

/// Undoes a half-made container when dropped before [`Cleanup::disarm`].
struct Cleanup {
    dir: Option<StateDir>,
    cgroup: Option<Manager>,
    /// The rootfs and the mounts under it before the init ran, when the init mounts in
    /// the caller's mount namespace.
    host_mounts: Option<(PathBuf, Vec<HostMount>)>,
}

impl Cleanup {
    fn disarm(mut self) {
        self.dir = None;
        self.cgroup = None;
        self.host_mounts = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some((rootfs, before)) = self.host_mounts.take()
            && let Err(e) = made_since(&rootfs, &before)
                .and_then(|made| crate::rootfs::detach_host_mounts(&rootfs, &made))
        {
            tracing::warn!(error = %e, "cleanup: mounts");
        }
        if let Some(cg) = self.cgroup.take()
            && let Err(e) = cg.destroy()
        {
            tracing::warn!(error = %e, "cleanup: cgroup");
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.remove()
        {
            tracing::warn!(error = %e, "cleanup: state dir");
        }
    }
}

/// Create the container; on any error nothing is left behind (state dir, cgroup, process).
pub fn create(opts: &CreateOptions, console: Console) -> Result<Created> {
    crate::id::validate(&opts.id)?;
    let config = Config::load(&opts.bundle)?;
    let spec = &config.spec;
    let process = spec.process().as_ref().expect("validated");
    let terminal = process.terminal().unwrap_or(false);
    if terminal && matches!(console, Console::None) {
        return Err(Error::Usage(
            "process.terminal is true: pass --console-socket (or set terminal to false)".into(),
        ));
    }
    if !terminal && !matches!(console, Console::None) && opts.console_socket.is_some() {
        return Err(Error::Usage(
            "--console-socket was given but process.terminal is false".into(),
        ));
    }
    let plan = Plan::new(spec);
    tracing::debug!(id = %opts.id, bundle = %config.bundle.display(), ?plan, "config loaded");
    let caps = CapPlan::new(process.capabilities().as_ref())?;
    let linux = spec.linux().as_ref().expect("validated");
    let seccomp = match linux.seccomp() {
        Some(profile) => Some(hako_seccomp::compile_cached(
            profile,
            &opts.root.join(".cache").join("seccomp"),
        )?),
        None => None,
    };
    let console_socket = match console {
        Console::Path(p) => Some(connect(&p)?),
        Console::Fd(fd) => Some(fd),
        Console::None => None,
    };
    if opts.no_pivot && !plan.has_mount_ns {
        // MS_MOVE onto / of the caller's own mount namespace would bury its root.
        return Err(Error::Usage("--no-pivot needs a mount namespace".into()));
    }

    let dir = StateDir::claim(&opts.root, &opts.id)?;
    let mut cleanup = Cleanup {
        dir: Some(dir.clone()),
        cgroup: None,
        host_mounts: None,
    };
    if !plan.has_mount_ns {
        let before = crate::rootfs::host_mounts(&config.rootfs)?;
        cleanup.host_mounts = Some((config.rootfs.clone(), before));
    }
    let cgroups_path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let cg = if opts.systemd_cgroup {
        let instance = hako_cgroups::systemd::Instance::for_caller();
        Manager::new_systemd(cgroups_path.as_deref(), &opts.id, instance)?
    } else {
        Manager::new(cgroups_path.as_deref(), &opts.id)?
    };
    let resources = linux.resources().clone().unwrap_or_default();
    // v1 and hybrid hosts: the v1 hierarchies are made and set (~1 ms: a directory and its
    // settings in each of a dozen hierarchies, the device rules) after the clone, while the
    // init joins its namespaces and makes its mounts (`InitArgs::cgroup_late`). Not with a
    // user namespace (the parent answers the init's mapping requests then), an
    // intermediate process, systemd's scopes or a rootless runtime (which may get no cgroup
    // at all).
    let late = !opts.systemd_cgroup
        && matches!(cg.layout(), Layout::V1 | Layout::Hybrid)
        && !plan.new_user
        && !plan.intermediate
        && plan.has_mount_ns
        && hako_sys::userns::in_initial();
    let cg = if late {
        cg.create_clone_target()?;
        cg
    } else {
        // Rootless (this runtime itself in a user namespace, as runc's rootless mode): a
        // host that delegates no cgroup to the user refuses the directory; the container
        // then runs without one, unless it asks for a limit (one line naming it).
        match cg.create() {
            Ok(()) => cg,
            Err(e) if e.is_permission() && !hako_sys::userns::in_initial() => {
                tracing::debug!(error = %e, "rootless: no cgroup for this container");
                let none = Manager::none();
                none.apply(&resources)?;
                none
            }
            Err(e) => return Err(e.into()),
        }
    };
    tracing::debug!(path = cg.resolved_path(), layout = ?cg.layout(), unit = ?cg.systemd_unit(), late, "cgroup created");
    cleanup.cgroup = Some(Manager::from_saved(&cg.saved())?);
    // Like runc, the device cgroup is always a whitelist: the config's rules, then the
    // devices every container needs.
    let resources = with_default_devices(&resources);
    if !late {
        cg.apply(&resources)?;
    }

    nix::unistd::mkfifo(&dir.fifo(), Mode::from_bits_truncate(0o622))
        .context(|| "make exec fifo".into())?;
    // Read-write so the open does not block; the init reads one byte from it at start.
    let fifo = nix::fcntl::open(&dir.fifo(), OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .context(|| "open exec fifo".into())?;
    let exec_error = nix::fcntl::open(
        &dir.exec_error(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .context(|| "make exec.error".into())?;

    let cgroups = cgroup_view(&cg, &plan);
    // v1 hierarchies: the init moves itself in (see CgroupManager::self_join_files), but
    // not from inside a new user namespace (it is not root of the files' namespace
    // there): then the parent moves it as before.
    let join_cgroups = match plan.new_user || plan.intermediate || late {
        true => Vec::new(),
        false => cg.self_join_files()?,
    };
    let join_cgroup_paths = if late {
        cg.self_join_paths()
    } else {
        Vec::new()
    };
    let self_joined = !join_cgroups.is_empty() || !join_cgroup_paths.is_empty();
    let init = InitArgs {
        id: &opts.id,
        config: &config,
        plan: &plan,
        cgroups,
        caps,
        seccomp,
        fifo: Some(fifo),
        exec_error: Some(exec_error),
        console_socket,
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds,
        no_new_keyring: opts.no_new_keyring,
        join_cgroups,
        join_cgroup_paths,
        cgroup_late: late,
    };
    // cgroup v2 (cgroupfs driver; hybrid's unified tree too): clone the init straight
    // into its cgroup.
    let cgroup_dir = match cg.clone_into_dir() {
        Some(d) => Some(
            nix::fcntl::open(
                &d,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .context(|| format!("open cgroup {}", d.display()))?,
        ),
        None => None,
    };
    let pid = spawn(
        SpawnArgs {
            id: &opts.id,
            config: &config,
            init,
            cgroup: cgroup_dir.as_ref().map(std::os::fd::AsFd::as_fd),
        },
        &|pid, cloned_into| {
            if late {
                cg.create()?;
                cg.apply(&resources)?;
                tracing::debug!("cgroup made beside the init");
            }
            Ok(cg.add_task_rest(pid, cloned_into, self_joined)?)
        },
    )?;

    let (_, start_time) = proc_stat(pid)
        .ok_or_else(|| Error::Init("container init died right after it was ready".into()))?;
    let hooks = spec.hooks().as_ref();
    let state = Persisted {
        id: opts.id.clone(),
        pid,
        pid_start_time: start_time,
        bundle: config.bundle.clone(),
        rootfs: config.rootfs.clone(),
        created: now_rfc3339(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup_path: cg.saved(),
        poststart: hooks
            .and_then(|h| h.poststart().clone())
            .unwrap_or_default(),
        poststop: hooks.and_then(|h| h.poststop().clone()).unwrap_or_default(),
        own_pid_ns: plan.new_pid,
        host_mounts: match &cleanup.host_mounts {
            Some((rootfs, before)) => made_since(rootfs, before)?,
            None => Vec::new(),
        },
        oci_version: spec.version().clone(),
    };
    let res = dir.save(&state).and_then(|()| match &opts.pid_file {
        Some(p) => write_pid_file(p, pid),
        None => Ok(()),
    });
    if let Err(e) = res {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        return Err(e);
    }
    cleanup.disarm();
    Ok(Created { pid, dir, state })
}

/// The device cgroup rules to apply: the config's, then the devices every container needs
/// (runc appends the same list, so a config that starts with "deny all" still gets a
/// working /dev). A `linux.devices` node gets only the access the config's rules give it,
/// as with runc: `docker run --device /dev/x:/dev/x:r` cannot write to it.
fn with_default_devices(res: &LinuxResources) -> LinuxResources {
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_owned()));
        r
    };
    let mut rules = res.devices().clone().unwrap_or_default();
    use LinuxDeviceType::{B, C};
    let defaults = [
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(136), None, "rwm"),
    ];
    // A rule the config already allows with no deny after it would be written again for
    // nothing (Docker's and hako's configs carry this very list: 11 writes per create).
    let last_deny = rules.iter().rposition(|r| !r.allow());
    let allowed_after_deny = |r: &LinuxDeviceCgroup| {
        rules
            .iter()
            .skip(last_deny.map_or(0, |i| i + 1))
            .any(|x| x == r)
    };
    let missing: Vec<LinuxDeviceCgroup> = defaults
        .into_iter()
        .filter(|d| !allowed_after_deny(d))
        .collect();
    rules.extend(missing);
    let mut out = res.clone();
    out.set_devices(Some(rules));
    out
}

/// The mounts under `rootfs` that were not there `before`.
fn made_since(rootfs: &Path, before: &[HostMount]) -> Result<Vec<HostMount>> {
    Ok(crate::rootfs::host_mounts(rootfs)?
        .into_iter()
        .filter(|m| !before.contains(m))
        .collect())
}

fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .context(|| format!("connect to console socket {}", path.display()))?;
    Ok(s.into())
}

fn cgroup_view(cg: &Manager, plan: &Plan) -> CgroupView {
    let sources = cg
        .mounts()
        .into_iter()
        .map(|m| CgroupSource {
            name: m.name,
            host_dir: m.host_dir,
        })
        .collect();
    CgroupView {
        sources,
        mount_cgroup2: cg.layout() == Layout::V2 && plan.new_cgroup && !cg.is_none(),
    }
}

/// runc writes the pid file atomically; containerd reads it as soon as create returns.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).context(|| format!("pid file {}", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string())
        .context(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).context(|| format!("write pid file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

    use super::with_default_devices;

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(None);
        r.set_access(Some(access.to_owned()));
        r
    }

    fn devices(res: &LinuxResources) -> Vec<LinuxDeviceCgroup> {
        res.devices().clone().unwrap_or_default()
    }

    #[test]
    fn the_defaults_are_added_once() {
        let none = with_default_devices(&LinuxResources::default());
        let all = devices(&none);
        assert_eq!(all.len(), 11);
        // A config that carries them already (Docker's, hako's) gets nothing more.
        let mut res = LinuxResources::default();
        let mut given = vec![rule(false, LinuxDeviceType::A, None, "rwm")];
        given.extend(all.iter().cloned());
        res.set_devices(Some(given.clone()));
        assert_eq!(devices(&with_default_devices(&res)), given);
    }

    #[test]
    fn a_later_deny_gets_the_defaults_again() {
        let mut res = LinuxResources::default();
        let pts = rule(true, LinuxDeviceType::C, Some(136), "rwm");
        let deny = rule(false, LinuxDeviceType::C, Some(136), "rwm");
        res.set_devices(Some(vec![pts.clone(), deny.clone()]));
        let out = devices(&with_default_devices(&res));
        assert_eq!(out.len(), 2 + 11);
        assert_eq!(out[..2], [pts.clone(), deny]);
        // The /dev/pts rule comes back after the deny, as runc's appended list does.
        assert!(out[2..].contains(&pts));
    }
}
