//! `inspect`, `top`, `stats`, `logs` and the mounted root filesystem.

use std::io::Write;
use std::process::Command;

use bollard_stubs::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, DriverData,
};
use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::logs;
use crate::records::Record;
use crate::state::Status;
use hako_cgroups::CgroupManager as _;

use super::Engine;
use super::status::LiveState;

impl Engine {
    /// `docker inspect` of a container as Docker prints it: every field with its zero
    /// value ([`crate::shape`]) and the top-level network fields of the bridge endpoint.
    /// The CLI and `GET /containers/{id}/json` both answer this (docker-py reads
    /// `HostConfig.LogConfig.Type` of every container it runs).
    pub fn inspect_json(&self, what: &str) -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(self.inspect(what)?).map_err(|e| crate::Error::Io {
            context: "encode the inspect answer".into(),
            source: e.into(),
        })?;
        crate::shape::container_inspect(&mut v);
        super::add_legacy_network_fields(&mut v);
        Ok(v)
    }

    /// `docker inspect` of a container.
    pub fn inspect(&self, what: &str) -> Result<ContainerInspectResponse> {
        let rec = self.get(what)?;
        let live = self.live(&rec);
        self.debug_shim_log(&rec.id);
        let dir = self.container_dir(&rec.id);
        let graph = if rec.rootfs_managed {
            self.images
                .container_paths(&rec.id)
                .ok()
                .map(|p| DriverData {
                    name: self.images.driver_name().to_string(),
                    data: p,
                })
        } else {
            None
        };
        let mounts = self.mount_points(&rec.id);
        let mut state = container_state(&live);
        if super::list::in_removal(&rec, &live) {
            state.status = Some(ContainerStateStatusEnum::REMOVING);
        }
        state.health = self.health(&rec, &live);
        let exec_ids = self.exec_ids(&rec.id);
        Ok(ContainerInspectResponse {
            id: Some(rec.id.clone()),
            created: Some(rec.created.clone()),
            path: Some(rec.path.clone()),
            args: Some(rec.args.clone()),
            state: Some(state),
            exec_ids: (!exec_ids.is_empty()).then_some(exec_ids),
            image: Some(if rec.image_id.is_empty() {
                rec.image.clone()
            } else {
                rec.image_id.clone()
            }),
            resolv_conf_path: Some(dir.join("resolv.conf").display().to_string()),
            hostname_path: Some(dir.join("hostname").display().to_string()),
            hosts_path: Some(dir.join("hosts").display().to_string()),
            log_path: Some(if super::validate::logs_off(&rec.host_config) {
                String::new()
            } else {
                self.log_path(&rec.id).display().to_string()
            }),
            name: Some(format!("/{}", rec.name)),
            restart_count: Some(i64::from(live.restart_count)),
            driver: Some(self.images.driver_name().to_string()),
            platform: Some("linux".into()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            host_config: Some(rec.host_config.clone()),
            graph_driver: graph,
            mounts: Some(mounts),
            config: Some(rec.config.clone()),
            network_settings: Some(self.network_settings(&rec)),
            ..Default::default()
        })
    }

    /// The container's processes: `ps` output limited to the container's pids.
    pub fn top(&self, what: &str, ps_args: &[String]) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        let rec = self.get(what)?;
        let live = self.live(&rec);
        if !live.status.is_active() {
            return Err(Error::InvalidArgument(format!(
                "container {} is not running",
                &rec.id[..12]
            )));
        }
        let pids = self.pids(&rec)?;
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let out = Command::new("ps")
            .args(&args)
            .output()
            .ctx(|| "run ps".into())?;
        if !out.status.success() {
            return Err(Error::InvalidArgument(format!(
                "ps {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let pid_col = header
            .iter()
            .position(|h| h == "PID")
            .ok_or_else(|| Error::InvalidArgument("couldn't find PID field in ps output".into()))?;
        let mut rows = Vec::new();
        for l in lines {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() < header.len() {
                continue;
            }
            let Ok(pid) = fields[pid_col].parse::<i32>() else {
                continue;
            };
            if pids.contains(&pid) {
                let mut row: Vec<String> = fields[..header.len() - 1]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                row.push(fields[header.len() - 1..].join(" "));
                rows.push(row);
            }
        }
        Ok((header, rows))
    }

    pub(super) fn cgroup_manager(&self, rec: &Record) -> Result<hako_cgroups::Manager> {
        let spec: Value = serde_json::from_slice(
            &std::fs::read(self.container_dir(&rec.id).join("config.json"))
                .ctx(|| "read config.json".into())?,
        )
        .unwrap_or(Value::Null);
        let path = spec["linux"]["cgroupsPath"].as_str().map(str::to_string);
        hako_cgroups::Manager::for_cgroups_path(path.as_deref(), &rec.id)
            .map_err(|e| Error::InvalidArgument(format!("cgroup of {}: {e}", &rec.id[..12])))
    }

    fn pids(&self, rec: &Record) -> Result<Vec<i32>> {
        let m = self.cgroup_manager(rec)?;
        m.pids().map_err(|e| {
            Error::InvalidArgument(format!("list processes of {}: {e}", &rec.id[..12]))
        })
    }

    /// Prints the container's logs.
    pub fn logs(
        &self,
        what: &str,
        o: &logs::LogOptions,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        self.logs_until(what, o, out, err, &|| false)
    }

    /// [`Engine::logs`] that also stops following once `cancelled` says so (a client
    /// that went away).
    pub fn logs_until(
        &self,
        what: &str,
        o: &logs::LogOptions,
        out: &mut dyn Write,
        err: &mut dyn Write,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let open = self.open_logs(what)?;
        self.print_logs(open, o, out, err, cancelled)
    }

    /// The container's log, open (the first half of [`Engine::logs_until`]): what was
    /// logged until now is read from it even if the container is removed before
    /// [`Engine::print_logs`] gets to it (the API answers a `logs` request in between).
    pub fn open_logs(&self, what: &str) -> Result<OpenLogs> {
        let rec = self.get(what)?;
        self.debug_shim_log(&rec.id);
        if super::validate::logs_off(&rec.host_config) {
            return Err(Error::InvalidArgument(
                "configured logging driver does not support reading (the container runs with --log-driver none)"
                    .into(),
            ));
        }
        let log = logs::open(&self.log_path(&rec.id));
        Ok(OpenLogs { rec, log })
    }

    /// Prints a log opened by [`Engine::open_logs`], following it while the container runs
    /// and `cancelled` says nothing.
    pub fn print_logs(
        &self,
        open: OpenLogs,
        o: &logs::LogOptions,
        out: &mut dyn Write,
        err: &mut dyn Write,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let OpenLogs { rec, log } = open;
        let mut running = || !cancelled() && self.live(&rec).status.is_active();
        logs::print_opened(log, o, out, err, &mut running)
    }

    /// The container's root filesystem, open (for `export` and `cp`). A running
    /// container's is mounted already. A stopped one's is mounted for the operation under
    /// the container's lock (no `start` meanwhile; the caller holds the returned lock
    /// until it is done), opened, and unmounted again at once (lazily: the descriptor
    /// keeps the detached mount until the operation drops it), so that a stopped
    /// container never stays mounted, as with Docker.
    pub(crate) fn rootfs(&self, what: &str) -> Result<ContainerRoot> {
        let rec = self.get(what)?;
        let open = |rec: &Record, p: &std::path::Path| {
            crate::archive::Root::open(p).ctx(|| format!("open the root of {}", &rec.id[..12]))
        };
        if !rec.rootfs_managed || self.live(&rec).status.is_active() {
            let root = open(&rec, &rec.rootfs)?;
            return Ok((rec, root, None));
        }
        let (lock, rec) = self.lock_container(&rec.id)?;
        if self.live(&rec).status.is_active() {
            let root = open(&rec, &rec.rootfs)?;
            return Ok((rec, root, Some(lock)));
        }
        let p = self.images.mount_rootfs(&rec.id)?;
        let root = open(&rec, &p);
        let unmounted = self.images.unmount_rootfs(&rec.id);
        let root = root?;
        unmounted?;
        Ok((rec, root, Some(lock)))
    }
}

/// A container's record, its root filesystem open, and (for a stopped container) its
/// lock, held until the operation is over (see [`Engine::rootfs`]).
pub(crate) type ContainerRoot = (
    Record,
    crate::archive::Root,
    Option<crate::locks::ContainerLock>,
);

fn container_state(l: &LiveState) -> ContainerState {
    let status = match l.status {
        Status::Created => ContainerStateStatusEnum::CREATED,
        Status::Running => ContainerStateStatusEnum::RUNNING,
        Status::Paused => ContainerStateStatusEnum::PAUSED,
        Status::Restarting => ContainerStateStatusEnum::RESTARTING,
        Status::Exited => ContainerStateStatusEnum::EXITED,
        Status::Dead => ContainerStateStatusEnum::DEAD,
    };
    ContainerState {
        status: Some(status),
        running: Some(matches!(l.status, Status::Running | Status::Paused)),
        paused: Some(l.status == Status::Paused),
        restarting: Some(l.status == Status::Restarting),
        oom_killed: Some(l.oom_killed),
        dead: Some(l.status == Status::Dead),
        pid: Some(i64::from(l.pid.unwrap_or(0))),
        exit_code: Some(i64::from(l.exit_code)),
        error: Some(String::new()),
        started_at: Some(
            l.started_at
                .clone()
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        ),
        finished_at: Some(
            l.finished_at
                .clone()
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        ),
        health: None,
    }
}

impl Engine {
    /// The last lines of the shim's own failure log (hako-shim shimlog.rs), at debug level:
    /// `hako --debug inspect` shows what the shim saw go wrong.
    pub(super) fn debug_shim_log(&self, id: &str) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let path = self.state_dir(id).join(hako_shim::shimlog::SHIM_LOG);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[lines.len().saturating_sub(20)..] {
            tracing::debug!(container = %&id[..12], "shim: {l}");
        }
    }
}

/// A container's log, open for [`Engine::print_logs`].
#[derive(Debug)]
pub struct OpenLogs {
    rec: Record,
    log: logs::Opened,
}

impl OpenLogs {
    /// The container has a terminal (its log is one stream).
    pub fn tty(&self) -> bool {
        self.rec.config.tty.unwrap_or(false)
    }
}
