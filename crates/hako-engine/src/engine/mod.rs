//! The [`Engine`]: container lifecycle over the image store, the shim and the OCI runtime.
//!
//! One file per concern: `create` (record, rootfs, bundle), `lifecycle` (start, wait, stop,
//! kill, restart, pause, rename), `attach` (stdio streams, resize), `exec`, `remove`,
//! `inspect` (inspect, top, stats, logs, rootfs), `status` (live state from the shim),
//! `runtime` (the OCI runtime command line), `validate` (Docker's option checks),
//! `volume` (named volumes).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use hako_image::ImageStore;
use rusqlite::Connection;

use crate::error::{IoContext, Result};
use crate::records::{self, Record};

mod attach;
mod boot;
mod build;
mod build_run;
mod build_worker;
mod create;
mod emit;
mod exec;
mod health;
mod images;
mod inspect;
mod joins;
mod lifecycle;
mod list;
mod network;
mod networks;
mod prepare;
mod prune;
mod remove;
mod rootless;
mod runtime;
mod stats;
mod status;
mod system;
mod transfer;
mod update;
mod validate;
mod volume;
mod wait;

pub use attach::{AttachOptions, Attached, PendingAttach, RemovalLock, Resizer};
pub use boot::BootReport;
pub(crate) use build::KIND_BUILD;
pub use build::{BuildContext, BuildRequest, CredentialLookup, Dockerfile};
pub use create::CreateOptions;
pub use exec::{EXEC_KEEP, ExecOptions};
pub use images::{IMAGE_FILTERS, IMAGE_PRUNE_FILTERS, ImageListOptions};
pub use inspect::OpenLogs;
pub use list::{CONTAINER_FILTERS, ContainerListOptions, status_text};
pub use network::{Mode as NetworkMode, add_legacy_network_fields};
pub use networks::{NETWORK_FILTERS, NETWORK_PRUNE_FILTERS};
pub use prune::{CONTAINER_PRUNE_FILTERS, VOLUME_PRUNE_FILTERS};
pub use remove::cleanup_needed;
pub use runtime::SignalSender;
pub use status::LiveState;
pub use system::DiskUsage;
pub use validate::parse_size;
pub use volume::VOLUME_FILTERS;
pub use wait::{WaitCondition, Waiter};

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
    /// The resolver of user networks (`hako-dns`).
    pub dns: PathBuf,
    /// The default network's bridge interface.
    pub bridge_name: String,
    /// The default network's subnet (`10.1.0.0/16`, or the bridge address `10.1.0.1/16`);
    /// default: the first of hako's pools the host does not route. Fixed once the
    /// network exists.
    pub bridge_subnet: Option<String>,
    /// MTU of new networks (default 1500).
    pub mtu: Option<u32>,
    /// Who makes containers' cgroups: systemd (a transient scope per container, as Docker
    /// and Podman on systemd hosts) or hako-runtime itself through cgroupfs.
    pub cgroup_driver: CgroupDriver,
    /// Rootless mode: hako runs in a user namespace of its own (made from the user's
    /// /etc/subuid range by the CLI): containers get no cgroup where the host delegates
    /// none, and their network comes from pasta instead of a bridge.
    pub rootless: bool,
}

/// `--cgroup-manager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

