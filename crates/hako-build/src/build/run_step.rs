//! RUN (with `--mount`, `--network`, `--security`) and WORKDIR's `mkdir -p`.
//!
//! Mount targets that the runtime had to create in the image (an empty file or directory
//! that was not there before) are removed again before the layer is taken, so a secret
//! or cache mount leaves no trace in the image (BuildKit does the same).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hako_sys::fs::{Root, Rules, fd_path};
use nix::fcntl::OFlag;
use serde_json::{Value, json};

use super::plan::stage_ref;
use super::{Build, BuildError, Fs, key};
use crate::copy::{self, SelectOptions, SourceRoot, WriteOptions};
use crate::dispatch::RunStep;
use crate::mounts::{self, MountSpec};
use crate::progress::Event;
use crate::worker::{Network, Rootfs, RunMount, RunRequest, StepResult};

fn werr(e: crate::worker::WorkerError) -> BuildError {
    BuildError::new(e.0)
}

/// The source of a `from=` mount: a stage's key or an image id, and its layers.
enum FromRoot {
    Stage(super::Fs),
    Image(Box<crate::worker::BaseImage>),
}

fn from_root(b: &Build<'_>, stage: usize, from: &str) -> Result<FromRoot, BuildError> {
    match stage_ref(&b.stages, from, stage) {
        Some(j) => Ok(FromRoot::Stage(b.wait_stage(j)?.fs.clone())),
        None => {
            let img = b
                .worker
                .base_image(from, None, false, &mut |_| {})
                .map_err(werr)?;
            Ok(FromRoot::Image(Box::new(img)))
        }
    }
}

/// The key description of one mount, and what is needed to make it.
fn describe(b: &Build<'_>, stage: usize, m: &MountSpec) -> Result<Value, BuildError> {
    Ok(match m {
        MountSpec::Bind {
            target,
            source,
            from: None,
            readonly,
        } => {
            let root = b.context.root()?;
            let items = copy::select(
                root,
                std::slice::from_ref(source),
                &SelectOptions::default(),
            )
            .map_err(|e| BuildError::new(format!("RUN --mount bind source: {e}")))?;
            json!({"type": "bind", "target": target, "readonly": readonly, "context": copy::digest(&items), "source": source})
        }
        MountSpec::Bind {
            target,
            source,
            from: Some(f),
            readonly,
        } => {
            let src = match from_root(b, stage, f)? {
                FromRoot::Stage(fs) => fs.key,
                FromRoot::Image(img) => img.id,
            };
            json!({"type": "bind", "target": target, "readonly": readonly, "from": src, "source": source})
        }
        // The cache's id and contents are not inputs: a cache mount only speeds a step up.
        MountSpec::Cache {
            target,
            mode,
            uid,
            gid,
            readonly,
            ..
        } => {
            json!({"type": "cache", "target": target, "mode": mode, "uid": uid, "gid": gid, "readonly": readonly})
        }
        MountSpec::Tmpfs { target, size } => {
            json!({"type": "tmpfs", "target": target, "size": size})
        }
        // The value of a secret is never an input (nor stored anywhere).
        MountSpec::Secret {
            id,
            target,
            env,
            mode,
            uid,
            gid,
            ..
        } => {
            json!({"type": "secret", "id": id, "target": target, "env": env, "mode": mode, "uid": uid, "gid": gid})
        }
    })
}

fn network(b: &Build<'_>, r: &RunStep) -> Result<Network, BuildError> {
    match r.network.as_deref() {
        None | Some("default") => Ok(b.opts.network),
        Some("none") => Ok(Network::None),
        Some("host") if b.opts.network == Network::Host => Ok(Network::Host),
        Some("host") => Err(BuildError::new(
            "RUN --network=host needs the build to allow it: hako build --network=host",
        )),
        Some(other) => Err(BuildError::new(format!(
            "unsupported network mode {other:?} (default, none, host)"
        ))),
    }
}

