//! Tar-split records: what it takes, besides the unpacked layer directory, to give back the
//! layer's tar stream byte for byte (so the layer's diff id, and `save`/`push`, stay exact
//! without keeping the tar itself: containers/storage and Docker keep a `tar-split` file per
//! layer for the same reason).
//!
//! While a layer is applied ([`crate::unpack::apply_split`]) every byte of the uncompressed
//! tar passes a [`Recorder`]: the bytes of a regular file's contents that unpacking writes
//! into the layer are left out and named instead (path, size, CRC-32), everything else
//! (headers, PAX and GNU extension records, padding, the end blocks and whatever follows
//! them, the data of entries that are not written as files) is kept as is. [`LayerTar`]
//! reads the record back and, for each named file, that file from the layer directory.
//!
//! ```text
//! record  = zstd( MAGIC op* END )                         (zstd frame with its checksum)
//! op      = 'S' len:varint bytes                          raw tar bytes
//!         | 'F' len:varint path size:varint crc:u32le     `size` bytes of the file `path`
//! END     = 'E' total:varint                              length of the whole tar
//! ```
//!
//! A named file must still hold exactly what was unpacked: it is opened inside the layer
//! without following any symlink, must be a regular file of the recorded size, and its
//! checksum must match; a damaged or truncated record is an error too. Nothing is ever
//! silently replaced by other bytes.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat};

use crate::error::{Error, IoContext, Result};
use crate::safefs::{RelPath, Root};

const MAGIC: &[u8; 8] = b"hkts\0\0\0\x01";
const OP_SEGMENT: u8 = b'S';
const OP_FILE: u8 = b'F';
const OP_END: u8 = b'E';
/// Raw bytes are flushed as one segment once this many are buffered.
const SEGMENT_MAX: usize = 1 << 20;

/// Writes a record while a tar stream passes through it (see the module docs).
pub(crate) struct Recorder<'w> {
    out: zstd::stream::write::Encoder<'static, &'w mut (dyn Write + Send)>,
    /// Bytes of the tar seen so far.
    pos: u64,
    /// Raw bytes not yet written as a segment.
    seg: Vec<u8>,
    /// The file whose contents are passing now.
    cur: Option<FileRef>,
}

struct FileRef {
    path: Vec<u8>,
    size: u64,
    end: u64,
    crc: u32,
}

impl<'w> Recorder<'w> {
    pub(crate) fn new(out: &'w mut (dyn Write + Send)) -> Result<Recorder<'w>> {
        let mut out =
            zstd::stream::write::Encoder::new(out, 3).ctx(|| "start tar-split record".into())?;
        out.include_checksum(true)
            .ctx(|| "start tar-split record".into())?;
        out.write_all(MAGIC)
            .ctx(|| "write tar-split record".into())?;
        Ok(Recorder {
            out,
            pos: 0,
            seg: Vec::new(),
            cur: None,
        })
    }

    /// The next `size` bytes, starting at offset `start` of the tar, are the contents of the
    /// file `path` in the layer. False (the bytes are then kept in the record) unless the
    /// stream is exactly at `start` and there is something to leave out.
    pub(crate) fn reference(&mut self, start: u64, size: u64, path: &RelPath) -> io::Result<bool> {
        if size == 0 || start != self.pos || self.cur.is_some() {
            return Ok(false);
        }
        self.flush_segment()?;
        self.cur = Some(FileRef {
            path: path.to_bytes(),
            size,
            end: start + size,
            crc: 0,
        });
        Ok(true)
    }

    /// Takes the next bytes of the tar.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if let Some(r) = &mut self.cur {
                let take = usize::try_from(r.end - self.pos)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                r.crc = crc32(r.crc, &data[..take]);
                self.pos += take as u64;
                data = &data[take..];
                if self.pos == r.end {
                    let r = self.cur.take().expect("current file");
                    let mut op = vec![OP_FILE];
                    varint(&mut op, r.path.len() as u64);
                    op.extend_from_slice(&r.path);
                    varint(&mut op, r.size);
                    op.extend_from_slice(&r.crc.to_le_bytes());
                    self.out.write_all(&op)?;
                }
            } else {
                self.seg.extend_from_slice(data);
                self.pos += data.len() as u64;
                data = &[];
                if self.seg.len() >= SEGMENT_MAX {
                    self.flush_segment()?;
                }
            }
        }
        Ok(())
    }

    fn flush_segment(&mut self) -> io::Result<()> {
        if self.seg.is_empty() {
            return Ok(());
        }
        let mut op = vec![OP_SEGMENT];
        varint(&mut op, self.seg.len() as u64);
        self.out.write_all(&op)?;
        self.out.write_all(&self.seg)?;
        self.seg.clear();
        Ok(())
    }

    /// Ends the record after the last byte of the tar.
    pub(crate) fn finish(mut self) -> Result<()> {
        if self.cur.is_some() {
            return Err(Error::BadStream("layer stream ended inside a file".into()));
        }
        let mut op = vec![OP_END];
        varint(&mut op, self.pos);
        self.flush_segment()
            .and_then(|()| self.out.write_all(&op))
            .and_then(|()| self.out.finish())
            .and_then(|w| w.flush())
            .ctx(|| "write tar-split record".into())
    }
}

