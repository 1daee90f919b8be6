//! COPY and ADD: sources from the context, a stage or an image; heredoc files; ADD's
//! URLs (with `--checksum`) and local archives (extracted).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use serde_json::json;

use super::plan::stage_ref;
use super::{Build, BuildError, Fs, key};
use crate::copy::{self, Item, SelectOptions, SourceRoot, WriteOptions};
use crate::dispatch::{CopyKind, CopyStep};
use crate::progress::{Event, human_size};
use crate::worker::{Rootfs, StepResult};

fn werr(e: crate::worker::WorkerError) -> BuildError {
    BuildError::new(e.0)
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn is_git(s: &str) -> bool {
    s.starts_with("git@")
        || s.starts_with("git://")
        || (is_url(s) && s.split('#').next().is_some_and(|u| u.ends_with(".git")))
}

/// A downloaded URL: its file in the scratch dir and content digest.
struct Download {
    name: String,
    digest: String,
}

/// Fetches `url` into `dir/name` (mode 0600, mtime from Last-Modified), checking
/// `checksum` when given.
fn download(url: &str, dir: &Path, checksum: Option<&str>) -> Result<Download, BuildError> {
    let path_part = url.split(['?', '#']).next().unwrap_or(url);
    let name = path_part
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && !path_part.ends_with("//"))
        .filter(|_| path_part.matches('/').count() > 2)
        .unwrap_or("index.html")
        .to_string();
    let resp = ureq::get(url)
        .timeout(std::time::Duration::from_secs(600))
        .call()
        .map_err(|e| BuildError::new(format!("ADD {url}: {e}")))?;
    let mtime = resp
        .header("Last-Modified")
        .and_then(|h| httpdate::parse_http_date(h).ok());
    std::fs::create_dir_all(dir)
        .map_err(|e| BuildError::new(format!("create {}: {e}", dir.display())))?;
    let file = dir.join(&name);
    let mut out = std::fs::File::create(&file)
        .map_err(|e| BuildError::new(format!("create {}: {e}", file.display())))?;
    let mut reader = resp.into_reader();
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| BuildError::new(format!("ADD {url}: {e}")))?;
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut h, &buf[..n]);
        std::io::Write::write_all(&mut out, &buf[..n])
            .map_err(|e| BuildError::new(format!("write {}: {e}", file.display())))?;
    }
    let digest = format!("sha256:{:x}", sha2::Digest::finalize(h));
    if let Some(want) = checksum
        && want != digest
    {
        return Err(BuildError::new(format!(
            "ADD {url}: digest mismatch: --checksum={want}, content is {digest}"
        )));
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| BuildError::new(format!("chmod {}: {e}", file.display())))?;
    if let Some(t) = mtime {
        let _ = out.set_modified(t);
    }
    Ok(Download { name, digest })
}

/// What a COPY/ADD reads, chosen (and for the context, hashed) before its vertex starts.
pub(crate) struct Prepared {
    urls: Vec<String>,
    paths: Vec<String>,
    from_src: Option<crate::worker::Layers>,
    sel: SelectOptions,
    items: Vec<Item>,
    content: String,
}

