//! RUN containers: `RUNTIME run` in the foreground, no shim.
//!
//! Why not the shim path of `hako run`: a build container belongs to one step of one
//! build. It needs no detach, attach, logs, restart policy or record in `hako ps`; its
//! output goes to the build's progress and it is deleted when the step ends. The runtime's
//! `run` does exactly that with one process less, and a build that dies (kill -9) is
//! cleaned up by its lock file (`collect_dead_builds`). The bundle is the same Docker
//! default spec `hako run` uses (capabilities, seccomp, masked paths, /dev, /proc...).
//!
//! Networking is Docker's: the default bridge unless the build asks for `none` or `host`.
//! A RUN on the bridge gets a namespace, address and veth of its own for the step, set up
//! and given back here (a dead build's by `remove_build_leftovers`), as `hako run` does.
//!
//! Mount points the runtime creates in the image for its own mounts (`/etc/hosts`,
//! `/proc`...) are removed again when they were not there before, so they never end up in
//! the step's layer (Docker keeps them in an init layer; BuildKit removes them the same
//! way).

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bollard_stubs::models::{ContainerConfig, HostConfig};
use hako_build::progress::Cancel;
use hako_build::worker::{Network, Rootfs, RunMount, RunRequest, WResult, WorkerError};

use super::build_worker::EngineWorker;
use crate::mounts::{MountKind, ResolvedMount};
use crate::spec::{self, SpecInput};

/// BuildKit's hostname for RUN containers.
const HOSTNAME: &str = "buildkitsandbox";

/// Paths the runtime mounts over in every container.
const RUNTIME_TARGETS: &[&str] = &[
    "proc",
    "dev",
    "sys",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
];

fn werr(e: impl std::fmt::Display) -> WorkerError {
    WorkerError(e.to_string())
}

/// A RUN's place on the default bridge; dropping it gives everything back (interface,
/// address, namespace, and the attachment record).
struct BridgeNet<'a> {
    net: &'a hako_net::Net,
    id: String,
    netns: std::path::PathBuf,
}

impl<'a> BridgeNet<'a> {
    /// Attaches container `id` to `bridge` and sets its network up; writes its
    /// `/etc/hosts` and `resolv.conf` into `bundle`.
    fn setup(net: &'a hako_net::Net, id: &str, bundle: &Path) -> WResult<BridgeNet<'a>> {
        let attach = hako_net::AttachRequest {
            network: "bridge".into(),
            aliases: Vec::new(),
            ipv4: None,
            ipv6: None,
            mac: None,
        };
        // From here on the guard gives back whatever part exists.
        let g = BridgeNet {
            net,
            id: id.to_string(),
            netns: net.netns_path(id),
        };
        net.configure(id, &[attach])
            .map_err(|e| werr(format!("RUN on the bridge network: {e}")))?;
        let setup = net
            .setup(&hako_net::SetupRequest {
                container: id.to_string(),
                name: id.to_string(),
                hostname: HOSTNAME.into(),
                ports: Vec::new(),
                dns: hako_net::files::DnsConfig::default(),
                extra_hosts: Vec::new(),
            })
            .map_err(|e| werr(format!("RUN on the bridge network: {e}")))?;
        for (name, text) in [("hosts", &setup.hosts), ("resolv.conf", &setup.resolv)] {
            std::fs::write(bundle.join(name), text)
                .map_err(|e| werr(format!("write {}: {e}", bundle.join(name).display())))?;
        }
        Ok(g)
    }
}

impl Drop for BridgeNet<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.net.forget(&self.id) {
            tracing::warn!(container = %self.id, error = %e, "give back a RUN's network");
        }
    }
}

/// The paths among `targets` (relative to `rootfs`) that do not exist yet.
fn missing(rootfs: &Path, targets: &[String]) -> Vec<String> {
    targets
        .iter()
        .filter(|t| std::fs::symlink_metadata(rootfs.join(t)).is_err())
        .cloned()
        .collect()
}

/// The directories the runtime's mount points are made in (`etc` for `etc/hosts`, the
/// root for `proc`), as they were before the RUN: their times, and whether an overlay
/// upper dir held them already.
struct StubParents {
    upper: Option<std::path::PathBuf>,
    dirs: Vec<(String, std::fs::FileTimes, bool)>,
}

