//! Applying a layer tar stream to a directory.
//!
//! The stream may be plain, gzip or zstd (detected from its first bytes). While it is read
//! we compute two digests: of the bytes as given (the blob digest a manifest names) and of
//! the uncompressed tar (the diff id an image config names; for a plain tar the same one).
//! The whole stream is read to its end, so a truncated stream is an error even when the
//! tar end marker came earlier. Reading and hashing, decompressing, and writing files run
//! in separate threads ([`crate::pipeline`]).
//!
//! Per entry we make the same system calls as GNU `tar -x` (create, write, chown, chmod,
//! utimens, close): the entry's directory stays open from the previous entry, and file
//! data goes out in writes of up to 1 MiB.
//!
//! OCI whiteouts are converted per [`WhiteoutMode`]:
//!
//! | tar entry          | [`WhiteoutMode::Overlay`]                  | [`WhiteoutMode::Delete`]          |
//! |--------------------|--------------------------------------------|-----------------------------------|
//! | `dir/.wh.NAME`     | character device 0/0 at `dir/NAME`         | `dir/NAME` is removed             |
//! | `dir/.wh..wh..opq` | `trusted.overlay.opaque=y` on `dir`        | `dir` is emptied of older entries |
//!
//! Safety: names with `..` or a leading `/`, names that go through a symlink, and hard
//! links to a target outside the layer are refused with [`Error::UnsafeEntry`]; the
//! directory of every entry is opened with `openat2(RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS)`
//! and the entry itself created with `*at` calls that do not follow symlinks.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstatat, futimens, makedev,
    mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::error::{Error, IoContext, Result};
use crate::pipeline;
use crate::safefs::{RelPath, Root, fd_path};
use crate::tarsplit::{Recorder, Tee};

/// How OCI whiteout entries are represented in the unpacked layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// As overlayfs whiteouts: the layer is a diff that overlay stacks on its parents.
    Overlay,
    /// By deleting: the layer directory already holds a full copy of its parent.
    Delete,
}

/// Compression of a layer stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`application/vnd.oci.image.layer.v1.tar+gzip`).
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

/// Digests and sizes of an applied layer stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// `sha256:<hex>` of the stream as given.
    pub blob_digest: String,
    /// Length of the stream as given.
    pub blob_size: u64,
    /// `sha256:<hex>` of the uncompressed tar (the OCI diff id).
    pub diff_id: String,
    /// Length of the uncompressed tar.
    pub diff_size: u64,
    /// The compression that was detected.
    pub compression: Compression,
    /// Whether the tar-split record asked for with [`apply_split`] is complete: the tar can
    /// be rebuilt from it and the layer. False when none was asked for, or when the tar
    /// overwrote or removed a file it had itself written (its first contents are gone from
    /// the layer: the caller must keep the tar instead).
    pub split_complete: bool,
}

/// A reader that hashes and counts what passes through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// `sha256:<hex>` and the byte count of everything read so far.
    pub fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Detects the compression of a buffered stream from its magic bytes.
pub fn detect_compression(r: &mut dyn BufRead) -> Result<Compression> {
    let head = r.fill_buf().ctx(|| "read layer stream".into())?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        return Err(Error::BadStream(
            "bzip2 and xz layers are not supported".into(),
        ));
    } else {
        Compression::None
    })
}

/// Wraps a buffered stream in the decoder for `compression`.
pub fn decoder<'a>(
    r: Box<dyn BufRead + 'a>,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(r).ctx(|| "start zstd decoder".into())?,
        ),
    })
}

/// What [`apply`] of the empty layer (one end-of-archive block, nothing else: a
/// container's writable layer starts as one) returns, without its threads: the layer
/// changes nothing in its directory.
pub fn empty_layer() -> LayerDigests {
    let tar = crate::empty_tar().into_inner();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
    let size = u64::try_from(tar.len()).unwrap_or(u64::MAX);
    LayerDigests {
        blob_digest: digest.clone(),
        blob_size: size,
        diff_id: digest,
        diff_size: size,
        compression: Compression::None,
        split_complete: false,
    }
}

