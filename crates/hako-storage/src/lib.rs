//! Snapshot drivers: how hako stores image layers on disk and turns them into a
//! container's root filesystem.
//!
//! Two drivers implement the same [`Driver`] contract:
//!
//! - [`Overlay2`]: Docker's `overlay2` on-disk layout. Each layer is a directory
//!   `<root>/overlay2/<id>/` holding `diff/` (the layer's own files), `link` (a 26-char
//!   short name), `lower` (the colon-separated `l/SHORT` chain of its parents), `work/` and
//!   `merged/`. `<root>/overlay2/l/SHORT` symlinks to `../<id>/diff`, so that a mount of a
//!   128-layer image fits the one-page limit of mount(2) options.
//! - [`Vfs`]: every layer is a full copy of its parent plus its own changes. Slow and big,
//!   but it works on any filesystem: the fallback when overlay cannot mount.
//!
//! Layer tar streams (plain, gzip, zstd) are applied by [`unpack`], which resolves every
//! path inside the layer without following symlinks and converts OCI whiteouts to the
//! driver's representation.
//!
//! Every driver runs the same conformance suite (`tests/conformance.rs`).

mod changes;
mod copy;
mod error;
mod export;
pub use hako_sys::mountinfo;
mod overlay;
mod pipeline;
mod quota;
mod safefs;
pub mod tarsplit;
pub mod unpack;
mod vfs;

use std::io::Read;
use std::path::PathBuf;

pub use changes::{Change, ChangeKind};
pub use error::{Error, Result};
pub use export::TarWriter;
pub use overlay::Overlay2;
pub use quota::{QuotaUsage, StorageOpts};
pub use unpack::{LayerDigests, WhiteoutMode};
pub use vfs::Vfs;

