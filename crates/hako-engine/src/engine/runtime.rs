//! The OCI runtime's command line: which binary, its `--root`, running it, and mapping its
//! failures to Docker's exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, IoContext, Result};
use crate::records::Record;

use super::Engine;

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

impl Engine {
    pub(crate) fn runtime_path(&self, name: &str) -> Result<PathBuf> {
        match name {
            "" | "hako-runtime" | "hako" => Ok(self.opts.runtime.clone()),
            n if n.contains('/') => Ok(PathBuf::from(n)),
            n => find_in_path(n).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown or invalid runtime name: {n} (not found on PATH; give a path or one of hako-runtime, runc, crun)"
                ))
            }),
        }
    }

    /// The container runs on hako's own runtime, built with the shim (the default
    /// runtime, at a path named `hako-runtime`): the shim then calls its library for
    /// `start`, `kill` and `delete` instead of running it (`hako-shim --runtime-builtin`).
    /// A wrapper put in its place (`HAKO_RUNTIME`, a test's slowed-down runtime) has
    /// another name and stays a program.
    pub(super) fn runtime_is_builtin(&self, name: &str) -> bool {
        matches!(name, "" | "hako-runtime" | "hako")
            && self.opts.runtime.file_name() == Some(std::ffi::OsStr::new("hako-runtime"))
    }

    pub(super) fn runtime_root(&self, name: &str) -> PathBuf {
        let base = Path::new(name)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "hako-runtime".into());
        self.opts.exec_root.join("runtime").join(base)
    }

    pub(super) fn runtime(&self, rec: &Record) -> Result<Command> {
        let mut c = Command::new(self.runtime_path(&rec.runtime)?);
        c.arg("--root").arg(self.runtime_root(&rec.runtime));
        Ok(c)
    }

    /// Runs `RUNTIME args...`, turning a failure into [`Error::Runtime`] with its message.
    pub(super) fn runtime_run(&self, rec: &Record, op: &'static str, args: &[&str]) -> Result<()> {
        let out = self
            .runtime(rec)?
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .ctx(|| format!("run the OCI runtime {}", rec.runtime))?;
        if out.status.success() {
            return Ok(());
        }
        let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Error::Runtime {
            op,
            exit_code: 125,
            message: if message.is_empty() {
                format!("{}", out.status)
            } else {
                message
            },
        })
    }
}

/// Sends signals to a container's init, from any thread (`run --sig-proxy`).
#[derive(Debug, Clone)]
pub struct SignalSender {
    runtime: PathBuf,
    root: PathBuf,
    id: String,
}

impl SignalSender {
    /// `RUNTIME kill ID SIG`.
    pub fn send(&self, sig: &str) -> std::io::Result<()> {
        Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(["kill", &self.id, sig])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|_| ())
    }
}

impl Engine {
    /// A [`SignalSender`] for the container.
    pub fn signal_command(&self, what: &str) -> Result<SignalSender> {
        let rec = self.get(what)?;
        Ok(SignalSender {
            runtime: self.runtime_path(&rec.runtime)?,
            root: self.runtime_root(&rec.runtime),
            id: rec.id,
        })
    }
}

/// Docker's exit codes for a process that could not be started.
pub(super) fn runtime_error(op: &'static str, message: String) -> Error {
    let exit_code = hako_shim::protocol::start_failure_exit_code(&message);
    Error::Runtime {
        op,
        message,
        exit_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_map_to_docker_exit_codes() {
        assert_eq!(
            runtime_error(
                "create",
                "exec: \"nope\": executable file not found in $PATH".into()
            )
            .exit_code(),
            127
        );
        assert_eq!(
            runtime_error("create", "exec /etc/passwd: permission denied".into()).exit_code(),
            126
        );
        assert_eq!(
            runtime_error("create", "cgroup trouble".into()).exit_code(),
            125
        );
    }
}
