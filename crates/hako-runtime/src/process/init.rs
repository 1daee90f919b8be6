//! The container's init, `hako:[2:INIT]` in `ps`: a clone of the runtime that turns itself
//! into the container step by step and finally becomes the user's program with `execve`.
//! No re-exec of the runtime binary happens on this path.
//!
//! Every step that can fail runs before Ready, so `create` reports it (runc's rule: the init
//! waits for `start` only right before execve). After `start` only startContainer hooks,
//! the seccomp filter and `execve` are left; a failure there is written to the state dir's
//! `exec.error` (an fd opened by `create`), where `start` reads it and fails with it.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::sched::{CloneFlags, setns, unshare};
use oci_spec::runtime::Spec;

use super::channel::{ChildEnd, Down, Up};
use super::namespaces::{Plan, setns_flag};
use super::security::{self, CapPlan, Prepared};
use crate::config::Config;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, HookState};
use crate::rootfs::{self, CgroupView};

/// Everything the init needs, prepared by the parent before the clone (the clone copies it).
#[derive(Debug)]
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub config: &'a Config,
    pub plan: &'a Plan,
    pub cgroups: CgroupView,
    pub caps: CapPlan,
    pub seccomp: Option<hako_seccomp::CompiledFilter>,
    /// Opened read-write so the open never blocks; `start` writes one byte to release us.
    pub fifo: Option<OwnedFd>,
    /// `<state>/exec.error`, write-only: why the program could not be started, for `start`.
    pub exec_error: Option<OwnedFd>,
    /// Connected `--console-socket`, when the process wants a terminal.
    pub console_socket: Option<OwnedFd>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// The v1 hierarchies' `tasks` files of the container's cgroup: the init writes `0`
    /// to each as its first step, moving itself in (`CgroupManager::self_join_files`).
    pub join_cgroups: Vec<OwnedFd>,
    /// The same files by path, when the parent makes the cgroup while the init sets up
    /// (see [`InitArgs::cgroup_late`]).
    pub join_cgroup_paths: Vec<std::path::PathBuf>,
    /// The parent makes the container's cgroup after the clone (v1 and hybrid: a dozen
    /// directories and their settings, ~1 ms) while the init joins its namespaces and makes
    /// its mounts; the init waits for it (the parent's Proceed) only before the first step
    /// that needs it: the cgroup namespace and the cgroup mount, else before `pivot_root`.
    pub cgroup_late: bool,
}

/// Run as the init; never returns.
pub fn run(args: InitArgs<'_>, chan: ChildEnd) -> ! {
    let _ = nix::sys::prctl::set_name(c"hako:[2:INIT]");
    match setup(&args, &chan) {
        Ok(ready) => {
            drop(chan);
            let err = ready.start_and_exec(&args);
            // After Ready nobody listens on the channel: `start` reads exec.error (the
            // container's stderr gets it only when that write fails), and the exit code
            // follows the shell convention runc users expect.
            let reported = args
                .exec_error
                .as_ref()
                .is_some_and(|fd| nix::unistd::write(fd, err.to_string().as_bytes()).is_ok());
            if !reported {
                crate::output::stderr_line(&err.to_string());
            }
            std::process::exit(127);
        }
        Err(e) => {
            let _ = chan.send(Up::Failed(e.to_string()));
            std::process::exit(1);
        }
    }
}

/// Waits for the parent's Proceed (the cgroup is made and set), moves into the cgroup and
/// makes the cgroup namespace; the init's host pid.
fn enter_cgroup(args: &InitArgs<'_>, chan: &ChildEnd) -> Result<i32> {
    let host_pid = chan.expect_proceed()?;
    // Single-threaded here: moving the calling thread moves the process.
    hako_cgroups::self_join(&args.join_cgroups).context(|| "join the container's cgroup".into())?;
    hako_cgroups::self_join_paths(&args.join_cgroup_paths)
        .context(|| "join the container's cgroup".into())?;
    if args.plan.new_cgroup {
        unshare(CloneFlags::CLONE_NEWCGROUP).context(|| "unshare cgroup namespace".into())?;
    }
    Ok(host_pid)
}

/// The init after it reported Ready: what is left to do once `start` comes.
struct Ready<'a> {
    host_pid: i32,
    program: hako_sys::process::Execve,
    prepared: Prepared<'a>,
}

