//! Process creation and signalling: `clone3`, pidfds, `close_range`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// What [`clone3_fork`] returned in the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneResult {
    /// We are the parent; the child has this pid (in our pid namespace).
    Parent(i32),
    /// We are the new child process.
    Child,
}

/// `struct clone_args` from `<linux/sched.h>` (version 2, 88 bytes, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (since Linux 5.7): start the child in the cgroup v2 directory given
/// by `cgroup_fd`.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// [`clone3_fork`] into the cgroup v2 directory `cgroup_fd` where the kernel takes it, else
/// without it: a kernel without CLONE_INTO_CGROUP (E2BIG: clone_args too new; ENOSYS: no
/// clone3) or a cgroup that cannot take a process (EBUSY: it delegates controllers;
/// threaded). Returns, with the result, whether the child was cloned into the cgroup (if
/// not, the caller places it). Same contract as [`clone3_fork`].
pub fn clone3_fork_into(
    flags: nix::sched::CloneFlags,
    cgroup_fd: Option<BorrowedFd<'_>>,
) -> (io::Result<CloneResult>, bool) {
    let cloned = clone3_fork(flags, cgroup_fd);
    match &cloned {
        Err(e)
            if cgroup_fd.is_some()
                && matches!(
                    e.raw_os_error(),
                    Some(
                        libc::E2BIG | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EBUSY
                    )
                ) =>
        {
            (clone3_fork(flags, None), false)
        }
        _ => (cloned, cgroup_fd.is_some()),
    }
}

/// Fork-like `clone3`: the child continues from this call on a copy of the caller's stack,
/// in the new namespaces named by `flags` (`CLONE_NEW*`, `CLONE_PARENT`), optionally
/// placed straight into a cgroup v2 directory. Falls back to the `clone` system call
/// (without the cgroup) where `clone3` is missing (`ENOSYS`, Linux < 5.3) or filtered.
///
/// Exit signal is `SIGCHLD`, so the parent can `waitpid` the child as usual.
///
/// # Safety contract (checked by the caller, not the compiler)
/// The caller must be single-threaded, exactly as for `fork(2)`: in the child only the
/// calling thread exists, so locks held by other threads would never be released.
/// hako-runtime never starts a thread before it forks.
pub fn clone3_fork(
    flags: nix::sched::CloneFlags,
    cgroup_fd: Option<BorrowedFd<'_>>,
) -> io::Result<CloneResult> {
    let flags = u64::from(flags.bits().cast_unsigned());
    // clone3 rejects an exit signal with CLONE_PARENT: the child then inherits the caller's
    // own exit signal (SIGCHLD for our processes), so the grandparent can wait for it.
    let exit_signal = if flags & libc::CLONE_PARENT as u64 != 0 {
        0
    } else {
        libc::SIGCHLD as u64
    };
    let mut args = CloneArgs {
        flags,
        exit_signal,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, initialised `clone_args` of the size we pass, alive for the
    // whole call. No stack is given, so the child runs on a copy-on-write copy of this
    // stack (no CLONE_VM), exactly like fork(2); the caller guarantees single-threadedness.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        0 => Ok(CloneResult::Child),
        pid if pid > 0 => Ok(CloneResult::Parent(pid as i32)),
        _ => {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOSYS) && cgroup_fd.is_none() {
                clone_fork(flags)
            } else {
                Err(err)
            }
        }
    }
}

/// The old `clone` system call used fork-style (no new stack). Only the low 32 flag bits
/// exist there.
fn clone_fork(flags: u64) -> io::Result<CloneResult> {
    let flags = (flags & 0xffff_ffff) as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: raw `clone` with a null stack behaves like fork(2): the child gets a copy of
    // the address space and returns 0 here. The remaining pointer arguments are unused
    // because no CLONE_*TID/SETTLS flag is passed (callers only pass CLONE_NEW*/PARENT).
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        0 => Ok(CloneResult::Child),
        pid if pid > 0 => Ok(CloneResult::Parent(pid as i32)),
        _ => Err(io::Error::last_os_error()),
    }
}

/// `pidfd_open(2)`: a file descriptor that refers to process `pid` and never to a later
/// process that reuses the number.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments; no memory is shared with the kernel.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `pidfd_send_signal(2)`: signal the process behind `pidfd` (race-free against pid reuse).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: the siginfo pointer is null (the kernel fills in a default), the fd is borrowed
    // and thus open for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the calling thread (only it: the nice value is a thread's on Linux) the lowest
