//! `tar_unpack`: a layer stream (plain, gzip or zstd tar) applied by
//! `hako_storage::unpack::apply`, in both whiteout modes.
//!
//! Invariants, for every input:
//! - nothing outside the layer directory changes: not a byte, mode, owner, link count,
//!   xattr or time (ctime catches a hard link made to an outside file, a chmod, an xattr),
//!   and nothing appears or disappears there; as root this covers every path the process
//!   could reach (the worker runs in a jail, see `crate::sandbox`);
//! - the layer directory itself stays a directory;
//! - a stream that applies reports its own length and sha256 as the blob digest, and for a
//!   plain tar the same as the diff id;
//! - no panic, no hang (libFuzzer's `-timeout`; the replay test's per-input limit).
//!
//! The layer directory starts with a small tree, as a vfs layer holds its parent's files:
//! symlinks to `..`, to the outside directory (relative and absolute) and to `/etc`, so that
//! entries written through them, whiteouts of them and replacements of them are tried.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::{MetadataExt, symlink};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

use hako_storage::unpack::{self, Compression, WhiteoutMode};
use sha2::{Digest, Sha256};

use crate::{sandbox, scratch};

type Job = (Vec<u8>, Sender<Result<(), String>>);

/// Runs one input in the jailed worker thread; its panic becomes this thread's.
pub fn tar_unpack(data: &[u8]) {
    static WORKER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let worker = WORKER.get_or_init(start_worker);
    let (reply, answer) = channel();
    worker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((data.to_vec(), reply))
        .expect("the tar_unpack worker thread is gone (an earlier input killed it)");
    match answer.recv() {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => panic!("{msg}"),
        Err(_) => panic!("the tar_unpack worker thread died"),
    }
}

