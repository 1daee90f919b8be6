//! Calling the OCI runtime (`create`, `start`, `kill`, `delete --force`...) and turning its failures
//! into one line for the user.
//!
//! Every call gets `[--root R] --log <state-dir>/runtime.log --log-format json`, which runc,
//! crun and hako-runtime all accept. The error message of a failed call is the last
//! `"level":"error"` entry the call appended to runtime.log, else what it wrote on stderr,
//! else its exit status.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::protocol::{INIT_PID_FILE, RUNTIME_LOG};

/// One container's runtime command line.
#[derive(Debug)]
pub struct Runtime {
    bin: PathBuf,
    root: Option<PathBuf>,
    log: PathBuf,
    id: String,
    pid_file: PathBuf,
    /// `--systemd-cgroup`: the bundle's cgroupsPath is in systemd form (slice:prefix:name).
    systemd_cgroup: bool,
    /// The binary is an ELF image (not a script), so it can run from a descriptor.
    elf: bool,
    /// `--runtime-builtin`: `start`, `kill` and `delete` call hako-runtime's library here
    /// with this state root (see [`Runtime::with_builtin`]).
    builtin: Option<PathBuf>,
    /// `create` is hako-runtime's library in a fork of this process, not an exec of the
    /// runtime (see [`Runtime::create`]).
    create_in_fork: bool,
}

/// The stdio `create` is spawned with; without a terminal the runtime hands it to the
/// container's init.
#[derive(Debug)]
pub struct CreateStdio {
    /// The container's stdin (`None`: /dev/null).
    pub stdin: Option<OwnedFd>,
    /// The runtime's (and, without a terminal, the container's) stdout.
    pub stdout: OwnedFd,
    /// Same for stderr; the shim keeps the read end, so runtime errors can be read there.
    pub stderr: OwnedFd,
}

impl Runtime {
    /// The runtime `bin` for container `id`, logging into `state_dir`.
    pub fn new(bin: &Path, root: Option<&Path>, state_dir: &Path, id: &str) -> Self {
        Self {
            bin: bin.to_path_buf(),
            root: root.map(Path::to_path_buf),
            log: state_dir.join(RUNTIME_LOG),
            id: id.to_string(),
            pid_file: state_dir.join(INIT_PID_FILE),
            systemd_cgroup: false,
            elf: is_elf(bin),
            builtin: None,
            create_in_fork: false,
        }
    }

    /// The runtime is the hako-runtime this shim was built with (the engine's default):
    /// `start`, `kill` and `delete` become calls into its library, in this process, with
    /// the same state root. Each saves a fork and exec of the runtime and its start-up, ~1.5
    /// ms on every `run` (measured in a `run --rm` timeline). `create` and `exec` stay
    /// programs: their process enters the container, from the sealed image. Hooks run
    /// as before: std's spawn gives them a clean signal mask, not the shim's blocked one.
    pub fn with_builtin(mut self, on: bool) -> Self {
        self.builtin = on.then(|| self.root.clone()).flatten();
        // The init that `create` clones runs this process's image until it executes the
        // container's program: only from a read-only mount (a zygote shim is started from
        // one), as the runtime binary itself insists (CVE-2019-5736).
        self.create_in_fork = self.builtin.is_some() && hako_runtime::seal::exe_on_readonly_mount();
        self
    }

    /// Pass `--systemd-cgroup` (a global flag runc, crun and hako-runtime all take).
    pub fn with_systemd_cgroup(mut self, on: bool) -> Self {
        self.systemd_cgroup = on;
        self
    }

    fn command(&self) -> Command {
        self.command_from(Command::new(&self.bin))
    }

    /// [`Runtime::command`] for the calls whose runtime process enters the container
    /// (`create`, `exec`), run from a detached read-only bind mount of the binary's
    /// directory, which the caller holds until the spawn returned. A runtime guards against CVE-2019-5736 by
    /// making sure its running image cannot be written through `/proc/<pid>/exe`;
    /// hako-runtime (and runc 1.2) re-execute themselves from such a mount unless already
    /// on one (~0.8 ms per call, measured in a `run` timeline): this does it once, here,
    /// without the second exec. Scripts (a test's wrapper) and a failed mount (no privilege
    /// for the new mount API): the plain path, and the runtime seals itself as before.
    fn sealed_command(&self) -> (Command, Option<OwnedFd>) {
        let Some((tree, name)) = self
            .elf
            .then(|| hako_sys::mount::readonly_tree(&self.bin))
            .flatten()
        else {
            return (self.command(), None);
        };
        // Through the directory, so the process is named after the binary (its comm is
        // the last component of the path it was executed by), not after the descriptor.
        let mut cmd = Command::new(hako_sys::mount::in_tree(&tree, &name));
        cmd.arg0(&self.bin);
        (self.command_from(cmd), Some(tree))
    }