/// A path in the rootfs, resolved in it, as a host path (for bind mounts).
fn host_path_in(root: &Path, rel: &str) -> Result<PathBuf, BuildError> {
    let dir = Root::open(root, Rules::InRoot)
        .map_err(|e| BuildError::new(format!("open {}: {e}", root.display())))?;
    let rel = rel.trim_start_matches('/');
    let fd = dir
        .open_at(rel, OFlag::O_PATH)
        .map_err(|e| BuildError::new(format!("RUN --mount source /{rel}: {e}")))?;
    std::fs::read_link(fd_path(&fd))
        .map_err(|e| BuildError::new(format!("RUN --mount source /{rel}: {e}")))
}

/// What existed in the image at a mount target before the run.
struct Stub {
    target: String,
    /// The deepest ancestor (or the target itself) that existed.
    existing: String,
}

fn stub(rootfs: &Path, target: &str) -> Stub {
    let t = target.trim_matches('/').to_string();
    let mut existing = t.clone();
    loop {
        if existing.is_empty() || std::fs::symlink_metadata(rootfs.join(&existing)).is_ok() {
            break;
        }
        existing = existing
            .rsplit_once('/')
            .map_or(String::new(), |(p, _)| p.to_string());
    }
    Stub {
        target: t,
        existing,
    }
}

/// Removes a mount point the runtime created (empty file or directory) and the empty
/// directories it needed, up to what existed before.
fn remove_stub(rootfs: &Path, s: &Stub) {
    let mut cur = s.target.clone();
    while cur != s.existing && !cur.is_empty() {
        let p = rootfs.join(&cur);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                if std::fs::remove_dir(&p).is_err() {
                    return;
                }
            }
            Ok(m) if m.is_file() && m.len() == 0 => {
                if std::fs::remove_file(&p).is_err() {
                    return;
                }
            }
            _ => return,
        }
        cur = cur
            .rsplit_once('/')
            .map_or(String::new(), |(p, _)| p.to_string());
    }
}

/// Runs a RUN step (or takes it from the cache). Returns (key, result).
pub(crate) fn run(
    b: &Build<'_>,
    stage: usize,
    fs: &Fs,
    r: &RunStep,
    vid: u64,
) -> Result<(String, StepResult), BuildError> {
    let specs: Vec<MountSpec> = r
        .mounts
        .iter()
        .map(|m| mounts::parse(m).map_err(BuildError::new))
        .collect::<Result<_, _>>()?;
    let net = network(b, r)?;
    let insecure = match r.security.as_deref() {
        None | Some("sandbox") => false,
        Some("insecure") => {
            return Err(BuildError::new(
                "RUN --security=insecure needs the security.insecure entitlement, which hako build does not grant",
            ));
        }
        Some(o) => return Err(BuildError::new(format!("unsupported security mode {o:?}"))),
    };
    let mut descs = Vec::new();
    for m in &specs {
        descs.push(describe(b, stage, m)?);
    }
    let k = key::step(
        &fs.key,
        "run",
        &json!({
            "argv": r.argv,
            "env": r.env,
            "user": r.user,
            "cwd": r.cwd,
            "network": format!("{net:?}"),
            "mounts": descs,
            "script": r.script,
        }),
    );
    let _claim = b.claim(&k);
    if !b.opts.no_cache
        && let Some(hit) = b.worker.cache_get(&k).map_err(werr)?
    {
        b.progress.event(Event::Cached { id: vid });
        return Ok((k, hit));
    }
    let rootfs = b.worker.rootfs(&fs.layers).map_err(werr)?;
    let scratch = b.opts.scratch.join(format!("run-{vid}"));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| BuildError::new(format!("create {}: {e}", scratch.display())))?;
    let result = execute(
        b, stage, fs, r, &specs, net, insecure, vid, rootfs, &scratch, &k,
    );
    let _ = std::fs::remove_dir_all(&scratch);
    result.map(|res| (k, res))
}

