//! `create`: record, root filesystem, volumes, bundle; undone on failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard_stubs::models::{
    ContainerConfig, HealthConfig, HostConfig, HostConfigCgroupnsModeEnum, MountPoint,
};
use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::mounts::{self, MountKind, ResolvedMount};
use crate::records::{self, Record};
use crate::spec::{self, INIT_PATH, SpecInput};
use crate::{names, user, volumes};

use super::Engine;
use super::validate::validate_host_config;

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
    /// Docker's networking config: per network, aliases, `--ip`, `--ip6`, `--mac-address`.
    pub networking: Option<bollard_stubs::models::NetworkingConfig>,
}

impl Engine {
    /// The systemd driver needs systemd as PID 1 on pure cgroup v2, and `--cgroup-parent`
    /// must then name a slice (Docker's rule and message).
    fn validate_cgroup_driver(&self, host: &HostConfig) -> Result<()> {
        if self.opts.cgroup_driver != crate::CgroupDriver::Systemd {
            return Ok(());
        }
        if !hako_cgroups::systemd::booted() {
            return Err(Error::InvalidArgument(
                "the systemd cgroup manager needs systemd as PID 1, and this host has none: use --cgroup-manager cgroupfs".into(),
            ));
        }
        if hako_cgroups::detect_layout().ok() != Some(hako_cgroups::Layout::V2) {
            return Err(Error::InvalidArgument(
                "the systemd cgroup manager of hako needs a pure cgroup v2 host: use --cgroup-manager cgroupfs".into(),
            ));
        }
        if self.opts.rootless
            && let Err(e) = hako_cgroups::systemd::user_controllers()
        {
            return Err(Error::InvalidArgument(format!(
                "the systemd cgroup manager of rootless hako needs the user's own systemd (systemd --user, loginctl enable-linger): {e}: use --cgroup-manager cgroupfs"
            )));
        }
        if let Some(p) = host.cgroup_parent.as_deref().filter(|p| !p.is_empty())
            && hako_cgroups::systemd::expand_slice(p).is_none()
        {
            return Err(Error::InvalidArgument(format!(
                "cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\" (got {p:?})"
            )));
        }
        Ok(())
    }

    /// Creates a container: record, root filesystem, bundle. Nothing runs yet. On failure
    /// nothing is left behind.
    pub fn create(&self, opts: CreateOptions) -> Result<Record> {
        self.create_inner(opts, false)
    }

    /// [`Engine::create`] for a caller that starts the container right away (`run`): the
    /// root filesystem stays mounted for that start. An overlay's unmount syncs its upper
    /// filesystem (the whole host filesystem under the store: ~20 ms on a busy machine)
    /// and the start would only mount it again. A start that fails unmounts it; a caller
    /// that dies in between leaves a created container mounted until its next start,
    /// stop or removal.
    pub fn create_to_start(&self, opts: CreateOptions) -> Result<Record> {
        self.create_inner(opts, true)
    }