    fn command_from(&self, mut cmd: Command) -> Command {
        // The shim's blocked signals (its signalfd's) must not reach the container.
        hako_sys::process::unblock_signals_in_child(&mut cmd);
        if let Some(root) = &self.root {
            cmd.arg("--root").arg(root);
        }
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"]);
        cmd
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID`; returns the init's pid.
    /// `stderr_read` is the shim's end of `stdio.stderr`, read for an error message.
    pub fn create(
        &self,
        bundle: &Path,
        console_socket: Option<&Path>,
        stdio: CreateStdio,
        stderr_read: &OwnedFd,
    ) -> Result<i32, String> {
        let _ = std::fs::remove_file(&self.pid_file);
        // A fork runs on only after the exec it is not followed by here when this process
        // has no other thread (a restart after `--proxy` relays started has some).
        if self.create_in_fork && hako_sys::process::single_threaded() {
            return self.create_forked(bundle, console_socket, stdio, stderr_read);
        }
        let (mut cmd, _tree) = self.sealed_command();
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&self.pid_file);
        if let Some(sock) = console_socket {
            cmd.arg("--console-socket").arg(sock);
        }
        cmd.arg(&self.id)
            .stdin(stdio.stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr));
        self.run_with_pid(cmd, &self.pid_file, stderr_read)
    }

    /// [`Runtime::create`] without the runtime's exec and start-up (~0.6 ms of every
    /// `docker run`): a fork of this (single-threaded) process does what `RUNTIME create`
    /// does, with the same options, stdio, log and exit status.
    fn create_forked(
        &self,
        bundle: &Path,
        console_socket: Option<&Path>,
        stdio: CreateStdio,
        stderr_read: &OwnedFd,
    ) -> Result<i32, String> {
        let root = self.builtin.clone().unwrap_or_default();
        let opts = hako_runtime::container::create::CreateOptions {
            root,
            id: self.id.clone(),
            bundle: bundle.to_path_buf(),
            pid_file: Some(self.pid_file.clone()),
            console_socket: console_socket.map(Path::to_path_buf),
            systemd_cgroup: self.systemd_cgroup,
            ..Default::default()
        };
        let mark = self.log_len();
        // The child's success, told before its exit: the exit of a copy of this process
        // (its address space torn down, ~0.3 ms) is not waited for; the shim's reaper
        // collects it later, as any child that is not the init.
        let (done_r, done_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("pipe for {} create: {e}", self.bin.display()))?;
        let child = match hako_sys::clone3_fork(nix::sched::CloneFlags::empty(), None) {
            Ok(hako_sys::CloneResult::Child) => {
                drop(done_r);
                create_in_child(&opts, stdio, &self.log, done_w)
            }
            Ok(hako_sys::CloneResult::Parent(pid)) => pid,
            Err(e) => return Err(format!("fork for {} create: {e}", self.bin.display())),
        };
        // The container's ends are the child's (and its init's) now.
        drop(stdio);
        drop(done_w);
        if told_done(&done_r, child) {
            return read_pid(&self.pid_file);
        }
        let status = loop {
            match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None) {
                Err(nix::errno::Errno::EINTR) => {}
                other => break other,
            }
        };
        let ok = matches!(status, Ok(nix::sys::wait::WaitStatus::Exited(_, 0)));
        if !ok {
            let stderr = read_available(stderr_read);
            let code = match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
                _ => 1,
            };
            return Err(self.error_message(
                mark,
                &stderr,
                std::os::unix::process::ExitStatusExt::from_raw(code << 8),
            ));
        }
        read_pid(&self.pid_file)
    }

    /// `exec --detach --pid-file P --process F [--console-socket S] ID`: starts one more
    /// process in the running container; returns its pid. The process outlives the runtime
    /// call and is re-parented to the shim (the subreaper), which reaps it.
    pub fn exec(
        &self,
        process: &Path,
        console_socket: Option<&Path>,
        stdio: CreateStdio,
        stderr_read: &OwnedFd,
    ) -> Result<i32, String> {
        self.exec_inner(process, &self.pid_file, console_socket, stdio, stderr_read)
    }

    /// [`Runtime::exec`] without a terminal and with its own pid file (a healthcheck
    /// probe, beside the container's init).
    pub fn exec_with_pid_file(
        &self,
        process: &Path,
        pid_file: &Path,
        stdio: CreateStdio,
        stderr_read: &OwnedFd,
    ) -> Result<i32, String> {
        self.exec_inner(process, pid_file, None, stdio, stderr_read)
    }

    fn exec_inner(
        &self,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: CreateStdio,
        stderr_read: &OwnedFd,
    ) -> Result<i32, String> {
        let _ = std::fs::remove_file(pid_file);
        let (mut cmd, _tree) = self.sealed_command();
        cmd.arg("exec")
            .arg("--detach")
            .arg("--pid-file")
            .arg(pid_file)
            .arg("--process")
            .arg(process);
        if let Some(sock) = console_socket {
            cmd.arg("--console-socket").arg(sock);
        }
        cmd.arg(&self.id)
            .stdin(stdio.stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr));
        self.run_with_pid(cmd, pid_file, stderr_read)
    }

    /// Runs `cmd` (which writes the pid file) and reads the pid, or the error message.
    fn run_with_pid(
        &self,
        mut cmd: Command,
        pid_file: &Path,
        stderr_read: &OwnedFd,
    ) -> Result<i32, String> {
        let mark = self.log_len();
        // The Command owns our copies of the child's ends: `status` spawns, waits, and the
        // Command is dropped at the end of this statement, closing them.
        let status = cmd
            .status()
            .map_err(|e| format!("running {}: {e}", self.bin.display()))?;
        drop(cmd);
        if !status.success() {
            let stderr = read_available(stderr_read);
            return Err(self.error_message(mark, &stderr, status));
        }
        read_pid(pid_file)
    }

    /// `start ID`.
    pub fn start(&self) -> Result<(), String> {
        if let Some(root) = &self.builtin {
            return hako_runtime::container::start::start(root, &self.id)
                .map_err(|e| e.to_string());
        }
        self.simple("start")
    }

    /// `delete --force ID`, ignoring failures (the container may be gone already).
    pub fn delete_force(&self) {
        if let Some(root) = &self.builtin {
            let _ = hako_runtime::container::delete::delete(root, &self.id, true);
            return;
        }
        let _ = self
            .command()
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// `kill ID SIGNAL`.
    pub fn kill(&self, signal: &str) -> Result<(), String> {
        if let Some(root) = &self.builtin {
            return hako_runtime::container::kill::parse_signal(signal)
                .and_then(|sig| hako_runtime::container::kill::kill(root, &self.id, sig, false))
                .map_err(|e| e.to_string());
        }
        self.simple_args(&["kill", &self.id, signal])
    }

    /// `state ID` says the container is paused (a frozen cgroup, where only SIGKILL, and on
    /// cgroup v1 not even that, ends its processes).
    pub fn paused(&self) -> bool {
        let out = self
            .command()
            .args(["state", &self.id])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        out.ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .is_some_and(|v| v["status"] == "paused")
    }

    /// `resume ID`.
    pub fn resume(&self) -> Result<(), String> {
        self.simple("resume")
    }

    fn simple(&self, verb: &str) -> Result<(), String> {
        self.simple_args(&[verb, &self.id])
    }

    fn simple_args(&self, args: &[&str]) -> Result<(), String> {
        let mark = self.log_len();
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("running {}: {e}", self.bin.display()))?;
        if out.status.success() {
            return Ok(());
        }
        Err(self.error_message(mark, &out.stderr, out.status))
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// The last error the runtime logged after byte `mark`, else stderr, else the status.
    fn error_message(&self, mark: u64, stderr: &[u8], status: ExitStatus) -> String {
        if let Some(msg) = last_logged_error(&self.log, mark) {
            return msg;
        }
        let stderr = String::from_utf8_lossy(stderr);
        let stderr = stderr.trim();
        if !stderr.is_empty() {
            return stderr.to_string();
        }
        match status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("{status}"),
        }
    }
}

/// The `msg` of the last `"level":"error"` line of `log` after byte `mark`.
/// Starts with the ELF magic (a script needs its path: the interpreter cannot open a
/// close-on-exec descriptor's /proc/self/fd link after the exec).
fn is_elf(bin: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(bin)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// A detached, read-only bind mount of the directory that holds `bin` (after symlinks)
/// (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(RDONLY)`), as a close-on-exec
/// descriptor, and the binary's name in it; `None` when not allowed.
/// The forked child of [`Runtime::create_forked`]: set up as `RUNTIME create` starts (its
/// stdio the container's, no blocked signal, its log the state dir's `runtime.log`), then
/// hako-runtime's create; exits as the runtime would.
fn create_in_child(
    opts: &hako_runtime::container::create::CreateOptions,
    stdio: CreateStdio,
    log: &Path,
    done: OwnedFd,
) -> ! {
    let placed = (|| -> std::io::Result<()> {
        match &stdio.stdin {
            Some(fd) => nix::unistd::dup2_stdin(fd)?,
            None => nix::unistd::dup2_stdin(File::open("/dev/null")?)?,
        }
        nix::unistd::dup2_stdout(&stdio.stdout)?;
        nix::unistd::dup2_stderr(&stdio.stderr)?;
        nix::sys::signal::SigSet::empty().thread_set_mask()?;
        Ok(())
    })();
    drop(stdio);
    // None of the shim's own descriptors (close-on-exec, but this process does not exec):
    // the ready pipe held here would keep its reader waiting for EOF as long as the
    // container lives.
    crate::daemon::close_inherited(&[std::os::fd::AsRawFd::as_raw_fd(&done)]);
    if let Err(e) = placed {
        hako_runtime::output::stderr_line(&format!("hako-runtime: set up create: {e}"));
        std::process::exit(1);
    }
    if let Err(e) =
        hako_runtime::logging::init(Some(log), hako_runtime::cli::LogFormat::Json, false)
    {
        hako_runtime::output::stderr_line(&format!("cannot open log {}: {e}", log.display()));
        std::process::exit(1);
    }
    let console = match &opts.console_socket {
        Some(p) => hako_runtime::container::create::Console::Path(p.clone()),
        None => hako_runtime::container::create::Console::None,
    };
    match hako_runtime::container::create::create(opts, console) {
        Ok(_) => {
            let _ = nix::unistd::write(&done, b"1");
            std::process::exit(0)
        }
        Err(e) => {
            tracing::error!("{e}");
            hako_runtime::output::stderr_line(&e.to_string());
            std::process::exit(1);
        }
    }
}

fn last_logged_error(log: &Path, mark: u64) -> Option<String> {
    let mut file = File::open(log).ok()?;
    file.seek(SeekFrom::Start(mark)).ok()?;
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v["level"] != "error" {
            return None;
        }
        v["msg"].as_str().map(str::to_string)
    })
}