impl CgroupDriver {
    /// systemd when it is PID 1 on a pure cgroup v2 host (hako's systemd driver needs
    /// v2), cgroupfs otherwise; for rootless hako, systemd when the user's manager runs
    /// too (a login or `loginctl enable-linger`), as Podman: its scopes are the only
    /// cgroups delegated to the user.
    pub fn host_default() -> CgroupDriver {
        if hako_cgroups::systemd::booted()
            && hako_cgroups::detect_layout().ok() == Some(hako_cgroups::Layout::V2)
            && (hako_sys::userns::in_initial() || hako_cgroups::systemd::user_manager_running())
        {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        }
    }
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
            dns: sibling_binary("hako-dns"),
            bridge_name: "hako0".into(),
            bridge_subnet: None,
            mtu: None,
            cgroup_driver: CgroupDriver::host_default(),
            rootless: !hako_sys::userns::in_initial(),
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

/// The engine. Cheap to open; several processes may use the same root at once.
#[derive(Debug)]
pub struct Engine {
    opts: EngineOptions,
    images: ImageStore,
    db: Mutex<Connection>,
    net: hako_net::Net,
    /// Image labels by image id (an image's config never changes): `images` reads each
    /// image's config once per process, not at every listing.
    image_labels:
        Mutex<std::collections::HashMap<String, std::collections::HashMap<String, String>>>,
    /// Shims this process has spawned, counted: a waiter for a container that has none yet
    /// (the docker CLI's `run` sends its wait before its start) sleeps on this instead of
    /// polling, so it registers with the shim as soon as the server's own start made it.
    spawns: wait::Spawns,
    /// Removals finishing after their answers.
    tails: remove::Tails,
    /// Starts made ahead by a server (prepare.rs).
    preps: prepare::Preparations,
    /// The zygote shim a server keeps (`crate::zygote`).
    zygotes: std::sync::Arc<crate::zygote::Zygotes>,
}

impl Engine {
    /// Opens the engine (and its image store) at `opts.root`.
    pub fn open(opts: EngineOptions) -> Result<Engine> {
        let images = ImageStore::open_with(
            &opts.root,
            hako_image::Options {
                driver: opts.driver.clone(),
                // Engine::recover does it, with the engine's leftovers first.
                skip_recovery: true,
                ..Default::default()
            },
        )?;
        let db = records::open(&opts.root.join("hako-image.db"))?;
        for (d, mode) in [
            (opts.exec_root.clone(), 0o700),
            (opts.root.join("containers"), 0o700),
            (opts.exec_root.join("containers"), 0o700),
            (opts.exec_root.join("exec"), 0o700),
        ] {
            crate::files::dir(&d, mode).ctx(|| format!("create {}", d.display()))?;
        }
        let net = hako_net::Net::open(hako_net::NetOptions {
            db: opts.root.join("hako-image.db"),
            exec_root: opts.exec_root.clone(),
            bridge_name: opts.bridge_name.clone(),
            bridge_subnet: opts.bridge_subnet.clone(),
            mtu: opts.mtu,
            dns_program: opts.dns.clone(),
            firewall: None,
        })?;
        let engine = Engine {
            zygotes: crate::zygote::Zygotes::new(opts.shim.clone()),
            opts,
            images,
            db: Mutex::new(db),
            net,
            image_labels: Mutex::default(),
            spawns: wait::Spawns::default(),
            tails: remove::Tails::default(),
            preps: prepare::Preparations::default(),
        };
        engine.recover();
        engine.collect_dead_networks();
        Ok(engine)
    }

    /// A long-lived engine (`hako serve`) keeps one network namespace made ahead, which
    /// the next container's network setup adopts (hako-net's `spare.rs`).
    pub fn keep_spare_namespace(&self) {
        self.net.keep_spare_namespace();
    }

    /// Stops keeping one and removes it (the server's end).
    pub fn drop_spare_namespace(&self) {
        self.net.drop_spare_namespace();
    }

    /// Keeps a shim started ahead of need from now on (`hako serve`): the next container
    /// or exec takes it over instead of spawning one (`crate::zygote`).
    pub fn keep_zygote_shim(&self) {
        self.zygotes.start();
    }

    /// Stops keeping one; the one there is ends (the server's end).
    pub fn drop_zygote_shim(&self) {
        self.zygotes.stop();
    }

    /// Gives back the memory an idle server need not hold: the store connections' page
    /// caches and prepared statements, libnftables with its libraries (~1.5 MB mapped;
    /// loaded again by the next firewall change), then the allocator's free pages.
    pub fn release_memory(&self) {
        hako_sys::sqlite::release_memory(&self.conn());
        self.images.release_memory();
        self.net.release_memory();
        hako_sys::nftables::unload();
        hako_sys::malloc::trim();
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The options the engine runs with.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
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

    /// Finds a container by id, unique id prefix or name.
    pub fn get(&self, what: &str) -> Result<Record> {
        records::find(&self.conn(), what)
    }

    /// Takes the container's operation lock (see locks.rs) and reads its record again.
    fn lock_container(&self, what: &str) -> Result<(crate::locks::ContainerLock, Record)> {
        let rec = self.get(what)?;
        let lock = crate::locks::lock(&self.opts.exec_root, &rec.id)?;
        match self.get(&rec.id) {
            Ok(rec) => Ok((lock, rec)),
            Err(e) => {
                // Removed while we waited: the lock file we opened goes too.
                crate::locks::remove(&self.opts.exec_root, &rec.id);
                Err(e)
            }
        }
    }

    /// All containers, newest first, with their live state (not those whose removal a
    /// process has claimed).
    pub fn list(&self) -> Result<Vec<(Record, LiveState)>> {
        self.list_with(false)
    }

    /// [`Engine::list`], with `removing` those being removed too (`ps` shows them).
    fn list_with(&self, removing: bool) -> Result<Vec<(Record, LiveState)>> {
        let recs = records::all(&self.conn(), removing)?;
        Ok(recs
            .into_iter()
            .map(|r| {
                let s = self.live(&r);
                (r, s)
            })
            .collect())
    }
}