/// Checks the sources and selects and hashes those in the context (the "load build
/// context" vertex the first time).
pub(crate) fn prepare(b: &Build<'_>, stage: usize, cp: &CopyStep) -> Result<Prepared, BuildError> {
    let (urls, paths): (Vec<String>, Vec<String>) =
        cp.sources.iter().cloned().partition(|s| is_url(s));
    for s in &cp.sources {
        if is_git(s) {
            return Err(BuildError::new(format!(
                "ADD {s}: git sources are not supported by hako"
            )));
        }
    }
    if cp.kind == CopyKind::Copy && !urls.is_empty() {
        return Err(BuildError::new(format!(
            "COPY {}: URLs work with ADD only",
            urls[0]
        )));
    }
    if cp.checksum.is_some() && (urls.len() != 1 || !paths.is_empty()) {
        return Err(BuildError::new(
            "ADD --checksum works with exactly one URL source",
        ));
    }
    // Where paths come from.
    let from_src: Option<crate::worker::Layers> = match &cp.from {
        None => None,
        Some(f) => Some(match stage_ref(&b.stages, f, stage) {
            Some(j) => b.wait_stage(j)?.fs.layers.clone(),
            None => {
                b.worker
                    .base_image(f, None, false, &mut |_| {})
                    .map_err(werr)?
                    .layers
            }
        }),
    };
    let sel = SelectOptions {
        parents: cp.parents,
        exclude: cp.exclude.clone(),
    };
    // Context sources are hashed now (the key needs their content); a stage or image
    // source is mounted and hashed when its step runs (`run`).
    let mut items: Vec<Item> = Vec::new();
    let mut content = String::new();
    if from_src.is_none() && !paths.is_empty() {
        let root = b.context.root()?;
        let started = Instant::now();
        items = copy::select(root, &paths, &sel).map_err(|e| BuildError::new(e.to_string()))?;
        content = copy::digest(&items);
        let size: u64 = items
            .iter()
            .flat_map(|i| i.entries.iter())
            .map(|e| e.size)
            .sum();
        b.context.announce(|| {
            let (id, t) = b.vertex("[internal] load build context".into(), None);
            b.progress.event(Event::Status {
                id,
                text: format!("transferring context: {} done", human_size(size)),
            });
            b.progress.event(Event::Done {
                id,
                elapsed: started.elapsed(),
            });
            let _ = t;
        });
    }
    Ok(Prepared {
        urls,
        paths,
        from_src,
        sel,
        items,
        content,
    })
}

