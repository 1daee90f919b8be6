//! The child side of `exec`, `hako:[exec]` in `ps`: a clone of the runtime that joins every
//! namespace of a running container, takes on the process's identity and security
//! settings, and becomes the requested program.
//!
//! ```text
//!  parent (hako-runtime exec)                     child
//!  setns(pid, time of the init)  (children only)
//!  clone3() ───────────────────────────────────►  waits
//!  put child in the container's cgroup
//!  ── Proceed(pid) ────────────────────────────►  setns(ipc, uts, net, cgroup, mnt), then user
//!                                                 console, rlimits, cwd, program lookup
//!                                                 uid/gid, caps, no_new_privs, fds, signals
//!  ◄─ Ready / Failed(msg) ──────────────────────  seccomp, execve
//!  ◄─ EOF (execve worked) / Failed(msg) ────────
//! ```
//! The same two steps as the init (`security::prepare`, then `Prepared::seal` right before
//! execve), so nothing the runtime needs runs under the container's seccomp filter.
//! User namespace last: until then the child is root of the host's user namespace, which
//! may join any namespace; inside the container's user namespace it might not.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use nix::sched::{CloneFlags, setns};
use oci_spec::runtime::Process;

use super::channel::{ChildEnd, Up};
use super::security::{self, CapPlan};
use crate::error::{Context, Error, Result};

/// What the exec child needs; prepared by the parent before the clone.
#[derive(Debug)]
pub struct ExecArgs {
    pub process: Process,
    pub caps: CapPlan,
    pub seccomp: Option<hako_seccomp::CompiledFilter>,
    /// Namespaces of the container's init to join in the child, user namespace last.
    pub namespaces: Vec<(CloneFlags, OwnedFd)>,
    /// The init's root to chroot into, when its mount namespace is ours (no mount
    /// namespace of its own).
    pub root: Option<OwnedFd>,
    pub console_socket: Option<OwnedFd>,
    pub preserve_fds: u32,
    /// The container's v1 `tasks` files: the child writes `0` to each first, moving
    /// itself in (`CgroupManager::self_join_files`).
    pub join_cgroups: Vec<OwnedFd>,
}

/// Run as the exec child; never returns.
pub fn run(args: ExecArgs, chan: ChildEnd) -> ! {
    let _ = nix::sys::prctl::set_name(c"hako:[exec]");
    match setup(&args, &chan) {
        Ok((prepared, program)) => {
            let err = finish(prepared, &program);
            let _ = chan.send(Up::Failed(err.to_string()));
            std::process::exit(127);
        }
        Err(e) => {
            let _ = chan.send(Up::Failed(e.to_string()));
            std::process::exit(1);
        }
    }
}

fn setup<'a>(
    args: &'a ExecArgs,
    chan: &ChildEnd,
) -> Result<(security::Prepared<'a>, hako_sys::process::Execve)> {
    chan.expect_proceed()?;
    // Single-threaded here: moving the calling thread moves the process.
    hako_cgroups::self_join(&args.join_cgroups).context(|| "join the container's cgroup".into())?;
    for (flag, fd) in &args.namespaces {
        setns(fd.as_fd(), *flag).context(|| format!("join container namespace {flag:?}"))?;
    }
    // After setns: a chrooted process may not join a user namespace.
    if let Some(root) = &args.root {
        nix::unistd::fchdir(root).context(|| "enter the container's root".into())?;
        nix::unistd::chroot(".").context(|| "chroot into the container's root".into())?;
    }
    let p = &args.process;
    if p.terminal().unwrap_or(false) {
        let sock = args.console_socket.as_ref().ok_or_else(|| {
            Error::Usage("a terminal was asked for but no console socket was given".into())
        })?;
        crate::console::setup_in_container(sock, p.console_size())?;
    }
    if let Some(adj) = p.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .context(|| format!("oomScoreAdj {adj}"))?;
    }
    for rl in p.rlimits().iter().flatten() {
        let res = super::init::rlimit_resource(rl.typ())?;
        nix::sys::resource::setrlimit(res, rl.soft(), rl.hard())
            .context(|| format!("rlimit {:?} {}/{}", rl.typ(), rl.soft(), rl.hard()))?;
    }
    let mask = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    nix::unistd::chdir(p.cwd()).context(|| format!("chdir to cwd {}", p.cwd().display()))?;

    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", security::home_for(p.user().uid())));
    }
    let argv_s = p.args().as_ref().filter(|a| !a.is_empty()).ok_or_else(|| {
        Error::Usage("exec needs a command (arguments after the id, or args in --process)".into())
    })?;
    let program = security::lookup_program(&argv_s[0], &env)?;
    let cstr = |s: &str| CString::new(s).map_err(|_| Error::Usage(format!("NUL byte in {s:?}")));
    let argv = argv_s.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let envp = env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let program = CString::new(program.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Usage("NUL byte in program path".into()))?;
    let prepared = security::prepare(p, &args.caps, args.seccomp.as_ref(), args.preserve_fds)?;
    // After Ready the parent only needs to hear about a failure: a successful execve
    // closes the channel (close-on-exec).
    chan.send(Up::Ready)?;
    Ok((
        prepared,
        hako_sys::process::Execve::new(program, argv, envp),
    ))
}

fn finish(prepared: security::Prepared<'_>, program: &hako_sys::process::Execve) -> Error {
    // From here to execve: no allocation, no syscall but the filter's own.
    if let Err(e) = prepared.seal() {
        return e;
    }
    let err = program.exec();
    security::exec_failed(program.path(), &err)
}