impl StubParents {
    /// Records the parents of the `created` mount points of `rootfs`.
    fn record(rootfs: &Path, created: &[String]) -> StubParents {
        // overlay2 mounts <layer>/merged over <layer>/diff (the upper dir).
        let upper = (rootfs.file_name() == Some(std::ffi::OsStr::new("merged")))
            .then(|| rootfs.parent().map(|p| p.join("diff")))
            .flatten()
            .filter(|u| u.is_dir());
        let mut dirs: Vec<(String, std::fs::FileTimes, bool)> = Vec::new();
        for c in created {
            let parent = Path::new(c)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if dirs.iter().any(|(d, _, _)| *d == parent) {
                continue;
            }
            let Ok(md) = std::fs::metadata(rootfs.join(&parent)) else {
                continue;
            };
            let (Ok(a), Ok(m)) = (md.accessed(), md.modified()) else {
                continue;
            };
            let in_upper = upper
                .as_ref()
                .is_some_and(|u| parent.is_empty() || u.join(&parent).exists());
            dirs.push((
                parent,
                std::fs::FileTimes::new().set_accessed(a).set_modified(m),
                in_upper,
            ));
        }
        StubParents { upper, dirs }
    }

    /// After the mount points are gone: the parents' times back, and a directory the
    /// overlay copied up only for them (empty, not opaque, not there before) out of the
    /// upper dir, so a RUN that changed nothing there leaves nothing in its layer. Docker
    /// keeps these mount points in an init layer; BuildKit restores the times the same way.
    fn restore(&self, rootfs: &Path) {
        for (dir, times, in_upper) in &self.dirs {
            if let Ok(f) = std::fs::File::open(rootfs.join(dir)) {
                let _ = f.set_times(*times);
            }
            let Some(upper) = self.upper.as_ref().filter(|_| !in_upper && !dir.is_empty()) else {
                continue;
            };
            let copied = upper.join(dir);
            let empty = std::fs::read_dir(&copied).is_ok_and(|mut d| d.next().is_none());
            let opaque = matches!(
                xattr::get(&copied, "trusted.overlay.opaque"),
                Ok(Some(v)) if v == b"y"
            );
            if empty && !opaque {
                let _ = std::fs::remove_dir(&copied);
            }
        }
    }
}

/// Removes empty mount points the runtime made (files or directories, deepest first).
fn remove_created(rootfs: &Path, created: &[String]) {
    let mut c: Vec<&String> = created.iter().collect();
    c.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for p in c {
        let full = rootfs.join(p);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(&full);
            }
            Ok(m) if m.is_file() && m.len() == 0 => {
                let _ = std::fs::remove_file(&full);
            }
            _ => {}
        }
    }
}