/// Whether the create child at `pid` wrote its success byte to `done`: waits for that
/// byte or the child's exit, whichever comes first (the container's init, a clone of the
/// child, holds the pipe's write end too until its exec). `false`: the caller reaps the
/// child for its status.
fn told_done(done: &OwnedFd, pid: i32) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let Ok(pidfd) = hako_sys::pidfd_open(pid) else {
        return false;
    };
    loop {
        let mut fds = [
            PollFd::new(done.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
            Ok(_) => {}
        }
        // The byte, also when the child exited right after writing it.
        if fds[0].any().unwrap_or(false) {
            let mut byte = [0u8; 1];
            return matches!(nix::unistd::read(done, &mut byte), Ok(1));
        }
        if fds[1].any().unwrap_or(false) {
            return false;
        }
    }
}

/// The pid a runtime call wrote to `pid_file`.
fn read_pid(pid_file: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(pid_file)
        .map_err(|e| format!("reading {}: {e}", pid_file.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("bad pid in {}: {text:?}", pid_file.display()))
}

/// Whatever can be read from a pipe without blocking (the caller made it non-blocking).
fn read_available(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < 64 * 1024 {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_after_mark() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runtime.log");
        let old = "{\"level\":\"error\",\"msg\":\"old\"}\n";
        std::fs::write(
            &log,
            format!(
                "{old}{}\n{}\n",
                r#"{"level":"error","msg":"exec: \"nope\": not found","time":"x"}"#,
                r#"{"level":"warning","msg":"later"}"#
            ),
        )
        .unwrap();
        assert_eq!(
            last_logged_error(&log, old.len() as u64).as_deref(),
            Some("exec: \"nope\": not found")
        );
        let all = std::fs::metadata(&log).unwrap().len();
        assert_eq!(last_logged_error(&log, all), None);
    }
}