fn spec<'a>(args: &InitArgs<'a>) -> &'a Spec {
    &args.config.spec
}

fn setup<'a>(args: &'a InitArgs<'_>, chan: &ChildEnd) -> Result<Ready<'a>> {
    let spec = spec(args);
    let plan = args.plan;
    let mut host_pid = None;
    if !args.cgroup_late {
        host_pid = Some(enter_cgroup(args, chan)?);
    }
    if !plan.intermediate {
        join_and_unshare(plan, chan)?;
    }
    let in_userns = plan.new_user
        || plan
            .child_join
            .iter()
            .any(|j| j.typ == oci_spec::runtime::LinuxNamespaceType::User);
    if in_userns {
        // Become root of the new user namespace (mapped by the parent).
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .context(|| "setgid 0 in user namespace".into())?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .context(|| "setuid 0 in user namespace".into())?;
    }
    if !args.no_new_keyring {
        // Keys are not namespaced: without its own session keyring a container would see
        // (and could add to) the keyring of whoever started it.
        let name = std::ffi::CString::new(format!("_ses.{}", args.id)).expect("ids have no NUL");
        match hako_sys::keyring::join_new_session_keyring(&name) {
            Ok(()) => {}
            // A kernel without keyrings: nothing to isolate (runc ignores it too).
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            Err(e) => return Err(e).context(|| "join a new session keyring".into()),
        }
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).context(|| format!("set hostname {h}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        hako_sys::uts::set_domainname(d).context(|| format!("set domainname {d}"))?;
    }
    // A runtime that itself runs in a user namespace (rootless) meets the same limits as
    // a container with one of its own: no mknod, locked mount flags.
    let in_userns = in_userns || !hako_sys::userns::in_initial();
    tracing::debug!(in_userns, "namespaces ready");
    rootfs::prepare(
        spec,
        &args.config.rootfs,
        &args.cgroups,
        in_userns,
        plan.has_mount_ns,
        &mut || {
            if host_pid.is_none() {
                host_pid = Some(enter_cgroup(args, chan)?);
            }
            Ok(())
        },
    )?;
    let host_pid = match host_pid {
        Some(pid) => pid,
        None => enter_cgroup(args, chan)?,
    };
    tracing::debug!("mounts ready");

    let hooks = spec.hooks().as_ref();
    let runtime_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if runtime_hooks {
        chan.send(Up::RuntimeHooks)?;
        chan.expect(Down::HooksDone)?;
    }
    if let Some(hs) = hooks.and_then(|h| h.create_container().as_ref()) {
        hooks::run_all(
            "createContainer",
            hs,
            &hook_state(args, "creating", host_pid),
        )?;
    }

    rootfs::pivot(&args.config.rootfs, args.no_pivot, plan.has_mount_ns)?;
    let process = spec.process().as_ref().expect("validated");
    // A missing cwd is made, as runc makes it: inside the new root (symlinks resolve in
    // it), as root, before a read-only root is remounted.
    std::fs::create_dir_all(process.cwd())
        .context(|| format!("mkdir cwd {}", process.cwd().display()))?;
    rootfs::finalize(spec, in_userns, plan.has_mount_ns)?;
    tracing::debug!("root switched");

    if process.terminal().unwrap_or(false) {
        let sock = args.console_socket.as_ref().ok_or_else(|| {
            Error::Usage("process.terminal is true but no console socket was given".into())
        })?;
        crate::console::setup_in_container(sock, process.console_size())?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .context(|| format!("oomScoreAdj {adj}"))?;
    }
    for rl in process.rlimits().iter().flatten() {
        let res = rlimit_resource(rl.typ())?;
        nix::sys::resource::setrlimit(res, rl.soft(), rl.hard())
            .context(|| format!("rlimit {:?} {}/{}", rl.typ(), rl.soft(), rl.hard()))?;
    }
    if let Some(mask) = process.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    } else {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    }
    nix::unistd::chdir(process.cwd())
        .context(|| format!("chdir to cwd {}", process.cwd().display()))?;

    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", security::home_for(process.user().uid())));
    }
    let argv_s = process.args().as_ref().expect("validated");
    let program = security::lookup_program(&argv_s[0], &env)?;
    let program = CString::new(program.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::ConfigInvalid("NUL byte in the program path".into()))?;
    let cstr =
        |s: &str| CString::new(s).map_err(|_| Error::ConfigInvalid(format!("NUL byte in {s:?}")));
    let argv = argv_s.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let envp = env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let prepared = security::prepare(
        process,
        &args.caps,
        args.seccomp.as_ref(),
        args.preserve_fds,
    )?;

    chan.send(Up::Ready)?;
    Ok(Ready {
        host_pid,
        program: hako_sys::process::Execve::new(program, argv, envp),
        prepared,
    })
}