/// priority, for work done after an answer: a client running on the same CPUs goes
/// first. Raising it back would need `CAP_SYS_NICE`: for threads of their own.
pub fn lowest_priority_for_this_thread() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: a plain system call with integer arguments; no memory is shared.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// Whether this process has one thread (`/proc/self/stat`'s num_threads): the condition
/// for running arbitrary code in a fork of it (another thread may hold a lock, the
/// allocator's say, at the fork, which the child then never sees released).
pub fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(')')?;
            // Fields from 3 (state) on: num_threads is field 20.
            rest.split_whitespace().nth(17)?.parse::<u32>().ok()
        })
        == Some(1)
}

/// Mark every descriptor from `first` upward close-on-exec (`close_range(2)` with
/// `CLOSE_RANGE_CLOEXEC`), so the container's program inherits only what it should
/// (GHSA-xr7r-f8xq-vfvv: a leaked host directory fd lets a container escape).
pub fn close_range_cloexec(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: integer-only system call; it changes flags of our own descriptors.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mark every descriptor from `first` upward close-on-exec: `close_range(2)` where it
/// works, else one `fcntl` per entry of `/proc/self/fd` (kernels before 5.11, or a caller
/// whose own seccomp filter refuses close_range).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    if close_range_cloexec(first).is_ok() {
        return Ok(());
    }
    cloexec_from_proc(first)
}

fn cloexec_from_proc(first: u32) -> io::Result<()> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &i32| u32::try_from(fd).is_ok_and(|fd| fd >= first))
        .collect();
    for fd in fds {
        // SAFETY: only the descriptor flags of one of our own descriptors change; a number
        // that was the directory handle of the listing above and is closed by now gives
        // EBADF, which is ignored.
        let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBADF) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// A program and its argument and environment vectors, laid out for `execve(2)` ahead of
/// time: [`Execve::exec`] allocates nothing and makes no other syscall, so it can run
/// right after a seccomp filter that allows little more than execve.
#[derive(Debug)]
pub struct Execve {
    path: CString,
    // The pointer arrays point into these; they must live as long as `self`.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

impl Execve {
    pub fn new(path: CString, argv: Vec<CString>, envp: Vec<CString>) -> Execve {
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        Execve {
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            path,
            _argv: argv,
            _envp: envp,
        }
    }

    /// The program's path.
    pub fn path(&self) -> &CString {
        &self.path
    }

    /// Replace this process; returns only on failure.
    pub fn exec(&self) -> io::Error {
        // SAFETY: `path` and every string the two null-terminated pointer arrays point to
        // are owned by `self`, which outlives the call (on success the process image is
        // replaced; on failure the kernel has only read them).
        unsafe {
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            )
        };
        io::Error::last_os_error()
    }
}

/// Puts every signal back to its default action and unblocks all signals, the state a
/// freshly started program expects. A container's process must not inherit the ignored or
/// blocked signals of whoever started the runtime (a shim that reads signals from a
/// signalfd, a `nohup`): POSIX `sh` cannot even `trap` a signal that was ignored when it
/// started, so `docker stop` would never reach it.
pub fn reset_signals() -> io::Result<()> {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context;
        // numbers the C library reserves (32, 33) or the kernel rejects just return SIG_ERR,
        // which is ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(io::Error::from)
}

/// Puts `signals` back to their default action. An ignored signal stays ignored across
/// `exec`: a shim started by a parent that ignored SIGCHLD would have its children reaped
/// by the kernel, their exit statuses lost. Block the signals first when they are to be
/// read from a signalfd: a blocked signal with its default action waits there.
pub fn default_actions(signals: &[nix::sys::signal::Signal]) -> io::Result<()> {
    use nix::sys::signal::{SigHandler, signal};
    for &sig in signals {
        // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context.
        unsafe { signal(sig, SigHandler::SigDfl) }.map_err(io::Error::from)?;
    }
    Ok(())
}