/// What a [`Driver`] does with layers, and in which order a caller may ask for it.
///
/// # Lifecycle of an image layer
///
/// ```text
///   apply_layer(id, parent, tar) ──► (layer exists, read-only)
///        │                                │
///        │ fails: nothing is left         ├─► size(id), paths(id), exists(id)
///        ▼                                ▼
///   (no layer dir)                   remove(id)  ──► (no layer dir, no short link)
/// ```
///
/// `apply_layer` builds the layer in a temporary directory inside the driver root and
/// renames it into place only when the whole stream was applied, so a crash or a bad
/// stream never leaves a half layer under `id`. [`Driver::cleanup`] removes the
/// temporaries a crash left behind.
///
/// # Lifecycle of a container layer
///
/// ```text
///   create_rw(cid, Some(image_top)) ──► mount(cid) ──► MountInfo.rootfs is the container's /
///                                          │
///                         changes(cid, parent) lists what the container added (A),
///                         changed (C) and deleted (D) relative to its image
///                                          │
///                                     unmount(cid) ──► remove(cid)
/// ```
///
/// The first write to a file of a lower layer copies it into the container layer; the
/// lower layer never changes. Deleting a lower file leaves a whiteout in the container
/// layer (overlay2: a 0/0 character device; vfs: the file is simply gone from the copy).
///
/// A parent must outlive its children: callers remove layers top-down. `mount` and
/// `unmount` are idempotent. Ids are caller-chosen strings of `[0-9a-zA-Z_.-]` that do not
/// start with `tmp-`; hako uses 64 hex characters like Docker's cache ids.
///
/// # Example
///
/// ```no_run
/// use hako_storage::{Driver, Overlay2};
/// # fn main() -> hako_storage::Result<()> {
/// let driver = Overlay2::new("/var/lib/hako")?;
/// let tar = std::fs::File::open("layer.tar.gz")?;
/// let digests = driver.apply_layer("base", None, &mut std::io::BufReader::new(tar))?;
/// println!("diff id {}", digests.diff_id);
/// driver.create_rw("ctr", Some("base"))?;
/// let mnt = driver.mount("ctr")?;
/// println!("rootfs at {}", mnt.rootfs.display());
/// driver.unmount("ctr")?;
/// driver.remove("ctr")?;
/// driver.remove("base")?;
/// # Ok(()) }
/// ```
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// Docker's name for the driver (`overlay2`, `vfs`).
    fn name(&self) -> &'static str;

    /// Creates the read-only layer `id` on top of `parent` from a layer tar stream (plain,
    /// gzip or zstd, detected from the first bytes), and returns the digests of the stream.
    /// On any error nothing is left under `id`.
    fn apply_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        stream: &mut dyn Read,
    ) -> Result<LayerDigests> {
        self.unpack_layer(id, parent, stream, None)
    }

    /// [`Driver::apply_layer`], writing the layer's tar-split record to `split` (see
    /// [`tarsplit`]). When the result's `split_complete` is true, [`Driver::layer_tar`]
    /// gives the stream's uncompressed tar back byte for byte from the record and the
    /// layer, so the tar need not be kept.
    fn apply_layer_split(
        &self,
        id: &str,
        parent: Option<&str>,
        stream: &mut dyn Read,
        split: &mut (dyn std::io::Write + Send),
    ) -> Result<LayerDigests> {
        self.unpack_layer(id, parent, stream, Some(split))
    }

    /// What each driver writes for [`Driver::apply_layer`] and
    /// [`Driver::apply_layer_split`]: the layer, and the tar-split record when asked.
    fn unpack_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        stream: &mut dyn Read,
        split: Option<&mut (dyn std::io::Write + Send)>,
    ) -> Result<LayerDigests>;

    /// The uncompressed tar layer `id` was applied from, rebuilt from the tar-split
    /// `record` that [`Driver::apply_layer_split`] wrote. Reading it fails (never yields
    /// other bytes) if the record is damaged or a file of the layer changed.
    fn layer_tar<'a>(
        &self,
        id: &str,
        record: Box<dyn Read + Send + 'a>,
    ) -> Result<tarsplit::LayerTar<'a>> {
        check_id(id)?;
        if !self.exists(id) {
            return Err(Error::NotFound(id.to_string()));
        }
        tarsplit::LayerTar::new(record, &self.paths(id)?.upper_dir)
    }

    /// Creates an empty writable layer `id` on `parent`, for a container.
    fn create_rw(&self, id: &str, parent: Option<&str>) -> Result<()>;

    /// [`Driver::create_rw`] with options (`--storage-opt`). A driver that cannot honour
    /// an option fails before creating anything.
    fn create_rw_with(&self, id: &str, parent: Option<&str>, opts: &StorageOpts) -> Result<()> {
        if opts.is_empty() {
            self.create_rw(id, parent)
        } else {
            Err(Error::StorageOptNotSupported(self.name()))
        }
    }

    /// Whether `--storage-opt size=` works on this driver root.
    fn quota_supported(&self) -> bool {
        false
    }

    /// What layer `id` uses of its quota, if it has one.
    fn quota_usage(&self, id: &str) -> Result<Option<QuotaUsage>> {
        check_id(id)?;
        Ok(None)
    }

    /// Makes the union of `id` and its parents visible at a directory and returns it.
    /// Writes go to `id`'s own directory only.
    fn mount(&self, id: &str) -> Result<MountInfo>;

    /// Undoes [`Driver::mount`]. Unmounting a layer that is not mounted is not an error.
    fn unmount(&self, id: &str) -> Result<()>;

    /// Lists the changes of layer `id` relative to its `parent` (sorted by path).
    fn changes(&self, id: &str, parent: Option<&str>) -> Result<Vec<Change>>;

    /// Writes layer `id`'s own changes relative to `parent` as an OCI layer tar
    /// (uncompressed; whiteouts as `.wh.NAME`, opaque directories as `.wh..wh..opq`).
    fn diff(&self, id: &str, parent: Option<&str>, out: &mut dyn std::io::Write) -> Result<()>;

    /// Removes layer `id` (unmounting it first if needed). Removing a missing layer is not
    /// an error.
    fn remove(&self, id: &str) -> Result<()>;

    /// Whether layer `id` exists.
    fn exists(&self, id: &str) -> bool;

    /// Bytes used by the files of layer `id` itself (hard links counted once).
    fn size(&self, id: &str) -> Result<u64>;

    /// Directories of layer `id`, as `docker inspect` shows them in `GraphDriver.Data`.
    fn paths(&self, id: &str) -> Result<LayerPaths>;

    /// Ids of all complete layers in the driver root.
    fn list(&self) -> Result<Vec<String>>;

    /// Removes what an interrupted operation left behind (temporary directories, dangling
    /// short links) and repairs what a crash between two steps left (missing short links).
    /// Must not run while another process uses the same root.
    fn cleanup(&self) -> Result<()>;
}