    fn create_inner(&self, opts: CreateOptions, keep_mounted: bool) -> Result<Record> {
        let mut host = opts.host_config.clone();
        validate_host_config(&host)?;
        self.validate_cgroup_driver(&host)?;
        self.check_rootless_network(&host)?;
        // A cgroup namespace of its own unless --cgroupns host (Docker's default on v2;
        // hako keeps it on v1 hosts too), and inspect says so.
        if matches!(
            host.cgroupns_mode,
            None | Some(HostConfigCgroupnsModeEnum::EMPTY)
        ) {
            host.cgroupns_mode = Some(HostConfigCgroupnsModeEnum::PRIVATE);
        }
        self.check_joins(&host)?;
        let mut user_mounts = mounts::from_host_config(&host)?;
        self.volumes_from(&host, &mut user_mounts)?;
        // `-v /missing:/data` makes the host directory (0755, Docker's); a `--mount
        // type=bind` source must exist (the check below).
        for b in host.binds.iter().flatten() {
            let m = mounts::parse_bind(b)?;
            if m.kind == MountKind::Bind && std::fs::symlink_metadata(&m.source).is_err() {
                crate::files::dir(Path::new(&m.source), 0o755)
                    .ctx(|| format!("create the bind source {}", m.source))?;
            }
        }
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
                let config = self.images.run_config(&id)?;
                (id.to_string(), config)
            }
        };

        // Every port the container exposes (its own and the image's), for -P.
        let mut exposed: Vec<String> = opts.config.exposed_ports.clone().unwrap_or_default();
        for k in string_keys(&image_config["ExposedPorts"]) {
            if !exposed.contains(&k) {
                exposed.push(k);
            }
        }
        let attach = self.plan_network(&host, opts.networking.as_ref(), &exposed)?;

        let dir = self.container_dir(&id);
        // Everything from the record to the complete bundle is one flight: a crash leaves
        // a `creating` record that the recovery removes (recovery.rs).
        let flight = self.images.begin_flight(crate::recovery::KIND_ENGINE)?;
        let mut cleanup = Cleanup {
            engine: self,
            id: id.clone(),
            rootfs: false,
            record: false,
            volumes: Vec::new(),
            network: false,
        };
        // The record goes in first (`creating`, listed nowhere until complete): a create
        // killed half-way leaves a record that the recovery removes with everything it
        // names, never an anonymous layer nobody owns.
        let mut name = name;
        let mut first = Record {
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
            removing: false,
        };
        // A generated name another process took since `free_name` looked: pick another.
        let mut attempt = 0;
        loop {
            // Bound first: the connection's guard must be dropped before `free_name`
            // locks it again (a guard in the `match` scrutinee lives through the arms).
            let inserted = records::insert(&self.conn(), &first);
            match inserted {
                Err(Error::NameInUse { .. }) if opts.name.is_none() && attempt < 20 => {
                    attempt += 1;
                    name = self.free_name(&crate::random_id())?;
                    first.name = name.clone();
                }
                other => break other?,
            }
        }
        cleanup.record = true;
        tracing::debug!(container = %id, %name, image = %image_id, "create: record inserted (creating)");
        hako_sys::crash::point("create.record");
        if !attach.is_empty() {
            cleanup.network = true;
            self.net.configure(&id, &attach)?;
        }
        // Only now the directory: a container directory always has a record, so one without
        // is garbage (recovery.rs).
        crate::files::dir(&dir, 0o710).ctx(|| format!("create {}", dir.display()))?;
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
                let mut storage = hako_image::StorageOpts::parse(
                    &host
                        .storage_opt
                        .iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>(),
                )
                .map_err(|e| Error::InvalidArgument(format!("--storage-opt: {e}")))?;
                // `--rm`: the layer goes with the container (podman mounts it volatile too).
                storage.volatile = host.auto_remove == Some(true);
                let m = self.images.prepare_rootfs_with(&image_id, &id, &storage)?;
                cleanup.rootfs = true;
                tracing::debug!(container = %id, rootfs = %m.rootfs.display(), "create: root filesystem mounted");
                hako_sys::crash::point("create.rootfs");
                m.rootfs
            }
        };

        let mut config = opts.config.clone();
        merge_image_config(&mut config, &image_config);
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
        let mut new_volumes = Vec::new();
        for m in all_mounts.iter_mut() {
            if let MountKind::Volume { name, copy } = &m.kind {
                let (vol, new) = volumes::create(
                    &self.conn(),
                    &self.opts.root,
                    name.as_deref(),
                    &HashMap::new(),
                    Some(&id),
                )?;
                // A volume this create made goes with it if the create fails (a named one
                // too: half copied up, it would be nothing the user asked for).
                cleanup.volumes.push((vol.name.clone(), new));
                new_volumes.push((vol.name.clone(), new));
                tracing::debug!(container = %id, volume = %vol.name, new, destination = %m.destination, "create: volume claimed");
                hako_sys::crash::point("create.volume");
                if new && *copy {
                    let inside = rootfs.join(m.destination.trim_start_matches('/'));
                    if let (Ok(src), Ok(base)) = (
                        std::fs::canonicalize(&inside),
                        std::fs::canonicalize(&rootfs),
                    ) && src.starts_with(&base)
                    {
                        volumes::copy_up(&src, Path::new(&vol.mountpoint))?;
                        hako_sys::crash::point("create.copy-up");
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
                    "--init: {} is dynamically linked and cannot run in an arbitrary image; a cargo build of this checkout makes it static (.cargo/config.toml), or point HAKO_INIT at a static one",
                    self.opts.init.display()
                )));
            }
            if !self.opts.init.exists() {
                return Err(Error::InvalidArgument(format!(
                    "--init: {} not found (install hako-init next to hako, or set HAKO_INIT)",
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
        if host.uts_mode.as_deref() == Some("host")
            && config.hostname.as_deref().is_some_and(|h| !h.is_empty())
        {
            return Err(Error::InvalidArgument(
                "conflicting options: hostname and the UTS mode".into(),
            ));
        }
        let hostname = match config.hostname.clone().filter(|h| !h.is_empty()) {
            Some(h) => h,
            None if host.uts_mode.as_deref() == Some("host") => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
            None => id[..12].to_string(),
        };
        config.hostname = Some(hostname.clone());
        let tty = config.tty.unwrap_or(false);
        let mut env = vec![format!("HOSTNAME={hostname}")];
        if tty {
            env.push("TERM=xterm".into());
        }
        // The process gets Docker's defaults (HOSTNAME, TERM with a tty, PATH when the image
        // sets none); the container's Config.Env keeps only the image's and the user's, as
        // dockerd keeps them (a commit would otherwise bake the defaults into the image).
        let given: Vec<String> = config.env.clone().unwrap_or_default();
        let mut merged = given.clone();
        if !merged.iter().any(|e| e.starts_with("PATH=")) {
            merged.insert(0, format!("PATH={}", spec::DEFAULT_PATH));
        }
        for e in merged {
            let key = e.split('=').next().unwrap_or("").to_string();
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        config.env = (!given.is_empty()).then_some(given);
        let mut user = user::resolve(&rootfs, config.user.as_deref().unwrap_or(""))?;
        if let Some(extra) = host.group_add.as_ref().filter(|g| !g.is_empty()) {
            for gid in user::group_ids(&rootfs, extra)? {
                if gid != user.gid && !user.additional_gids.contains(&gid) {
                    user.additional_gids.push(gid);
                }
            }
        }
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
        if opts.rootfs.is_none() && cwd != "/" {
            make_working_dir(&rootfs, &cwd)?;
        }
        spec::write_etc_files(&dir, &hostname, &host)
            .ctx(|| format!("write files in {}", dir.display()))?;
        if !exposed.is_empty() {
            config.exposed_ports = Some(exposed.clone());
        }
        let netns = self.netns_for_spec(&id, &host)?;
        let oci = spec::build(&SpecInput {
            netns: netns.as_deref(),
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
        let mut oci = oci;
        self.check_rootless_resources(&oci)?;
        if self.opts.cgroup_driver == crate::CgroupDriver::Systemd
            && let Some(linux) = oci.linux_mut()
        {
            // slice:prefix:name: the runtime asks systemd for the scope hako-<id>.scope.
            let slice = host
                .cgroup_parent
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or(if self.opts.rootless {
                    "user.slice"
                } else {
                    "system.slice"
                });
            linux.set_cgroups_path(Some(format!("{slice}:hako:{id}").into()));
        }
        // 0600: the process's Env is in there.
        let json = serde_json::to_vec_pretty(&oci)
            .map_err(|e| Error::InvalidArgument(format!("write config.json: {e}")))?;
        crate::files::write(&dir.join("config.json"), &json, crate::files::PRIVATE)
            .ctx(|| "write config.json".into())?;
        tracing::debug!(container = %id, bundle = %dir.display(), "create: bundle written");
        hako_sys::crash::point("create.bundle");

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
            removing: false,
        };
        crate::files::write(
            &dir.join("mounts.json"),
            &serde_json::to_vec(&mount_points(&all_mounts)).unwrap_or_default(),
            crate::files::PRIVATE,
        )
        .ctx(|| "write mounts.json".into())?;
        // Complete: listed from now on.
        records::update(&self.conn(), &rec)?;
        tracing::debug!(container = %id, "create: complete");
        hako_sys::crash::point("create.complete");
        cleanup.disarm();
        flight.complete();
        for (v, new) in &new_volumes {
            if *new {
                self.volume_event(v, "create");
            }
        }
        self.write_event_attributes(&rec);
        self.container_event(&rec, "create", &[]);
        // Mounted for the create's own work (volume copy-up, passwd lookups); a created
        // container is not left mounted: `start` mounts it (Docker's order).
        if !keep_mounted {
            self.unmount_stopped(&rec);
        }
        Ok(rec)
    }

    /// `--volumes-from CONTAINER[:ro|:rw]`: that container's volumes and binds at the same
    /// destinations (a mount of this container's own at a destination wins), read-only or
    /// writable as there unless the mode says otherwise (Docker's rules).
    fn volumes_from(&self, host: &HostConfig, mounts: &mut Vec<ResolvedMount>) -> Result<()> {
        for spec in host.volumes_from.iter().flatten() {
            let (name, mode) = match spec.rsplit_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (spec.as_str(), None),
            };
            let rw = match mode {
                None => None,
                Some("rw") => Some(true),
                Some("ro") => Some(false),
                Some(m) => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid mode for --volumes-from {spec}: {m} (use ro or rw)"
                    )));
                }
            };
            let other = self.get(name)?;
            for mp in self.mount_points(&other.id) {
                let Some(dest) = mp.destination.clone() else {
                    continue;
                };
                let kind = match mp.typ.as_deref() {
                    Some("bind") => MountKind::Bind,
                    Some("volume") => MountKind::Volume {
                        name: mp.name.clone(),
                        copy: false,
                    },
                    _ => continue,
                };
                if mounts.iter().any(|m| m.destination == dest) {
                    continue;
                }
                mounts.push(ResolvedMount {
                    kind,
                    source: mp.source.clone().unwrap_or_default(),
                    destination: dest,
                    rw: rw.unwrap_or(mp.rw.unwrap_or(true)),
                    options: Vec::new(),
                });
            }
        }
        Ok(())
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
}

