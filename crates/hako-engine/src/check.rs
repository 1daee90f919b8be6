//! `hako system check [--repair]`: the store's consistency, from the database to the
//! kernel.
//!
//! ```text
//! image store      blobs, layers, reference counts, images, container layers (hako-image)
//! containers       unfinished claims, record vs bundle, record vs root filesystem,
//!                  directories and lock files without a record
//! processes        shims of containers that have no record
//! kernel           mounts under the roots that no container owns; cgroups of this store's
//!                  containers that are not running (the cgroup parent is shared by every
//!                  installation on the host, so others' are not judged)
//! volumes          unfinished removals, directories without a record, records without data
//! ```
//!
//! Every finding is either *garbage* (what a prune or the next open after a crash removes
//! anyway) or *damage*. Without `--repair` nothing changes. With it, the check first waits
//! for the operations in flight (the exclusive lock), finishes interrupted work as the
//! recovery does, removes what no record owns (unmounts, kills orphan shims, removes
//! cgroups), fixes reference counts and marks damaged images, so that afterwards only
//! damage that needs the user (a container whose bundle is gone: `rm` it) remains.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hako_image::{Exclusive, Finding};

use crate::engine::Engine;
use crate::error::Result;
use crate::recovery::{KIND_ENGINE, container_dirs, remove_tree, shim_alive};
use crate::{records, volumes};

/// What `system check` found and counted.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Findings, damage first.
    pub findings: Vec<Finding>,
    /// Images checked.
    pub images: usize,
    /// Image layers checked.
    pub layers: usize,
    /// Blobs checked (each one hashed).
    pub blobs: usize,
    /// Containers checked.
    pub containers: usize,
    /// Volumes checked.
    pub volumes: usize,
    /// How long it took.
    pub elapsed: Duration,
}

impl CheckReport {
    /// Findings that are damage and were not repaired.
    pub fn damage_left(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| !f.garbage && !f.repaired)
            .count()
    }
}

fn finding(object: impl Into<String>, problem: impl Into<String>, garbage: bool) -> Finding {
    Finding {
        object: object.into(),
        problem: problem.into(),
        garbage,
        repaired: false,
    }
}

