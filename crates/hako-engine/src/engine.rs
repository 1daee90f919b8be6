//! The [`Engine`]: container lifecycle over the image store, the shim and the OCI runtime.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bollard_stubs::models::{
    ContainerConfig, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum,
    DriverData, HostConfig, MountPoint, RestartPolicyNameEnum,
};
use hako_image::ImageStore;
use hako_shim::protocol::{self, ExitInfo, Reply, Request, ShimState};
use rusqlite::Connection;
use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::mounts::{self, MountKind, ResolvedMount};
use crate::records::{self, Record};
use crate::spec::{self, INIT_PATH, SpecInput};
use crate::state::{self, Action, Status};
use crate::{logs, names, user, volumes};
use hako_cgroups::CgroupManager as _;

/// Where things are and which programs to use.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Data root (`/var/lib/hako`).
    pub root: PathBuf,
    /// Runtime state root (`/run/hako`).
    pub exec_root: PathBuf,
    /// Storage driver (`overlay2`, `vfs`), default: what the root has or the best that works.
    pub driver: Option<String>,
    /// The shim binary.
    pub shim: PathBuf,
    /// hako-init, for `--init`.
    pub init: PathBuf,
    /// The default OCI runtime (hako-runtime).
    pub runtime: PathBuf,
    /// Program and arguments that remove a container: the shim runs it with the id appended
    /// when an `--rm` container exits, so `--rm` works without any CLI alive.
    pub cleanup_command: Vec<String>,
    /// json-file log rotation: bytes per file (0 = unbounded).
    pub log_max_size: u64,
    /// json-file log rotation: files kept.
    pub log_max_file: u32,
}

impl EngineOptions {
    /// Defaults for `root`: binaries next to the running executable (else on `PATH`),
    /// exec root `/run/hako`, logs rotated at 10 MB × 5.
    pub fn new(root: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            root: root.into(),
            exec_root: PathBuf::from("/run/hako"),
            driver: None,
            shim: sibling_binary("hako-shim"),
            init: sibling_binary("hako-init"),
            runtime: sibling_binary("hako-runtime"),
            cleanup_command: Vec::new(),
            log_max_size: 10 << 20,
            log_max_file: 5,
        }
    }
}

/// `NAME` next to the current executable if it is there, else `NAME` (found on `PATH`).
pub fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// What `create` needs: Docker's two configs plus hako's extras.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `--name`.
    pub name: Option<String>,
    /// Docker's container config; `image` names the image.
    pub config: ContainerConfig,
    /// Docker's host config.
    pub host_config: HostConfig,
    /// `--rootfs DIR`: run this directory as `/` instead of an image (Gocker's `-rootfs`).
    pub rootfs: Option<PathBuf>,
}

/// A container's status and its details, derived from the shim and the exit record.
#[derive(Debug, Clone)]
pub struct LiveState {
    /// Docker's status.
    pub status: Status,
    /// The init's pid while running.
    pub pid: Option<i32>,
    /// When the last run started.
    pub started_at: Option<String>,
    /// When the last run ended.
    pub finished_at: Option<String>,
    /// The last exit code.
    pub exit_code: i32,
    /// Restarts by the restart policy.
    pub restart_count: u32,
    /// Whether the last run was OOM killed.
    pub oom_killed: bool,
    /// A shim answers for the container (also while it is created but not started, when
    /// a CLI died between the two).
    pub monitor: bool,
}

/// An attach connection to a container's stdio.
#[derive(Debug)]
pub struct Attached {
    /// The stream (stdcopy frames, or raw bytes with a tty).
    pub stream: UnixStream,
    /// The container has a tty.
    pub tty: bool,
}

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

/// One `stats` reading.
#[derive(Debug, Clone, Default)]
pub struct StatsSample {
    /// Total CPU time used, nanoseconds.
    pub cpu_total_ns: u64,
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// Memory limit, bytes (0: none).
    pub memory_limit: u64,
    /// Processes.
    pub pids: u64,
    /// Block I/O read and written, bytes.
    pub block_read: u64,
    /// Block I/O written, bytes.
    pub block_write: u64,
}

/// The engine. Cheap to open; several processes may use the same root at once.
#[derive(Debug)]
pub struct Engine {
    opts: EngineOptions,
    images: ImageStore,
    db: Mutex<Connection>,
}

const STOP_TIMEOUT_DEFAULT: i64 = 10;

impl Engine {
    /// Opens the engine (and its image store) at `opts.root`.
    pub fn open(opts: EngineOptions) -> Result<Engine> {
        let images = ImageStore::open_with(
            &opts.root,
            hako_image::Options {
                driver: opts.driver.clone(),
                ..Default::default()
            },
        )?;
        // Shim sockets live at <exec-root>/containers/<64 hex>/console.sock; a unix socket
        // path has room for 107 bytes.
        let longest = opts
            .exec_root
            .join("containers")
            .join("0".repeat(64))
            .join(protocol::CONSOLE_SOCKET);
        let room = 107usize;
        if longest.as_os_str().len() > room {
            let max = room - (longest.as_os_str().len() - opts.exec_root.as_os_str().len());
            return Err(Error::InvalidArgument(format!(
                "exec root {} is too long: container sockets under it would pass the {room}-byte limit of unix socket paths; use an --exec-root of at most {max} characters",
                opts.exec_root.display()
            )));
        }
        let db = records::open(&opts.root.join("hako-image.db"))?;
        for d in [
            opts.root.join("containers"),
            opts.exec_root.join("containers"),
        ] {
            std::fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
        }
        let engine = Engine {
            opts,
            images,
            db: Mutex::new(db),
        };
        engine.collect_orphans();
        Ok(engine)
    }