/// Runs a COPY/ADD step (or takes it from the cache). Returns (key, result).
pub(crate) fn run(
    b: &Build<'_>,
    fs: &Fs,
    cp: &CopyStep,
    prepared: Prepared,
    vid: u64,
) -> Result<(String, StepResult), BuildError> {
    let Prepared {
        urls,
        paths,
        from_src,
        sel,
        mut items,
        mut content,
    } = prepared;
    // A stage or image source: its selection hashed like the context's, so the key
    // depends on the files copied, not on how the source stage got them (a source stage
    // that re-ran and made the same files leaves this step cached). A layer chain never
    // changes, so the digest is recorded (a memo) and a cached rebuild mounts nothing.
    let memo = from_src.as_ref().map(|layers| {
        key::step(
            "",
            "copy-source",
            &json!({
                "layers": layers.0,
                "sources": paths,
                "parents": sel.parents,
                "exclude": sel.exclude,
            }),
        )
    });
    let mut source: Option<(Box<dyn Rootfs + '_>, SourceRoot)> = None;
    if let (Some(layers), Some(mk)) = (&from_src, &memo) {
        match b.worker.memo_get(mk).map_err(werr)? {
            Some(d) => content = d,
            None => {
                let (m, r, its, c) = mount_source(b, layers, &paths, &sel)?;
                b.worker.memo_put(mk, &c).map_err(werr)?;
                (items, content) = (its, c);
                source = Some((m, r));
            }
        }
    }
    let dl_dir = b.opts.scratch.join(format!("add-{vid}"));
    let mut downloads = Vec::new();
    let mut url_keys = Vec::new();
    for u in &urls {
        match &cp.checksum {
            // With a checksum the content is known without fetching it.
            Some(c) => url_keys.push(json!({"url": u, "digest": c})),
            None => {
                let d = download(u, &dl_dir, None)?;
                url_keys.push(json!({"url": u, "digest": d.digest, "name": d.name}));
                downloads.push(d);
            }
        }
    }
    let inline: Vec<(String, Vec<u8>, u32)> = cp
        .contents
        .iter()
        .map(|(n, body)| (n.clone(), body.clone().into_bytes(), 0o644))
        .collect();
    let desc = json!({
        "from": from_src.is_some(),
        "sources": paths,
        "content": content,
        "urls": url_keys,
        "inline": inline.iter().map(|(n, d, _)| json!([n, key::bytes(d)])).collect::<Vec<_>>(),
        "dest": cp.dest,
        "chown": cp.chown,
        "chmod": cp.chmod,
        "link": cp.link,
        "parents": cp.parents,
        "exclude": cp.exclude,
        "unpack": cp.unpack,
    });
    let kind = if cp.kind == CopyKind::Add {
        "add"
    } else {
        "copy"
    };
    // `--link`: the copy has a key of its own that does not depend on the parent; the
    // step's key is that copy stacked on the parent. A new parent reuses the copy and only
    // stacks it again. A --chown that names a user is looked up in the parent: the copy's
    // key then holds the ids found there (known only once the parent is read, on a miss).
    let named_owner = cp.chown.as_deref().is_some_and(|c| {
        !c.split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    let (k, mut own_key) = if cp.link {
        let own = key::step("", kind, &desc);
        (key::step(&fs.key, "link", &json!(own)), Some(own))
    } else {
        (key::step(&fs.key, kind, &desc), None)
    };
    let _claim = b.claim(&k);
    if !b.opts.no_cache
        && let Some(hit) = b.worker.cache_get(&k).map_err(werr)?
    {
        b.progress.event(Event::Cached { id: vid });
        let _ = std::fs::remove_dir_all(&dl_dir);
        return Ok((k, hit));
    }
    // User and group names are the parent's (its /etc/passwd and /etc/group).
    let mut parent_owner = None;
    if let (Some(own), Some(c), true) = (&own_key, &cp.chown, named_owner) {
        let parent = b.worker.rootfs(&fs.layers).map_err(werr)?;
        let ids = b.worker.resolve_user(parent.as_ref(), c).map_err(werr)?;
        own_key = Some(key::step(
            "",
            "owned",
            &json!({"copy": own, "owner": [ids.0, ids.1]}),
        ));
        parent_owner = Some(ids);
    }
    if let Some(own) = &own_key
        && !b.opts.no_cache
        && let Some(hit) = b.worker.cache_get(own).map_err(werr)?
    {
        // The copy is cached (BuildKit shows it so); the new parent only takes its layer.
        b.progress.event(Event::Cached { id: vid });
        let _ = std::fs::remove_dir_all(&dl_dir);
        let res = b.worker.stack(&hit, &fs.layers, &k).map_err(werr)?;
        return Ok((k, res));
    }
    let result = (|| {
        if let (Some(layers), Some(mk), None) = (&from_src, &memo, &source) {
            let (m, r, its, c) = mount_source(b, layers, &paths, &sel)?;
            if c != content {
                // The memo lied (a damaged store): record the truth, and fail rather
                // than cache this step under a key that does not describe it.
                b.worker.memo_put(mk, &c).map_err(werr)?;
                return Err(BuildError::new(
                    "the source's files differ from what the build cache recorded; run the build again",
                ));
            }
            items = its;
            source = Some((m, r));
        }
        if let (Some(c), [u]) = (&cp.checksum, urls.as_slice()) {
            downloads.push(download(u, &dl_dir, Some(c))?);
        }
        // `--link`: the files go into an empty root filesystem, which becomes a layer
        // of its own on the parent: nothing of the parent is seen (a symlink there is
        // never followed), and the layer is the same whatever the parent holds.
        let empty = crate::worker::Layers(None);
        let rootfs = b
            .worker
            .rootfs(if cp.link { &empty } else { &fs.layers })
            .map_err(werr)?;
        let owner = match (&cp.chown, parent_owner) {
            (_, Some(ids)) => Some(ids),
            (Some(c), None) => Some(b.worker.resolve_user(rootfs.as_ref(), c).map_err(werr)?),
            (None, None) => None,
        };
        let wopts = WriteOptions {
            owner,
            chmod: cp.chmod,
            parents: cp.parents,
        };
        let root = match &source {
            Some((_, r)) => r,
            None if !items.is_empty() => b.context.root()?,
            None => {
                std::fs::create_dir_all(&b.opts.scratch).map_err(|e| {
                    BuildError::new(format!("create {}: {e}", b.opts.scratch.display()))
                })?;
                &SourceRoot::rootfs(&b.opts.scratch).map_err(|e| BuildError::new(e.to_string()))?
            }
        };
        let (archives, plain): (Vec<Item>, Vec<Item>) = items.iter().cloned().partition(|it| {
            cp.kind == CopyKind::Add
                && cp.unpack != Some(false)
                && !it.is_dir
                && is_archive_in(root, it)
        });
        copy::write(root, &plain, &inline, rootfs.path(), &cp.dest, &wopts)
            .map_err(|e| BuildError::new(e.to_string()))?;
        if !downloads.is_empty() {
            let dl_root =
                SourceRoot::rootfs(&dl_dir).map_err(|e| BuildError::new(e.to_string()))?;
            let names: Vec<String> = downloads.iter().map(|d| d.name.clone()).collect();
            let dl_items = copy::select(&dl_root, &names, &SelectOptions::default())
                .map_err(|e| BuildError::new(e.to_string()))?;
            let (unpack, keep): (Vec<Item>, Vec<Item>) = dl_items
                .into_iter()
                .partition(|it| cp.unpack == Some(true) && is_archive_in(&dl_root, it));
            copy::write(&dl_root, &keep, &[], rootfs.path(), &cp.dest, &wopts)
                .map_err(|e| BuildError::new(e.to_string()))?;
            extract_all(b, &dl_root, &unpack, rootfs.as_ref(), &cp.dest, owner)?;
        }
        extract_all(b, root, &archives, rootfs.as_ref(), &cp.dest, owner)?;
        drop(source);
        match &own_key {
            Some(own) => {
                let made = b
                    .worker
                    .commit(rootfs, &crate::worker::Layers(None), own)
                    .map_err(werr)?;
                b.worker.stack(&made, &fs.layers, &k).map_err(werr)
            }
            None => b.worker.commit(rootfs, &fs.layers, &k).map_err(werr),
        }
    })();
    let _ = std::fs::remove_dir_all(&dl_dir);
    result.map(|res| (k, res))
}

/// A stage or image source mounted, with `paths` selected in it and their digest.
type Mounted<'w> = (Box<dyn Rootfs + 'w>, SourceRoot, Vec<Item>, String);

fn mount_source<'w>(
    b: &Build<'w>,
    layers: &crate::worker::Layers,
    paths: &[String],
    sel: &SelectOptions,
) -> Result<Mounted<'w>, BuildError> {
    let m = b.worker.rootfs(layers).map_err(werr)?;
    let r = SourceRoot::rootfs(m.path()).map_err(|e| BuildError::new(e.to_string()))?;
    let items = copy::select(&r, paths, sel).map_err(|e| BuildError::new(e.to_string()))?;
    let content = copy::digest(&items);
    Ok((m, r, items, content))
}