impl Engine {
    /// Checks the whole installation; with `repair` fixes what it can (see the module docs).
    pub fn system_check(&self, repair: bool) -> Result<CheckReport> {
        let started = Instant::now();
        let lock = if repair {
            Some(self.images().exclusive()?)
        } else {
            None
        };
        let mut report = CheckReport::default();
        let mut out = Vec::new();
        if let Some(lock) = &lock {
            let before = self.engine_findings(Some(lock))?;
            // Finishes claims and removes record-less directories, as after a crash.
            let recovered = self.recover_engine(lock);
            out.extend(before.into_iter().map(|mut f| {
                f.repaired = f.repaired || (f.garbage && recovered.is_ok());
                f
            }));
            if let Err(e) = recovered {
                out.push(finding("recovery", e.to_string(), false));
            }
            out.extend(self.kernel_findings(Some(lock))?);
        } else {
            out.extend(self.engine_findings(None)?);
            out.extend(self.kernel_findings(None)?);
        }
        let (mut image_findings, counts) = self.images().check(lock.as_ref())?;
        // An interrupted create or removal (a full disk can stop even its rollback): what
        // its root filesystem lacks is part of the garbage the next open finishes.
        let unfinished: HashSet<String> = out
            .iter()
            .filter(|f| f.garbage && f.problem.starts_with("a create or removal was interrupted"))
            .map(|f| f.object.clone())
            .collect();
        image_findings.retain(|f| f.garbage || !unfinished.contains(&f.object));
        out.extend(image_findings);
        if let Some(lock) = &lock {
            self.images().clear_crashed_flights(
                lock,
                &[
                    hako_image::KIND_IMAGE,
                    KIND_ENGINE,
                    crate::engine::KIND_BUILD,
                ],
            )?;
        }
        out.sort_by_key(|f| f.garbage);
        report.findings = out;
        report.images = counts.images;
        report.layers = counts.layers;
        report.blobs = counts.blobs;
        report.containers = records::all_ids(&self.conn())?.len();
        report.volumes = volumes::all_names(&self.conn())?.len();
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Records, directories, lock files and volumes.
    fn engine_findings(&self, repair: Option<&Exclusive>) -> Result<Vec<Finding>> {
        let mut out = Vec::new();
        let root = &self.options().root;
        let exec = &self.options().exec_root;
        // Listed before the records are read (see recovery.rs).
        let dirs = [
            (
                root.join("containers"),
                container_dirs(&root.join("containers")),
            ),
            (
                exec.join("containers"),
                container_dirs(&exec.join("containers")),
            ),
        ];
        let lock_files: Vec<String> = names_in(&exec.join("locks"));
        let vol_dirs: Vec<String> = names_in(&root.join("volumes"));
        let interrupted = self.images().crashed_flights(&[KIND_ENGINE])?;
        let ids: HashSet<String> = records::all_ids(&self.conn())?.into_iter().collect();
        if interrupted {
            let unfinished = records::unfinished(&self.conn())?;
            for (r, _, _) in unfinished {
                out.push(finding(
                    format!("container {}", &r.id[..12]),
                    "a create or removal was interrupted; the next open finishes it",
                    true,
                ));
            }
            let unfinished = volumes::unfinished(&self.conn())?;
            for v in unfinished {
                out.push(finding(
                    format!("volume {v}"),
                    "a removal was interrupted; the next open finishes it",
                    true,
                ));
            }
        }
        for (dir, names) in &dirs {
            for n in names.iter().filter(|n| !ids.contains(*n)) {
                let p = dir.join(n);
                if shim_alive(&p) {
                    continue; // reported with the processes
                }
                out.push(finding(
                    p.display().to_string(),
                    "directory of a container that has no record",
                    true,
                ));
            }
        }
        for n in &lock_files {
            let id = n.strip_suffix(".attached").unwrap_or(n);
            if id.len() == 64 && !ids.contains(id) {
                out.push(finding(
                    exec.join("locks").join(n).display().to_string(),
                    "lock file of a container that has no record",
                    true,
                ));
            }
        }
        let layer_ids: HashSet<String> = self.images().container_layer_ids()?.into_iter().collect();
        let complete = records::all(&self.conn(), false)?;
        for r in &complete {
            let short = &r.id[..12];
            let bundle = root.join("containers").join(&r.id).join("config.json");
            if !bundle.exists() {
                out.push(finding(
                    format!("container {short}"),
                    format!("{} is missing: remove the container", bundle.display()),
                    false,
                ));
            }
            if r.rootfs_managed && !layer_ids.contains(&r.id) {
                out.push(finding(
                    format!("container {short}"),
                    "it has no root filesystem: remove the container",
                    false,
                ));
            }
        }
        for (id, _) in self.dead_builds() {
            out.push(finding(
                format!("build {id}"),
                "was interrupted; the next open removes its RUN containers, root filesystems and directories",
                true,
            ));
        }
        for (container, network) in self.net().stale_endpoints()? {
            out.push(finding(
                format!("container {}", &container[..container.len().min(12)]),
                format!(
                    "has an endpoint on network {} without being connected (a connect or disconnect was interrupted); the next open removes it",
                    &network[..network.len().min(12)]
                ),
                true,
            ));
        }
        let vols: HashSet<String> = volumes::all_names(&self.conn())?.into_iter().collect();
        for n in vol_dirs.iter().filter(|n| !vols.contains(*n)) {
            out.push(finding(
                root.join("volumes").join(n).display().to_string(),
                "directory of a volume that has no record",
                true,
            ));
        }
        for (v, _) in volumes::list(&self.conn(), root)? {
            if !Path::new(&v.mountpoint).is_dir() {
                let mut f = finding(
                    format!("volume {}", v.name),
                    format!("its data directory {} is missing", v.mountpoint),
                    false,
                );
                if repair.is_some() {
                    // Its data is gone either way; an empty directory lets it be used again.
                    f.repaired = std::fs::create_dir_all(&v.mountpoint).is_ok();
                    f.problem.push_str("; made anew, empty");
                }
                out.push(f);
            }
        }
        Ok(out)
    }

    /// Shims, mounts and cgroups that no container owns.
    fn kernel_findings(&self, repair: Option<&Exclusive>) -> Result<Vec<Finding>> {
        let mut out = Vec::new();
        let root = self.options().root.clone();
        let exec = self.options().exec_root.clone();
        let recs = records::all(&self.conn(), false)?;
        let ids: HashSet<String> = records::all_ids(&self.conn())?.into_iter().collect();
        // Shims whose container has no record: the container goes with them.
        for s in shims_under(&exec.join("containers")) {
            if !ids.contains(&s.id) {
                let mut f = finding(
                    format!("shim {}", s.pid),
                    format!("monitors container {} that has no record", &s.id[..12]),
                    false,
                );
                if repair.is_some() {
                    runtime_delete(&s.runtime, &s.runtime_root, &s.id);
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(s.pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    // Gone before its directories go: a shim that saw its container die
                    // may be writing (or have become its exit command) until the signal
                    // lands. The container directory was passed over above while the shim
                    // lived; the recovery that exit command ran removed it, when the
                    // SIGKILL did not stop it first.
                    wait_dead(s.pid, Duration::from_secs(2));
                    let _ = remove_tree(&exec.join("containers").join(&s.id));
                    let _ = remove_tree(&root.join("containers").join(&s.id));
                    f.repaired = true;
                }
                out.push(f);
            }
        }
        // Runtime state of containers that have no record.
        for rt in names_in(&exec.join("runtime")) {
            let rt_root = exec.join("runtime").join(&rt);
            for id in container_dirs(&rt_root) {
                if ids.contains(&id) {
                    continue;
                }
                let mut f = finding(
                    rt_root.join(&id).display().to_string(),
                    "runtime state of a container that has no record",
                    false,
                );
                if repair.is_some()
                    && let Ok(bin) = self.runtime_path(&rt)
                {
                    runtime_delete(&bin, &rt_root, &id);
                    f.repaired = !rt_root.join(&id).exists();
                }
                out.push(f);
            }
        }
        // Mounts under the roots that no container or layer owns.
        let layers: HashSet<String> = self.images().container_layer_ids()?.into_iter().collect();
        for mp in mounts_under(&[&root, &exec]) {
            let owned = mp.components().any(|c| {
                let s = c.as_os_str().to_string_lossy();
                ids.contains(s.as_ref()) || layers.contains(s.as_ref())
            });
            match hako_net::spare_alive(&mp) {
                // A running `hako serve`'s spare network namespace.
                Some(true) => continue,
                // One of a server that is gone: garbage, as the next open removes it.
                Some(false) => {
                    let mut f = finding(
                        format!("mount {}", mp.display()),
                        "spare network namespace of a hako serve that is gone",
                        true,
                    );
                    if repair.is_some() {
                        let _ = hako_net::netns::remove(&mp);
                        f.repaired = !mp.exists();
                    }
                    out.push(f);
                    continue;
                }
                None => {}
            }
            if !owned {
                let mut f = finding(
                    format!("mount {}", mp.display()),
                    "no container owns it",
                    false,
                );
                if repair.is_some() {
                    f.repaired = nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH).is_ok();
                }
                out.push(f);
            }
        }
        // cgroups of containers that do not run. A container created by its shim but not
        // started yet (the CLI that ran `start` died in between) has its runtime's init
        // waiting in the cgroup: the shim owns it, `start` or `rm` ends the wait.
        let active: HashSet<String> = recs
            .iter()
            .filter(|r| {
                let live = self.live(r);
                live.status.is_active() || live.monitor
            })
            .map(|r| r.id.clone())
            .collect();
        let mut parents: HashSet<String> = recs
            .iter()
            .filter_map(|r| r.host_config.cgroup_parent.clone())
            .filter(|p| !p.is_empty())
            .collect();
        parents.insert("/hako".into());
        for dir in container_cgroups(&parents) {
            let Some(id) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            // The cgroup parent is shared by every hako installation on the host: only the
            // containers of this one are ours to judge.
            if !ids.contains(&id) || active.contains(&id) {
                continue;
            }
            let tasks = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let mut f = finding(
                format!("cgroup {}", dir.display()),
                if tasks.trim().is_empty() {
                    "of a container that is not running".to_string()
                } else {
                    format!(
                        "has processes ({}) but no running container",
                        tasks.split_whitespace().count()
                    )
                },
                false,
            );
            if repair.is_some() && tasks.trim().is_empty() {
                f.repaired = std::fs::remove_dir(&dir).is_ok();
            }
            out.push(f);
        }
        // Network state (addresses, ports, interfaces, namespace) of containers without a
        // record: the exit command that gives it back needs the record.
        for c in self.net().containers()? {
            // A build's RUN containers have no record (a dead build's are reported above).
            if ids.contains(&c) || c.starts_with("hb-") {
                continue;
            }
            let mut f = finding(
                format!("container {}", &c[..c.len().min(12)]),
                "has network state (addresses, ports, interfaces) but no record",
                false,
            );
            if repair.is_some() {
                f.repaired = self.net().forget(&c).is_ok();
            }
            out.push(f);
        }
        Ok(out)
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A hako-shim process, from its command line.
struct Shim {
    pid: i32,
    id: String,
    runtime: PathBuf,
    runtime_root: PathBuf,
}

/// `RUNTIME --root ROOT delete --force ID`: kills the container and removes its state.
fn runtime_delete(runtime: &Path, root: &Path, id: &str) {
    let _ = std::process::Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["delete", "--force", id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// hako-shim processes whose state dir is under `dir`.
fn shims_under(dir: &Path) -> Vec<Shim> {
    let prefix = dir.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.first().is_some_and(|a| a.ends_with("hako-shim")) {
            continue;
        }
        let arg = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        if let Some(sd) = arg("--state-dir")
            && let Some(rest) = sd.strip_prefix(&prefix)
        {
            let id = rest.trim_start_matches('/').to_string();
            if id.len() == 64 {
                out.push(Shim {
                    pid,
                    id,
                    runtime: PathBuf::from(arg("--runtime").unwrap_or_default()),
                    runtime_root: PathBuf::from(arg("--runtime-root").unwrap_or_default()),
                });
            }
        }
    }
    out
}

/// Mount points at or under any of `roots`, deepest first.
fn mounts_under(roots: &[&Path]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| roots.iter().any(|r| m.starts_with(r) && m != r))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Directories named like container ids under each cgroup parent, in every hierarchy.
fn container_cgroups(parents: &HashSet<String>) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut hierarchies = vec![base.to_path_buf()];
    for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            hierarchies.push(e.path());
        }
    }
    let mut out = Vec::new();
    for h in hierarchies {
        for p in parents {
            let dir = h.join(p.trim_start_matches('/'));
            for n in container_dirs(&dir) {
                out.push(dir.join(n));
            }
        }
    }
    out
}

/// Waits (at most `timeout`) until process `pid` has exited (gone, or a zombie).
fn wait_dead(pid: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match hako_sys::process::proc_stat(pid) {
            None | Some(('Z' | 'X', _)) => return,
            Some(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}