    /// Removes container directories that have no record: what a hako process killed
    /// between deleting a record and its directory leaves (create makes the record first).
    fn collect_orphans(&self) {
        let Ok(entries) = std::fs::read_dir(self.opts.root.join("containers")) else {
            return;
        };
        let known: std::collections::HashSet<String> = match records::all_ids(&self.conn()) {
            Ok(ids) => ids.into_iter().collect(),
            Err(_) => return,
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 64
                && name.bytes().all(|b| b.is_ascii_hexdigit())
                && !known.contains(&name)
            {
                tracing::info!(container = %name, "removing the directory of a container without a record");
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The options the engine runs with.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.opts.root.join("containers").join(id)
    }

    /// The shim's state directory of a container.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.opts.exec_root.join("containers").join(id)
    }

    /// The json-file log of a container.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    fn runtime_path(&self, name: &str) -> Result<PathBuf> {
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

    fn runtime_root(&self, name: &str) -> PathBuf {
        let base = Path::new(name)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "hako-runtime".into());
        self.opts.exec_root.join("runtime").join(base)
    }

    fn runtime(&self, rec: &Record) -> Result<Command> {
        let mut c = Command::new(self.runtime_path(&rec.runtime)?);
        c.arg("--root").arg(self.runtime_root(&rec.runtime));
        Ok(c)
    }