fn start_worker() -> Mutex<Sender<Job>> {
    let (jobs, queue) = channel::<Job>();
    let (ready_tx, ready) = channel();
    std::thread::Builder::new()
        .name("hako-fuzz-tar".into())
        .spawn(move || {
            let layout = match Layout::new() {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            for (data, reply) in queue {
                let r = catch_unwind(AssertUnwindSafe(|| layout.check(&data)))
                    .map_err(|p| panic_text(p.as_ref()));
                let _ = reply.send(r);
            }
        })
        .expect("start the tar_unpack worker thread");
    match ready.recv() {
        Ok(Ok(())) => Mutex::new(jobs),
        Ok(Err(e)) => panic!("tar_unpack setup: {e}"),
        Err(_) => panic!("tar_unpack setup: the worker thread died"),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "panic without a message".into())
}

/// Where the worker unpacks and what it watches.
struct Layout {
    /// `/` in the jail, a scratch directory without root.
    root: PathBuf,
    target: PathBuf,
    /// Everything under `root` but the target (and `/proc`) as it was at the start.
    before: BTreeMap<PathBuf, String>,
}

impl Layout {
    fn new() -> Result<Layout, String> {
        let root = if nix::unistd::geteuid().is_root() {
            sandbox::enter().map_err(|e| format!("enter the jail: {e}"))?;
            PathBuf::from("/")
        } else if std::env::var("CI").is_ok_and(|v| v == "true") {
            return Err(
                "tar_unpack needs root under CI=true (it jails its worker thread: \
                        a mount namespace and chroot)"
                    .into(),
            );
        } else {
            eprintln!(
                "tar_unpack: not root, so no jail: escapes to absolute paths outside the \
                 scratch directory are not seen"
            );
            scratch::dir("tar")
        };
        let w = |p: &Path, data: &[u8]| fs::write(p, data).map_err(|e| format!("{e}"));
        let d = |p: &Path| fs::create_dir_all(p).map_err(|e| format!("{e}"));
        d(&root.join("outside/dir"))?;
        d(&root.join("outside/empty"))?;
        d(&root.join("etc"))?;
        d(&root.join("tmp"))?;
        w(&root.join("outside/file"), b"precious\n")?;
        w(&root.join("outside/dir/file"), b"precious too\n")?;
        w(&root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n")?;
        symlink("file", root.join("outside/link")).map_err(|e| format!("{e}"))?;
        let target = root.join("target");
        let before = snapshot(&root, &target);
        Ok(Layout {
            root,
            target,
            before,
        })
    }

    /// A fresh layer directory holding the parent-layer tree (module docs).
    fn reset_target(&self) {
        scratch::remove(&self.target);
        let t = &self.target;
        fs::create_dir_all(t.join("base/dir")).expect("create the layer dir");
        fs::write(t.join("base/file"), b"lower\n").expect("write base/file");
        fs::write(t.join("base/dir/sub"), b"lower sub\n").expect("write base/dir/sub");
        for (name, to) in [
            ("up", PathBuf::from("..")),
            ("out", PathBuf::from("../outside")),
            ("abs", self.root.join("outside")),
            ("etc", self.root.join("etc")),
            ("base/dir/escape", PathBuf::from("../../../outside/file")),
        ] {
            symlink(&to, t.join(name)).expect("make a symlink in the layer dir");
        }
    }

    fn check(&self, data: &[u8]) {
        for mode in [WhiteoutMode::Overlay, WhiteoutMode::Delete] {
            self.reset_target();
            let res = unpack::apply(&mut Cursor::new(data), &self.target, mode);
            match &res {
                Ok(d) => {
                    assert_eq!(d.blob_size, data.len() as u64, "{mode:?}: blob size");
                    let digest = format!("sha256:{:x}", Sha256::digest(data));
                    assert_eq!(d.blob_digest, digest, "{mode:?}: blob digest");
                    if d.compression == Compression::None {
                        assert_eq!(d.diff_id, d.blob_digest, "{mode:?}: plain tar diff id");
                        assert_eq!(d.diff_size, d.blob_size, "{mode:?}: plain tar diff size");
                    }
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
            let meta = fs::symlink_metadata(&self.target).expect("the layer dir is still there");
            assert!(
                meta.is_dir(),
                "{mode:?}: the layer dir is no longer a directory"
            );
            let after = snapshot(&self.root, &self.target);
            if after != self.before {
                panic!(
                    "{mode:?}: the unpack ({}) changed something outside the layer dir:\n{}",
                    match &res {
                        Ok(_) => "succeeded".to_string(),
                        Err(e) => format!("failed: {e}"),
                    },
                    diff(&self.before, &after)
                );
            }
        }
    }
}

/// Every entry under `root` except `skip` and `root/proc`, with what a write could change.
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        out.insert(rel(root, dir), "unreadable directory".into());
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path == skip || (dir == root && e.file_name() == "proc") {
            continue;
        }
        out.insert(rel(root, &path), describe(&path));
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &path, skip, out);
        }
    }
}

fn rel(root: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(root).unwrap_or(p).to_path_buf()
}

fn describe(p: &Path) -> String {
    let Ok(m) = fs::symlink_metadata(p) else {
        return "gone while walking".into();
    };
    let mut s = format!(
        "mode {:o} uid {} gid {} nlink {} size {} mtime {}.{} ctime {}.{}",
        m.mode(),
        m.uid(),
        m.gid(),
        m.nlink(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    );
    if m.file_type().is_symlink() {
        s += &format!(" -> {:?}", fs::read_link(p).ok());
    } else if m.is_file() {
        let mut data = Vec::new();
        let _ = fs::File::open(p).and_then(|mut f| f.read_to_end(&mut data));
        s += &format!(" sha256 {:x}", Sha256::digest(&data));
    }
    s
}

fn diff(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> String {
    let mut out = String::new();
    for (p, b) in before {
        match after.get(p) {
            None => out += &format!("  removed {}\n", p.display()),
            Some(a) if a != b => out += &format!("  changed {}: {b} => {a}\n", p.display()),
            Some(_) => {}
        }
    }
    for (p, a) in after {
        if !before.contains_key(p) {
            out += &format!("  added {}: {a}\n", p.display());
        }
    }
    out
}
