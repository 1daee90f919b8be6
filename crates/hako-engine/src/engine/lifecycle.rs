//! Start (spawning the shim), wait, stop, kill, restart, pause, unpause, rename.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hako_shim::protocol::{self, Reply, Request};
use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::names;
use crate::records::{self, Record};
use crate::state::{Action, Status};

use super::Engine;
use super::health::{has_healthcheck, health_probe};
use super::network::{Mode, mode_of};
use super::runtime::runtime_error;
use super::status::request_timeout;
use super::validate::{log_opts, restart_arg, validate_signal};

const STOP_TIMEOUT_DEFAULT: i64 = 10;
/// How long a new run waits for the last run's shim to finish.
const SHIM_FINISH_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine {
    /// Starts a container and returns once its process runs (or failed to).
    pub fn start(&self, what: &str) -> Result<Record> {
        self.start_if_stopped(what).map(|(rec, _)| rec)
    }

    /// [`Engine::start`], and whether it started it (`false`: it was running already,
    /// the API's 304), from one look at its state.
    pub fn start_if_stopped(&self, what: &str) -> Result<(Record, bool)> {
        let (_lock, rec) = self.lock_container(what)?;
        self.claim_prepared(&rec.id);
        // Made ahead by this process and not started since (the mark is taken under this
        // lock): created with its shim up, so no look at its state (a round trip to the
        // shim, on the way to every `docker run`). A start that fails so (another process
        // started it meanwhile, say) goes the usual way.
        if !(self.take_fresh(&rec.id) && self.begin_with(&rec, true)?) {
            let live = self.check(&rec, Action::Start)?;
            if live.status.is_active() {
                return Ok((rec, false));
            }
            if !live.monitor {
                self.spawn_shim(&rec)?;
            }
            hako_sys::crash::point("start.shim");
            self.begin(&rec)?;
        }
        hako_sys::crash::point("start.started");
        self.net.replenish_spare_namespace();
        Ok((rec, true))
    }

    pub(super) fn spawn_shim(&self, rec: &Record) -> Result<()> {
        self.spawn_shim_with_events(rec, true)
    }

    /// [`Engine::spawn_shim`]; without `events` the network's `connect` events are left
    /// for the start (a start made ahead: prepare.rs).
    pub(super) fn spawn_shim_with_events(&self, rec: &Record, events: bool) -> Result<()> {
        // `--pid/--ipc container:NAME` first (nothing to undo), then the network: the
        // runtime joins its namespace by path, and a port that is taken refuses the
        // start before anything runs.
        self.join_namespaces(rec)?;
        // A container whose network hands no host port to its shim: the shim is spawned
        // first and starts up (~1.5 ms: exec, its socket, its log) while the network is
        // set up; it creates the container once told to (`--go-fd`), as only `RUNTIME
        // create` needs the namespace. Published ports are bound by the setup and given to
        // the shim at its spawn: those containers spawn it after.
        let (mut early, go) = if self.network_after_shim(rec) {
            let (go_r, go_w) = pipe_keeping(End::Read)?;
            let pending = self.spawn_shim_with(rec, &[], &[], true, Some(&go_r))?;
            (Some(pending), Some(go_w))
        } else {
            (None, None)
        };
        let setup = self
            .setup_network(rec)
            .and_then(|s| Ok((self.net.sandbox(&rec.id)?.is_some(), s)));
        let (
            networked,
            super::network::NetworkSetup {
                sockets,
                relays,
                wiring,
            },
        ) = match setup {
            Ok(s) => s,
            Err(e) => {
                if let Some(pending) = early {
                    // No go: the shim ends without creating anything.
                    drop(go);
                    let _ = pending.end("create");
                    self.unmount_failed_start(rec);
                }
                return Err(e);
            }
        };
        if let Some(go) = go {
            let _ = nix::unistd::write(&go, b"1");
        }
        // The interfaces, routes and rules are made while the shim and the runtime create
        // the container (~2 ms of netlink beside ~7 ms of process start-up): the runtime
        // joins the namespace by its path, which exists already, and nothing runs in it
        // before `start`.
        let (spawned, wired) = std::thread::scope(|s| {
            let wired = wiring.map(|w| {
                std::thread::Builder::new()
                    .name("hako-net-wire".into())
                    .spawn_scoped(s, move || w.finish())
            });
            let spawned = match early.take() {
                Some(pending) => pending.end("create"),
                None => self
                    .spawn_shim_with(rec, &sockets, &relays, networked, None)
                    .and_then(|pending| pending.end("create")),
            };
            let wired = match wired {
                None => Ok(()),
                Some(Ok(h)) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Some(Err(e)) => Err(hako_net::Error::Io {
                    context: "start the network setup thread".into(),
                    source: e,
                }),
            };
            (spawned, wired)
        });
        let failed = match (spawned, wired) {
            (Ok(()), Ok(())) => None,
            (Ok(()), Err(e)) => {
                // The runtime created the container in a namespace that is gone now: end it.
                self.end_created(rec);
                Some(Error::from(e))
            }
            (Err(e), _) => Some(e),
        };
        match failed {
            None => {
                tracing::debug!(container = %rec.id, "start: shim up, the runtime created the container");
                hako_sys::crash::point("start.shim-spawned");
                self.spawns.bump();
                if networked {
                    let pid =
                        protocol::read_shim_pid(&self.state_dir(&rec.id)).map_or(0, |(pid, _)| pid);
                    self.net.set_owner(&rec.id, pid)?;
                    match events {
                        true => self.network_connect_events(rec),
                        false => self.connect_events_later(&rec.id),
                    }
                }
                Ok(())
            }
            Some(e) => {
                if networked {
                    let _ = self.net.teardown(&rec.id);
                }
                self.unmount_failed_start(rec);
                Err(e)
            }
        }
    }

    /// Ends a container the runtime created (under its shim) but that must not start.
    pub(super) fn end_created(&self, rec: &Record) {
        let _ = request_timeout(
            &self.state_dir(&rec.id),
            &Request::Stop { no_restart: true },
            Duration::from_secs(5),
        );
        let _ = self.runtime_run(rec, "kill", &["kill", &rec.id, "SIGKILL"]);
        self.wait_shim_gone(&rec.id, Duration::from_secs(10));
    }

    /// Ends the shim made ahead for `rec` that no start came for, and what it made (the
    /// runtime's container, the network): the container is as its create left it. The
    /// shim runs no exit command (an `--rm` container stays), and its exit file goes.
    fn end_made_ahead(&self, rec: &Record) {
        self.take_fresh(&rec.id);
        let dir = self.state_dir(&rec.id);
        let _ = std::fs::write(dir.join(protocol::REMOVING_FILE), b"");
        self.end_created(rec);
        let _ = std::fs::remove_file(dir.join(protocol::EXIT_FILE));
        self.take_connect_events(&rec.id);
        if let Err(e) = self.release_network_unannounced(&rec.id) {
            tracing::warn!(container = %rec.id, error = %e, "give back the network of a container not started");
        }
        tracing::debug!(container = %rec.id, "the shim made ahead ended: no start came");
    }

    /// Spawns the shim (its answer is read by [`PendingMonitor::end`]); with `go`, it
    /// creates the container only once a byte is written to the other end.
    fn spawn_shim_with(
        &self,
        rec: &Record,
        sockets: &[std::os::fd::OwnedFd],
        proxies: &[(usize, std::net::SocketAddr)],
        networked: bool,
        go: Option<&std::os::fd::OwnedFd>,
    ) -> Result<PendingMonitor> {
        let dir = self.state_dir(&rec.id);
        // The last run's shim may still be finishing (`RUNTIME delete`, its files) after
        // it reported the exit: a new one must not share the directory or the runtime's id
        // with it.
        if !self.wait_shim_gone(&rec.id, SHIM_FINISH_TIMEOUT) {
            return Err(Error::Conflict(format!(
                "the last run of container {} has not finished cleaning up after {}s: try again",
                &rec.id[..12],
                SHIM_FINISH_TIMEOUT.as_secs()
            )));
        }
        let _ = std::fs::remove_dir_all(&dir);
        crate::files::dir(&dir, 0o700).ctx(|| format!("create {}", dir.display()))?;
        if rec.rootfs_managed && !hako_sys::mountinfo::is_mounted(&rec.rootfs) {
            self.images.mount_rootfs(&rec.id)?;
            tracing::debug!(container = %rec.id, "start: root filesystem mounted");
        }
        self.write_event_attributes(rec);
        self.drop_exec_sessions(&rec.id);
        let mut cmd = self.shim_command(rec, &dir)?;
        if !super::validate::logs_off(&rec.host_config) {
            cmd.arg("--log-path").arg(self.log_path(&rec.id));
        }
        if let Some(h) = rec
            .config
            .healthcheck
            .as_ref()
            .filter(|_| has_healthcheck(rec))
        {
            let probe = self.exec_process(rec, &health_probe(h))?;
            let pfile = dir.join("health-process.json");
            crate::files::write(
                &pfile,
                &serde_json::to_vec(&probe).unwrap_or_default(),
                crate::files::PRIVATE,
            )
            .ctx(|| format!("write {}", pfile.display()))?;
            let ns = |v: Option<i64>, default: u64| {
                v.and_then(|x| u64::try_from(x).ok())
                    .filter(|x| *x > 0)
                    .unwrap_or(default)
                    .to_string()
            };
            cmd.arg("--health-process")
                .arg(&pfile)
                .arg("--health-interval")
                .arg(ns(h.interval, 30_000_000_000))
                .arg("--health-timeout")
                .arg(ns(h.timeout, 30_000_000_000))
                .arg("--health-retries")
                .arg(ns(h.retries, 3))
                .arg("--health-start-period")
                .arg(ns(h.start_period, 0))
                .arg("--health-start-interval")
                .arg(ns(h.start_interval, 5_000_000_000));
        }
        let (max_size, max_file) = log_opts(
            &rec.host_config,
            self.opts.log_max_size,
            self.opts.log_max_file,
        )?;
        cmd.arg("--log-max-size").arg(max_size.to_string());
        cmd.arg("--log-max-file").arg(max_file.to_string());
        for (k, v) in super::validate::log_attrs(rec)? {
            cmd.arg(format!("--log-attr={k}={v}"));
        }
        if rec.config.tty.unwrap_or(false) {
            cmd.arg("--tty");
        }
        if rec.config.open_stdin.unwrap_or(false) {
            cmd.arg("--stdin");
            if rec.config.stdin_once.unwrap_or(false) {
                cmd.arg("--stdin-once");
            }
        }
        cmd.arg("--restart").arg(restart_arg(&rec.host_config));
        // What the shim does when a service manager stops it (SIGTERM at shutdown): stop the
        // container as `stop` would.
        if let Some(sig) = &rec.config.stop_signal {
            cmd.arg("--stop-signal").arg(sig);
        }
        let stop_timeout = rec.config.stop_timeout.unwrap_or(STOP_TIMEOUT_DEFAULT);
        cmd.arg(format!("--stop-timeout={stop_timeout}"));
        let held = super::network::inheritable(sockets)?;
        for fd in &held {
            cmd.arg("--hold-fd")
                .arg(std::os::fd::AsRawFd::as_raw_fd(fd).to_string());
        }
        for (i, target) in proxies {
            if let Some(fd) = held.get(*i) {
                cmd.arg("--proxy")
                    .arg(format!("{}={target}", std::os::fd::AsRawFd::as_raw_fd(fd)));
            }
        }
        // The exit command removes `--rm` containers and gives back the network of every
        // networked one, with no CLI alive.
        if (rec.host_config.auto_remove == Some(true) || networked)
            && let Some((prog, rest)) = self.opts.cleanup_command.split_first()
        {
            cmd.arg("--exit-command").arg(prog);
            for a in rest.iter().chain(std::iter::once(&rec.id)) {
                cmd.arg(format!("--exit-command-arg={a}"));
            }
            cmd.arg("--exit-command-lock")
                .arg(crate::locks::attached_path(&self.opts.exec_root, &rec.id));
        }
        // `--network none`: the runtime makes the namespace, with `lo` down; Docker's has
        // it up. The shim brings it up after each create (restarts too).
        if !self.opts.rootless && matches!(mode_of(&rec.host_config), Mode::None) {
            cmd.arg("--loopback-up");
        }
        if let Some(go) = go {
            cmd.arg("--go-fd")
                .arg(std::os::fd::AsRawFd::as_raw_fd(go).to_string());
        }
        let mut inherited: Vec<&std::os::fd::OwnedFd> = held.iter().collect();
        inherited.extend(go);
        let r = self.monitor_begin(cmd, &dir, &inherited);
        // The shim has its own copies of the port sockets now.
        drop(held);
        r
    }

    /// `hako-shim --id --bundle --runtime --runtime-root --state-dir --events-log`: what
    /// a container's shim and an exec's monitor share.
    pub(super) fn shim_command(&self, rec: &Record, state_dir: &Path) -> Result<Command> {
        let mut cmd = Command::new(&self.opts.shim);
        // A crash test kills the command it ran, not the shim or its exit command.
        hako_sys::crash::scrub(&mut cmd);
        cmd.arg("--id")
            .arg(&rec.id)
            .arg("--bundle")
            .arg(self.container_dir(&rec.id))
            .arg("--runtime")
            .arg(self.runtime_path(&rec.runtime)?)
            .arg("--runtime-root")
            .arg(self.runtime_root(&rec.runtime))
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--events-log")
            .arg(self.events_path());
        if self.runtime_is_builtin(&rec.runtime) {
            cmd.arg("--runtime-builtin");
        }
        Ok(cmd)
    }

    /// Spawns the shim `cmd` and waits for its answer on the ready pipe: `{"pid":N}` once
    /// the container (or exec monitor) is set up, else `{"error":...}` (then `state_dir`
    /// is removed and the error is the runtime's `op` failure).
    pub(super) fn run_monitor(
        &self,
        cmd: Command,
        state_dir: &Path,
        op: &'static str,
    ) -> Result<()> {
        self.monitor_begin(cmd, state_dir, &[])?.end(op)
    }

    /// [`Engine::run_monitor`]'s first half: the spawn, with the ready pipe; `inherited`
    /// are the other descriptors `cmd` names by number. A server's zygote shim takes the
    /// command line when it has one (`crate::zygote`).
    fn monitor_begin(
        &self,
        mut cmd: Command,
        state_dir: &Path,
        inherited: &[&std::os::fd::OwnedFd],
    ) -> Result<PendingMonitor> {
        let (ready_r, ready_w) = pipe_keeping(End::Write)?;
        let ready_fd = std::os::fd::AsRawFd::as_raw_fd(&ready_w);
        cmd.arg("--ready-fd").arg(ready_fd.to_string());
        // The shim's stderr goes to a file until it answers: a shim that dies first (bad
        // arguments, a panic) says why there; after a good answer the file is unlinked.
        let stderr_path = state_dir.join("shim.stderr");
        let stderr = std::fs::File::create(&stderr_path);
        if let Ok(file) = &stderr {
            let mut fds = inherited.to_vec();
            fds.push(&ready_w);
            if self
                .zygotes
                .hand(&cmd, &fds, std::os::fd::AsFd::as_fd(file))
            {
                drop(ready_w);
                return Ok(PendingMonitor {
                    child: None,
                    ready: ready_r,
                    stderr_path,
                    state_dir: state_dir.to_path_buf(),
                });
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr.map_or_else(|_| Stdio::null(), Stdio::from));
        let child = cmd
            .spawn()
            .ctx(|| format!("run {}", self.opts.shim.display()))?;
        drop(ready_w);
        Ok(PendingMonitor {
            child: Some(child),
            ready: ready_r,
            stderr_path,
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// Asks the shim to start the created container. The shim writes the `start` event
    /// (before it can see the exit, so `die` never comes first).
    pub(super) fn begin(&self, rec: &Record) -> Result<()> {
        self.begin_with(rec, false).map(|_| ())
    }

    /// [`Engine::begin`]; `fresh`: the container is believed created with its shim up,
    /// unlooked at: a start refused because it runs already, or a shim that does not
    /// answer, undoes nothing and answers `false` (the caller looks at the state and goes
    /// on from there); another failure is the start's.
    fn begin_with(&self, rec: &Record, fresh: bool) -> Result<bool> {
        let dir = self.state_dir(&rec.id);
        // Docker's order: the network's `connect` before the container's `start`.
        if self.take_connect_events(&rec.id) {
            self.network_connect_events(rec);
        }
        // Docker's HostConfig.ConsoleSize ([rows, cols], sent by the docker CLI at create):
        // the tty has that size before the process starts, not after the client's resize.
        if rec.config.tty == Some(true)
            && let Some([rows, cols]) = rec.host_config.console_size.as_deref()
            && let (Ok(rows), Ok(cols)) = (u16::try_from(*rows), u16::try_from(*cols))
            && rows > 0
            && cols > 0
        {
            let _ = request_timeout(
                &dir,
                &Request::Resize { rows, cols },
                Duration::from_secs(5),
            );
        }
        match request_timeout(&dir, &Request::Start, Duration::from_secs(60)) {
            Ok(Reply::Ok) => {
                tracing::debug!(container = %rec.id, "start: running");
                self.mark_stopped(rec, false);
                let _ = std::fs::write(dir.join("started_at"), crate::now_rfc3339());
                Ok(true)
            }
            // Started by another process since it was made ahead (running: the caller
            // answers so), or its shim gone (the caller spawns one).
            Ok(Reply::Error { .. }) if fresh && self.live(rec).status.is_active() => Ok(false),
            Err(_) if fresh => Ok(false),
            Ok(Reply::Error { message }) => {
                self.wait_shim_gone(&rec.id, Duration::from_secs(5));
                let _ = self.release_network(&rec.id, true);
                self.unmount_failed_start(rec);
                Err(runtime_error("start", message))
            }
            Ok(other) => Err(runtime_error(
                "start",
                format!("unexpected shim reply {other:?}"),
            )),
            Err(e) => Err(Error::Io {
                context: "talk to the shim".into(),
                source: e,
            }),
        }
    }

    pub(super) fn wait_exit(&self, rec: &Record, timeout: Duration) -> bool {
        let dir = self.state_dir(&rec.id);
        let deadline = Instant::now() + timeout;
        loop {
            if !self.live(rec).status.is_active() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if request_timeout(&dir, &Request::Wait, left).is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Waits (at most `timeout`) until the container's shim is done with its state
    /// directory: it removes `shim.pid` last, and a `shim.pid` of a dead process (a crashed
    /// shim) does not count. Whether it is done.
    pub(super) fn wait_shim_gone(&self, id: &str, timeout: Duration) -> bool {
        let dir = self.state_dir(id);
        let deadline = Instant::now() + timeout;
        // Removing `shim.pid` is the shim's last act there, most often ~2 ms after the
        // exit (its `RUNTIME delete`): looked for every 0.5 ms at first, then less often
        // (a flat 5 ms cost every `run --rm` 2.5 ms on average). (An inotify watch wakes
        // at once but its teardown waits for an SRCU grace period: 10-16 ms measured.)
        let mut looks = 0u32;
        while protocol::shim_alive(&dir) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            looks += 1;
            let step = match looks {
                0..=8 => Duration::from_micros(500),
                9..=20 => Duration::from_millis(1),
                _ => Duration::from_millis(5),
            };
            std::thread::sleep(left.min(step));
        }
        true
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout` seconds (default
    /// the container's `--stop-timeout`, else 10). The restart policy leaves it stopped.
    pub fn stop(&self, what: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<Record> {
        let rec = self.get(what)?;
        let live = self.check(&rec, Action::Stop)?;
        if !live.status.is_active() {
            return Ok(rec);
        }
        let dir = self.state_dir(&rec.id);
        let _ = request_timeout(
            &dir,
            &Request::Stop { no_restart: true },
            Duration::from_secs(5),
        );
        if live.status == Status::Paused {
            self.runtime_run(&rec, "resume", &["resume", &rec.id])?;
            records::set_paused(&self.conn(), &rec.id, false)?;
        }
        let sig = signal
            .map(str::to_string)
            .or_else(|| rec.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into());
        let timeout = timeout
            .or(rec.config.stop_timeout)
            .unwrap_or(STOP_TIMEOUT_DEFAULT);
        if live.status != Status::Restarting {
            let _ = self.runtime_run(&rec, "kill", &["kill", &rec.id, &sig]);
            self.container_event(&rec, "kill", &[("signal", signal_number(&sig))]);
            tracing::debug!(container = %rec.id, signal = %sig, timeout, "stop: signalled, waiting");
            hako_sys::crash::point("stop.signalled");
        }
        self.mark_stopped(&rec, true);
        let graceful = u64::try_from(timeout.max(0)).unwrap_or(0);
        if timeout < 0 || !self.wait_exit(&rec, Duration::from_secs(graceful)) {
            if timeout >= 0 {
                let _ = self.runtime_run(&rec, "kill", &["kill", &rec.id, "SIGKILL"]);
            }
            self.wait_exit(&rec, Duration::from_secs(30));
        }
        self.wait_shim_gone(&rec.id, Duration::from_secs(5));
        self.container_event(&rec, "stop", &[]);
        // The shim's exit command releases the network; wait for it, so that a stopped
        // container holds no address, port or interface when `stop` returns.
        self.release_network(&rec.id, true)?;
        // Waiting for the lock: the exit command holds it while it unmounts the same
        // rootfs, and `stop` returns only once the rootfs is unmounted, as Docker's.
        self.unmount_stopped_with(&rec, true);
        Ok(rec)
    }

    /// A stopped container's root filesystem (and shareable /dev/shm) is not left
    /// mounted (Docker unmounts on stop; `cp` and `export` mount it for the operation,
    /// `start` again). Only when nobody holds the container's lock: a `start` in progress
    /// wants it mounted, an `rm` unmounts it itself.
    pub(super) fn unmount_stopped(&self, rec: &Record) {
        self.unmount_stopped_with(rec, false);
    }

    /// [`Engine::unmount_stopped`]; with `wait`, after whoever holds the container's lock
    /// is done (then a start that took it finds the container running, and it is left
    /// mounted).
    fn unmount_stopped_with(&self, rec: &Record, wait: bool) {
        let lock = if wait {
            crate::locks::lock(&self.opts.exec_root, &rec.id).ok()
        } else {
            crate::locks::try_lock(&self.opts.exec_root, &rec.id)
                .ok()
                .flatten()
        };
        let Some(_lock) = lock else {
            return;
        };
        match self.get(&rec.id) {
            Ok(rec) if !self.live(&rec).status.is_active() => {
                self.unmount_shm(&rec.id);
                if !rec.rootfs_managed {
                    return;
                }
                if let Err(e) = self.images.unmount_rootfs(&rec.id) {
                    tracing::warn!(container = %rec.id, error = %e, "unmount the stopped container's rootfs");
                }
            }
            Ok(_) => {}
            // Removed meanwhile: the lock file this made goes too.
            Err(_) => crate::locks::remove(&self.opts.exec_root, &rec.id),
        }
    }

    /// Unmounts the root filesystem [`Engine::create_to_start`] left mounted when the start
    /// it was left for has not come: the container is still created, and no shim holds it
    /// (an API attach before the start makes one), or only the one a server made ahead
    /// (prepare.rs), which ends first. Busy (another process holds the container's lock):
    /// left to that process.
    pub fn unmount_unstarted(&self, id: &str) {
        let Ok(Some(_lock)) = crate::locks::try_lock(&self.opts.exec_root, id) else {
            return;
        };
        let made_ahead = self.take_unclaimed(id);
        let Ok(rec) = self.get(id) else {
            crate::locks::remove(&self.opts.exec_root, id);
            return;
        };
        let live = self.live(&rec);
        if live.status != Status::Created {
            return;
        }
        if live.monitor {
            if !made_ahead {
                return;
            }
            self.end_made_ahead(&rec);
        }
        self.unmount_shm(&rec.id);
        if rec.rootfs_managed
            && let Err(e) = self.images.unmount_rootfs(&rec.id)
        {
            tracing::warn!(container = %rec.id, error = %e, "unmount the unstarted container's rootfs");
        }
    }

    /// A start that failed leaves the container created, not mounted (Docker's cleanup
    /// after a failed start). The caller holds the container's lock.
    fn unmount_failed_start(&self, rec: &Record) {
        if self.live(rec).status.is_active() {
            return;
        }
        self.unmount_shm(&rec.id);
        if rec.rootfs_managed
            && let Err(e) = self.images.unmount_rootfs(&rec.id)
        {
            tracing::warn!(container = %rec.id, error = %e, "unmount after a failed start");
        }
    }

    /// Sends a signal to the container's init (Docker's `kill`; default SIGKILL). The
    /// restart policy leaves a killed container stopped, as Docker does.
    pub fn kill(&self, what: &str, signal: &str) -> Result<Record> {
        let rec = self.get(what)?;
        self.check(&rec, Action::Kill)?;
        validate_signal(signal)?;
        let dir = self.state_dir(&rec.id);
        let _ = request_timeout(
            &dir,
            &Request::Stop { no_restart: true },
            Duration::from_secs(5),
        );
        self.runtime_run(&rec, "kill", &["kill", &rec.id, signal])?;
        self.mark_stopped(&rec, true);
        self.container_event(&rec, "kill", &[("signal", signal_number(signal))]);
        Ok(rec)
    }

    /// Stops (if running) and starts again.
    pub fn restart(&self, what: &str, timeout: Option<i64>) -> Result<Record> {
        let rec = self.stop(what, timeout, None)?;
        let rec = self.start(&rec.id)?;
        self.container_event(&rec, "restart", &[]);
        Ok(rec)
    }

    /// Freezes every process of the container.
    pub fn pause(&self, what: &str) -> Result<Record> {
        let rec = self.get(what)?;
        self.check(&rec, Action::Pause)?;
        self.runtime_run(&rec, "pause", &["pause", &rec.id])?;
        records::set_paused(&self.conn(), &rec.id, true)?;
        self.container_event(&rec, "pause", &[]);
        Ok(rec)
    }

    /// Thaws a paused container.
    pub fn unpause(&self, what: &str) -> Result<Record> {
        let rec = self.get(what)?;
        self.check(&rec, Action::Unpause)?;
        self.runtime_run(&rec, "resume", &["resume", &rec.id])?;
        records::set_paused(&self.conn(), &rec.id, false)?;
        self.container_event(&rec, "unpause", &[]);
        Ok(rec)
    }

    /// Renames a container.
    pub fn rename(&self, what: &str, new_name: &str) -> Result<()> {
        let rec = self.get(what)?;
        if !names::valid(new_name) {
            return Err(Error::InvalidArgument(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let new_name = new_name.trim_start_matches('/');
        if new_name == rec.name {
            return Err(Error::InvalidArgument(
                "Renaming a container with the same name as its current name".to_string(),
            ));
        }
        records::rename(&self.conn(), &rec.id, new_name)?;
        let renamed = Record {
            name: new_name.to_string(),
            ..rec.clone()
        };
        self.write_event_attributes(&renamed);
        self.container_event(&renamed, "rename", &[("oldName", format!("/{}", rec.name))]);
        self.net.rename(&rec.id, new_name)?;
        Ok(())
    }
}

/// A signal's number as Docker's `kill` event shows it (`SIGTERM` → `15`); what cannot be
/// parsed stays as given.
fn signal_number(sig: &str) -> String {
    let s = sig.trim_start_matches("SIG").trim_start_matches("sig");
    if s.parse::<i32>().is_ok() {
        return s.to_string();
    }
    format!("SIG{}", s.to_ascii_uppercase())
        .parse::<nix::sys::signal::Signal>()
        .map_or_else(|_| sig.to_string(), |n| (n as i32).to_string())
}

/// What a shim that exited before answering leaves the user: how it ended and the last
/// thing it wrote to stderr.
/// Which end of a pipe a spawned shim inherits.
enum End {
    Read,
    Write,
}

/// A pipe (read, write) whose `inherited` end a child spawned next inherits; the other end
/// is close-on-exec, so the child never holds it.
fn pipe_keeping(inherited: End) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let (r, w) = nix::unistd::pipe()
        .map_err(std::io::Error::from)
        .ctx(|| "create a pipe".into())?;
    let ours = match inherited {
        End::Read => &w,
        End::Write => &r,
    };
    nix::fcntl::fcntl(
        ours,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(std::io::Error::from)
    .ctx(|| "set close-on-exec".into())?;
    Ok((r, w))
}

/// A shim spawned by [`Engine::monitor_begin`] whose answer is still to be read.
struct PendingMonitor {
    /// The spawned process (`None`: a zygote took the command line; it detached long ago).
    child: Option<std::process::Child>,
    ready: std::os::fd::OwnedFd,
    stderr_path: std::path::PathBuf,
    state_dir: std::path::PathBuf,
}

impl PendingMonitor {
    /// Reads the shim's answer (see [`Engine::run_monitor`]).
    fn end(mut self, op: &'static str) -> Result<()> {
        let mut reply = String::new();
        let read = std::fs::File::from(self.ready).read_to_string(&mut reply);
        let status = self.child.as_mut().and_then(|c| c.wait().ok());
        let said = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let _ = std::fs::remove_file(&self.stderr_path);
        read.ctx(|| "read the shim's answer".into())?;
        let v: Value = serde_json::from_str(reply.trim()).unwrap_or(Value::Null);
        if v.get("pid").and_then(Value::as_i64).is_some() {
            return Ok(());
        }
        let message = v
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| died_without_answer(status, &said));
        let _ = std::fs::remove_dir_all(&self.state_dir);
        Err(runtime_error(op, message))
    }
}

fn died_without_answer(status: Option<std::process::ExitStatus>, said: &str) -> String {
    let how = status.map_or_else(|| "exited".to_string(), |s| format!("ended ({s})"));
    match said.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(last) => format!("the shim {how} without an answer: {}", last.trim()),
        None => format!("the shim {how} without an answer"),
    }
}
