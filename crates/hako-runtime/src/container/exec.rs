//! `exec`: run a new process in a running container, in every namespace and the cgroup of
//! its init, with the container's security settings (capabilities, no_new_privs, seccomp)
//! unless the flags say otherwise.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use hako_cgroups::CgroupManager;
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};

use crate::cli::ExecArgs as Flags;
use crate::container::Container;
use crate::error::{Context, Error, Refusal, Result};
use crate::foreground;
use crate::process::channel::{self, Down, Up};
use crate::process::exec::{self as child, ExecArgs};
use crate::process::security::CapPlan;
use crate::state::Status;

/// Namespaces joined in the child, in this order (user last, see `process/exec.rs`); pid
/// and time are joined by the parent because they only apply to children.
const CHILD_NS: [(&str, CloneFlags); 6] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("user", CloneFlags::CLONE_NEWUSER),
];

/// Returns the process's exit code (0 when detached).
pub fn exec(root: &Path, flags: &Flags) -> Result<i32> {
    let c = Container::load(root, &flags.id)?;
    match c.status() {
        Status::Created | Status::Running => {}
        Status::Paused if flags.ignore_paused => {}
        Status::Paused => return Err(Refusal::ExecPaused.into()),
        Status::Stopped | Status::Creating => return Err(Refusal::ExecStopped.into()),
    }
    if flags.apparmor.is_some() || flags.process_label.is_some() {
        return Err(Error::Unsupported(
            "--apparmor/--process-label: this kernel has neither AppArmor nor SELinux enabled"
                .into(),
        ));
    }
    if flags.cgroup.is_some() {
        return Err(Error::Unsupported(
            "--cgroup (exec into a sub-cgroup) is not supported yet".into(),
        ));
    }
    let spec = load_spec(&c.st.bundle)?;
    let process = build_process(&spec, flags)?;
    let caps = CapPlan::new(process.capabilities().as_ref())?;
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Some(hako_seccomp::compile_cached(
            profile,
            &root.join(".cache").join("seccomp"),
        )?),
        None => None,
    };
    let terminal = process.terminal().unwrap_or(false);
    let mut proxy = None;
    let console_socket = match &flags.console_socket {
        Some(p) if terminal => Some(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(p)
                .context(|| format!("connect to console socket {}", p.display()))?,
        )),
        Some(_) => {
            return Err(Error::Usage(
                "--console-socket needs a terminal (-t)".into(),
            ));
        }
        None if terminal && flags.detach => {
            return Err(Error::Usage(
                "a terminal with --detach needs --console-socket".into(),
            ));
        }
        None if terminal => {
            let (ours, theirs) = foreground::console_pair()?;
            proxy = Some(ours);
            Some(theirs)
        }
        None => None,
    };

    // Open every namespace of the init while it is verifiably still our init.
    let init = c.st.pid;
    let open = |name: &str| -> Result<OwnedFd> {
        Ok(std::fs::File::open(format!("/proc/{init}/ns/{name}"))
            .context(|| format!("open {name} namespace of container init {init}"))?
            .into())
    };
    let pid_ns = open("pid")?;
    let time_ns = open("time")?;
    let mut namespaces = Vec::new();
    for (name, flag) in CHILD_NS {
        if differs(init, name) {
            namespaces.push((flag, open(name)?));
        }
    }
    // A container without a mount namespace of its own shares ours: joining it would not
    // move us into its root, so the child chroots into the init's root instead.
    let root = if differs(init, "mnt") {
        None
    } else {
        Some(OwnedFd::from(
            std::fs::File::open(format!("/proc/{init}/root"))
                .context(|| format!("open root of container init {init}"))?,
        ))
    };
    if !c.st.init_alive() {
        return Err(Refusal::ExecStopped.into());
    }
    // The container's cgroup, as for its init (create.rs): cloned into its cgroup v2
    // directory, the child moving itself into the v1 hierarchies (no global cgroup lock,
    // no grace period: CgroupManager::self_join_files); rootless, the parent moves it.
    let rootless = !hako_sys::userns::in_initial();
    let cg = c.cgroup();
    let join_cgroups: Vec<OwnedFd> = match &cg {
        Some(cg) if !rootless => cg.self_join_files()?,
        _ => Vec::new(),
    };
    let self_joined = !join_cgroups.is_empty();
    let into: Option<OwnedFd> = cg
        .as_ref()
        .and_then(|cg| cg.clone_into_dir())
        .and_then(|d| std::fs::File::open(d).ok())
        .map(OwnedFd::from);
    let args = ExecArgs {
        process,
        caps,
        seccomp,
        namespaces,
        root,
        console_socket,
        preserve_fds: flags.preserve_fds,
        join_cgroups,
    };

    let (parent, chan) = channel::pair()?;
    let own_pid: OwnedFd = std::fs::File::open("/proc/self/ns/pid")
        .context(|| "open own pid namespace".into())?
        .into();
    let own_time: OwnedFd = std::fs::File::open("/proc/self/ns/time")
        .context(|| "open own time namespace".into())?
        .into();
    setns(pid_ns.as_fd(), CloneFlags::CLONE_NEWPID)
        .context(|| "join container pid namespace".into())?;
    let time_joined = setns(
        time_ns.as_fd(),
        CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    )
    .is_ok();
    let (cloned, cloned_into) =
        hako_sys::clone3_fork_into(CloneFlags::empty(), into.as_ref().map(AsFd::as_fd));
    if let Ok(hako_sys::CloneResult::Child) = cloned {
        drop(parent);
        child::run(args, chan);
    }
    drop(args);
    drop(chan);
    // Rootless, our own namespaces belong to the host's user namespace, where we have no
    // capability to join them again: this process forks nothing more, so staying is
    // harmless (only children made from now on would be placed there).
    match setns(own_pid.as_fd(), CloneFlags::CLONE_NEWPID) {
        Err(nix::errno::Errno::EPERM) if rootless => {}
        r => r.context(|| "return to own pid namespace".into())?,
    }
    if time_joined {
        match setns(
            own_time.as_fd(),
            CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        ) {
            Err(nix::errno::Errno::EPERM) if rootless => {}
            r => r.context(|| "return to own time namespace".into())?,
        }
    }
    let pid = match cloned {
        Ok(hako_sys::CloneResult::Parent(pid)) => pid,
        Ok(hako_sys::CloneResult::Child) => unreachable!("the child never returns"),
        Err(e) => return Err(e).context(|| "clone exec process".into()),
    };
    let kill = || {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
    };
    if let Some(cg) = &cg
        && let Err(e) = cg.add_task_rest(pid, cloned_into, self_joined)
    {
        kill();
        return Err(e.into());
    }
    parent.send(Down::Proceed(pid))?;
    let outcome = parent.recv().and_then(|m| match m {
        Some(Up::Ready) => parent.recv(),
        other => Ok(other),
    });
    match outcome {
        // The channel is close-on-exec: EOF after Ready means execve succeeded.
        Ok(None) => {}
        Ok(Some(Up::Failed(msg))) => {
            kill();
            return Err(Error::Init(msg));
        }
        Ok(Some(other)) => {
            kill();
            return Err(Error::Init(format!("protocol error: unexpected {other:?}")));
        }
        Err(e) => {
            kill();
            return Err(e);
        }
    }
    if let Some(p) = &flags.pid_file {
        crate::container::create::write_pid_file(p, pid)?;
    }
    if flags.detach {
        return Ok(0);
    }
    foreground::wait(pid, proxy.as_ref())
}