/// Opens a selected file for reading, resolved in its root (never on the host).
fn open_item(root: &SourceRoot, it: &Item) -> Result<std::fs::File, BuildError> {
    root.open(&it.rel, nix::fcntl::OFlag::O_RDONLY)
        .map(std::fs::File::from)
        .map_err(|e| BuildError::new(format!("open {}: {e}", it.src)))
}

fn is_archive_in(root: &SourceRoot, it: &Item) -> bool {
    open_item(root, it).is_ok_and(crate::archive::is_archive)
}

/// Extracts local archives into the destination directory.
fn extract_all(
    b: &Build<'_>,
    root: &SourceRoot,
    archives: &[Item],
    rootfs: &dyn Rootfs,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), BuildError> {
    if archives.is_empty() {
        return Ok(());
    }
    copy::mkdir_p(rootfs.path(), dest, owner.unwrap_or((0, 0)))
        .map_err(|e| BuildError::new(e.to_string()))?;
    for it in archives {
        let f = open_item(root, it)?;
        let mut r = crate::archive::decompress(Box::new(f))
            .map_err(|e| BuildError::new(format!("read {}: {e}", it.src)))?;
        b.worker
            .extract(rootfs, dest, &mut r, owner)
            .map_err(|e| BuildError::new(format!("ADD {}: {}", it.src, e.0)))?;
    }
    Ok(())
}
