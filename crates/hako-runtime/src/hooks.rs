//! OCI hooks: a program run at a named point of the lifecycle, given the container's state
//! as JSON on stdin, killed if it runs past its timeout.
//!
//! stdin is a memfd holding the JSON, not a pipe: a hook that never reads it cannot make
//! the writer block or, in the container's init (whose signal dispositions are already
//! reset for the user's program when startContainer hooks run), die of SIGPIPE.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use serde::Serialize;

use crate::error::{Error, Result};

/// The state object hooks read on stdin (runtime-spec "State").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: &'a std::path::Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a std::collections::HashMap<String, String>>,
}

/// Run `hooks` in order; the first failure stops the rest.
pub fn run_all(kind: &'static str, hooks: &[Hook], state: &HookState<'_>) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state).expect("state serializes");
    for h in hooks {
        run_one(kind, h, &json)?;
    }
    Ok(())
}

fn run_one(kind: &'static str, hook: &Hook, state: &[u8]) -> Result<()> {
    let fail = |reason: String| Error::Hook {
        kind,
        path: hook.path().clone(),
        reason,
    };
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        // args[0] is argv[0] of the hook, as in execve.
        if let Some((first, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, first);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(state_file(state).map_err(|e| fail(format!("state for stdin: {e}")))?)
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    // Its own process group, so a timeout kills whatever the hook started too.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
    let timeout = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t.unsigned_abs()));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(fail(format!("wait: {e}"))),
        }
        if let Some(t) = timeout
            && started.elapsed() >= t
        {
            if let Ok(pid) = i32::try_from(child.id()) {
                let pgrp = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::killpg(pgrp, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.wait();
            return Err(fail(format!("timed out after {}s", t.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let err = err.trim();
        return Err(fail(format!(
            "{status}{}{err}",
            if err.is_empty() { "" } else { ": " }
        )));
    }
    Ok(())
}

/// An anonymous file holding `state`, read from the start.
fn state_file(state: &[u8]) -> std::io::Result<std::fs::File> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use std::io::Seek;
    let mut f = std::fs::File::from(memfd_create(c"hook-state", MFdFlags::MFD_CLOEXEC)?);
    f.write_all(state)?;
    f.rewind()?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    fn state() -> HookState<'static> {
        HookState {
            oci_version: "1.2.0",
            id: "h",
            status: "creating",
            pid: Some(1),
            bundle: std::path::Path::new("/b"),
            annotations: None,
        }
    }

    #[test]
    fn hook_reads_state_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {}"]}}"#,
            out.display()
        ));
        run_all("prestart", &[h], &state()).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
        assert_eq!(got["id"], "h");
        assert_eq!(got["status"], "creating");
        assert_eq!(got["ociVersion"], "1.2.0");
    }

    #[test]
    fn failing_and_slow_hooks_are_errors() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo boom >&2; exit 3"]}"#);
        let err = run_all("poststart", &[h], &state())
            .unwrap_err()
            .to_string();
        assert!(err.contains("boom") && err.contains("poststart"), "{err}");
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 5"],"timeout":1}"#);
        let t = Instant::now();
        let err = run_all("createRuntime", &[h], &state())
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(4));
    }
}