    /// Runs `RUNTIME args...`, turning a failure into [`Error::Runtime`] with its message.
    fn runtime_run(&self, rec: &Record, op: &'static str, args: &[&str]) -> Result<()> {
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

    /// Finds a container by id, unique id prefix or name.
    pub fn get(&self, what: &str) -> Result<Record> {
        records::find(&self.conn(), what)
    }

    /// All containers, newest first, with their live state.
    pub fn list(&self) -> Result<Vec<(Record, LiveState)>> {
        let recs = records::all(&self.conn())?;
        Ok(recs
            .into_iter()
            .map(|r| {
                let s = self.live(&r);
                (r, s)
            })
            .collect())
    }

    // ---------------------------------------------------------------- status

    /// The container's status now.
    pub fn live(&self, rec: &Record) -> LiveState {
        let dir = self.state_dir(&rec.id);
        let mut st = LiveState {
            status: Status::Created,
            pid: None,
            started_at: read_trimmed(&dir.join("started_at")),
            finished_at: None,
            exit_code: 0,
            restart_count: 0,
            oom_killed: false,
            monitor: false,
        };
        let exit = protocol::read_exit(&dir).ok().flatten();
        if let Some(e) = &exit {
            apply_exit(&mut st, e);
        }
        if protocol::socket_path(&dir).exists()
            && let Ok(Reply::State(s)) =
                request_timeout(&dir, &Request::State, Duration::from_secs(5))
        {
            apply_shim(&mut st, &s, rec.paused);
            st.monitor = true;
            return st;
        }
        if exit.is_some() {
            st.status = Status::Exited;
            return st;
        }
        if let Some(pid) =
            read_trimmed(&dir.join(protocol::SHIM_PID_FILE)).and_then(|p| p.parse::<i32>().ok())
        {
            st.status = if pid_alive(pid) {
                Status::Running
            } else {
                Status::Dead
            };
        }
        st
    }

    fn check(&self, rec: &Record, action: Action) -> Result<LiveState> {
        let live = self.live(rec);
        if state::allowed(live.status, action) {
            Ok(live)
        } else {
            Err(Error::IllegalTransition {
                id: rec.id.clone(),
                status: live.status,
                action,
            })
        }
    }

    // ---------------------------------------------------------------- create

    /// Creates a container: record, root filesystem, bundle. Nothing runs yet. On failure
    /// nothing is left behind.
    pub fn create(&self, opts: CreateOptions) -> Result<Record> {
        let host = opts.host_config.clone();
        validate_host_config(&host)?;
        let user_mounts = mounts::from_host_config(&host)?;
        for m in &user_mounts {
            if m.kind == MountKind::Bind && !Path::new(&m.source).exists() {
                return Err(Error::InvalidArgument(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source
                )));
            }
        }
        let runtime = host
            .runtime
            .clone()
            .unwrap_or_else(|| "hako-runtime".into());
        self.runtime_path(&runtime)?;
        let id = crate::random_id();
        let name = match &opts.name {
            Some(n) if !names::valid(n) => {
                return Err(Error::InvalidArgument(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
            Some(n) => n.trim_start_matches('/').to_string(),
            None => self.free_name(&id)?,
        };
        if let Ok(other) = records::find(&self.conn(), &name)
            && other.name == name
        {
            return Err(Error::NameInUse { name, id: other.id });
        }
        let image_name = opts.config.image.clone().unwrap_or_default();
        let (image_id, image_config) = match &opts.rootfs {
            Some(_) => (String::new(), Value::Null),
            None => {
                if image_name.is_empty() {
                    return Err(Error::InvalidArgument(
                        "requires at least 1 argument: an image (or --rootfs DIR)".into(),
                    ));
                }
                let id = self.images.resolve(&image_name).map_err(|e| match e {
                    hako_image::Error::NoSuchImage(_) => {
                        Error::NoSuchImage(normalize_name(&image_name))
                    }
                    other => other.into(),
                })?;
                let inspect = self.images.inspect(id.as_str())?;
                (id.to_string(), inspect["Config"].clone())
            }
        };

        let dir = self.container_dir(&id);
        let mut cleanup = Cleanup {
            engine: self,
            id: id.clone(),
            rootfs: false,
            record: false,
            volumes: Vec::new(),
        };
        // The record goes in first: a create killed half-way (kill -9) leaves a container
        // that `ps -a` lists and `rm` removes, never an anonymous layer nobody owns.
        records::insert(
            &self.conn(),
            &Record {
                id: id.clone(),
                name: name.clone(),
                image: match &opts.rootfs {
                    Some(d) => d.display().to_string(),
                    None => image_name.clone(),
                },
                image_id: image_id.clone(),
                created: crate::now_rfc3339(),
                config: opts.config.clone(),
                host_config: host.clone(),
                runtime: runtime.clone(),
                rootfs: PathBuf::new(),
                rootfs_managed: opts.rootfs.is_none(),
                path: String::new(),
                args: Vec::new(),
                paused: false,
            },
        )?;
        cleanup.record = true;
        // Only now the directory: a container directory always has a record, so one without
        // is garbage (see `collect_orphans`).
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let rootfs = match &opts.rootfs {
            Some(d) => {
                let d = std::fs::canonicalize(d).map_err(|e| {
                    Error::InvalidArgument(format!("--rootfs {}: {e}", d.display()))
                })?;
                if !d.is_dir() {
                    return Err(Error::InvalidArgument(format!(
                        "--rootfs {}: not a directory",
                        d.display()
                    )));
                }
                d
            }
            None => {
                let storage = hako_image::StorageOpts::parse(
                    &host
                        .storage_opt
                        .iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>(),
                )
                .map_err(|e| Error::InvalidArgument(format!("--storage-opt: {e}")))?;
                let m = self.images.prepare_rootfs_with(&image_id, &id, &storage)?;
                cleanup.rootfs = true;
                m.rootfs
            }
        };

        let mut config = opts.config.clone();
        merge_image_config(&mut config, &image_config);
        let mut host = host;
        let mut all_mounts = user_mounts;
        // Volumes the image declares get anonymous volumes unless the user mounted there.
        for v in string_keys(&image_config["Volumes"]) {
            if !all_mounts.iter().any(|m| m.destination == v) {
                all_mounts.push(ResolvedMount {
                    kind: MountKind::Volume {
                        name: None,
                        copy: true,
                    },
                    source: String::new(),
                    destination: v,
                    rw: true,
                    options: Vec::new(),
                });
            }
        }
        for m in all_mounts.iter_mut() {
            if let MountKind::Volume { name, copy } = &m.kind {
                let (vol, new) = volumes::create(
                    &self.conn(),
                    &self.opts.root,
                    name.as_deref(),
                    &HashMap::new(),
                )?;
                cleanup
                    .volumes
                    .push((vol.name.clone(), new && name.is_none()));
                if new && *copy {
                    let inside = rootfs.join(m.destination.trim_start_matches('/'));
                    if let (Ok(src), Ok(base)) = (
                        std::fs::canonicalize(&inside),
                        std::fs::canonicalize(&rootfs),
                    ) && src.starts_with(&base)
                    {
                        volumes::copy_up(&src, Path::new(&vol.mountpoint))?;
                    }
                }
                m.source = vol.mountpoint.clone();
                m.kind = MountKind::Volume {
                    name: Some(vol.name),
                    copy: *copy,
                };
            }
        }
        if host.init == Some(true) {
            if self.opts.init.exists() && has_interpreter(&self.opts.init) {
                return Err(Error::InvalidArgument(format!(
                    "--init: {} is dynamically linked and cannot run in an arbitrary image; build the static one with scripts/build-init.sh (or point HAKO_INIT at it)",
                    self.opts.init.display()
                )));
            }
            if !self.opts.init.exists() {
                return Err(Error::InvalidArgument(format!(
                    "--init: {} not found (build it with scripts/build-init.sh)",
                    self.opts.init.display()
                )));
            }
            all_mounts.push(ResolvedMount {
                kind: MountKind::Init,
                source: self.opts.init.display().to_string(),
                destination: INIT_PATH.into(),
                rw: false,
                options: Vec::new(),
            });
        }

        let entrypoint = config.entrypoint.clone().unwrap_or_default();
        let cmd = config.cmd.clone().unwrap_or_default();
        let mut args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        if args.is_empty() {
            return Err(Error::InvalidArgument("no command specified".into()));
        }
        let (path, cargs) = (args[0].clone(), args[1..].to_vec());
        if host.init == Some(true) {
            args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
        }
        let hostname = config
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| id[..12].to_string());
        config.hostname = Some(hostname.clone());
        let tty = config.tty.unwrap_or(false);
        let mut env = vec![format!("HOSTNAME={hostname}")];
        if tty {
            env.push("TERM=xterm".into());
        }
        let mut merged: Vec<String> = config.env.clone().unwrap_or_default();
        if !merged.iter().any(|e| e.starts_with("PATH=")) {
            merged.insert(0, format!("PATH={}", spec::DEFAULT_PATH));
        }
        for e in merged {
            let key = e.split('=').next().unwrap_or("").to_string();
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        config.env = Some(
            env.iter()
                .filter(|e| !e.starts_with("HOSTNAME="))
                .cloned()
                .collect(),
        );
        let user = user::resolve(&rootfs, config.user.as_deref().unwrap_or(""))?;
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", user.home));
        }
        let cwd = config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        if !cwd.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "the working directory '{cwd}' is invalid, it needs to be an absolute path"
            )));
        }
        spec::write_etc_files(&dir, &hostname, &host)
            .ctx(|| format!("write files in {}", dir.display()))?;
        let oci = spec::build(&SpecInput {
            id: &id,
            config: &config,
            host: &host,
            rootfs: &rootfs,
            container_dir: &dir,
            mounts: &all_mounts,
            init: host.init.filter(|i| *i).map(|_| self.opts.init.as_path()),
            args,
            env,
            cwd,
            user: &user,
            hostname,
        })?;
        oci.save(dir.join("config.json"))
            .map_err(|e| Error::InvalidArgument(format!("write config.json: {e}")))?;

        host.runtime = Some(runtime.clone());
        let rec = Record {
            id: id.clone(),
            name,
            image: match &opts.rootfs {
                Some(_) => rootfs.display().to_string(),
                None => image_name,
            },
            image_id,
            created: crate::now_rfc3339(),
            config,
            host_config: host,
            runtime,
            rootfs,
            rootfs_managed: opts.rootfs.is_none(),
            path,
            args: cargs,
            paused: false,
        };
        {
            let conn = self.conn();
            records::update(&conn, &rec)?;
            for (v, _) in &cleanup.volumes {
                volumes::attach(&conn, &id, v)?;
            }
        }
        std::fs::write(
            dir.join("mounts.json"),
            serde_json::to_vec(&mount_points(&all_mounts)).unwrap_or_default(),
        )
        .ctx(|| "write mounts.json".into())?;
        cleanup.disarm();
        Ok(rec)
    }

    fn free_name(&self, id: &str) -> Result<String> {
        for attempt in 0..50 {
            let n = names::generate(id, attempt);
            if records::find(&self.conn(), &n)
                .map(|r| r.name != n)
                .unwrap_or(true)
            {
                return Ok(n);
            }
        }
        Ok(id[..12].to_string())
    }

    // ---------------------------------------------------------------- start

    /// Starts a container and returns once its process runs (or failed to).
    pub fn start(&self, what: &str) -> Result<Record> {
        let rec = self.get(what)?;
        let live = self.check(&rec, Action::Start)?;
        if live.status.is_active() {
            return Ok(rec);
        }
        if !live.monitor {
            self.spawn_shim(&rec)?;
        }
        self.begin(&rec)?;
        Ok(rec)
    }

    /// Starts a container with a connection to its stdio made *before* it runs, so no
    /// output is lost (`run` without `-d`, `start -a`). With a tty, `size` (rows, cols) is
    /// set before the process starts, so its first `stty size` is already right.
    pub fn start_attached(
        &self,
        what: &str,
        stdin: bool,
        size: Option<(u16, u16)>,
    ) -> Result<(Record, Attached)> {
        let rec = self.get(what)?;
        let live = self.check(&rec, Action::Start)?;
        if live.status.is_active() {
            let a = self.attach(&rec.id, stdin)?;
            return Ok((rec, a));
        }
        if !live.monitor {
            self.spawn_shim(&rec)?;
        }
        let dir = self.state_dir(&rec.id);
        let attached = protocol::attach(&dir, stdin, true, true)
            .ctx(|| format!("attach to container {}", &rec.id[..12]))?;
        if let (true, Some((rows, cols))) = (attached.1, size) {
            let _ = request_timeout(
                &dir,
                &Request::Resize { rows, cols },
                Duration::from_secs(5),
            );
        }
        self.begin(&rec)?;
        Ok((
            rec,
            Attached {
                stream: attached.0,
                tty: attached.1,
            },
        ))
    }

    /// Attaches to a running container's stdio.
    pub fn attach(&self, what: &str, stdin: bool) -> Result<Attached> {
        let rec = self.get(what)?;
        let live = self.check(&rec, Action::Attach)?;
        if !live.status.is_active() {
            return Err(Error::InvalidArgument(
                "You cannot attach to a stopped container, start it first".into(),
            ));
        }
        let (stream, tty) = protocol::attach(&self.state_dir(&rec.id), stdin, true, true)
            .ctx(|| format!("attach to container {}", &rec.id[..12]))?;
        Ok(Attached { stream, tty })
    }

    /// Sets the pty size of a container with a tty.
    pub fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let _ = request_timeout(
            &self.state_dir(id),
            &Request::Resize { rows, cols },
            Duration::from_secs(5),
        )
        .ctx(|| "resize the container's tty".into())?;
        Ok(())
    }

    fn spawn_shim(&self, rec: &Record) -> Result<()> {
        let dir = self.state_dir(&rec.id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        if rec.rootfs_managed && !hako_storage_is_mounted(&rec.rootfs) {
            self.images.mount_rootfs(&rec.id)?;
        }
        let runtime = self.runtime_path(&rec.runtime)?;
        let runtime_root = self.runtime_root(&rec.runtime);
        let (ready_r, ready_w) = nix::unistd::pipe()
            .map_err(std::io::Error::from)
            .ctx(|| "create a pipe".into())?;
        nix::fcntl::fcntl(
            &ready_r,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(std::io::Error::from)
        .ctx(|| "set close-on-exec".into())?;
        let ready_fd = std::os::fd::AsRawFd::as_raw_fd(&ready_w);
        let mut cmd = Command::new(&self.opts.shim);
        let bundle = self.container_dir(&rec.id);
        cmd.arg("--id")
            .arg(&rec.id)
            .arg("--bundle")
            .arg(&bundle)
            .arg("--runtime")
            .arg(&runtime)
            .arg("--runtime-root")
            .arg(&runtime_root)
            .arg("--state-dir")
            .arg(&dir)
            .arg("--log-path")
            .arg(self.log_path(&rec.id))
            .arg("--ready-fd")
            .arg(ready_fd.to_string());
        let (max_size, max_file) = log_opts(
            &rec.host_config,
            self.opts.log_max_size,
            self.opts.log_max_file,
        )?;
        cmd.arg("--log-max-size").arg(max_size.to_string());
        cmd.arg("--log-max-file").arg(max_file.to_string());
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
        if rec.host_config.auto_remove == Some(true)
            && let Some((prog, rest)) = self.opts.cleanup_command.split_first()
        {
            cmd.arg("--exit-command").arg(prog);
            for a in rest.iter().chain(std::iter::once(&rec.id)) {
                cmd.arg(format!("--exit-command-arg={a}"));
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .ctx(|| format!("run {}", self.opts.shim.display()))?;
        drop(ready_w);
        let mut reply = String::new();
        let read = std::fs::File::from(ready_r).read_to_string(&mut reply);
        let _ = child.wait();
        read.ctx(|| "read the shim's answer".into())?;
        let v: Value = serde_json::from_str(reply.trim()).unwrap_or(Value::Null);
        if v.get("pid").and_then(Value::as_i64).is_some() {
            return Ok(());
        }
        let message = v
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("the shim exited without an answer ({})", reply.trim()));
        let _ = std::fs::remove_dir_all(&dir);
        Err(runtime_error("create", message))
    }

    fn begin(&self, rec: &Record) -> Result<()> {
        let dir = self.state_dir(&rec.id);
        match request_timeout(&dir, &Request::Start, Duration::from_secs(60)) {
            Ok(Reply::Ok) => {
                let _ = std::fs::write(dir.join("started_at"), crate::now_rfc3339());
                Ok(())
            }
            Ok(Reply::Error { message }) => {
                self.wait_shim_gone(&rec.id, Duration::from_secs(5));
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

    // ---------------------------------------------------------------- wait / stop / kill

    /// Waits until the container is not running and returns its exit code.
    pub fn wait(&self, what: &str) -> Result<i32> {
        let rec = self.get(what)?;
        let dir = self.state_dir(&rec.id);
        loop {
            let live = self.live(&rec);
            if !live.status.is_active() {
                return Ok(live.exit_code);
            }
            match request_timeout(&dir, &Request::Wait, Duration::from_secs(3600 * 24 * 365)) {
                Ok(Reply::Exited(e)) => {
                    if self.live(&rec).status != Status::Restarting {
                        return Ok(e.exit_code);
                    }
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Waits (at most `timeout`) until the container's record is gone.
    pub fn wait_removed(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if records::find(&self.conn(), id).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    fn wait_exit(&self, rec: &Record, timeout: Duration) -> bool {
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

    fn wait_shim_gone(&self, id: &str, timeout: Duration) {
        let sock = protocol::socket_path(&self.state_dir(id));
        let deadline = Instant::now() + timeout;
        while sock.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
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
        }
        let graceful = u64::try_from(timeout.max(0)).unwrap_or(0);
        if timeout < 0 || !self.wait_exit(&rec, Duration::from_secs(graceful)) {
            if timeout >= 0 {
                let _ = self.runtime_run(&rec, "kill", &["kill", &rec.id, "SIGKILL"]);
            }
            self.wait_exit(&rec, Duration::from_secs(30));
        }
        self.wait_shim_gone(&rec.id, Duration::from_secs(5));
        Ok(rec)
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
        Ok(rec)
    }

    /// Stops (if running) and starts again.
    pub fn restart(&self, what: &str, timeout: Option<i64>) -> Result<Record> {
        let rec = self.stop(what, timeout, None)?;
        self.start(&rec.id)
    }

    /// Freezes every process of the container.
    pub fn pause(&self, what: &str) -> Result<Record> {
        let rec = self.get(what)?;
        self.check(&rec, Action::Pause)?;
        self.runtime_run(&rec, "pause", &["pause", &rec.id])?;
        records::set_paused(&self.conn(), &rec.id, true)?;
        Ok(rec)
    }

    /// Thaws a paused container.
    pub fn unpause(&self, what: &str) -> Result<Record> {
        let rec = self.get(what)?;
        self.check(&rec, Action::Unpause)?;
        self.runtime_run(&rec, "resume", &["resume", &rec.id])?;
        records::set_paused(&self.conn(), &rec.id, false)?;
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
        records::rename(&self.conn(), &rec.id, new_name)
    }

    // ---------------------------------------------------------------- remove

    /// Removes a container: with `force` a running one is killed first; with `volumes` its
    /// anonymous volumes go too. Removes the record last, so a failure can be retried.
    pub fn remove(&self, what: &str, force: bool, remove_volumes: bool) -> Result<Record> {
        let rec = self.get(what)?;
        let live = self.live(&rec);
        if live.status.is_active() {
            if !force {
                return Err(Error::IllegalTransition {
                    id: rec.id.clone(),
                    status: live.status,
                    action: Action::Remove,
                });
            }
            let dir = self.state_dir(&rec.id);
            let _ = request_timeout(
                &dir,
                &Request::Stop { no_restart: true },
                Duration::from_secs(5),
            );
            if live.status == Status::Paused {
                let _ = self.runtime_run(&rec, "resume", &["resume", &rec.id]);
            }
            let _ = self.runtime_run(&rec, "kill", &["kill", &rec.id, "SIGKILL"]);
            if !self.wait_exit(&rec, Duration::from_secs(30)) {
                return Err(Error::Timeout(format!(
                    "container {} did not stop after SIGKILL",
                    &rec.id[..12]
                )));
            }
        }
        if live.monitor && live.status == Status::Created {
            // Created by a shim but never started (the CLI died in between): end it.
            let _ = request_timeout(
                &self.state_dir(&rec.id),
                &Request::Stop { no_restart: true },
                Duration::from_secs(5),
            );
            let _ = self.runtime_run(&rec, "kill", &["kill", &rec.id, "SIGKILL"]);
        }
        if !records::claim_removal(&self.conn(), &rec.id)? {
            return Ok(rec);
        }
        let res = self.teardown(&rec, remove_volumes);
        if res.is_err() {
            let _ = records::unclaim_removal(&self.conn(), &rec.id);
        }
        res.map(|()| rec)
    }

    fn teardown(&self, rec: &Record, remove_volumes: bool) -> Result<()> {
        self.wait_shim_gone(&rec.id, Duration::from_secs(10));
        let runtime_state = self.runtime_root(&rec.runtime).join(&rec.id);
        if runtime_state.exists() {
            let _ = self.runtime_run(rec, "delete", &["delete", "--force", &rec.id]);
        }
        if rec.rootfs_managed {
            match self.images.release_rootfs(&rec.id) {
                Ok(()) | Err(hako_image::Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let anon = if remove_volumes {
            volumes::anonymous_of(&self.conn(), &rec.id)?
        } else {
            Vec::new()
        };
        records::delete(&self.conn(), &rec.id)?;
        for v in anon {
            let _ = volumes::remove(&self.conn(), &self.opts.root, &v);
        }
        for d in [self.state_dir(&rec.id), self.container_dir(&rec.id)] {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("remove {}", d.display()),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    /// What the shim's exit command runs for `--rm` containers: remove it with its
    /// anonymous volumes, if it still exists and still wants to be removed.
    pub fn cleanup(&self, what: &str) -> Result<()> {
        let rec = match self.get(what) {
            Ok(r) => r,
            Err(Error::NoSuchContainer(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if rec.host_config.auto_remove != Some(true) || self.live(&rec).status.is_active() {
            return Ok(());
        }
        self.remove(&rec.id, false, true).map(|_| ())
    }

    // ---------------------------------------------------------------- exec

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

    // ---------------------------------------------------------------- inspect & friends

    /// `docker inspect` of a container.
    pub fn inspect(&self, what: &str) -> Result<ContainerInspectResponse> {
        let rec = self.get(what)?;
        let live = self.live(&rec);
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
        let mounts: Vec<MountPoint> = std::fs::read(dir.join("mounts.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(ContainerInspectResponse {
            id: Some(rec.id.clone()),
            created: Some(rec.created.clone()),
            path: Some(rec.path.clone()),
            args: Some(rec.args.clone()),
            state: Some(container_state(&live)),
            image: Some(if rec.image_id.is_empty() {
                rec.image.clone()
            } else {
                rec.image_id.clone()
            }),
            resolv_conf_path: Some(dir.join("resolv.conf").display().to_string()),
            hostname_path: Some(dir.join("hostname").display().to_string()),
            hosts_path: Some(dir.join("hosts").display().to_string()),
            log_path: Some(self.log_path(&rec.id).display().to_string()),
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

    fn cgroup_manager(&self, rec: &Record) -> Result<hako_cgroups::Manager> {
        let spec: Value = serde_json::from_slice(
            &std::fs::read(self.container_dir(&rec.id).join("config.json"))
                .ctx(|| "read config.json".into())?,
        )
        .unwrap_or(Value::Null);
        let path = spec["linux"]["cgroupsPath"].as_str().map(str::to_string);
        hako_cgroups::Manager::new(path.as_deref(), &rec.id)
            .map_err(|e| Error::InvalidArgument(format!("cgroup of {}: {e}", &rec.id[..12])))
    }

    fn pids(&self, rec: &Record) -> Result<Vec<i32>> {
        let m = self.cgroup_manager(rec)?;
        m.pids().map_err(|e| {
            Error::InvalidArgument(format!("list processes of {}: {e}", &rec.id[..12]))
        })
    }

    /// One resource usage reading from the container's cgroup.
    pub fn stats(&self, what: &str) -> Result<StatsSample> {
        let rec = self.get(what)?;
        if !self.live(&rec).status.is_active() {
            return Ok(StatsSample::default());
        }
        let m = self.cgroup_manager(&rec)?;
        let s = m
            .stats()
            .map_err(|e| Error::InvalidArgument(format!("stats of {}: {e}", &rec.id[..12])))?;
        let (mut rd, mut wr) = (0, 0);
        for e in &s.blkio.io_service_bytes_recursive {
            match e.op.as_str() {
                "Read" | "read" => rd += e.value,
                "Write" | "write" => wr += e.value,
                _ => {}
            }
        }
        Ok(StatsSample {
            cpu_total_ns: s.cpu.usage.total,
            memory_usage: s.memory.usage.usage,
            memory_limit: s.memory.usage.limit,
            pids: s.pids.current,
            block_read: rd,
            block_write: wr,
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
        let rec = self.get(what)?;
        let path = self.log_path(&rec.id);
        let mut running = || self.live(&rec).status.is_active();
        logs::print(&path, o, out, err, &mut running)
    }

    /// The container's root filesystem, mounted (for `export` and `cp`). The returned guard
    /// unmounts it again if it was not mounted before.
    pub fn rootfs(&self, what: &str) -> Result<(Record, PathBuf)> {
        let rec = self.get(what)?;
        if rec.rootfs_managed && !hako_storage_is_mounted(&rec.rootfs) {
            let p = self.images.mount_rootfs(&rec.id)?;
            return Ok((rec, p));
        }
        let p = rec.rootfs.clone();
        Ok((rec, p))
    }

    /// Volumes: create.
    pub fn volume_create(
        &self,
        name: Option<&str>,
        labels: &HashMap<String, String>,
    ) -> Result<bollard_stubs::models::Volume> {
        Ok(volumes::create(&self.conn(), &self.opts.root, name, labels)?.0)
    }

    /// Volumes: all, with whether each is anonymous.
    pub fn volume_list(&self) -> Result<Vec<(bollard_stubs::models::Volume, bool)>> {
        volumes::list(&self.conn(), &self.opts.root)
    }

    /// Volumes: one.
    pub fn volume_inspect(&self, name: &str) -> Result<bollard_stubs::models::Volume> {
        volumes::get(&self.conn(), &self.opts.root, name)?
            .ok_or_else(|| Error::NoSuchVolume(name.to_string()))
    }

    /// Volumes: containers using one.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        volumes::users(&self.conn(), name)
    }

    /// Volumes: remove.
    pub fn volume_remove(&self, name: &str) -> Result<()> {
        volumes::remove(&self.conn(), &self.opts.root, name)
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

/// Undoes a half-made `create`.
struct Cleanup<'a> {
    engine: &'a Engine,
    id: String,
    rootfs: bool,
    record: bool,
    volumes: Vec<(String, bool)>,
}

impl Cleanup<'_> {
    fn disarm(&mut self) {
        self.rootfs = false;
        self.record = false;
        self.volumes.clear();
        self.id.clear();
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        let e = self.engine;
        if self.record {
            let _ = records::delete(&e.conn(), &self.id);
        }
        if self.rootfs {
            let _ = e.images.release_rootfs(&self.id);
        }
        for (v, created_here) in &self.volumes {
            if *created_here {
                let _ = volumes::remove(&e.conn(), &e.opts.root, v);
            }
        }
        let _ = std::fs::remove_dir_all(e.container_dir(&self.id));
    }
}

/// Whether an ELF executable names a program interpreter (is dynamically linked).
fn has_interpreter(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok())
    };
    if bytes.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(size), Some(num)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..num).any(|i| {
        let o = phoff + i * size;
        bytes.get(o..o + 4) == Some(&3u32.to_le_bytes()[..])
    })
}

fn hako_storage_is_mounted(p: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            let want = p.to_string_lossy();
            m.lines()
                .any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
        })
        .unwrap_or(false)
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn apply_exit(st: &mut LiveState, e: &ExitInfo) {
    st.finished_at = Some(e.finished_at.clone());
    st.exit_code = e.exit_code;
    st.oom_killed = e.oom_killed;
    st.restart_count = e.restart_count;
}

fn apply_shim(st: &mut LiveState, s: &ShimState, paused: bool) {
    if let Some(e) = &s.exit {
        apply_exit(st, e);
    }
    st.restart_count = s.restart_count;
    if s.started_at.is_some() {
        st.started_at = s.started_at.clone();
    }
    st.status = match s.status.as_str() {
        "running" if paused => Status::Paused,
        "running" => Status::Running,
        "restarting" => Status::Restarting,
        "exited" => Status::Exited,
        _ => Status::Created,
    };
    st.pid = if st.status.is_active() { s.pid } else { None };
}

/// One request on a fresh connection, with a reply timeout.
fn request_timeout(dir: &Path, req: &Request, timeout: Duration) -> std::io::Result<Reply> {
    let mut s = UnixStream::connect(protocol::socket_path(dir))?;
    s.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte)? {
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the shim closed the connection",
                ));
            }
            _ if byte[0] == b'\n' => break,
            _ => buf.push(byte[0]),
        }
    }
    serde_json::from_slice(&buf)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Docker's exit codes for a process that could not be started.
fn runtime_error(op: &'static str, message: String) -> Error {
    let lower = message.to_ascii_lowercase();
    let exit_code = if lower.contains("executable file not found")
        || lower.contains("no such file or directory")
    {
        127
    } else if lower.contains("permission denied") || lower.contains("exec format error") {
        126
    } else {
        125
    };
    Error::Runtime {
        op,
        message,
        exit_code,
    }
}

/// The last error message in a runtime's JSON log.
fn last_error(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .next_back()
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(125)
}

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

fn mount_points(mounts: &[ResolvedMount]) -> Vec<MountPoint> {
    mounts
        .iter()
        .filter(|m| m.kind != MountKind::Init)
        .map(|m| {
            let (typ, name, driver) = match &m.kind {
                MountKind::Bind => ("bind".to_string(), None, None),
                MountKind::Volume { name, .. } => (
                    "volume".to_string(),
                    name.clone(),
                    Some("local".to_string()),
                ),
                _ => ("tmpfs".to_string(), None, None),
            };
            MountPoint {
                typ: Some(typ),
                name,
                source: Some(m.source.clone()),
                destination: Some(m.destination.clone()),
                driver,
                mode: Some(if m.rw { String::new() } else { "ro".into() }),
                rw: Some(m.rw),
                propagation: Some(if m.kind == MountKind::Bind {
                    "rprivate".into()
                } else {
                    String::new()
                }),
            }
        })
        .collect()
}

fn normalize_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn string_keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// Fills what the user left unset from the image config, as Docker does: an explicit
/// `--entrypoint` drops the image's `Cmd`.
fn merge_image_config(c: &mut ContainerConfig, image: &Value) {
    if image.is_null() {
        return;
    }
    let entrypoint_given = c.entrypoint.is_some();
    if c.entrypoint.is_none() {
        c.entrypoint = strings(&image["Entrypoint"]);
    }
    if c.entrypoint
        .as_ref()
        .is_some_and(|e| e.len() == 1 && e[0].is_empty())
    {
        c.entrypoint = None;
    }
    if c.cmd.as_ref().is_none_or(Vec::is_empty) && !entrypoint_given {
        c.cmd = strings(&image["Cmd"]);
    }
    let mut env = strings(&image["Env"]).unwrap_or_default();
    for e in c.env.take().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    c.env = Some(env);
    if c.working_dir.as_deref().is_none_or(str::is_empty) {
        c.working_dir = image["WorkingDir"].as_str().map(str::to_string);
    }
    if c.user.as_deref().is_none_or(str::is_empty) {
        c.user = image["User"].as_str().map(str::to_string);
    }
    if c.stop_signal.is_none() {
        c.stop_signal = image["StopSignal"].as_str().map(str::to_string);
    }
    let mut labels: HashMap<String, String> = image["Labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    labels.extend(c.labels.take().unwrap_or_default());
    c.labels = Some(labels);
}

fn ncpus() -> i64 {
    std::thread::available_parallelism()
        .map(|n| i64::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1)
}

/// Docker's checks of resource options, with its messages.
fn validate_host_config(h: &HostConfig) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    if let Some(m) = h.memory
        && m != 0
        && m < 6 * 1024 * 1024
    {
        return bad("Minimum memory limit allowed is 6MB".into());
    }
    if let (Some(m), Some(s)) = (h.memory, h.memory_swap)
        && m > 0
        && s > 0
        && s < m
    {
        return bad(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if h.memory_swap.is_some_and(|s| s > 0) && h.memory.unwrap_or(0) == 0 {
        return bad(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        );
    }
    if let Some(n) = h.nano_cpus {
        let max = ncpus() * 1_000_000_000;
        if n < 0 || n > max {
            return bad(format!(
                "Range of CPUs is from 0.01 to {}.00, as there are only {} CPUs available",
                ncpus(),
                ncpus()
            ));
        }
    }
    if h.cpu_shares.is_some_and(|s| s < 0) {
        return bad("invalid CPU shares: must not be negative".into());
    }
    if h.auto_remove == Some(true)
        && h.restart_policy
            .as_ref()
            .and_then(|r| r.name)
            .is_some_and(|n| !matches!(n, RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY))
    {
        return bad("Conflicting options: --restart and --rm".into());
    }
    if let Some(r) = &h.restart_policy
        && r.maximum_retry_count.is_some_and(|n| n > 0)
        && r.name != Some(RestartPolicyNameEnum::ON_FAILURE)
    {
        return bad(
            "maximum retry count cannot be used with restart policy other than on-failure".into(),
        );
    }
    match h.network_mode.as_deref() {
        None | Some("" | "none" | "host" | "default") => {}
        Some(other) => {
            return bad(format!(
                "network mode {other:?} is not supported yet (use none or host)"
            ));
        }
    }
    Ok(())
}

fn restart_arg(h: &HostConfig) -> String {
    let Some(r) = &h.restart_policy else {
        return "no".into();
    };
    match r.name {
        Some(RestartPolicyNameEnum::ALWAYS) => "always".into(),
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => "unless-stopped".into(),
        Some(RestartPolicyNameEnum::ON_FAILURE) => match r.maximum_retry_count.filter(|n| *n > 0) {
            Some(n) => format!("on-failure:{n}"),
            None => "on-failure".into(),
        },
        _ => "no".into(),
    }
}

fn validate_signal(sig: &str) -> Result<()> {
    let s = sig.trim_start_matches("SIG").trim_start_matches("sig");
    if s.parse::<i32>().is_ok_and(|n| (1..=64).contains(&n)) {
        return Ok(());
    }
    let name = format!("SIG{}", s.to_ascii_uppercase());
    if name.parse::<nix::sys::signal::Signal>().is_ok() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("Invalid signal: {sig}")))
    }
}

/// `--log-opt max-size=10m --log-opt max-file=3` (json-file), with hako's defaults.
fn log_opts(h: &HostConfig, default_size: u64, default_files: u32) -> Result<(u64, u32)> {
    let mut size = default_size;
    let mut files = default_files;
    if let Some(lc) = &h.log_config {
        if let Some(t) = lc.typ.as_deref()
            && !matches!(t, "" | "json-file")
        {
            return Err(Error::InvalidArgument(format!(
                "log driver {t:?} is not supported (hako writes json-file logs)"
            )));
        }
        for (k, v) in lc.config.iter().flatten() {
            match k.as_str() {
                "max-size" => {
                    size = parse_size(v)
                        .ok_or_else(|| Error::InvalidArgument(format!("invalid max-size {v:?}")))?
                }
                "max-file" => {
                    files = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "invalid max-file {v:?}: must be a number >= 1"
                        ))
                    })?
                }
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown log opt '{other}' for json-file log driver"
                    )));
                }
            }
        }
    }
    Ok((size, files))
}

/// `10m`, `1g`, `512k`, `100` (bytes), `-1` (unbounded).
pub fn parse_size(s: &str) -> Option<u64> {
    if s == "-1" {
        return Some(0);
    }
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b');
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    if n < 0.0 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_resource_checks() {
        let h = HostConfig {
            memory: Some(1024),
            ..Default::default()
        };
        assert!(
            validate_host_config(&h)
                .unwrap_err()
                .to_string()
                .contains("Minimum memory limit")
        );
        let h = HostConfig {
            nano_cpus: Some(-1),
            ..Default::default()
        };
        assert!(
            validate_host_config(&h)
                .unwrap_err()
                .to_string()
                .contains("Range of CPUs")
        );
        let h = HostConfig {
            auto_remove: Some(true),
            restart_policy: Some(bollard_stubs::models::RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        assert!(
            validate_host_config(&h)
                .unwrap_err()
                .to_string()
                .contains("--restart and --rm")
        );
        assert!(validate_host_config(&HostConfig::default()).is_ok());
    }

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

    #[test]
    fn dynamic_executables_are_told_apart() {
        assert!(has_interpreter(Path::new("/bin/ls")));
        if Path::new("/bin/busybox").exists() {
            assert!(
                !has_interpreter(Path::new("/bin/busybox")),
                "busybox-static"
            );
        }
        assert!(!has_interpreter(Path::new("/etc/passwd")));
    }

    #[test]
    fn sizes_and_signals() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("abc"), None);
        assert!(validate_signal("TERM").is_ok());
        assert!(validate_signal("SIGKILL").is_ok());
        assert!(validate_signal("9").is_ok());
        assert!(validate_signal("NOPE").is_err());
    }

    #[test]
    fn image_config_fills_the_gaps() {
        let image =
            serde_json::json!({"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/w"});
        let mut c = ContainerConfig {
            env: Some(vec!["A=2".into()]),
            ..Default::default()
        };
        merge_image_config(&mut c, &image);
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(
            c.env,
            Some(vec!["PATH=/bin".to_string(), "A=2".to_string()])
        );
        assert_eq!(c.working_dir.as_deref(), Some("/w"));
        let mut c = ContainerConfig {
            entrypoint: Some(vec!["/bin/echo".into()]),
            ..Default::default()
        };
        merge_image_config(&mut c, &image);
        assert_eq!(c.cmd, None);
    }
}
