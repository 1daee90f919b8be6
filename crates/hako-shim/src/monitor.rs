//! The shim's main loop: one `poll` over the signalfd, the container's output, its stdin,
//! the control socket and the clients. Single-threaded; every descriptor is non-blocking
//! except during the short runtime calls (`start`, and `delete`/`create`/`start` of a
//! restart), which block the loop while they run.
//!
//! ```text
//!   Created ──start──▶ Running ──init reaped──▶ Draining ──output EOF──▶ publish exit
//!                                                                         │
//!                ┌─── policy says restart, no stop ◀──────────────────────┤
//!                ▼                                                        ▼
//!           Restarting ──delay──▶ delete, create, start ──▶ Running     Finished
//!                └──stop{no_restart}──────────────────────────────────▶ (flush, clean up)
//! ```

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::client::{Client, Role};
use crate::health::Health;
use crate::logfile::{JsonLog, now};
use crate::options::Options;
use crate::protocol::{
    ATTACH_SOCKET, CONSOLE_SOCKET, EXIT_FILE, ExitInfo, INIT_PID_FILE, Reply, Request,
    SHIM_PID_FILE, ShimState,
};
use crate::runtime::Runtime;
use crate::stdio::{self, ContainerIo};

mod shutdown;

/// How long output may still arrive after the init was reaped (a process outside the
/// container's pid namespace could hold the pipes open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the shim tries to hand the last output to slow clients before it exits.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Stdin bytes buffered before the shim stops reading from clients.
const MAX_STDIN_BUFFER: usize = 64 * 1024;
/// The first restart delay; it doubles per consecutive restart up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where the container is in its life (see the module diagram).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    /// The init was reaped; output is read until EOF or the deadline.
    Draining {
        exit: ExitInfo,
        deadline: Instant,
    },
    Restarting {
        at: Instant,
    },
    /// For good: the shim flushes its clients and ends.
    Finished {
        deadline: Instant,
    },
}

/// Everything the shim holds.
#[derive(Debug)]
pub struct Shim {
    pub(crate) opts: Options,
    pub(crate) runtime: Runtime,
    pub(crate) signals: SignalFd,
    pub(crate) listener: Option<UnixListener>,
    pub(crate) console: Option<UnixListener>,
    pub(crate) log: Option<JsonLog>,
    pub(crate) cgroup_files: Vec<PathBuf>,
    io: Option<ContainerIo>,
    clients: Vec<Client>,
    phase: Phase,
    pid: Option<i32>,
    started_at: Option<String>,
    started: Option<Instant>,
    exit: Option<ExitInfo>,
    restart_count: u32,
    stopped: bool,
    backoff: Duration,
    stdin_buf: Vec<u8>,
    close_stdin: bool,
    /// The last size asked for while there was no terminal yet (an exec before `start`).
    pending_size: Option<(u16, u16)>,
    /// The healthcheck of the current run.
    health: Option<Health>,
    /// The container's mount namespace, held from the create until its exit is published:
    /// the init's exit then is not the last reference, and the kernel tears down its ~45
    /// mounts when this closes, after the waiters heard of the exit, not before the exit
    /// is reported to this shim (~0.2 ms of every run's way to its exit code).
    mount_ns: Option<std::fs::File>,
    /// The shim's own failure log (`shim.log`).
    shimlog: crate::shimlog::ShimLog,
    /// The current run's OOM witnesses on cgroup v2 (see [`crate::oom`]): a systemd
    /// scope's cgroup is gone as soon as its last process exits, so an OOM kill must be
    /// seen while it happens, or in something that outlives the cgroup.
    oom: Option<crate::oom::OomWatch>,
    /// The shim got SIGTERM: it is stopping the container for good (see [`shutdown`]).
    terminating: bool,
    /// When SIGKILL follows the stop signal sent for a SIGTERM.
    kill_at: Option<Instant>,
}

