//! `exec`: a process in a running container.

use std::process::Stdio;

use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::spec::{self};
use crate::state::Action;
use crate::user;

use super::Engine;
use super::runtime::{exit_code, last_error, runtime_error};

/// `exec` options.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command.
    pub cmd: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// `-d`.
    pub detach: bool,
    /// `-e`.
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `--privileged`.
    pub privileged: bool,
}

impl Engine {
    /// Runs a process in a running container with the caller's stdio; returns its exit
    /// code (or 126/127 when it cannot be run, as Docker).
    pub fn exec(&self, what: &str, o: &ExecOptions) -> Result<i32> {
        let rec = self.get(what)?;
        self.check(&rec, Action::Exec)?;
        if o.cmd.is_empty() {
            return Err(Error::InvalidArgument("exec needs a command".into()));
        }
        let bundle = self.container_dir(&rec.id);
        let spec: Value = serde_json::from_slice(
            &std::fs::read(bundle.join("config.json")).ctx(|| "read config.json".into())?,
        )
        .map_err(|e| Error::InvalidArgument(format!("config.json: {e}")))?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(o.cmd);
        process["terminal"] = Value::Bool(o.tty);
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for e in &o.env {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        process["env"] = serde_json::json!(env);
        if let Some(w) = &o.workdir {
            process["cwd"] = Value::String(w.clone());
        }
        if let Some(u) = &o.user {
            let u = user::resolve(&rec.rootfs, u)?;
            process["user"] = serde_json::json!({"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids});
        }
        if o.privileged {
            let all = spec::privileged_capabilities();
            process["capabilities"] =
                serde_json::json!({"bounding": all, "effective": all, "permitted": all});
        }
        let dir = self.state_dir(&rec.id);
        let tag = &crate::random_id()[..12];
        let pfile = dir.join(format!("exec-{tag}.json"));
        let lfile = dir.join(format!("exec-{tag}.log"));
        std::fs::write(&pfile, serde_json::to_vec(&process).unwrap_or_default())
            .ctx(|| format!("write {}", pfile.display()))?;
        let mut cmd = self.runtime(&rec)?;
        cmd.arg("--log").arg(&lfile).arg("--log-format").arg("json");
        cmd.arg("exec").arg("--process").arg(&pfile);
        if o.detach {
            cmd.arg("--detach");
        }
        cmd.arg(&rec.id);
        if !o.interactive {
            cmd.stdin(Stdio::null());
        }
        if o.detach {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
        let status = cmd
            .status()
            .ctx(|| format!("run the OCI runtime {}", rec.runtime));
        let _ = std::fs::remove_file(&pfile);
        let log = std::fs::read_to_string(&lfile).unwrap_or_default();
        let _ = std::fs::remove_file(&lfile);
        let status = status?;
        if let Some(msg) = last_error(&log) {
            return Err(runtime_error("exec", msg));
        }
        Ok(exit_code(status))
    }
}
