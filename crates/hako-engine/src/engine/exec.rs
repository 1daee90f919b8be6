//! Exec sessions: a process in a running container, with an id, as Docker's API has them.
//!
//! ```text
//!   exec_create ── <exec-root>/exec/<id>/exec.json (the session: container, options)
//!   exec_start  ── process.json (the container's process, args/env/user/cwd/tty replaced)
//!               ── hako-shim --exec-process process.json (the exec's own monitor, as
//!                  conmon runs one per exec): listens on attach.sock, nothing runs yet
//!               ── [attach] ── "start": RUNTIME exec --detach ── the monitor is the
//!                  process's subreaper: stdio, resize, exit.json, `exec_die` event
//!   exec_inspect ── exec.json + the monitor's state or exit.json (kept after it is gone)
//! ```
//!
//! Nothing depends on the caller staying alive: a detached exec, or one whose client went
//! away, runs to its end under its monitor, and its exit code stays readable for
//! [`EXEC_KEEP`] after the process ended (as dockerd's exec GC), or until the container is
//! removed or started again (which drops its sessions). The sweep runs at every
//! `exec_create` (sessions only accumulate there) and from `hako serve` every minute.

use std::path::PathBuf;
use std::time::Duration;

use bollard_stubs::models::{ExecInspectResponse, ProcessConfig};
use hako_shim::protocol::{self, Reply, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::records::Record;
use crate::state::Action;
use crate::{spec, user};

use super::Engine;
use super::attach::{Attached, Resizer};
use super::runtime::runtime_error;
use super::status::request_timeout;

/// What an exec runs and how (Docker's `ExecConfig`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecOptions {
    /// The command.
    pub cmd: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`: the caller's input goes to the process (`AttachStdin`).
    pub interactive: bool,
    /// `-d` (the CLI's choice; the API says it at start).
    pub detach: bool,
    /// `-e`.
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `AttachStdout` (the CLI always wants it unless detached).
    #[serde(default)]
    pub attach_stdout: bool,
    /// `AttachStderr`.
    #[serde(default)]
    pub attach_stderr: bool,
    /// `DetachKeys` as given (Docker's `ctrl-p,ctrl-q` syntax).
    #[serde(default)]
    pub detach_keys: Option<String>,
    /// The initial terminal size (rows, cols).
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
}

/// One session on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    id: String,
    container_id: String,
    created: String,
    options: ExecOptions,
}

const SESSION_FILE: &str = "exec.json";
/// How long a finished exec's session (its exit code) is kept: dockerd's exec GC removes
/// a finished exec at its next 5-minute tick.
pub const EXEC_KEEP: Duration = Duration::from_secs(5 * 60);
const PROCESS_FILE: &str = "process.json";

impl Engine {
    /// The state directory of an exec's monitor (its `attach.sock`, for resizes).
    pub fn exec_dir(&self, id: &str) -> PathBuf {
        self.opts.exec_root.join("exec").join(id)
    }

    fn session(&self, id: &str) -> Result<Session> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::NoSuchExec(id.to_string()));
        }
        let bytes = std::fs::read(self.exec_dir(id).join(SESSION_FILE))
            .map_err(|_| Error::NoSuchExec(id.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|_| Error::NoSuchExec(id.to_string()))
    }

    /// `docker exec` step one: records a session for `o` in the running container `what`;
    /// returns its id. Nothing runs yet.
    pub fn exec_create(&self, what: &str, o: &ExecOptions) -> Result<String> {
        let rec = self.get(what)?;
        self.check(&rec, Action::Exec)?;
        if o.cmd.is_empty() {
            return Err(Error::InvalidArgument("No exec command specified".into()));
        }
        if let Some(keys) = &o.detach_keys {
            crate::stream::parse_detach_keys(keys)?;
        }
        self.exec_gc(EXEC_KEEP);
        let id = crate::random_id();
        let dir = self.exec_dir(&id);
        crate::files::dir(&dir, 0o700).ctx(|| format!("create {}", dir.display()))?;
        let s = Session {
            id: id.clone(),
            container_id: rec.id.clone(),
            created: crate::now_rfc3339(),
            options: o.clone(),
        };
        // 0600, as the process file: both hold the exec's Env.
        crate::files::write(
            &dir.join(SESSION_FILE),
            &serde_json::to_vec(&s).unwrap_or_default(),
            crate::files::PRIVATE,
        )
        .ctx(|| format!("write {}", dir.display()))?;
        self.container_event(
            &rec,
            &format!("exec_create: {}", o.cmd.join(" ")),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    /// `docker exec` step two: starts the session's process under its own monitor. With
    /// `detach` it returns once the process runs; otherwise the returned stream was
    /// attached before the process started (no output is lost).
    pub fn exec_start(&self, id: &str, detach: bool) -> Result<Option<Attached>> {
        let s = self.session(id)?;
        let rec = self.get(&s.container_id)?;
        let dir = self.exec_dir(id);
        if dir.join(PROCESS_FILE).exists() {
            let running = protocol::read_exit(&dir).ok().flatten().is_none();
            return Err(Error::Conflict(if running {
                format!("Error: Exec command {id} is already running")
            } else {
                format!("Error: Exec command {id} has already run")
            }));
        }
        self.check(&rec, Action::Exec)?;
        let o = &s.options;
        let process = self.exec_process(&rec, o)?;
        let pfile = dir.join(PROCESS_FILE);
        crate::files::write(
            &pfile,
            &serde_json::to_vec(&process).unwrap_or_default(),
            crate::files::PRIVATE,
        )
        .ctx(|| format!("write {}", pfile.display()))?;
        let mut cmd = self.shim_command(&rec, &dir)?;
        cmd.arg("--exec-process")
            .arg(&pfile)
            .arg("--exec-id")
            .arg(id);
        if o.tty {
            cmd.arg("--tty");
        }
        if o.interactive && !detach {
            cmd.arg("--stdin").arg("--stdin-once");
        }
        self.run_monitor(cmd, &dir, "exec")?;
        let attached = if detach {
            None
        } else {
            let (stream, tty) = protocol::attach(
                &dir,
                o.interactive,
                o.attach_stdout || !o.attach_stderr,
                o.attach_stderr || !o.attach_stdout,
            )
            .ctx(|| format!("attach to exec {}", &id[..12]))?;
            Some(Attached {
                stream,
                tty,
                resizer: Resizer { dir: dir.clone() },
                _attached: None,
            })
        };
        self.container_event(
            &rec,
            &format!("exec_start: {}", o.cmd.join(" ")),
            &[("execID", id.to_string())],
        );
        match request_timeout(&dir, &Request::Start, Duration::from_secs(60)) {
            Ok(Reply::Ok) => {}
            Ok(Reply::Error { message }) => return Err(runtime_error("exec", message)),
            Ok(other) => {
                return Err(runtime_error(
                    "exec",
                    format!("unexpected monitor reply {other:?}"),
                ));
            }
            Err(e) => {
                return Err(Error::Io {
                    context: "talk to the exec monitor".into(),
                    source: e,
                });
            }
        }
        Ok(attached)
    }

    /// Sets the terminal size of an exec with a tty (also before it starts). A resize that
    /// comes just before the start made the exec's monitor (the docker CLI sends it right
    /// after its start request) waits for it, up to 10 s, as dockerd waits for the exec.
    pub fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        self.session(id)?;
        let dir = self.exec_dir(id);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !protocol::socket_path(&dir).exists()
            && protocol::read_exit(&dir).ok().flatten().is_none()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !protocol::socket_path(&dir).exists() {
            return Err(Error::Conflict(format!(
                "exec {} is not running",
                &id[..id.len().min(12)]
            )));
        }
        request_timeout(
            &dir,
            &Request::Resize { rows, cols },
            Duration::from_secs(5),
        )
        .ctx(|| "resize the exec's tty".into())?;
        Ok(())
    }

    /// Waits for the exec's process to end; its exit code.
    pub fn exec_wait(&self, id: &str) -> Result<i32> {
        self.session(id)?;
        let dir = self.exec_dir(id);
        if let Some(e) = protocol::read_exit(&dir).ok().flatten() {
            return Ok(e.exit_code);
        }
        protocol::wait(&dir)
            .map(|e| e.exit_code)
            .ctx(|| format!("wait for exec {}", &id[..12]))
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<ExecInspectResponse> {
        let s = self.session(id)?;
        let dir = self.exec_dir(id);
        let mut exit = protocol::read_exit(&dir).ok().flatten();
        let mut running = false;
        let mut pid = 0;
        if exit.is_none()
            && protocol::socket_path(&dir).exists()
            && let Ok(Reply::State(st)) =
                request_timeout(&dir, &Request::State, Duration::from_secs(5))
        {
            running = st.status == "running";
            pid = st.pid.unwrap_or(0);
            // Ended, its exit record not written yet: the monitor has the code.
            exit = st.exit;
        }
        if exit.is_none() && !running && dir.join(PROCESS_FILE).exists() {
            // Between the monitor's exit record and its socket going away (or the other
            // way round): read the record again rather than answer "never ran".
            exit = protocol::read_exit(&dir).ok().flatten();
        }
        let o = &s.options;
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            detach_keys: Some(o.detach_keys.clone().unwrap_or_default()),
            id: Some(s.id.clone()),
            running: Some(running),
            exit_code: exit.map(|e| i64::from(e.exit_code)),
            process_config: Some(ProcessConfig {
                privileged: Some(o.privileged),
                user: Some(o.user.clone().unwrap_or_default()),
                tty: Some(o.tty),
                entrypoint: o.cmd.first().cloned(),
                arguments: Some(o.cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: Some(o.interactive),
            open_stderr: Some(o.attach_stderr),
            open_stdout: Some(o.attach_stdout),
            container_id: Some(s.container_id),
            pid: Some(i64::from(pid)),
        })
    }

    /// The ids of the container's exec sessions.
    pub fn exec_ids(&self, container_id: &str) -> Vec<String> {
        self.sessions_of(container_id)
            .into_iter()
            .map(|s| s.id)
            .collect()
    }

    fn sessions_of(&self, container_id: &str) -> Vec<Session> {
        let Ok(rd) = std::fs::read_dir(self.opts.exec_root.join("exec")) else {
            return Vec::new();
        };
        let mut out: Vec<Session> = rd
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join(SESSION_FILE)).ok())
            .filter_map(|b| serde_json::from_slice::<Session>(&b).ok())
            .filter(|s| s.container_id == container_id)
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created));
        out
    }

    /// Removes the sessions whose process ended more than `keep` ago (by the time of its
    /// exit record), and those of containers that no longer exist; returns how many. A
    /// session never started stays while its container does, as in Docker.
    pub fn exec_gc(&self, keep: Duration) -> usize {
        let Ok(rd) = std::fs::read_dir(self.opts.exec_root.join("exec")) else {
            return 0;
        };
        let mut removed = 0;
        for e in rd.flatten() {
            let dir = e.path();
            let ended = std::fs::metadata(dir.join(protocol::EXIT_FILE))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            let finished =
                ended.is_some_and(|age| age >= keep) && !protocol::socket_path(&dir).exists();
            let orphan = || {
                std::fs::read(dir.join(SESSION_FILE))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Session>(&b).ok())
                    .is_some_and(|s| {
                        !self.container_dir(&s.container_id).exists()
                            && !protocol::socket_path(&dir).exists()
                    })
            };
            if (finished || orphan()) && std::fs::remove_dir_all(&dir).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Drops the container's exec sessions (at its removal, and before it runs again:
    /// their processes died with the last run). A session whose monitor still runs is
    /// left alone.
    pub(super) fn drop_exec_sessions(&self, container_id: &str) {
        for s in self.sessions_of(container_id) {
            let dir = self.exec_dir(&s.id);
            if !protocol::socket_path(&dir).exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    /// The OCI process of an exec: the container's, with the exec's command, tty, env,
    /// cwd, user and capabilities.
    pub(super) fn exec_process(&self, rec: &Record, o: &ExecOptions) -> Result<Value> {
        let bundle = self.container_dir(&rec.id);
        let spec: Value = serde_json::from_slice(
            &std::fs::read(bundle.join("config.json")).ctx(|| "read config.json".into())?,
        )
        .map_err(|e| Error::InvalidArgument(format!("config.json: {e}")))?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(o.cmd);
        process["terminal"] = Value::Bool(o.tty);
        if let (true, Some((rows, cols))) = (o.tty, o.console_size) {
            process["consoleSize"] = serde_json::json!({"height": rows, "width": cols});
        } else if let Some(p) = process.as_object_mut() {
            p.remove("consoleSize");
        }
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
        if let Some(w) = o.workdir.as_deref().filter(|w| !w.is_empty()) {
            process["cwd"] = Value::String(w.to_string());
        }
        if let Some(u) = o.user.as_deref().filter(|u| !u.is_empty()) {
            let u = user::resolve(&rec.rootfs, u)?;
            process["user"] = serde_json::json!({"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids});
        }
        if o.privileged {
            let all = spec::privileged_capabilities();
            process["capabilities"] =
                serde_json::json!({"bounding": all, "effective": all, "permitted": all});
        }
        Ok(process)
    }
}