/// Applies the layer tar `stream` to the directory `dest`, which must exist.
///
/// `dest` should be a private temporary directory: on error it holds a partial layer that
/// the caller removes.
///
/// `stream` is read and hashed on the calling thread while other threads decompress and
/// write the files (see [`crate::pipeline`]); for a plain tar the blob digest is the diff
/// id and the bytes are hashed once.
pub fn apply(stream: &mut dyn Read, dest: &Path, mode: WhiteoutMode) -> Result<LayerDigests> {
    apply_split(stream, dest, mode, None)
}

/// [`apply`], writing the layer's tar-split record to `split` (see [`crate::tarsplit`]);
/// [`LayerDigests::split_complete`] says whether it can stand in for the tar.
pub fn apply_split(
    stream: &mut dyn Read,
    dest: &Path,
    mode: WhiteoutMode,
    split: Option<&mut (dyn Write + Send)>,
) -> Result<LayerDigests> {
    let (raw_out, raw_in) = pipeline::chunk_channel();
    let (blob, unpacked) = std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("hako-unpack".into())
            .spawn_scoped(s, move || unpack_stream(raw_in, dest, mode, split))
            .ctx(|| "start unpack thread".into())?;
        let blob = pipeline::pump(stream, raw_out);
        let unpacked = join(worker)?;
        Ok::<_, Error>((blob, unpacked))
    })?;
    let (compression, diff, split_complete) = unpacked?;
    // The worker read the stream to its end, so the pump did too.
    let (blob_digest, blob_size) =
        blob.ok_or_else(|| Error::BadStream("layer stream ended early".into()))?;
    let (diff_id, diff_size) = diff.unwrap_or_else(|| (blob_digest.clone(), blob_size));
    Ok(LayerDigests {
        blob_digest,
        blob_size,
        diff_id,
        diff_size,
        compression,
        split_complete,
    })
}

/// The result of a scoped thread, with its panic passed on.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> Result<T> {
    Ok(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
}

/// What the unpack thread found: the compression, the diff id and size (`None` for a plain
/// tar: the blob digest is the diff id), whether the tar-split record is complete.
type Unpacked = (Compression, Option<(String, u64)>, bool);

/// The unpack thread: detects the compression, decompresses in one more thread if needed,
/// and applies the tar. Returns the diff id, or `None` for a plain tar (it is the blob
/// digest), and whether the tar-split record is complete.
fn unpack_stream(
    mut raw: pipeline::ChunkReader,
    dest: &Path,
    mode: WhiteoutMode,
    split: Option<&mut (dyn Write + Send)>,
) -> Result<Unpacked> {
    let compression = detect_compression(&mut raw)?;
    if compression == Compression::None {
        let complete = apply_tar(&mut raw, dest, mode, split)?;
        return Ok((compression, None, complete));
    }
    let (tar_out, mut tar_in) = pipeline::chunk_channel();
    std::thread::scope(|s| {
        let decoder_thread = std::thread::Builder::new()
            .name("hako-unpack-dec".into())
            .spawn_scoped(s, move || decode(raw, compression, tar_out))
            .ctx(|| "start decompression thread".into())?;
        let applied = apply_tar(&mut tar_in, dest, mode, split);
        // Dropping the reader stops the decoder if the tar failed first.
        drop(tar_in);
        let decoded = join(decoder_thread)?;
        let complete = applied?;
        // apply_tar read to the end, so the decoder finished.
        let diff = decoded?.ok_or_else(|| Error::BadStream("layer stream ended early".into()))?;
        Ok((compression, Some(diff), complete))
    })
}

/// The decompression thread: decodes `raw` to its end into `out`, hashing the plain tar.
/// `None` if the tar thread stopped reading (it reports why).
fn decode(
    mut raw: pipeline::ChunkReader,
    compression: Compression,
    out: pipeline::ChunkWriter,
) -> Result<Option<(String, u64)>> {
    let decoded = {
        let mut decoder = decoder(Box::new(&mut raw), compression)?;
        pipeline::pump(&mut decoder, out)
    };
    // Whatever follows the compressed stream is part of the blob: read it too, so a
    // broken stream is an error even after a complete tar.
    if decoded.is_some() {
        io::copy(&mut raw, &mut io::sink())
            .map_err(|e| Error::BadStream(format!("read layer stream: {e}")))?;
    }
    Ok(decoded)
}