/// Where a mounted layer's root filesystem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The container's root directory.
    pub rootfs: PathBuf,
    /// The mount options passed to the kernel, if a mount was made.
    pub options: Option<String>,
}

/// The directories of one layer, as `GraphDriver.Data` in `docker inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayerPaths {
    /// Parent layers' directories, top first (overlay2 only).
    pub lower_dirs: Vec<PathBuf>,
    /// The layer's own directory (`diff/` for overlay2, the full copy for vfs).
    pub upper_dir: PathBuf,
    /// overlay's work directory (overlay2 only).
    pub work_dir: Option<PathBuf>,
    /// Where the layer is mounted (overlay2 only).
    pub merged_dir: Option<PathBuf>,
}

/// Opens the driver called `name` (`overlay2` or `vfs`) under `root`.
pub fn open_driver(name: &str, root: impl Into<PathBuf>) -> Result<Box<dyn Driver>> {
    match name {
        "overlay2" => Ok(Box::new(Overlay2::new(root)?)),
        "vfs" => Ok(Box::new(Vfs::new(root)?)),
        "aufs" | "devicemapper" | "btrfs" | "zfs" | "fuse-overlayfs" => {
            Err(Error::UnsupportedDriver(name.to_string()))
        }
        _ => Err(Error::UnknownDriver(name.to_string())),
    }
}

/// Validates a caller-chosen layer id: it becomes a directory name.
pub(crate) fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with("tmp-")
        && id != "l"
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// A random lowercase hex/alnum string from the kernel's CSPRNG.
pub(crate) fn random_name(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut buf = vec![0u8; len];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !filled {
        // /dev/urandom is always there on Linux; fall back to time and pid anyway.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            ^ u128::from(std::process::id());
        let bytes = seed.to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = bytes[i % bytes.len()].wrapping_add(u8::try_from(i % 251).unwrap_or(0));
        }
    }
    buf.iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Opens overlay2 if an overlay mount works under `root`, else vfs (Docker's fallback).
pub fn open_default(root: impl Into<PathBuf>) -> Result<Box<dyn Driver>> {
    let root = root.into();
    match Overlay2::probe(root.clone()) {
        Ok(d) => Ok(Box::new(d)),
        Err(e) => {
            tracing::warn!(error = %e, "overlay2 unavailable, falling back to vfs");
            Ok(Box::new(Vfs::new(root)?))
        }
    }
}

/// Bytes of the regular files below `dir`, each inode counted once.
pub fn dir_size(dir: &std::path::Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    // A file removed while the walk runs (a running container's upper dir) takes no room.
    let gone = |e: &walkdir::Error| {
        e.depth() > 0
            && e.io_error().map(std::io::Error::kind) == Some(std::io::ErrorKind::NotFound)
    };
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = match e {
            Ok(e) => e,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(Error::io(format!("walk {}", dir.display()), e.into())),
        };
        if e.file_type().is_file() {
            let md = match e.metadata() {
                Ok(md) => md,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(Error::io(format!("walk {}", dir.display()), e.into())),
            };
            if md.nlink() == 1 || seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    Ok(total)
}

/// A stream holding an empty tar (the end marker only), for empty layers.
pub(crate) fn empty_tar() -> std::io::Cursor<Vec<u8>> {
    std::io::Cursor::new(vec![0u8; 1024])
}