impl Shim {
    /// A shim that has not created the container yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        opts: Options,
        runtime: Runtime,
        signals: SignalFd,
        listener: UnixListener,
        console: Option<UnixListener>,
        log: Option<JsonLog>,
        cgroup_files: Vec<PathBuf>,
    ) -> Self {
        Self {
            runtime,
            signals,
            listener: Some(listener),
            console,
            log,
            cgroup_files,
            io: None,
            clients: Vec::new(),
            phase: Phase::Created,
            pid: None,
            started_at: None,
            started: None,
            exit: None,
            restart_count: 0,
            stopped: false,
            backoff: MIN_BACKOFF,
            oom: None,
            terminating: false,
            kill_at: None,
            stdin_buf: Vec::new(),
            close_stdin: false,
            pending_size: None,
            health: None,
            mount_ns: None,
            shimlog: crate::shimlog::ShimLog::new(&opts.state_dir),
            opts,
        }
    }

    /// `RUNTIME delete --force ID` (after a failed create).
    pub fn runtime_delete(&self) {
        self.runtime.delete_force();
    }

    /// `RUNTIME create` with fresh stdio; returns the init's pid. In exec mode nothing runs
    /// before `start` (the attach clients connect first), and 0 is returned.
    pub fn create(&mut self) -> Result<i32, String> {
        if self.opts.exec_process.is_some() {
            self.phase = Phase::Created;
            return Ok(0);
        }
        let bundle = self.opts.bundle.clone();
        let pid = self.launch(|rt, console, stdio, err| rt.create(&bundle, console, stdio, err))?;
        if self.opts.loopback_up
            && let Err(e) = hako_sys::netif::loopback_up(pid)
        {
            self.runtime.delete_force();
            return Err(format!("bringing up the container's loopback: {e}"));
        }
        self.phase = Phase::Created;
        Ok(pid)
    }

    /// Runs `how` (the runtime's `create` or `exec`) with fresh stdio: pipes, or a pty
    /// whose master comes back over the console socket. Keeps the shim's ends.
    fn launch(
        &mut self,
        how: impl FnOnce(
            &Runtime,
            Option<&Path>,
            crate::runtime::CreateStdio,
            &std::os::fd::OwnedFd,
        ) -> Result<i32, String>,
    ) -> Result<i32, String> {
        // Held until the runtime has connected: the path may go through its descriptor.
        let state = crate::sockpath::Dir::open(&self.opts.state_dir)
            .map_err(|e| format!("opening {}: {e}", self.opts.state_dir.display()))?;
        let console_path = state.socket_path(CONSOLE_SOCKET);
        let (pid, io) = match &self.console {
            Some(listener) => {
                let (create_stdio, err_r) =
                    stdio::for_tty_create().map_err(|e| format!("creating stdio: {e}"))?;
                let pid = how(&self.runtime, Some(&console_path), create_stdio, &err_r)?;
                match stdio::receive_tty(listener, self.opts.stdin) {
                    Ok(io) => (pid, io),
                    Err(e) => {
                        if self.opts.exec_process.is_some() {
                            let _ = nix::sys::signal::kill(
                                Pid::from_raw(pid),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        } else {
                            self.runtime.delete_force();
                        }
                        return Err(format!("receiving the container's terminal: {e}"));
                    }
                }
            }
            None => {
                let (create_stdio, io) =
                    stdio::pipes(self.opts.stdin).map_err(|e| format!("creating pipes: {e}"))?;
                let pid = how(&self.runtime, None, create_stdio, &io.outputs[1].1)?;
                (pid, io)
            }
        };
        if let (Some(m), Some((rows, cols))) = (io.master.as_ref(), self.pending_size.take()) {
            let _ = hako_sys::tty::set_winsize(m.as_fd(), rows, cols);
        }
        self.io = Some(io);
        self.pid = Some(pid);
        if self.opts.exec_process.is_none() {
            self.mount_ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok();
        }
        self.stdin_buf.clear();
        self.close_stdin = false;
        if self.opts.exec_process.is_none() {
            self.oom = crate::oom::OomWatch::open(pid, &self.cgroup_files);
        }
        Ok(pid)
    }

    /// Serve until the container is gone for good and the last clients are served.
    pub fn run(mut self) {
        loop {
            if let Phase::Finished { deadline } = self.phase
                && (self.clients.is_empty() || Instant::now() >= deadline)
            {
                break;
            }
            self.turn();
            self.clients.retain(|c| !c.dead);
        }
    }

    /// One poll and everything it reported.
    fn turn(&mut self) {
        let readiness = match self.wait_for_events() {
            Ok(r) => r,
            Err(_) => return,
        };
        let Readiness {
            signals,
            listener,
            outputs,
            stdin,
            clients,
            health,
            oom,
        } = readiness;
        if oom && let Some(w) = self.oom.as_mut() {
            w.check();
        }
        if health && let Some(h) = self.health.as_mut() {
            h.read_output();
        }
        if signals {
            self.handle_signals();
        }
        let mut ended = Vec::new();
        for (i, ready) in outputs.iter().enumerate() {
            if *ready && self.read_output(i) {
                ended.push(i);
            }
        }
        if let Some(io) = self.io.as_mut() {
            for i in ended.into_iter().rev() {
                io.outputs.remove(i);
            }
        }
        if stdin {
            self.write_stdin();
        }
        for (i, flags) in clients.iter().enumerate() {
            self.handle_client(i, *flags);
        }
        if listener {
            self.accept();
        }
        self.maybe_close_stdin();
        self.advance();
    }

    fn wait_for_events(&self) -> nix::Result<Readiness> {
        let mut fds = Vec::with_capacity(4 + self.clients.len());
        fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
        let listening = self.listener.as_ref().filter(|_| !self.finished());
        if let Some(l) = listening {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        let n_outputs = self.io.as_ref().map_or(0, |io| io.outputs.len());
        if let Some(io) = &self.io {
            for (_, fd) in &io.outputs {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
        let stdin_fd = self
            .io
            .as_ref()
            .and_then(|io| io.stdin.as_ref())
            .filter(|_| !self.stdin_buf.is_empty());
        if let Some(fd) = stdin_fd {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
        }
        let want_input = self.stdin_buf.len() < MAX_STDIN_BUFFER;
        for c in &self.clients {
            let mut ev = PollFlags::empty();
            let reading = match c.role {
                Role::Request => true,
                Role::Attached { stdin, .. } => stdin && !c.read_eof && want_input,
                Role::Waiting => false,
            };
            if reading {
                ev |= PollFlags::POLLIN;
            }
            if c.pending() > 0 {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.stream.as_fd(), ev));
        }
        let health_fd = self.health.as_ref().and_then(Health::output_fd);
        if let Some(fd) = health_fd {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let oom_fds = self.oom.as_ref().map(crate::oom::OomWatch::fds);
        let n_oom = oom_fds.as_ref().map_or(0, Vec::len);
        for fd in oom_fds.into_iter().flatten() {
            fds.push(PollFd::new(fd, PollFlags::POLLPRI));
        }
        poll(&mut fds, self.timeout())?;
        let flags: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        let mut it = flags.into_iter();
        let mut next = || it.next().unwrap_or(PollFlags::empty());
        let signals = !next().is_empty();
        let listener = listening.is_some() && !next().is_empty();
        let outputs = (0..n_outputs).map(|_| !next().is_empty()).collect();
        let stdin = stdin_fd.is_some() && !next().is_empty();
        let clients = (0..self.clients.len()).map(|_| next()).collect();
        let health = health_fd.is_some() && !next().is_empty();
        let oom = (0..n_oom).fold(false, |any, _| !next().is_empty() || any);
        Ok(Readiness {
            signals,
            listener,
            outputs,
            stdin,
            clients,
            health,
            oom,
        })
    }

    fn timeout(&self) -> PollTimeout {
        let deadline = match &self.phase {
            Phase::Draining { deadline, .. } | Phase::Finished { deadline } => *deadline,
            Phase::Restarting { at } => *at,
            Phase::Running => match (self.health.as_ref().map(Health::deadline), self.kill_at) {
                (Some(h), Some(k)) => h.min(k),
                (Some(d), None) | (None, Some(d)) => d,
                (None, None) => return PollTimeout::NONE,
            },
            Phase::Created => return PollTimeout::NONE,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so we do not spin just before the deadline.
        PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX)
    }

    fn finished(&self) -> bool {
        matches!(self.phase, Phase::Finished { .. })
    }

    fn handle_signals(&mut self) {
        let (mut child, mut term) = (false, false);
        while let Ok(Some(info)) = self.signals.read_signal() {
            // SIGTERM stops the container for good (see `shutdown`); the rest (SIGINT,
            // SIGHUP, SIGQUIT, SIGUSR1/2) are ignored on purpose: stopping the container is
            // otherwise the engine's job, through the runtime.
            child |= info.ssi_signo == libc::SIGCHLD as u32;
            term |= info.ssi_signo == libc::SIGTERM as u32;
        }
        if child {
            self.reap();
        }
        if term {
            self.terminate();
        }
    }

    /// Reap every child and orphan; note the init's exit.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
                Ok(status) => status,
            };
            let (pid, exit_code, signal) = match status {
                WaitStatus::Exited(pid, code) => (pid, code, None),
                WaitStatus::Signaled(pid, sig, _) => (pid, 128 + sig as i32, Some(sig as i32)),
                _ => continue,
            };
            if let Some(status) = self
                .health
                .as_mut()
                .and_then(|h| h.reaped(pid.as_raw(), exit_code))
            {
                self.event(&format!("health_status: {status}"), &[]);
                continue;
            }
            if Some(pid.as_raw()) != self.pid
                || !matches!(self.phase, Phase::Created | Phase::Running)
            {
                continue;
            }
            // The OOM kill came before this exit, but its memory.events change may still
            // wait behind it in poll: read the counts now (a systemd scope's cgroup may
            // already be gone with its last process: then the other witnesses).
            let seen = self
                .oom
                .as_mut()
                .and_then(|w| w.at_exit(pid.as_raw(), signal));
            match seen {
                Some(crate::oom::Seen::KernelLog) => self.shimlog.note(
                    "OOM kill read from the kernel log (the container's cgroup was gone)",
                ),
                Some(crate::oom::Seen::Parent) => self.shimlog.note(
                    "OOM kill read from the parent cgroup's count (the container's cgroup was gone)",
                ),
                _ => {}
            }
            let oom_killed = seen.is_some() || self.oom_killed();
            let exit = ExitInfo {
                exit_code,
                signal,
                finished_at: now(),
                oom_killed,
                restart_count: self.restart_count,
            };
            self.phase = Phase::Draining {
                exit,
                deadline: Instant::now() + DRAIN_TIMEOUT,
            };
        }
    }

    /// Best effort: a file of the container's cgroup that the bundle names (v1
    /// memory.oom_control included) counts an OOM kill now.
    fn oom_killed(&self) -> bool {
        self.cgroup_files
            .iter()
            .any(|path| fs::read_to_string(path).is_ok_and(|text| crate::oom::oom_kills(&text) > 0))
    }

    /// Read what output `i` has; true at EOF (or EIO from a pty with no peer left).
    fn read_output(&mut self, i: usize) -> bool {
        let Some(io) = self.io.as_mut() else {
            return false;
        };
        let tty = io.master.is_some();
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..4 {
            let (stream, fd) = &io.outputs[i];
            let stream = *stream;
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) | Err(Errno::EIO) | Err(Errno::EBADF) => {
                    if let Some(log) = self.log.as_mut() {
                        let _ = log.finish(stream);
                    }
                    return true;
                }
                Ok(n) => {
                    let data = &buf[..n];
                    if let Some(log) = self.log.as_mut() {
                        // A full disk drops output but never stops the container.
                        let r = log.write(stream, data);
                        if let Some(path) = &self.opts.log_path {
                            self.shimlog.log_write(path, &r);
                        }
                    }
                    for c in &mut self.clients {
                        c.output(stream, data, tty);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return false,
            }
        }
        false
    }

    fn write_stdin(&mut self) {
        let Some(fd) = self.io.as_ref().and_then(|io| io.stdin.as_ref()) else {
            self.stdin_buf.clear();
            return;
        };
        while !self.stdin_buf.is_empty() {
            match nix::unistd::write(fd, &self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    // The container closed its stdin.
                    self.stdin_buf.clear();
                    if let Some(io) = self.io.as_mut() {
                        io.stdin = None;
                    }
                    return;
                }
            }
        }
        if self.stdin_buf.capacity() > MAX_STDIN_BUFFER {
            self.stdin_buf.shrink_to(4096);
        }
    }

    /// After `--stdin-once`'s client left: close stdin once its bytes are written (only
    /// without a tty, see [`Shim::handle_client`]).
    fn maybe_close_stdin(&mut self) {
        if !self.close_stdin || !self.stdin_buf.is_empty() {
            return;
        }
        self.close_stdin = false;
        if let Some(io) = self.io.as_mut() {
            io.stdin = None;
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        for _ in 0..16 {
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Ok(c) = Client::new(stream) {
                        self.clients.push(c);
                    }
                }
                Err(_) => return,
            }
        }
    }

    fn handle_client(&mut self, i: usize, flags: PollFlags) {
        if flags.is_empty() {
            return;
        }
        if flags.contains(PollFlags::POLLOUT) {
            self.clients[i].flush();
        }
        let readable = flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP);
        match self.clients[i].role {
            Role::Request if readable => {
                if let Some((line, rest)) = self.clients[i].read_request() {
                    self.handle_request(i, &line, rest);
                }
            }
            Role::Attached { stdin, .. } if readable && stdin && !self.clients[i].read_eof => {
                let mut input = std::mem::take(&mut self.stdin_buf);
                self.clients[i].read_input(&mut input, MAX_STDIN_BUFFER);
                self.stdin_buf = input;
                if self.io.as_ref().is_none_or(|io| io.stdin.is_none()) {
                    self.stdin_buf.clear();
                }
                // Docker's rule: `StdinOnce` closes the container's stdin when that client's
                // input ends, but never with a tty. There the input end is a detach
                // (ctrl-p ctrl-q) or a client that went away; the shell must keep its
                // terminal for the next `attach`.
                if self.clients[i].read_eof && self.opts.stdin_once && !self.opts.tty {
                    self.close_stdin = true;
                }
                self.write_stdin();
            }
            _ => {
                if flags.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                    self.clients[i].dead = true;
                }
            }
        }
    }

    fn handle_request(&mut self, i: usize, line: &[u8], rest: Vec<u8>) {
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                self.clients[i].reply_and_close(&Reply::Error {
                    message: format!("bad request: {e}"),
                });
                return;
            }
        };
        let reply = match req {
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                if self.finished() {
                    Reply::Error {
                        message: "the container has exited".into(),
                    }
                } else {
                    let c = &mut self.clients[i];
                    c.role = Role::Attached {
                        stdin,
                        stdout,
                        stderr,
                    };
                    c.reply(&Reply::Attached { tty: self.opts.tty });
                    if stdin && self.io.as_ref().is_some_and(|io| io.stdin.is_some()) {
                        self.stdin_buf.extend_from_slice(&rest);
                        self.write_stdin();
                    }
                    return;
                }
            }
            Request::Resize { rows, cols } => {
                match self.io.as_ref().and_then(|io| io.master.as_ref()) {
                    Some(m) => match hako_sys::tty::set_winsize(m.as_fd(), rows, cols) {
                        Ok(()) => Reply::Ok,
                        Err(e) => Reply::Error {
                            message: format!("resizing the terminal: {e}"),
                        },
                    },
                    None => {
                        self.pending_size = Some((rows, cols));
                        Reply::Ok
                    }
                }
            }
            Request::Start => self.start(),
            Request::Wait => {
                if self.finished() {
                    match &self.exit {
                        Some(exit) => Reply::Exited(exit.clone()),
                        None => Reply::Error {
                            message: "the container never ran".into(),
                        },
                    }
                } else {
                    self.clients[i].role = Role::Waiting;
                    return;
                }
            }
            Request::State => Reply::State(self.state()),
            Request::Stop { no_restart } => {
                if no_restart {
                    self.stopped = true;
                    if matches!(self.phase, Phase::Restarting { .. }) {
                        self.finish();
                    }
                }
                Reply::Ok
            }
            Request::SetRestartPolicy { policy } => match policy.parse() {
                Ok(p) => {
                    self.opts.restart = p;
                    Reply::Ok
                }
                Err(message) => Reply::Error { message },
            },
        };
        self.clients[i].reply_and_close(&reply);
    }

    fn start(&mut self) -> Reply {
        if self.phase != Phase::Created {
            return Reply::Error {
                message: format!(
                    "cannot start container {}: it is {}",
                    self.opts.id,
                    self.status()
                ),
            };
        }
        if let Some(process) = self.opts.exec_process.clone() {
            return self.start_exec(&process);
        }
        match self.runtime.start() {
            Ok(()) => {
                self.mark_started();
                self.event("start", &[]);
                Reply::Ok
            }
            Err(message) => {
                self.shimlog
                    .note(&format!("OCI runtime start failed: {message}"));
                Reply::Error { message }
            }
        }
    }

    /// Exec mode's `start`: `RUNTIME exec --detach`. A process that cannot be started
    /// still gets an exit record (126/127, as Docker's exec inspect shows) and the monitor
    /// ends.
    fn start_exec(&mut self, process: &Path) -> Reply {
        match self.launch(|rt, console, stdio, err| rt.exec(process, console, stdio, err)) {
            Ok(_) => {
                self.mark_started();
                Reply::Ok
            }
            Err(message) => {
                let exit = ExitInfo {
                    exit_code: crate::protocol::start_failure_exit_code(&message),
                    signal: None,
                    finished_at: now(),
                    oom_killed: false,
                    restart_count: 0,
                };
                let _ = write_exit_file(&self.opts.state_dir, &exit);
                self.exit = Some(exit);
                self.io = None;
                self.pid = None;
                self.finish();
                Reply::Error { message }
            }
        }
    }

    fn mark_started(&mut self) {
        self.started_at = Some(now());
        self.started = Some(Instant::now());
        self.phase = Phase::Running;
        if self.opts.exec_process.is_none() {
            self.health = self
                .opts
                .health()
                .map(|cfg| Health::new(cfg, &self.opts.state_dir));
        }
        // The init may have exited while `start` ran: its SIGCHLD is pending.
    }

    fn status(&self) -> &'static str {
        match self.phase {
            Phase::Created => "created",
            Phase::Running | Phase::Draining { .. } => "running",
            Phase::Restarting { .. } => "restarting",
            Phase::Finished { .. } => "exited",
        }
    }

    fn state(&self) -> ShimState {
        ShimState {
            pid: self
                .pid
                .filter(|_| matches!(self.phase, Phase::Created | Phase::Running)),
            status: self.status().to_string(),
            started_at: self.started_at.clone(),
            exit: self.exit.clone(),
            restart_count: self.restart_count,
            tty: self.opts.tty,
        }
    }

    /// Move on when the current phase is over.
    fn advance(&mut self) {
        match &self.phase {
            Phase::Draining { exit, deadline } => {
                let drained = self.io.as_ref().is_none_or(|io| io.outputs.is_empty());
                if drained || Instant::now() >= *deadline {
                    let exit = exit.clone();
                    self.publish_exit(exit);
                }
            }
            Phase::Restarting { at } if Instant::now() >= *at => self.restart(),
            Phase::Running => {
                self.kill_after_timeout();
                if let Some(status) = self.health.as_mut().and_then(|h| h.tick(&self.runtime)) {
                    self.event(&format!("health_status: {status}"), &[]);
                }
            }
            _ => {}
        }
    }

    /// The init is gone and its output read: record the exit, answer waiters, close
    /// attached clients, then restart or finish.
    fn publish_exit(&mut self, exit: ExitInfo) {
        if let Some(io) = self.io.take() {
            for (stream, _) in &io.outputs {
                if let Some(log) = self.log.as_mut() {
                    let _ = log.finish(*stream);
                }
            }
        }
        let _ = write_exit_file(&self.opts.state_dir, &exit);
        self.exit_events(&exit);
        for c in &mut self.clients {
            match c.role {
                Role::Waiting => c.reply_and_close(&Reply::Exited(exit.clone())),
                Role::Attached { .. } => {
                    c.closing = true;
                    c.flush();
                }
                Role::Request => {}
            }
        }
        // The waiters have the exit: the namespace's mounts may go now.
        self.mount_ns = None;
        let ran = self.started.map_or(Duration::ZERO, |s| s.elapsed());
        self.exit = Some(exit.clone());
        self.pid = None;
        self.health = None;
        self.stdin_buf.clear();
        let policy = self.opts.restart;
        let what = format!(
            "exited with {}{} after {:.1}s; restart policy {policy}",
            exit.exit_code,
            if exit.oom_killed { " (OOM killed)" } else { "" },
            ran.as_secs_f64()
        );
        if !self.stopped && policy.restarts(exit.exit_code, self.restart_count) {
            if ran > MAX_BACKOFF {
                self.backoff = MIN_BACKOFF;
            }
            let delay = self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            self.shimlog.note(&format!(
                "{what}: restarting in {}ms (restart {})",
                delay.as_millis(),
                self.restart_count + 1
            ));
            self.phase = Phase::Restarting {
                at: Instant::now() + delay,
            };
        } else {
            if policy != crate::options::RestartPolicy::No {
                let why = if self.terminating {
                    "the shim got SIGTERM"
                } else if self.stopped {
                    "stopped"
                } else {
                    "policy says no"
                };
                self.shimlog
                    .note(&format!("{what}: not restarting ({why})"));
            }
            self.finish();
        }
    }

    fn restart(&mut self) {
        self.runtime.delete_force();
        let result = self.create().and_then(|_| self.runtime.start());
        match result {
            Ok(()) => {
                self.restart_count += 1;
                self.mark_started();
                self.event("start", &[]);
            }
            Err(message) => {
                self.shimlog.note(&format!("restart failed: {message}"));
                // Leave a trace where the engine looks for runtime errors.
                let _ = append_shim_error(&self.opts.state_dir, &message);
                self.io = None;
                self.pid = None;
                self.finish();
            }
        }
    }

    /// The end: no restart comes. Delete the container and the shim's files; the loop
    /// flushes the remaining clients.
    fn finish(&mut self) {
        self.mount_ns = None;
        self.phase = Phase::Finished {
            deadline: Instant::now() + FLUSH_TIMEOUT,
        };
        // Connections already made are still served (a `wait` gets the exit at once);
        // later ones find no socket and read exit.json instead.
        self.accept();
        self.listener = None;
        for c in &mut self.clients {
            match c.role {
                Role::Waiting => match &self.exit {
                    Some(exit) => c.reply_and_close(&Reply::Exited(exit.clone())),
                    None => c.dead = true,
                },
                Role::Attached { .. } => {
                    c.closing = true;
                    c.flush();
                }
                Role::Request => {}
            }
        }
        // Those served in full learn the end before the runtime's `delete` (a few ms):
        // `run --rm` removes the container once its attach stream ends.
        for c in &mut self.clients {
            c.hang_up_if_done();
        }
        if self.opts.exec_process.is_none() {
            self.runtime.delete_force();
        }
        remove_files(&self.opts.state_dir);
    }

    /// Appends a container event (with `--events-log`).
    fn event(&self, action: &str, extra: &[(&str, String)]) {
        if let Some(log) = &self.opts.events_log {
            crate::events::container_event(log, &self.opts.bundle, &self.opts.id, action, extra);
        }
    }

    /// `oom` and `die` for the container, `exec_die` for an exec process. None for a
    /// container ended before it was started (created ahead of a start that did not come,
    /// or removed): its process never ran (Docker's events have no `die` either).
    fn exit_events(&self, exit: &ExitInfo) {
        let code = exit.exit_code.to_string();
        if let Some(exec_id) = &self.opts.exec_id {
            self.event(
                "exec_die",
                &[("execID", exec_id.clone()), ("exitCode", code)],
            );
            return;
        }
        if self.started.is_none() {
            return;
        }
        if exit.oom_killed {
            self.event("oom", &[]);
        }
        self.event("die", &[("exitCode", code)]);
    }
}

