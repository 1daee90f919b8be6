//! The byte streams of attach and exec, for every front end: Docker's detach keys and its
//! stdcopy framing (`[stream, 0, 0, 0, len as u32 BE]` + payload for streams without a tty).

use std::io::{self, Read, Write};

use crate::error::{Error, Result};

/// Docker's default detach sequence, ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[16, 17];

/// Stream ids of stdcopy frames.
pub const STDIN: u8 = 0;
/// See [`STDIN`].
pub const STDOUT: u8 = 1;
/// See [`STDIN`].
pub const STDERR: u8 = 2;
/// An error message of the engine (Docker's `Systemerr`).
pub const SYSTEMERR: u8 = 3;

/// `ctrl-p,ctrl-q` → bytes. Docker's syntax: comma separated `ctrl-X` or single characters.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    spec.split(',')
        .map(|k| {
            let k = k.trim();
            let bad = || {
                Error::InvalidArgument(format!(
                    "Invalid detach keys ({spec}) provided: unknown character {k:?}"
                ))
            };
            if let Some(c) = k.strip_prefix("ctrl-") {
                Ok(match c {
                    "@" => 0,
                    "[" => 27,
                    "\\" => 28,
                    "]" => 29,
                    "^" => 30,
                    "_" => 31,
                    c if c.len() == 1 && c.as_bytes()[0].is_ascii_lowercase() => {
                        c.as_bytes()[0] - b'a' + 1
                    }
                    _ => return Err(bad()),
                })
            } else if k.len() == 1 {
                Ok(k.as_bytes()[0])
            } else {
                Err(bad())
            }
        })
        .collect()
}

/// Finds the detach sequence in input as it streams by. Bytes of a partial match are
/// held back until the match fails (then they are passed on) or completes (then they are
/// dropped and the stream detaches), as Docker's `term.EscapeProxy` does.
#[derive(Debug, Clone)]
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    /// A scanner for `keys` (empty: never detaches).
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, matched: 0 }
    }

    /// Feeds `input`; returns the bytes to forward, and whether the sequence completed
    /// (nothing after it is forwarded).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            if self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    continue;
                }
            }
            out.push(b);
        }
        (out, false)
    }
}

/// Writes `data` as stdcopy frames (none when it is empty).
pub fn write_frame(w: &mut dyn Write, stream: u8, data: &[u8]) -> io::Result<()> {
    for chunk in data.chunks(u32::MAX as usize) {
        let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX).to_be_bytes();
        w.write_all(&[stream, 0, 0, 0, len[0], len[1], len[2], len[3]])?;
        w.write_all(chunk)?;
    }
    Ok(())
}

/// Reads one stdcopy frame: `None` at a clean end of the stream.
pub fn read_frame(r: &mut dyn Read, payload: &mut Vec<u8>) -> io::Result<Option<u8>> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended inside a frame header",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    // What arrives, not what the header claims: a header saying 4 GiB would otherwise
    // allocate (and zero) 4 GiB before the first byte of it is read.
    payload.clear();
    r.take(u64::from(len)).read_to_end(payload)?;
    if payload.len() as u64 != u64::from(len) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the stream ended inside a frame ({} of {len} bytes)",
                payload.len()
            ),
        ));
    }
    Ok(Some(header[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_detach_keys() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-pp").is_err());
    }

    #[test]
    fn scanner_holds_back_partial_matches() {
        let mut s = DetachScanner::new(vec![16, 17]);
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(s.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
        let mut none = DetachScanner::new(Vec::new());
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, STDOUT, b"hi").unwrap();
        write_frame(&mut buf, STDERR, b"").unwrap();
        write_frame(&mut buf, STDERR, b"e").unwrap();
        assert_eq!(&buf[..10], b"\x01\x00\x00\x00\x00\x00\x00\x02hi");
        assert_eq!(buf.len(), 19, "no empty frames");
        let mut r = &buf[..];
        let mut p = Vec::new();
        assert_eq!(read_frame(&mut r, &mut p).unwrap(), Some(STDOUT));
        assert_eq!(p, b"hi");
        assert_eq!(read_frame(&mut r, &mut p).unwrap(), Some(STDERR));
        assert_eq!(p, b"e");
        assert_eq!(read_frame(&mut r, &mut p).unwrap(), None);
        let mut cut: &[u8] = b"\x01\x00\x00";
        assert!(read_frame(&mut cut, &mut p).is_err());
        // A header claiming 4 GiB over 3 bytes: an error, without a 4 GiB buffer (found by
        // the api_request fuzz target: a create body read as frames took 20 s to zero one).
        let mut big: &[u8] = b"\x01\x00\x00\x00\xff\xff\xff\xffabc";
        let e = read_frame(&mut big, &mut p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(p.capacity() < 1 << 20, "{} bytes allocated", p.capacity());
    }
}