impl EngineWorker<'_> {
    /// Runs `req` on `rootfs` to completion; returns the exit code.
    pub(super) fn run_container(
        &self,
        rootfs: &dyn Rootfs,
        req: &RunRequest,
        out: &mut dyn FnMut(u8, &[u8]),
        cancel: &Cancel,
    ) -> WResult<i32> {
        let id = rootfs.id().to_string();
        let suffix = id
            .strip_prefix(&format!("hb-{}-", self.build_id))
            .unwrap_or(&id)
            .to_string();
        let bundle = self.bundles.join(&suffix);
        std::fs::create_dir_all(&bundle)
            .map_err(|e| werr(format!("create {}: {e}", bundle.display())))?;
        let result = self.run_in(&id, &bundle, rootfs.path(), req, out, cancel);
        let _ = std::fs::remove_dir_all(&bundle);
        result
    }

    fn run_in(
        &self,
        id: &str,
        bundle: &Path,
        root: &Path,
        req: &RunRequest,
        out: &mut dyn FnMut(u8, &[u8]),
        cancel: &Cancel,
    ) -> WResult<i32> {
        let engine = self.engine;
        let user = crate::user::resolve(root, &req.user).map_err(werr)?;
        let mut env = req.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={}", spec::DEFAULT_PATH));
        }
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", user.home));
        }
        let host = HostConfig {
            network_mode: Some(
                match req.network {
                    Network::None => "none",
                    Network::Host => "host",
                    Network::Default => "bridge",
                }
                .into(),
            ),
            privileged: Some(req.insecure),
            ..HostConfig::default()
        };
        let mounts: Vec<ResolvedMount> = req
            .mounts
            .iter()
            .map(|m| match m {
                RunMount::Bind {
                    source,
                    target,
                    readonly,
                } => ResolvedMount {
                    kind: MountKind::Bind,
                    source: source.display().to_string(),
                    destination: target.clone(),
                    rw: !readonly,
                    options: Vec::new(),
                },
                RunMount::Tmpfs { target, size } => {
                    let mut options = vec![
                        "rw".to_string(),
                        "nosuid".into(),
                        "nodev".into(),
                        "mode=1777".into(),
                    ];
                    if let Some(s) = size {
                        options.push(format!("size={s}"));
                    }
                    ResolvedMount {
                        kind: MountKind::Tmpfs,
                        source: "tmpfs".into(),
                        destination: target.clone(),
                        rw: true,
                        options,
                    }
                }
            })
            .collect();
        let targets: Vec<String> = RUNTIME_TARGETS.iter().map(|s| s.to_string()).collect();
        let created_before = missing(root, &targets);
        let parents = StubParents::record(root, &created_before);
        spec::write_etc_files(bundle, HOSTNAME, &host)
            .map_err(|e| werr(format!("write {}: {e}", bundle.display())))?;
        // Held until the container is gone (declared before the runtime's child).
        // Rootless: no bridge within the user's reach; a namespace pasta connects instead.
        let rootless_net = match req.network {
            Network::Default if engine.opts.rootless => Some(
                engine
                    .rootless_run_network(id)
                    .map_err(|e| werr(format!("RUN's network: {e}")))?,
            ),
            _ => None,
        };
        let bridge = match req.network {
            Network::Default if rootless_net.is_none() => {
                Some(BridgeNet::setup(engine.net(), id, bundle)?)
            }
            _ => None,
        };
        let config = ContainerConfig {
            tty: Some(false),
            ..ContainerConfig::default()
        };
        let oci = spec::build(&SpecInput {
            id,
            config: &config,
            host: &host,
            rootfs: root,
            container_dir: bundle,
            mounts: &mounts,
            init: None,
            args: req.argv.clone(),
            env,
            cwd: req.cwd.clone(),
            user: &user,
            hostname: HOSTNAME.into(),
            netns: bridge
                .as_ref()
                .map(|b| b.netns.as_path())
                .or(rootless_net.as_ref().map(|r| r.path.as_path())),
        })
        .map_err(werr)?;
        oci.save(bundle.join("config.json"))
            .map_err(|e| werr(format!("write config.json: {e}")))?;
        let runtime = engine.opts.runtime.clone();
        let state_root = engine.runtime_root("hako-runtime");
        let mut cmd = Command::new(&runtime);
        cmd.arg("--root")
            .arg(&state_root)
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a ctrl-c at the terminal is the build's to handle.
            .process_group(0);
        // A build killed (kill -9) takes the runtime with it: the next open deletes the
        // container, which a runtime still creating it would make again afterwards.
        hako_sys::process::die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| werr(format!("run the OCI runtime {}: {e}", runtime.display())))?;
        hako_sys::crash::point("build.run-spawned");
        let (tx, rx) = mpsc::channel::<(u8, Vec<u8>)>();
        let mut pumps = Vec::new();
        for (stream, pipe) in [
            (
                1u8,
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
            (
                2u8,
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
        ] {
            let Some(mut pipe) = pipe else { continue };
            let tx = tx.clone();
            pumps.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.send((stream, buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
        drop(tx);
        // On cancel: SIGKILL to every process of the container, again each second until
        // its output ends; after a few tries the runtime process itself (the delete below
        // then removes the container).
        let mut kills = 0u32;
        let mut last_kill: Option<std::time::Instant> = None;
        let mut first_output = true;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok((s, data)) => {
                    out(s, &data);
                    if std::mem::take(&mut first_output) {
                        hako_sys::crash::point("build.run-output");
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if cancel.is_cancelled()
                && last_kill.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
            {
                last_kill = Some(std::time::Instant::now());
                kills += 1;
                if kills > 5 {
                    let _ = child.kill();
                }
                match Command::new(&runtime)
                    .arg("--root")
                    .arg(&state_root)
                    .args(["kill", "--all", id, "KILL"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .output()
                {
                    Ok(o) if !o.status.success() => tracing::warn!(
                        container = id,
                        error = %String::from_utf8_lossy(&o.stderr).trim(),
                        "kill a cancelled RUN"
                    ),
                    Err(e) => tracing::warn!(container = id, error = %e, "kill a cancelled RUN"),
                    Ok(_) => {}
                }
            }
        }
        for p in pumps {
            let _ = p.join();
        }
        let status = child
            .wait()
            .map_err(|e| werr(format!("wait for the OCI runtime: {e}")))?;
        hako_sys::crash::point("build.run-exited");
        // `run` deletes the container when it exits; make sure (a killed runtime does not).
        let _ = Command::new(&runtime)
            .arg("--root")
            .arg(&state_root)
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        remove_created(root, &created_before);
        parents.restore(root);
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}