#[expect(clippy::too_many_arguments, reason = "one step's whole context")]
fn execute(
    b: &Build<'_>,
    stage: usize,
    fs: &Fs,
    r: &RunStep,
    specs: &[MountSpec],
    net: Network,
    insecure: bool,
    vid: u64,
    rootfs: Box<dyn Rootfs + '_>,
    scratch: &Path,
    k: &str,
) -> Result<StepResult, BuildError> {
    let mut held: Vec<Box<dyn Rootfs + '_>> = Vec::new();
    let mut mounts = Vec::new();
    let mut env = r.env.clone();
    env.extend(r.proxy_env.iter().cloned());
    let mut stubs = Vec::new();
    let io = |what: &str, e: std::io::Error| BuildError::new(format!("{what}: {e}"));
    for (n, m) in specs.iter().enumerate() {
        match m {
            MountSpec::Bind {
                target,
                source,
                from: None,
                readonly,
            } => {
                let root = b.context.root()?;
                let source_path =
                    materialize(root, source, &scratch.join(format!("bind-{n}")), *readonly)?;
                stubs.push(stub(rootfs.path(), target));
                mounts.push(RunMount::Bind {
                    source: source_path,
                    target: target.clone(),
                    readonly: *readonly,
                });
            }
            MountSpec::Bind {
                target,
                source,
                from: Some(f),
                readonly,
            } => {
                let layers = match from_root(b, stage, f)? {
                    FromRoot::Stage(fs) => fs.layers,
                    FromRoot::Image(img) => img.layers,
                };
                let m = b.worker.rootfs(&layers).map_err(werr)?;
                let source_path = host_path_in(m.path(), source)?;
                held.push(m);
                stubs.push(stub(rootfs.path(), target));
                mounts.push(RunMount::Bind {
                    source: source_path,
                    target: target.clone(),
                    readonly: *readonly,
                });
            }
            MountSpec::Cache {
                target,
                id,
                sharing,
                mode,
                uid,
                gid,
                readonly,
            } => {
                let g = b
                    .worker
                    .cache_mount(id, *sharing, (*uid, *gid), *mode)
                    .map_err(werr)?;
                stubs.push(stub(rootfs.path(), target));
                mounts.push(RunMount::Bind {
                    source: g.path().to_path_buf(),
                    target: target.clone(),
                    readonly: *readonly,
                });
                held.push(g);
            }
            MountSpec::Tmpfs { target, size } => {
                stubs.push(stub(rootfs.path(), target));
                mounts.push(RunMount::Tmpfs {
                    target: target.clone(),
                    size: *size,
                });
            }
            MountSpec::Secret {
                id,
                target,
                env: as_env,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(value) = b.opts.secrets.get(id) else {
                    if *required {
                        return Err(BuildError::new(format!(
                            "secret {id} not found: pass it with --secret id={id},src=FILE"
                        )));
                    }
                    continue;
                };
                if let Some(t) = target {
                    let file = scratch.join(format!("secret-{n}"));
                    std::fs::write(&file, value).map_err(|e| io("write secret", e))?;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))
                        .map_err(|e| io("chmod secret", e))?;
                    nix::unistd::chown(&file, Some((*uid).into()), Some((*gid).into()))
                        .map_err(|e| BuildError::new(format!("chown secret: {e}")))?;
                    stubs.push(stub(rootfs.path(), t));
                    mounts.push(RunMount::Bind {
                        source: file,
                        target: t.clone(),
                        readonly: true,
                    });
                }
                if let Some(var) = as_env {
                    env.push(format!("{var}={}", String::from_utf8_lossy(value)));
                }
            }
        }
    }
    if let Some((name, body)) = &r.script {
        let file = scratch.join(format!("script-{name}"));
        std::fs::write(&file, body).map_err(|e| io("write heredoc script", e))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io("chmod heredoc script", e))?;
        mounts.push(RunMount::Bind {
            source: file,
            target: format!("/dev/pipes/{name}"),
            readonly: true,
        });
    }
    let req = RunRequest {
        argv: r.argv.clone(),
        env,
        user: r.user.clone(),
        cwd: r.cwd.clone(),
        mounts,
        network: net,
        insecure,
    };
    let mut out = |stream: u8, data: &[u8]| {
        b.progress.event(Event::Log {
            id: vid,
            stream,
            data: data.to_vec(),
        })
    };
    let code = b
        .worker
        .run(rootfs.as_ref(), &req, &mut out, &b.stop)
        .map_err(werr)?;
    drop(held);
    if b.stopped() {
        return Err(BuildError::cancelled());
    }
    if code != 0 {
        let command = r.argv.join(" ");
        return Err(BuildError {
            failed_run: Some((command.clone(), code)),
            ..BuildError::new(format!(
                "process {} did not complete successfully: exit code: {code}",
                serde_json::to_string(&command).unwrap_or_default()
            ))
        });
    }
    for s in stubs.iter().rev() {
        remove_stub(rootfs.path(), s);
    }
    b.worker.commit(rootfs, &fs.layers, k).map_err(werr)
}