/// A reader that feeds everything it reads to a [`Recorder`].
pub(crate) struct Tee<'a, 'w> {
    pub(crate) inner: &'a mut dyn Read,
    pub(crate) rec: std::rc::Rc<std::cell::RefCell<Recorder<'w>>>,
}

impl Read for Tee<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.rec.borrow_mut().feed(&buf[..n])?;
        Ok(n)
    }
}

/// A layer's tar stream rebuilt from its record and its directory. Reads fail with
/// [`io::ErrorKind::InvalidData`] and a message naming what does not match when the record
/// is damaged or a file of the layer is not what was unpacked.
pub struct LayerTar<'a> {
    ops: BufReader<zstd::stream::read::Decoder<'static, BufReader<Box<dyn Read + Send + 'a>>>>,
    root: Root,
    /// The directory of the previous file, still open (files come grouped by directory).
    dir: Option<(Vec<OsString>, OwnedFd)>,
    state: State,
    /// Bytes produced so far.
    count: u64,
}

impl std::fmt::Debug for LayerTar<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerTar")
            .field("root", &self.root)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

enum State {
    Start,
    Idle,
    Segment(u64),
    File {
        file: File,
        path: String,
        left: u64,
        crc: u32,
        want: u32,
    },
    Done,
}

impl<'a> LayerTar<'a> {
    /// Rebuilds the tar of the layer whose files are in `layer_dir` from `record`.
    pub fn new(record: Box<dyn Read + Send + 'a>, layer_dir: &Path) -> Result<LayerTar<'a>> {
        let decoder =
            zstd::stream::read::Decoder::new(record).ctx(|| "open tar-split record".into())?;
        Ok(LayerTar {
            ops: BufReader::new(decoder),
            root: Root::open(layer_dir)?,
            dir: None,
            state: State::Start,
            count: 0,
        })
    }

    fn next_op(&mut self) -> io::Result<()> {
        let mut tag = [0u8];
        if self.ops.read(&mut tag).map_err(record_error)? == 0 {
            return Err(damaged("it ends before its end marker"));
        }
        self.state = match tag[0] {
            OP_SEGMENT => State::Segment(read_varint(&mut self.ops)?),
            OP_FILE => {
                let len = read_varint(&mut self.ops)?;
                if len > 64 * 1024 {
                    return Err(damaged("a file name is too long"));
                }
                let mut path = vec![0u8; usize::try_from(len).unwrap_or(0)];
                self.ops.read_exact(&mut path).map_err(record_error)?;
                let size = read_varint(&mut self.ops)?;
                let mut crc = [0u8; 4];
                self.ops.read_exact(&mut crc).map_err(record_error)?;
                let shown = String::from_utf8_lossy(&path).into_owned();
                let file = self.open(&path, &shown, size)?;
                State::File {
                    file,
                    path: shown,
                    left: size,
                    crc: 0,
                    want: u32::from_le_bytes(crc),
                }
            }
            OP_END => {
                let total = read_varint(&mut self.ops)?;
                if total != self.count {
                    return Err(damaged(&format!(
                        "it describes {total} bytes but gave {}",
                        self.count
                    )));
                }
                let mut rest = [0u8];
                if self.ops.read(&mut rest).map_err(record_error)? != 0 {
                    return Err(damaged("there is data after its end marker"));
                }
                State::Done
            }
            _ => return Err(damaged("unknown record entry")),
        };
        Ok(())
    }

    /// Opens the file `path` of the layer: a regular file of `size` bytes, reached without
    /// following a symlink.
    fn open(&mut self, path: &[u8], shown: &str, size: u64) -> io::Result<File> {
        let rel = RelPath::parse(path).map_err(|_| damaged("a file name is not a layer path"))?;
        let (parent, name) = rel
            .split_last()
            .ok_or_else(|| damaged("a file is the layer root"))?;
        let cached = matches!(&self.dir, Some((p, _)) if p.as_slice() == parent);
        if !cached {
            let fd = self
                .root
                .open_dir(parent, false, shown)
                .map_err(|e| changed(shown, &format!("its directory cannot be opened: {e}")))?;
            self.dir = Some((parent.to_vec(), fd));
        }
        let dir = &self.dir.as_ref().expect("directory").1;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        let fd = openat(dir.as_fd(), name, flags, Mode::empty())
            .map_err(|e| changed(shown, &format!("it cannot be opened: {e}")))?;
        let st = fstat(fd.as_fd()).map_err(io::Error::from)?;
        if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
            return Err(changed(shown, "it is no longer a regular file"));
        }
        if u64::try_from(st.st_size).unwrap_or(u64::MAX) != size {
            return Err(changed(
                shown,
                &format!("it has {} bytes, {size} were unpacked", st.st_size),
            ));
        }
        Ok(File::from(fd))
    }
}