/// Join namespaces by path and unshare the new ones (single-process path; the
/// intermediate does this itself otherwise).
pub(super) fn join_and_unshare(plan: &Plan, chan: &ChildEnd) -> Result<()> {
    for j in &plan.child_join {
        let f = std::fs::File::open(&j.path)
            .context(|| format!("open {} namespace {}", j.typ, j.path.display()))?;
        setns(f.as_fd(), setns_flag(j.typ))
            .context(|| format!("join {} namespace {}", j.typ, j.path.display()))?;
    }
    if plan.child_new_user {
        unshare(CloneFlags::CLONE_NEWUSER).context(|| "unshare user namespace".into())?;
        chan.send(Up::MappingRequest)?;
        chan.expect(Down::MappingWritten)?;
    }
    if !plan.child_unshare.is_empty() {
        unshare(plan.child_unshare).context(|| "unshare namespaces".into())?;
    }
    Ok(())
}

fn hook_state<'a>(args: &'a InitArgs<'_>, status: &'a str, host_pid: i32) -> HookState<'a> {
    HookState {
        oci_version: args.config.spec.version(),
        id: args.id,
        status,
        pid: Some(host_pid),
        bundle: &args.config.bundle,
        annotations: args.config.spec.annotations().as_ref(),
    }
}

impl Ready<'_> {
    /// Wait for `start`, then become the user's program. Returns only on failure.
    fn start_and_exec(self, args: &InitArgs<'_>) -> Error {
        match self.try_exec(args) {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    fn try_exec(self, args: &InitArgs<'_>) -> Result<std::convert::Infallible> {
        if let Some(fifo) = &args.fifo {
            let mut f = std::fs::File::from(fifo.try_clone().context(|| "dup exec fifo".into())?);
            let mut byte = [0u8; 1];
            loop {
                match f.read(&mut byte) {
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).context(|| "wait for start".into()),
                }
            }
        }
        let spec = spec(args);
        if let Some(hs) = spec
            .hooks()
            .as_ref()
            .and_then(|h| h.start_container().as_ref())
        {
            hooks::run_all(
                "startContainer",
                hs,
                &hook_state(args, "created", self.host_pid),
            )?;
        }
        // From here to execve: no allocation, no syscall but the filter's own.
        self.prepared.seal()?;
        let err = self.program.exec();
        Err(security::exec_failed(self.program.path(), &err))
    }
}

pub(crate) fn rlimit_resource(
    t: oci_spec::runtime::PosixRlimitType,
) -> Result<nix::sys::resource::Resource> {
    use nix::sys::resource::Resource as R;
    use oci_spec::runtime::PosixRlimitType as T;
    Ok(match t {
        T::RlimitCpu => R::RLIMIT_CPU,
        T::RlimitFsize => R::RLIMIT_FSIZE,
        T::RlimitData => R::RLIMIT_DATA,
        T::RlimitStack => R::RLIMIT_STACK,
        T::RlimitCore => R::RLIMIT_CORE,
        T::RlimitRss => R::RLIMIT_RSS,
        T::RlimitNproc => R::RLIMIT_NPROC,
        T::RlimitNofile => R::RLIMIT_NOFILE,
        T::RlimitMemlock => R::RLIMIT_MEMLOCK,
        T::RlimitAs => R::RLIMIT_AS,
        T::RlimitLocks => R::RLIMIT_LOCKS,
        T::RlimitSigpending => R::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => R::RLIMIT_MSGQUEUE,
        T::RlimitNice => R::RLIMIT_NICE,
        T::RlimitRtprio => R::RLIMIT_RTPRIO,
        T::RlimitRttime => R::RLIMIT_RTTIME,
    })
}