/// A host path showing `source` of the context as the build sees it: the directory
/// itself when nothing in it is ignored and the mount is read-only, else a copy (so an
/// ignored file never shows, and writes never reach the user's files).
fn materialize(
    root: &SourceRoot,
    source: &str,
    dir: &Path,
    readonly: bool,
) -> Result<PathBuf, BuildError> {
    let items = copy::select(root, &[source.to_string()], &SelectOptions::default())
        .map_err(|e| BuildError::new(format!("RUN --mount bind source: {e}")))?;
    let item = items
        .first()
        .ok_or_else(|| BuildError::new(format!("RUN --mount bind source {source:?}: not found")))?;
    let real = root.path().join(&item.rel);
    if readonly && !has_hidden(root, item) {
        return Ok(real);
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| BuildError::new(format!("create {}: {e}", dir.display())))?;
    let dest = if item.is_dir {
        "/".to_string()
    } else {
        "/file".to_string()
    };
    copy::write(root, &items, &[], dir, &dest, &WriteOptions::default())
        .map_err(|e| BuildError::new(format!("RUN --mount bind source: {e}")))?;
    Ok(if item.is_dir {
        dir.to_path_buf()
    } else {
        dir.join("file")
    })
}

/// Whether a directory item has entries on disk that the selection left out.
fn has_hidden(root: &SourceRoot, item: &copy::Item) -> bool {
    if !item.is_dir {
        return false;
    }
    let mut count = 0usize;
    for e in walk_count(&root.path().join(&item.rel)) {
        count += e;
    }
    count + 1 != item.entries.len()
}

fn walk_count(dir: &Path) -> Vec<usize> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(1);
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_count(&e.path()));
            }
        }
    }
    out
}

/// WORKDIR's `mkdir -p` (owned by USER, as BuildKit does). Returns (key, result).
pub(crate) fn mkdir(
    b: &Build<'_>,
    fs: &Fs,
    path: &str,
    user: &str,
    vid: u64,
    created: Option<&str>,
) -> Result<(String, StepResult), BuildError> {
    let k = key::step(&fs.key, "mkdir", &json!({"path": path, "user": user}));
    let _claim = b.claim(&k);
    if !b.opts.no_cache
        && let Some(hit) = b.worker.cache_get(&k).map_err(werr)?
    {
        b.progress.event(Event::Cached { id: vid });
        return Ok((k, hit));
    }
    let rootfs = b.worker.rootfs(&fs.layers).map_err(werr)?;
    let owner = if user.is_empty() {
        (0, 0)
    } else {
        b.worker.resolve_user(rootfs.as_ref(), user).map_err(werr)?
    };
    let made = copy::mkdir_p(rootfs.path(), path, owner)
        .map_err(|e| BuildError::new(format!("WORKDIR {path}: {e}")))?;
    if made {
        let res = b.worker.commit(rootfs, &fs.layers, &k).map_err(werr)?;
        return Ok((k, res));
    }
    drop(rootfs);
    let res = StepResult {
        layers: fs.layers.clone(),
        created: created.unwrap_or("1970-01-01T00:00:00Z").to_string(),
        empty: true,
    };
    b.worker.cache_put(&k, &res).map_err(werr)?;
    Ok((k, res))
}