/// Undoes a half-made `create`.
struct Cleanup<'a> {
    engine: &'a Engine,
    id: String,
    rootfs: bool,
    record: bool,
    volumes: Vec<(String, bool)>,
    network: bool,
}

impl Cleanup<'_> {
    fn disarm(&mut self) {
        self.rootfs = false;
        self.record = false;
        self.volumes.clear();
        self.network = false;
        self.id.clear();
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        let e = self.engine;
        if self.network {
            let _ = e.net.forget(&self.id);
        }
        // Files first, the record (and with it the uses of volumes) last.
        if self.rootfs {
            let _ = e.images.release_rootfs(&self.id);
        }
        let _ = std::fs::remove_dir_all(e.container_dir(&self.id));
        if self.record {
            let _ = records::delete(&e.conn(), &self.id);
        }
        for (v, created_here) in &self.volumes {
            if *created_here {
                let _ = volumes::remove(&e.conn(), &e.opts.root, v);
            }
        }
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
    merge_healthcheck(c, &image["Healthcheck"]);
}

/// Docker's merge of `--health-*` with the image's `HEALTHCHECK`: what the user left unset
/// (no test, zero durations) comes from the image.
fn merge_healthcheck(c: &mut ContainerConfig, image: &Value) {
    let Ok(img) = serde_json::from_value::<HealthConfig>(image.clone()) else {
        return;
    };
    let Some(h) = c.healthcheck.as_mut() else {
        c.healthcheck = Some(img);
        return;
    };
    if h.test.as_ref().is_none_or(Vec::is_empty) {
        h.test = img.test;
    }
    let zero = |v: &Option<i64>| v.is_none_or(|x| x == 0);
    if zero(&h.interval) {
        h.interval = img.interval;
    }
    if zero(&h.timeout) {
        h.timeout = img.timeout;
    }
    if zero(&h.start_period) {
        h.start_period = img.start_period;
    }
    if zero(&h.start_interval) {
        h.start_interval = img.start_interval;
    }
    if zero(&h.retries) {
        h.retries = img.retries;
    }
}