/// Makes `cmd`'s child start with no signal blocked. std's `Command` passes the caller's
/// signal mask on; a process that takes its signals from a signalfd (the shim) has them
/// blocked, and a program that does not reset its mask hands them on blocked too (runc:
/// Go unblocks only the signals it handles, so a runc container under the shim had
/// SIGUSR1/SIGUSR2 blocked and never saw a `--stop-signal SIGUSR1`).
pub fn unblock_signals_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let hook = || -> io::Result<()> {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset only initializes the set it is given (async-signal-safe).
        unsafe { libc::sigemptyset(set.as_mut_ptr()) };
        // SAFETY: the set was initialized just above; pthread_sigmask reads it and writes
        // nothing back (null old set); async-signal-safe, allocates nothing.
        let rc =
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec (or in this process right
    // before `exec`) and makes only async-signal-safe calls on its own stack memory.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Field 3 (`state`) and field 22 (`starttime`, clock ticks after boot) of
/// `/proc/<pid>/stat`: with the pid, the start time names one process for good (a recycled
/// pid has another).
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Makes `cmd`'s child die with SIGKILL when the thread that spawned it exits (a `kill -9`
/// of hako mid-operation must not leave, say, a `cp` writing into a volume that the next
/// command's recovery is removing). If the process is already gone when the child starts,
/// the child does not run.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = i32::try_from(std::process::id()).unwrap_or(0);
    let hook = move || -> io::Result<()> {
        // SAFETY: prctl(PR_SET_PDEATHSIG) with integer arguments touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: getppid has no arguments and cannot fail.
        if unsafe { libc::getppid() } != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec and makes only
    // async-signal-safe system calls (prctl, getppid); it allocates nothing and shares
    // no memory with the parent.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Reads and removes environment variable `key` (a value meant for this process only,
/// not for the children it spawns).
///
/// Call it first thing in `main`, before any thread exists: the environment is process
/// global, and C code in another thread (getaddrinfo, ...) may read it without std's lock.
pub fn take_env_at_start(key: &str) -> Option<std::ffi::OsString> {
    let value = std::env::var_os(key)?;
    // SAFETY: the caller runs this before any other thread exists (see above), so nothing
    // reads the environment concurrently.
    unsafe { std::env::remove_var(key) };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of thread `tid` of this process (`stat` field 19).
    fn nice_of(tid: i32) -> i64 {
        let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let (_, rest) = s.rsplit_once(')').unwrap();
        rest.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn the_lowest_priority_is_the_calling_threads_alone() {
        let me = nix::unistd::gettid().as_raw();
        let before = nice_of(me);
        let other = std::thread::spawn(|| {
            lowest_priority_for_this_thread();
            nice_of(nix::unistd::gettid().as_raw())
        })
        .join()
        .unwrap();
        assert_eq!(other, 19);
        assert_eq!(nice_of(me), before);
    }

    #[test]
    fn single_threaded_counts_the_threads() {
        // The test harness runs each test on a thread of its own: a forked child of this
        // process has one thread, this process more.
        assert!(!single_threaded());
        match crate::clone3_fork(nix::sched::CloneFlags::empty(), None).expect("fork") {
            crate::CloneResult::Child => std::process::exit(i32::from(!single_threaded())),
            crate::CloneResult::Parent(pid) => {
                let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                assert!(
                    matches!(st, Ok(nix::sys::wait::WaitStatus::Exited(_, 0))),
                    "{st:?}"
                );
            }
        }
    }

    #[test]
    fn cloexec_from_marks_high_descriptors() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
        // SAFETY: `fd` is ours (just opened); clearing FD_CLOEXEC changes only its flags.
        let clear = || unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        // SAFETY: reading the flags of our own open descriptor.
        let marked = || unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC != 0;
        clear();
        cloexec_from(3).unwrap();
        assert!(marked(), "close_range path");
        clear();
        cloexec_from_proc(3).unwrap();
        assert!(marked(), "/proc/self/fd path");
        // SAFETY: `fd` is ours and closed exactly once.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn execve_failure_is_reported() {
        let e = Execve::new(c"/nonexistent/prog".into(), vec![c"prog".into()], vec![]);
        assert_eq!(e.exec().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn pidfd_of_self_signals_zero() {
        let fd = pidfd_open(std::process::id() as i32).unwrap();
        // Signal 0 checks existence and permission only.
        pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), 0).unwrap();
    }

    #[test]
    fn a_child_that_dies_with_its_parent_goes_when_the_spawning_thread_ends() {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        die_with_parent(&mut cmd);
        // PR_SET_PDEATHSIG fires when the spawning *thread* exits: a thread stands in for
        // a process that is killed.
        let mut child = std::thread::spawn(move || cmd.spawn().unwrap())
            .join()
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }
}