/// Applies the plain tar `tar` to `dest`, reading it to its end, recording its tar-split
/// into `split`. Returns whether the record is complete (false without one).
fn apply_tar(
    tar: &mut dyn Read,
    dest: &Path,
    mode: WhiteoutMode,
    split: Option<&mut (dyn Write + Send)>,
) -> Result<bool> {
    let rec = split
        .map(|w| Recorder::new(w).map(|r| Rc::new(RefCell::new(r))))
        .transpose()?;
    let mut tee = None;
    let src: &mut dyn Read = match &rec {
        Some(r) => tee.insert(Tee {
            inner: tar,
            rec: Rc::clone(r),
        }),
        None => tar,
    };
    let mut archive = tar::Archive::new(src);
    let mut applier = Applier::new(dest, mode, rec.clone())?;
    let entries = archive
        .entries()
        .map_err(|e| Error::BadStream(format!("not a tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::BadStream(format!("read tar entry: {e}")))?;
        applier.entry(&mut entry)?;
    }
    let complete = applier.finish()?;
    // Padding after the end marker belongs to the diff id too.
    io::copy(archive.into_inner(), &mut io::sink())
        .map_err(|e| Error::BadStream(format!("read layer stream: {e}")))?;
    drop(applier);
    let Some(rec) = rec else {
        return Ok(false);
    };
    drop(tee);
    let rec = Rc::try_unwrap(rec)
        .map_err(|_| Error::BadStream("tar-split record still in use".into()))?
        .into_inner();
    rec.finish()?;
    Ok(complete)
}

/// Metadata of one entry, with PAX overrides applied.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

struct Applier<'w> {
    root: Root,
    mode: WhiteoutMode,
    /// Directories whose mtime is set once their children are in place.
    dir_times: Vec<(RelPath, TimeSpec)>,
    /// Paths written by this layer (vfs: an opaque whiteout must not delete them).
    written: HashSet<RelPath>,
    /// The directory of the previous entry, still open: tars list a directory's entries
    /// together, so this saves an `openat2` and a `close` for nearly every entry.
    parent: Option<CachedDir>,
    /// The buffer file contents are copied through.
    buf: Vec<u8>,
    /// The tar-split recorder, if one was asked for.
    rec: Option<Rc<RefCell<Recorder<'w>>>>,
    /// Files whose contents the record leaves out: path, size, still as unpacked.
    refs: Vec<(RelPath, u64, bool)>,
    /// The latest of `refs` for each path.
    ref_at: HashMap<RelPath, usize>,
}

struct CachedDir {
    path: Vec<OsString>,
    fd: Rc<OwnedFd>,
    /// [`DIRS_REMOVED`] when `fd` was opened.
    generation: u64,
}

/// Counts directories removed by unpacking in this process. A cached directory fd is
/// used only while this has not changed: after a removal the fd might name a directory
/// that left the tree (`a/` then `.wh.a` or a symlink `a`, then `a/x` must not land in
/// the removed `a`). It is process-wide so that every removal path bumps it without
/// knowing about caches; another unpack's removal only costs a cache miss.
static DIRS_REMOVED: AtomicU64 = AtomicU64::new(0);

const WH_PREFIX: &[u8] = b".wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";

impl<'w> Applier<'w> {
    fn new(
        dest: &Path,
        mode: WhiteoutMode,
        rec: Option<Rc<RefCell<Recorder<'w>>>>,
    ) -> Result<Self> {
        Ok(Applier {
            root: Root::open(dest)?,
            mode,
            dir_times: Vec::new(),
            written: HashSet::new(),
            parent: None,
            buf: Vec::new(),
            rec,
            refs: Vec::new(),
            ref_at: HashMap::new(),
        })
    }

    /// Opens (creating if missing) the directory `parent` of an entry, reusing the
    /// previous entry's when it is the same.
    fn parent_dir(&mut self, parent: &[OsString], shown: &str) -> Result<Rc<OwnedFd>> {
        let generation = DIRS_REMOVED.load(Ordering::Acquire);
        if let Some(c) = &self.parent
            && c.generation == generation
            && c.path == parent
        {
            return Ok(Rc::clone(&c.fd));
        }
        self.parent = None;
        let fd = Rc::new(self.root.open_dir(parent, true, shown)?);
        self.parent = Some(CachedDir {
            path: parent.to_vec(),
            fd: Rc::clone(&fd),
            generation,
        });
        Ok(fd)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let path = RelPath::parse(&raw)?;
        let kind = entry.header().entry_type();
        let meta = read_meta(entry, &shown)?;
        // A later entry at the path of a file the record names replaces that file: its
        // first contents are no longer in the layer.
        if let Some(i) = self.ref_at.remove(&path) {
            self.refs[i].2 = false;
        }

        let Some((parent, name)) = path.split_last() else {
            // The layer root itself (`./`): only its metadata applies.
            if kind.is_dir() {
                let dir = self.root.open_dir(&[], false, &shown)?;
                set_fd_meta(&dir, &meta, &shown)?;
                self.dir_times.push((path.clone(), meta.mtime));
            }
            return Ok(());
        };

        if name.as_bytes().starts_with(WH_PREFIX) {
            return self.whiteout(parent, name, &shown);
        }

        let dir = self.parent_dir(parent, &shown)?;
        match kind {
            EntryType::Directory => {
                let fd = make_dir(&dir, name, &shown)?;
                set_fd_meta(&fd, &meta, &shown)?;
                self.dir_times.push((path.clone(), meta.mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let file = create_file(&dir, name, &shown)?;
                // A sparse entry's stored bytes are not the file's contents: kept raw.
                if kind != EntryType::GNUSparse {
                    self.reference(entry.raw_file_position(), entry.size(), &path, &shown)?;
                }
                let mut file = File::from(file);
                if self.buf.len() < pipeline::CHUNK {
                    self.buf = vec![0; pipeline::CHUNK];
                }
                write_sparse(&mut file, entry, &mut self.buf, &shown)?;
                set_fd_meta(&file, &meta, &shown)?;
                set_fd_times(&file, meta.mtime, &shown)?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| Error::UnsafeEntry {
                    path: shown.clone(),
                    reason: "symlink without target",
                })?;
                let target = OsStr::from_bytes(&target).to_os_string();
                replace_with(&dir, name, &shown, |d, n| {
                    symlinkat(target.as_os_str(), d, n)
                })?;
                self.set_path_meta(&dir, name, &meta, false, &shown)?;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| Error::UnsafeEntry {
                    path: shown.clone(),
                    reason: "hard link without target",
                })?;
                self.hardlink(&dir, name, &target, &shown)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = makedev(u64::from(major), u64::from(minor));
                let perm = Mode::from_bits_truncate(meta.mode & 0o777);
                replace_with(&dir, name, &shown, |d, n| mknodat(d, n, sflag, perm, dev))?;
                self.set_path_meta(&dir, name, &meta, true, &shown)?;
            }
            // PAX and GNU long-name headers are consumed by the tar reader; anything else
            // (sockets are not representable) is skipped like Docker does.
            other => {
                tracing::debug!(entry = %shown, kind = ?other, "skipping unsupported tar entry type");
                return Ok(());
            }
        }
        if self.mode == WhiteoutMode::Delete {
            self.written.insert(path);
        }
        Ok(())
    }

    fn whiteout(&mut self, parent: &[OsString], name: &OsStr, shown: &str) -> Result<()> {
        let dir = self.root.open_dir(parent, true, shown)?;
        if name.as_bytes() == WH_OPAQUE {
            return match self.mode {
                WhiteoutMode::Overlay => {
                    xattr::FileExt::set_xattr(&File::from(dir), "trusted.overlay.opaque", b"y")
                        .ctx(|| format!("mark {shown} opaque"))
                }
                WhiteoutMode::Delete => self.clear_dir(&dir, parent, shown),
            };
        }
        let target = &name.as_bytes()[WH_PREFIX.len()..];
        if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
            return Err(Error::UnsafeEntry {
                path: shown.to_string(),
                reason: "bad whiteout name",
            });
        }
        let target = OsStr::from_bytes(target);
        match self.mode {
            WhiteoutMode::Overlay => replace_with(&dir, target, shown, |d, n| {
                mknodat(d, n, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            }),
            WhiteoutMode::Delete => remove_entry(&dir, target, shown),
        }
    }

    /// vfs opaque whiteout: everything in `dir` that this layer did not write goes.
    fn clear_dir(&self, dir: &OwnedFd, parent: &[OsString], shown: &str) -> Result<()> {
        let names: Vec<OsString> = std::fs::read_dir(fd_path(dir.as_fd(), OsStr::new("")))
            .ctx(|| format!("list {shown}"))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .ctx(|| format!("list {shown}"))?;
        for n in names {
            let mut p = parent.to_vec();
            p.push(n.clone());
            if !self.written.contains(&RelPath(p)) {
                remove_entry(dir, &n, shown)?;
            }
        }
        Ok(())
    }

    fn hardlink(&self, dir: &OwnedFd, name: &OsStr, target: &[u8], shown: &str) -> Result<()> {
        let target = RelPath::parse(target).map_err(|_| Error::UnsafeEntry {
            path: shown.to_string(),
            reason: "hard link target outside the layer",
        })?;
        let Some((tparent, tname)) = target.split_last() else {
            return Err(Error::UnsafeEntry {
                path: shown.to_string(),
                reason: "hard link to the layer root",
            });
        };
        let tdir = self.root.open_dir(tparent, false, shown)?;
        // The target must be an entry of this layer (not a symlink to elsewhere: linkat
        // without AT_SYMLINK_FOLLOW links the symlink itself, which is harmless).
        match fstatat(tdir.as_fd(), tname, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc_s_ifmt() == libc_s_ifdir() => {
                return Err(Error::UnsafeEntry {
                    path: shown.to_string(),
                    reason: "hard link to a directory",
                });
            }
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                return Err(Error::UnsafeEntry {
                    path: shown.to_string(),
                    reason: "hard link target is not in the layer",
                });
            }
            Err(e) => return Err(Error::io(format!("stat link target of {shown}"), e.into())),
        }
        replace_with(dir, name, shown, |d, n| {
            linkat(tdir.as_fd(), tname, d, n, AtFlags::empty())
        })
    }

    /// Ownership, mode, xattrs and times of a non-directory entry that has no open fd
    /// (symlinks, devices, fifos).
    fn set_path_meta(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        chmod: bool,
        shown: &str,
    ) -> Result<()> {
        fchownat(
            dir.as_fd(),
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {shown}"))?;
        if chmod {
            // The entry was just created by mknodat and is not a symlink.
            fchmodat(
                dir.as_fd(),
                name,
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::FollowSymlink,
            )
            .ctx(|| format!("chmod {shown}"))?;
        }
        let path = fd_path(dir.as_fd(), name);
        for (k, v) in &meta.xattrs {
            xattr::set(&path, k, v).ctx(|| format!("set xattr {k:?} on {shown}"))?;
        }
        utimensat(
            dir.as_fd(),
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .ctx(|| format!("set times of {shown}"))
    }

    /// Names the contents of the file entry about to be written in the tar-split record.
    fn reference(&mut self, start: u64, size: u64, path: &RelPath, shown: &str) -> Result<()> {
        let Some(rec) = &self.rec else {
            return Ok(());
        };
        if rec
            .borrow_mut()
            .reference(start, size, path)
            .ctx(|| format!("record {shown}"))?
        {
            self.ref_at.insert(path.clone(), self.refs.len());
            self.refs.push((path.clone(), size, true));
        }
        Ok(())
    }

    /// Sets the directories' times; returns whether every file the tar-split record names
    /// is still the regular file of the recorded size the tar wrote (a later entry may have
    /// removed it, or one of its directories, or put a symlink on its way).
    fn finish(&mut self) -> Result<bool> {
        for (path, time) in self.dir_times.iter().rev() {
            let dir = match self.root.open_dir(&path.0, false, &path.display()) {
                Ok(d) => d,
                // A later entry replaced or removed the directory (`d/` then a file `d`,
                // or `.wh.d`): nothing to set.
                Err(Error::UnsafeEntry { .. }) => continue,
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            set_fd_times(&dir, *time, &path.display())?;
        }
        if self.rec.is_none() {
            return Ok(false);
        }
        let mut dir: Option<(&[OsString], OwnedFd)> = None;
        for (path, size, valid) in &self.refs {
            if !*valid {
                tracing::debug!(entry = %path.display(), "tar overwrites a file it wrote");
                return Ok(false);
            }
            let Some((parent, name)) = path.split_last() else {
                return Ok(false);
            };
            if dir.as_ref().is_none_or(|(p, _)| *p != parent) {
                let Ok(fd) = self.root.open_dir(parent, false, &path.display()) else {
                    return Ok(false);
                };
                dir = Some((parent, fd));
            }
            let fd = &dir.as_ref().expect("directory").1;
            match fstatat(fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st)
                    if st.st_mode & libc_s_ifmt() == SFlag::S_IFREG.bits()
                        && u64::try_from(st.st_size).ok() == Some(*size) => {}
                _ => {
                    tracing::debug!(entry = %path.display(), "tar removed a file it wrote");
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

fn libc_s_ifmt() -> u32 {
    SFlag::S_IFMT.bits()
}

fn libc_s_ifdir() -> u32 {
    SFlag::S_IFDIR.bits()
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta> {
    let header = entry.header();
    let bad = |what: &'static str| Error::UnsafeEntry {
        path: shown.to_string(),
        reason: what,
    };
    // Empty numeric fields (some writers leave them NUL) read as 0, like GNU tar does.
    let mut uid = u32::try_from(header.uid().unwrap_or(0)).map_err(|_| bad("uid too large"))?;
    let mut gid = u32::try_from(header.gid().unwrap_or(0)).map_err(|_| bad("gid too large"))?;
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let secs = header.mtime().unwrap_or(0);
    let mut mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|_| bad("bad pax header"))? {
        for ext in exts {
            let ext = ext.map_err(|_| bad("bad pax header"))?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if name.starts_with("trusted.overlay.") {
                    // Only our own whiteout conversion may write overlay's private xattrs.
                    tracing::debug!(entry = %shown, xattr = name, "dropping overlay xattr from layer");
                    continue;
                }
                xattrs.push((OsString::from(name), value.to_vec()));
            } else if key == "uid" {
                uid = parse_num(value).ok_or_else(|| bad("bad pax uid"))?;
            } else if key == "gid" {
                gid = parse_num(value).ok_or_else(|| bad("bad pax gid"))?;
            } else if key == "mtime" {
                mtime = parse_pax_time(value).unwrap_or(mtime);
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        xattrs,
    })
}

fn parse_num(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(TimeSpec::new(secs, if secs < 0 { -nanos } else { nanos }))
}

/// Creates or reuses the directory `name` in `dir` and opens it.
fn make_dir(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    match mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o700)) {
        Ok(()) => {}
        Err(Errno::EEXIST) => match openat(dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            // Something else is in the way (a file, a symlink): replace it.
            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                remove_entry(dir, name, shown)?;
                mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o700))
                    .ctx(|| format!("mkdir {shown}"))?;
            }
            Err(e) => return Err(Error::io(format!("open {shown}"), e.into())),
        },
        Err(e) => return Err(Error::io(format!("mkdir {shown}"), e.into())),
    }
    openat(dir.as_fd(), name, flags, Mode::empty()).ctx(|| format!("open {shown}"))
}

/// Creates the regular file `name` in `dir`, replacing whatever was there.
fn create_file(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<OwnedFd> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let perm = Mode::from_bits_truncate(0o600);
    match openat(dir.as_fd(), name, flags, perm) {
        Ok(fd) => Ok(fd),
        Err(Errno::EEXIST) => {
            remove_entry(dir, name, shown)?;
            openat(dir.as_fd(), name, flags, perm).ctx(|| format!("create {shown}"))
        }
        Err(e) => Err(Error::io(format!("create {shown}"), e.into())),
    }
}

/// Runs `make` for `name`; if something is already there, removes it and tries again.
fn replace_with(
    dir: &OwnedFd,
    name: &OsStr,
    shown: &str,
    make: impl Fn(std::os::fd::BorrowedFd<'_>, &OsStr) -> nix::Result<()>,
) -> Result<()> {
    match make(dir.as_fd(), name) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => {
            remove_entry(dir, name, shown)?;
            make(dir.as_fd(), name).ctx(|| format!("create {shown}"))
        }
        Err(e) => Err(Error::io(format!("create {shown}"), e.into())),
    }
}

/// Removes `name` from `dir` whatever it is (a directory recursively), never following
/// a symlink. A missing entry is not an error.
pub(crate) fn remove_entry(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<()> {
    match unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => {
            DIRS_REMOVED.fetch_add(1, Ordering::AcqRel);
            // std's remove_dir_all opens each level with O_NOFOLLOW (CVE-2022-21658 fix).
            std::fs::remove_dir_all(fd_path(dir.as_fd(), name)).ctx(|| format!("remove {shown}"))
        }
        Err(e) => Err(Error::io(format!("remove {shown}"), e.into())),
    }
}

fn set_fd_meta<F: AsFd>(fd: &F, meta: &Meta, shown: &str) -> Result<()> {
    fchown(
        fd.as_fd(),
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .ctx(|| format!("chown {shown}"))?;
    // After chown: chown clears set-uid/set-gid bits.
    fchmod(fd.as_fd(), Mode::from_bits_truncate(meta.mode)).ctx(|| format!("chmod {shown}"))?;
    if !meta.xattrs.is_empty() {
        let file = File::from(
            fd.as_fd()
                .try_clone_to_owned()
                .ctx(|| format!("dup {shown}"))?,
        );
        for (k, v) in &meta.xattrs {
            xattr::FileExt::set_xattr(&file, k, v).ctx(|| format!("set xattr {k:?} on {shown}"))?;
        }
    }
    Ok(())
}

fn set_fd_times<F: AsFd>(fd: &F, mtime: TimeSpec, shown: &str) -> Result<()> {
    futimens(fd.as_fd(), &mtime, &mtime).ctx(|| format!("set times of {shown}"))
}

/// Copies `r` into `file`, leaving holes where whole 64 KiB blocks are zero (sparse files
/// stay sparse; GNU sparse tar entries arrive here already expanded by the tar reader).
/// `buf` is a multiple of the block size; consecutive data blocks go out in one write.
fn write_sparse(file: &mut File, r: &mut dyn Read, buf: &mut [u8], shown: &str) -> Result<()> {
    const BLOCK: usize = 64 * 1024;
    let mut len: u64 = 0;
    let mut pending_hole = false;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = match r.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::BadStream(format!("read {shown}: {e}"))),
            };
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        // `start..` is data not yet written; whole zero blocks become holes.
        let mut start = 0;
        for block in (0..filled).step_by(BLOCK) {
            let end = (block + BLOCK).min(filled);
            if end - block == BLOCK && is_zero(&buf[block..end]) {
                file.write_all(&buf[start..block])
                    .ctx(|| format!("write {shown}"))?;
                file.seek(SeekFrom::Current(BLOCK as i64))
                    .ctx(|| format!("write {shown}"))?;
                start = end;
                pending_hole = true;
            } else {
                pending_hole = false;
            }
        }
        file.write_all(&buf[start..filled])
            .ctx(|| format!("write {shown}"))?;
        len += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    if pending_hole {
        file.set_len(len).ctx(|| format!("write {shown}"))?;
    }
    Ok(())
}

fn is_zero(buf: &[u8]) -> bool {
    let (chunks, rest) = buf.as_chunks::<16>();
    chunks.iter().all(|c| u128::from_ne_bytes(*c) == 0) && rest.iter().all(|b| *b == 0)
}
