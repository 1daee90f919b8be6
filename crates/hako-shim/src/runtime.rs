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
        }
    }

    /// Pass `--systemd-cgroup` (a global flag runc, crun and hako-runtime all take).
    pub fn with_systemd_cgroup(mut self, on: bool) -> Self {
        self.systemd_cgroup = on;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
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
        let mut cmd = self.command();
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
        let mut cmd = self.command();
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
        let text = std::fs::read_to_string(pid_file)
            .map_err(|e| format!("reading {}: {e}", pid_file.display()))?;
        text.trim()
            .parse()
            .map_err(|_| format!("bad pid in {}: {text:?}", pid_file.display()))
    }

    /// `start ID`.
    pub fn start(&self) -> Result<(), String> {
        self.simple("start")
    }

    /// `delete --force ID`, ignoring failures (the container may be gone already).
    pub fn delete_force(&self) {
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
