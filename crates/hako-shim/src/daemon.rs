//! Becoming the monitor: detach from the spawner, become the subreaper, take over signals,
//! and report readiness on the inherited `--ready-fd`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Signals taken over by the shim's signalfd. SIGCHLD (reap) and SIGTERM (stop the
/// container for good) mean something; the rest are blocked so that they cannot kill the
/// shim (and so orphan the container's stdio).
const BLOCKED: [Signal; 7] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Fork once: the spawner's child exits at once (the spawner reaps it), the grandchild
/// goes on in a new session, re-parented to init or the nearest subreaper.
pub fn detach() -> Result<(), String> {
    // The shim is still single-threaded here (clap starts no thread), as fork requires.
    match hako_sys::clone3_fork(CloneFlags::empty(), None) {
        Ok(hako_sys::CloneResult::Parent(_)) => std::process::exit(0),
        Ok(hako_sys::CloneResult::Child) => {}
        Err(e) => return Err(format!("fork: {e}")),
    }
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    // Hold no directory busy (a mount point the engine may want to unmount).
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

/// Block [`BLOCKED`] (back to their default actions), read them from a signalfd instead,
/// and adopt orphans: processes the container leaves behind are re-parented to the shim,
/// which reaps them.
///
/// Children must get an empty signal mask again: std's `Command` passes the mask on
/// (`hako_sys::process::unblock_signals_in_child`).
pub fn take_signals() -> Result<SignalFd, String> {
    let mut mask = SigSet::empty();
    for s in BLOCKED {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    // Whoever started the shim may have ignored some of them (ignored stays ignored across
    // exec). A blocked signal is queued even when ignored, but an ignored SIGCHLD makes the
    // kernel reap the shim's children itself: the runtime's and the container's exit
    // statuses would be lost ("No child processes").
    hako_sys::process::default_actions(&BLOCKED)
        .map_err(|e| format!("default signal actions: {e}"))?;
    let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    Ok(fd)
}

/// Close every descriptor above 2 the shim inherited, but `keep`. The shim lives as long as
/// the container: an inherited pipe (a shell's `$(...)`, a CLI's own pipes) would otherwise
/// stay open that long and keep its reader waiting for EOF. Call it first thing, before the
/// shim opens anything of its own.
pub fn close_inherited(keep: &[i32]) {
    hako_sys::fd::close_all_but_stdio(keep);
}

/// Takes the descriptors over, close-on-exec (they stay open in the shim itself, for its
/// whole life, and close when it ends however it ends).
pub fn hold(fds: &[i32]) -> Vec<std::os::fd::OwnedFd> {
    let mut held = Vec::new();
    for fd in fds {
        if let Some(owned) = hako_sys::fd::from_inherited(*fd) {
            let _ = nix::fcntl::fcntl(
                &owned,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            held.push(owned);
        }
    }
    held
}

/// `--go-fd`: blocks until the spawner writes a byte (true) or closes its end first
/// (false). The descriptor is closed after.
pub fn wait_for_go(go: std::os::fd::OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(&go, &mut byte) {
            Ok(n) => return n == 1,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// The pipe to the spawner that receives one line: `{"pid":N}` or `{"error":"..."}`.
#[derive(Debug)]
pub struct ReadyPipe(File);

impl ReadyPipe {
    /// Take over inherited descriptor `fd`: reopen it through `/proc/self/fd` (which gives
    /// an owned, close-on-exec descriptor of the same pipe without `unsafe`), then close
    /// the inherited number so no child inherits the pipe and the spawner sees EOF.
    pub fn take(fd: i32) -> Option<Self> {
        let file = File::options()
            .write(true)
            .open(format!("/proc/self/fd/{fd}"))
            .ok();
        if fd > 2 {
            let _ = nix::unistd::close(fd);
        }
        file.map(ReadyPipe)
    }

    /// The descriptor number, to keep it open in [`close_inherited`].
    pub fn raw_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }

    /// Report the created container's init pid, and close the pipe.
    pub fn created(mut self, pid: i32) {
        let _ = writeln!(self.0, "{}", serde_json::json!({ "pid": pid }));
    }

    /// Report a failure, and close the pipe.
    pub fn failed(mut self, message: &str) {
        let _ = writeln!(self.0, "{}", serde_json::json!({ "error": message }));
    }
}

/// `linux.cgroupsPath` of the bundle's config.json, if any: read once per shim, into a
/// struct of that one field (the rest of the ~18 KB is skipped, not built into a tree).
pub fn cgroups_path(bundle: &Path) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Config {
        linux: Option<Linux>,
    }
    #[derive(serde::Deserialize)]
    struct Linux {
        #[serde(rename = "cgroupsPath")]
        cgroups_path: Option<String>,
    }
    let bytes = std::fs::read(bundle.join("config.json")).ok()?;
    serde_json::from_slice::<Config>(&bytes)
        .ok()?
        .linux?
        .cgroups_path
}

/// `cgroups_path` when it is in the systemd driver's form (`slice:prefix:name`): the
/// runtime then gets `--systemd-cgroup`.
pub fn systemd_cgroups_path(cgroups_path: Option<&str>) -> Option<hako_cgroups::systemd::UnitPath> {
    let path = cgroups_path?;
    if path.contains('/') || !path.contains(':') {
        return None;
    }
    hako_cgroups::systemd::UnitPath::parse(path, "system.slice").ok()
}

/// The files that count OOM kills in the container's memory cgroup, best effort: cgroup v2
/// `memory.events` or v1 `memory.oom_control` (both have an `oom_kill N` line), for
/// `cgroups_path`, the bundle's `linux.cgroupsPath` (a systemd scope of the system manager included), or
/// runc's default `<id>` under the shim's own cgroup (a relative path is relative to the
/// caller's cgroup).
pub fn oom_files(cgroups_path: Option<&str>, id: &str) -> Vec<PathBuf> {
    if let Some(unit) = systemd_cgroups_path(cgroups_path) {
        return vec![
            Path::new("/sys/fs/cgroup")
                .join(unit.cgroup().trim_start_matches('/'))
                .join("memory.events"),
        ];
    }
    let path = cgroups_path.unwrap_or(id).to_string();
    if path.contains(':') {
        return Vec::new();
    }
    let mut rel = vec![path.trim_start_matches('/').to_string()];
    if !path.starts_with('/') {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, cg) = (parts.next(), parts.next(), parts.next());
            if let (Some(c), Some(cg)) = (controllers, cg)
                && (c.is_empty() || c.split(',').any(|x| x == "memory"))
            {
                let cg = cg.trim_matches('/');
                if !cg.is_empty() {
                    rel.push(format!("{cg}/{}", rel[0]));
                }
            }
        }
    }
    let mut files = Vec::new();
    for r in rel {
        files.push(Path::new("/sys/fs/cgroup").join(&r).join("memory.events"));
        files.push(
            Path::new("/sys/fs/cgroup/memory")
                .join(&r)
                .join("memory.oom_control"),
        );
    }
    files
}