/// What one poll reported.
#[derive(Debug)]
struct Readiness {
    signals: bool,
    listener: bool,
    outputs: Vec<bool>,
    stdin: bool,
    clients: Vec<PollFlags>,
    health: bool,
    oom: bool,
}

/// Write `exit.json` atomically (temp file + rename).
pub fn write_exit_file(state_dir: &Path, exit: &ExitInfo) -> std::io::Result<()> {
    let tmp = state_dir.join(format!("{EXIT_FILE}.tmp"));
    let mut text = serde_json::to_vec(exit).map_err(std::io::Error::other)?;
    text.push(b'\n');
    fs::write(&tmp, text)?;
    fs::rename(&tmp, state_dir.join(EXIT_FILE))
}

/// Append a line in the runtime log's format, so that restart failures show up where the
/// runtime's own errors do.
fn append_shim_error(state_dir: &Path, message: &str) -> std::io::Result<()> {
    use std::io::Write;
    let line =
        serde_json::json!({"level": "error", "msg": message, "time": now(), "source": "hako-shim"});
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join(crate::protocol::RUNTIME_LOG))?;
    writeln!(f, "{line}")
}

/// Remove what only makes sense while the shim runs (exit.json and runtime.log stay).
/// `shim.pid` goes last: once it is gone the shim touches nothing more in `state_dir`, so
/// the engine waits for that before a new shim takes the directory (a start right after
/// an exit otherwise met this shim's `delete` and unlinks halfway through).
pub fn remove_files(state_dir: &Path) {
    for name in [CONSOLE_SOCKET, INIT_PID_FILE, ATTACH_SOCKET, SHIM_PID_FILE] {
        let _ = fs::remove_file(state_dir.join(name));
    }
}