/// Docker makes a missing working directory at create, in the container's layer (root's,
/// 0755), resolved inside the root; a file in the way is its "Cannot mkdir" error.
fn make_working_dir(rootfs: &Path, cwd: &str) -> Result<()> {
    use hako_sys::fs::{Root, Rules};
    use nix::errno::Errno;
    let io = |e: Errno| Error::Io {
        context: format!("working directory {cwd}"),
        source: e.into(),
    };
    let root = Root::open(rootfs, Rules::InRoot).map_err(io)?;
    match root.ensure_dir(cwd) {
        Ok(_) => Ok(()),
        Err(Errno::ENOTDIR | Errno::EEXIST) => Err(Error::InvalidArgument(format!(
            "Cannot mkdir: {cwd} is not a directory"
        ))),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn healthchecks_merge_with_the_image() {
        let image = serde_json::json!({"Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5, "Retries": 7}});
        let mut c = ContainerConfig {
            healthcheck: Some(HealthConfig {
                interval: Some(9),
                ..Default::default()
            }),
            ..Default::default()
        };
        merge_image_config(&mut c, &image);
        let h = c.healthcheck.expect("healthcheck");
        assert_eq!(
            h.test,
            Some(vec!["CMD-SHELL".to_string(), "true".to_string()])
        );
        assert_eq!((h.interval, h.retries), (Some(9), Some(7)));
        let mut c = ContainerConfig::default();
        merge_image_config(&mut c, &serde_json::json!({"Cmd": ["sh"]}));
        assert!(c.healthcheck.is_none());
    }
}
