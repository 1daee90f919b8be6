//! Moving a layer stream between threads in chunks, so that reading, hashing,
//! decompressing and writing files overlap.
//!
//! ```text
//!  caller's thread          hako-unpack-dec (compressed only)     hako-unpack
//!  read + sha256(blob) ──► inflate/zstd + sha256(diff id) ──► tar entries → files
//!        [Chunk]                        [Chunk]
//! ```
//!
//! Each arrow is a bounded channel of [`CHUNK`]-sized buffers, so at most a few MiB are in
//! flight. A stage that fails drops its receiver; the stage before it then sees its send
//! fail and stops reading (it does not treat that as an error of its own: the stage that
//! failed reports why). A read error travels down the channel as the `Err` of a chunk, so
//! the last stage sees the caller's own `io::Error`.
//!
//! The caller's stream is read on the caller's thread because `Driver::apply_layer` takes
//! a `&mut dyn Read` that need not be `Send`.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use sha2::{Digest, Sha256};

/// Size of one chunk. Large enough that per-chunk costs (a channel send, a wakeup) vanish
/// against hashing and writing 1 MiB; small enough that a few in flight stay cheap.
pub(crate) const CHUNK: usize = 1 << 20;

/// Chunks a stage may run ahead of the next one.
const DEPTH: usize = 4;

type Chunk = io::Result<Vec<u8>>;

/// The sending end of a stage: full chunks go forward, emptied buffers come back.
pub(crate) struct ChunkWriter {
    tx: SyncSender<Chunk>,
    spare: Receiver<Vec<u8>>,
}

/// The receiving end of a stage, readable as a stream.
pub(crate) struct ChunkReader {
    rx: Receiver<Chunk>,
    back: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    /// A read error already returned once (`io::Error` is not `Clone`): later reads fail
    /// again instead of looking like the end of the stream.
    failed: Option<(io::ErrorKind, String)>,
}

/// A connected writer/reader pair.
pub(crate) fn chunk_channel() -> (ChunkWriter, ChunkReader) {
    let (tx, rx) = sync_channel(DEPTH);
    let (back, spare) = channel();
    (
        ChunkWriter { tx, spare },
        ChunkReader {
            rx,
            back,
            cur: Vec::new(),
            pos: 0,
            failed: None,
        },
    )
}

/// Why [`ChunkWriter::send`] could not deliver: the reader is gone.
pub(crate) struct ReaderGone;

impl ChunkWriter {
    /// An empty buffer with room for a chunk, reused from the reader when it has one.
    pub(crate) fn buffer(&self) -> Vec<u8> {
        match self.spare.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(CHUNK),
        }
    }

    pub(crate) fn send(&self, chunk: Chunk) -> Result<(), ReaderGone> {
        self.tx.send(chunk).map_err(|_| ReaderGone)
    }
}

/// Sha256 and length of a stream, fed piecewise.
#[derive(Default)]
pub(crate) struct Hashed {
    hasher: Sha256,
    len: u64,
}

impl Hashed {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.len += data.len() as u64;
    }

    /// `sha256:<hex>` and the byte count.
    pub(crate) fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.len,
        )
    }
}

/// Reads `src` to its end in chunks, hashing them and sending them to `out`.
///
/// Returns `None` if the reader went away first (a later stage failed) or `src` failed
/// (the error went down the channel).
pub(crate) fn pump(src: &mut dyn Read, out: ChunkWriter) -> Option<(String, u64)> {
    let mut hashed = Hashed::default();
    loop {
        let mut buf = out.buffer();
        match read_chunk(src, &mut buf) {
            Ok(()) if buf.is_empty() => return Some(hashed.finish()),
            Ok(()) => {
                hashed.update(&buf);
                out.send(Ok(buf)).ok()?;
            }
            Err(e) => {
                let _ = out.send(Err(e));
                return None;
            }
        }
    }
}

/// Fills `buf` (empty, capacity [`CHUNK`]) from `src` until it is full or `src` ends.
fn read_chunk(src: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.resize(CHUNK, 0);
    let mut filled = 0;
    while filled < CHUNK {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(filled);
                return Err(e);
            }
        }
    }
    buf.truncate(filled);
    Ok(())
}

impl ChunkReader {
    fn failed(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, msg)| io::Error::new(*kind, msg.clone()))
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let used = std::mem::replace(&mut self.cur, next);
                    self.pos = 0;
                    if used.capacity() >= CHUNK {
                        // The writer may be gone already; then the buffer is just freed.
                        let _ = self.back.send(used);
                    }
                }
                Ok(Err(e)) => {
                    self.failed = Some((e.kind(), e.to_string()));
                    return Err(e);
                }
                // The writer finished: the end of the stream.
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.cur.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_arrive_whole_and_hashed() {
        let data: Vec<u8> = (0..3 * CHUNK + 17)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let (w, mut r) = chunk_channel();
        let expected = data.clone();
        let got = std::thread::scope(|s| {
            let t = s.spawn(move || pump(&mut io::Cursor::new(data), w));
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            assert_eq!(got, expected);
            t.join().unwrap()
        });
        let mut h = Hashed::default();
        h.update(&expected);
        assert_eq!(got, Some(h.finish()));
    }

    #[test]
    fn a_read_error_reaches_the_reader_and_stays() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "boom"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
        }
        let (w, mut r) = chunk_channel();
        std::thread::scope(|s| {
            s.spawn(move || assert!(pump(&mut Failing(CHUNK + 5), w).is_none()));
            let mut sink = Vec::new();
            let e = r.read_to_end(&mut sink).unwrap_err();
            assert_eq!(e.to_string(), "boom");
            let e = r.read(&mut [0; 4]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        });
    }

    #[test]
    fn the_writer_stops_when_the_reader_is_gone() {
        let (w, r) = chunk_channel();
        drop(r);
        assert!(pump(&mut io::repeat(1).take(10 * CHUNK as u64), w).is_none());
    }
}
