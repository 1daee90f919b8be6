//! The content-addressed blob store: `<root>/blobs/sha256/<hex>`.
//!
//! A blob is written to `<root>/blobs/tmp/<random>`, hashed while written, checked against
//! the digest it was announced with, fsynced, then renamed to its final name (and the
//! directory fsynced). A reader therefore sees a complete, verified blob or none; a crash
//! leaves only files under `blobs/tmp/`, which [`BlobStore::cleanup_temp`] removes.
//!
//! Registry downloads go to `<root>/blobs/partial/<hex>` instead, named by the digest they
//! must have, so that an interrupted pull can resume where it stopped (HTTP `Range`). A
//! partial file is never a blob: it becomes one only through [`BlobStore::commit_partial`]
//! after its digest was checked. Partial files survive [`BlobStore::cleanup_temp`]; old
//! ones go with [`BlobStore::cleanup_partial`].

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hashing};
use crate::error::{Error, IoContext, Result};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
    partial: PathBuf,
}

impl BlobStore {
    /// Opens (creating) the store under `<root>/blobs`.
    pub fn open(root: &Path) -> Result<BlobStore> {
        let dir = root.join("blobs").join("sha256");
        let tmp = root.join("blobs").join("tmp");
        let partial = root.join("blobs").join("partial");
        for d in [&dir, &tmp, &partial] {
            std::fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
        }
        Ok(BlobStore { dir, tmp, partial })
    }

    /// Where blob `d` lives (whether or not it exists).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    /// Whether blob `d` is present.
    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Opens blob `d` for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.path(d)).ctx(|| format!("open blob {d}"))
    }

    /// Reads a whole (small) blob.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        std::fs::read(self.path(d)).ctx(|| format!("read blob {d}"))
    }

    /// Stores the bytes of `r`. With `expected`, a different digest is an error and
    /// nothing is stored. Returns the digest and size.
    pub fn write(&self, r: &mut dyn Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        if let Some(d) = expected
            && self.contains(d)
        {
            // Already have it: consume the stream anyway so callers see a uniform
            // behaviour, but do not store it twice.
            let mut h = Hashing::new(io::sink());
            io::copy(r, &mut h).ctx(|| format!("read blob {d}"))?;
            return check(d, &h.digest(), "blob").map(|()| (d.clone(), h.count));
        }
        let mut w = self.writer()?;
        io::copy(r, &mut w).ctx(|| "write blob".to_string())?;
        if let Some(e) = expected {
            check(e, &w.digest(), "blob")?;
        }
        w.commit()
    }

    /// A blob written piece by piece: [`BlobWriter::commit`] stores it under its digest.
    pub(crate) fn writer(&self) -> Result<BlobWriter> {
        let tmp = self.tmp.join(crate::random_hex(16));
        let file = File::create_new(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        Ok(BlobWriter {
            w: Hashing::new(io::BufWriter::with_capacity(256 * 1024, file)),
            tmp: RemoveOnDrop(Some(tmp)),
            dir: self.dir.clone(),
        })
    }

    /// Stores `data`.
    pub fn write_bytes(&self, data: &[u8]) -> Result<Digest> {
        let expected = Digest::of(data);
        self.write(&mut io::Cursor::new(data), Some(&expected))
            .map(|(d, _)| d)
    }

    /// Removes blob `d` (missing is fine).
    pub fn remove(&self, d: &Digest) -> Result<()> {
        match std::fs::remove_file(self.path(d)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove blob {d}"), e)),
        }
    }

    /// All stored blobs with their sizes.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).ctx(|| format!("list {}", self.dir.display()))? {
            let e = e.ctx(|| format!("list {}", self.dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((d, size));
            }
        }
        Ok(out)
    }

    /// Where an interrupted download of blob `d` is kept.
    pub(crate) fn partial_path(&self, d: &Digest) -> PathBuf {
        self.partial.join(d.hex())
    }

    /// Makes the downloaded file at `partial` blob `d`. The caller has checked the digest
    /// of the content and fsynced the file.
    pub(crate) fn commit_partial(&self, partial: &Path, d: &Digest) -> Result<()> {
        hako_sys::crash::point("blob.downloaded");
        std::fs::rename(partial, self.path(d)).ctx(|| format!("commit blob {d}"))?;
        File::open(&self.dir)
            .and_then(|f| f.sync_all())
            .ctx(|| "fsync blob dir".to_string())
    }

    /// Removes partial downloads not touched for `max_age`. Only safe while no other
    /// writer is active.
    pub fn cleanup_partial(&self, max_age: std::time::Duration) -> Result<usize> {
        let mut n = 0;
        let rd =
            std::fs::read_dir(&self.partial).ctx(|| format!("list {}", self.partial.display()))?;
        for e in rd {
            let e = e.ctx(|| format!("list {}", self.partial.display()))?;
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if age >= max_age && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes half-written blobs. Only safe while no other writer is active.
    pub fn cleanup_temp(&self) -> Result<usize> {
        let mut n = 0;
        for e in std::fs::read_dir(&self.tmp).ctx(|| format!("list {}", self.tmp.display()))? {
            let e = e.ctx(|| format!("list {}", self.tmp.display()))?;
            let _ = std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir_all(e.path()));
            n += 1;
        }
        Ok(n)
    }
}

/// A blob being written to `blobs/tmp/`, hashed on the way. Dropped without
/// [`BlobWriter::commit`], the temporary file goes.
#[derive(Debug)]
pub(crate) struct BlobWriter {
    w: Hashing<io::BufWriter<File>>,
    tmp: RemoveOnDrop,
    dir: PathBuf,
}

impl io::Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.w.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

impl BlobWriter {
    /// The digest of what was written so far.
    pub(crate) fn digest(&self) -> Digest {
        self.w.digest()
    }

    /// Where the blob is being written (until it is committed).
    pub(crate) fn temp_path(&self) -> &Path {
        self.tmp.0.as_deref().unwrap_or(Path::new(""))
    }

    /// Flushes, fsyncs and renames the blob to its digest (a blob of that digest already
    /// there is replaced by the same bytes); returns the digest and size.
    pub(crate) fn commit(self) -> Result<(Digest, u64)> {
        let digest = self.w.digest();
        let size = self.w.count;
        let file = self
            .w
            .inner
            .into_inner()
            .map_err(|e| Error::io("write blob", e.into_error()))?;
        file.sync_all().ctx(|| "fsync blob".to_string())?;
        drop(file);
        hako_sys::crash::point("blob.written");
        let tmp = self.tmp.0.clone().unwrap_or_default();
        std::fs::rename(&tmp, self.dir.join(digest.hex()))
            .ctx(|| format!("commit blob {digest}"))?;
        hako_sys::crash::point("blob.stored");
        self.tmp.disarm();
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .ctx(|| "fsync blob dir".to_string())?;
        Ok((digest, size))
    }
}

fn check(expected: &Digest, actual: &Digest, what: &str) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

#[derive(Debug)]
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