/// Is the init's `name` namespace different from ours (then it must be joined)?
fn differs(init: i32, name: &str) -> bool {
    let theirs = std::fs::read_link(format!("/proc/{init}/ns/{name}"));
    let ours = std::fs::read_link(format!("/proc/self/ns/{name}"));
    match (theirs, ours) {
        (Ok(a), Ok(b)) => a != b,
        _ => true,
    }
}

fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|source| Error::ConfigMissing {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::ConfigParse {
        path,
        msg: e.to_string(),
    })
}

/// The process to run: `--process` JSON as given, or the container's own process with the
/// command, env, cwd, user, terminal and capabilities the flags ask for (runc's rules).
fn build_process(spec: &Spec, flags: &Flags) -> Result<Process> {
    if let Some(path) = &flags.process {
        let bytes = std::fs::read(path).context(|| format!("read --process {}", path.display()))?;
        let p: Process = serde_json::from_slice(&bytes).map_err(|e| Error::ConfigParse {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        return Ok(p);
    }
    if flags.command.is_empty() {
        return Err(Error::Usage(
            "exec needs a command after the container id (or --process)".into(),
        ));
    }
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| Error::ConfigInvalid("config.json has no process".into()))?;
    p.set_args(Some(flags.command.clone()));
    p.set_terminal(Some(flags.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &flags.env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &flags.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &flags.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let num = |s: &str| {
            s.parse::<u32>().map_err(|_| {
                Error::Usage(format!("--user {u}: only numeric UID[:GID] is supported"))
            })
        };
        let user = p.user_mut();
        user.set_uid(num(uid)?);
        if let Some(g) = gid {
            user.set_gid(num(g)?);
        }
    }
    if !flags.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(flags.additional_gids.clone()));
    }
    if flags.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !flags.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let extra = flags
            .cap
            .iter()
            .map(|c| {
                serde_json::from_value::<Capability>(serde_json::Value::String(c.clone()))
                    .map_err(|_| Error::Usage(format!("unknown capability {c}")))
            })
            .collect::<Result<Vec<_>>>()?;
        add_caps(&mut caps, &extra);
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

fn add_caps(caps: &mut LinuxCapabilities, extra: &[Capability]) {
    let add = |set: Option<&oci_spec::runtime::Capabilities>| {
        let mut s = set.cloned().unwrap_or_default();
        s.extend(extra.iter().copied());
        Some(s)
    };
    let (b, e, p, i, a) = (
        add(caps.bounding().as_ref()),
        add(caps.effective().as_ref()),
        add(caps.permitted().as_ref()),
        add(caps.inheritable().as_ref()),
        add(caps.ambient().as_ref()),
    );
    caps.set_bounding(b);
    caps.set_effective(e);
    caps.set_permitted(p);
    caps.set_inheritable(i);
    caps.set_ambient(a);
}