impl Read for LayerTar<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.state {
                State::Start => {
                    let mut magic = [0u8; 8];
                    self.ops.read_exact(&mut magic).map_err(record_error)?;
                    if &magic != MAGIC {
                        return Err(damaged("it is not a tar-split record"));
                    }
                    self.state = State::Idle;
                }
                State::Idle => self.next_op()?,
                State::Done => return Ok(0),
                State::Segment(0) => self.state = State::Idle,
                State::Segment(left) => {
                    let want = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    let n = self.ops.read(&mut buf[..want]).map_err(record_error)?;
                    if n == 0 {
                        return Err(damaged("it ends inside a segment"));
                    }
                    *left -= n as u64;
                    self.count += n as u64;
                    return Ok(n);
                }
                State::File {
                    file,
                    path,
                    left,
                    crc,
                    want,
                } => {
                    if *left == 0 {
                        let mut extra = [0u8];
                        if file.read(&mut extra)? != 0 {
                            return Err(changed(path, "it grew"));
                        }
                        if crc != want {
                            return Err(changed(path, "its contents changed (checksum)"));
                        }
                        self.state = State::Idle;
                        continue;
                    }
                    let len = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    let n = file.read(&mut buf[..len])?;
                    if n == 0 {
                        return Err(changed(path, "it shrank"));
                    }
                    *crc = crc32(*crc, &buf[..n]);
                    *left -= n as u64;
                    self.count += n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

fn damaged(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("tar-split record is damaged: {why}"),
    )
}

/// An error reading the record itself (zstd's own: a bad frame, a checksum, its end).
fn record_error(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => damaged("it is cut short"),
        _ => damaged(&e.to_string()),
    }
}

fn changed(path: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("file {path:?} of the layer is not the one unpacked: {why}"),
    )
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = u8::try_from(v & 0x7f).unwrap_or(0);
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn read_varint(r: &mut dyn BufRead) -> io::Result<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        r.read_exact(&mut b).map_err(record_error)?;
        v |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(damaged("a number is too long"))
}

/// CRC-32 (crc32fast, already linked through flate2): catches a changed file early and
/// names it; not a security boundary (the diff id the caller checks is).
fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(data);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(read_varint(&mut &b[..]).unwrap(), v);
        }
    }
}
