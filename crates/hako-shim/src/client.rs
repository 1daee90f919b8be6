//! One connection on `attach.sock`: it first sends a request line, then is either answered
//! and closed, parked until the container exits (`wait`), or attached to the stdio.
//!
//! Everything sent to a client goes through its output buffer, written when the socket is
//! writable, so a slow client never blocks the shim; past [`MAX_BUFFERED`] the client is
//! dropped.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use crate::logfile::Stream;
use crate::protocol::{Reply, STREAM_STDERR, STREAM_STDOUT};

/// Output a client may have pending before it is dropped.
pub const MAX_BUFFERED: usize = 1 << 20;
/// The longest request line accepted.
const MAX_REQUEST: usize = 4096;

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Its request line has not arrived yet.
    Request,
    /// Parked until the next exit (`wait`).
    Waiting,
    /// Attached to the container's stdio.
    Attached {
        /// Its input goes to the container's stdin.
        stdin: bool,
        /// It gets stdout.
        stdout: bool,
        /// It gets stderr.
        stderr: bool,
    },
}

/// A client connection.
#[derive(Debug)]
pub struct Client {
    /// The connection (non-blocking).
    pub stream: UnixStream,
    /// What it is for.
    pub role: Role,
    /// The request line read so far.
    line: Vec<u8>,
    /// Pending output and how much of it was written.
    out: Vec<u8>,
    out_pos: usize,
    /// Close once the output is written.
    pub closing: bool,
    /// Its read side reached EOF (it shut down its write half).
    pub read_eof: bool,
    /// Something went wrong; drop it.
    pub dead: bool,
}

impl Client {
    /// A new connection waiting for its request.
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            role: Role::Request,
            line: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            closing: false,
            read_eof: false,
            dead: false,
        })
    }

    /// Read more of the request line; `Some(line)` once it is complete. Bytes after the
    /// newline (early stdin of an attach) are returned too, as the second item.
    pub fn read_request(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut buf = [0u8; 512];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.dead = true;
                    return None;
                }
                Ok(n) => {
                    self.line.extend_from_slice(&buf[..n]);
                    if let Some(nl) = self.line.iter().position(|&b| b == b'\n') {
                        let rest = self.line.split_off(nl + 1);
                        let mut line = std::mem::take(&mut self.line);
                        line.pop();
                        return Some((line, rest));
                    }
                    if self.line.len() > MAX_REQUEST {
                        self.dead = true;
                        return None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(_) => {
                    self.dead = true;
                    return None;
                }
            }
        }
    }

    /// Ends the connection now if it is done (its last output written, or broken): the
    /// peer reads its EOF at once instead of when the client is dropped, which the
    /// monitor's loop does only after the work of its turn.
    pub fn hang_up_if_done(&mut self) {
        if self.dead {
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Queue a reply line.
    pub fn reply(&mut self, reply: &Reply) {
        let mut line = serde_json::to_vec(reply).unwrap_or_else(|_| b"\"ok\"".to_vec());
        line.push(b'\n');
        self.queue(&line);
    }

    /// Queue a reply line and close after it.
    pub fn reply_and_close(&mut self, reply: &Reply) {
        self.reply(reply);
        self.closing = true;
    }

    /// Queue container output if this client wants `stream`: raw with a tty, else framed.
    pub fn output(&mut self, stream: Stream, data: &[u8], tty: bool) {
        let Role::Attached { stdout, stderr, .. } = self.role else {
            return;
        };
        let (wanted, id) = match stream {
            Stream::Stdout => (stdout, STREAM_STDOUT),
            Stream::Stderr => (stderr, STREAM_STDERR),
        };
        if !wanted || self.closing {
            return;
        }
        if !tty {
            let len = u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes();
            self.queue(&[id, 0, 0, 0, len[0], len[1], len[2], len[3]]);
        }
        self.queue(data);
    }

    fn queue(&mut self, data: &[u8]) {
        if self.pending() + data.len() > MAX_BUFFERED {
            self.dead = true;
            return;
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(data);
        self.flush();
    }

    /// Bytes queued but not written yet.
    pub fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Write as much queued output as the socket takes.
    pub fn flush(&mut self) {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => {
                    self.dead = true;
                    break;
                }
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 64 * 1024 {
                self.out.shrink_to(4096);
            }
            if self.closing {
                self.dead = true;
            }
        }
    }

    /// Read input (stdin bytes) from an attached client into `into`, at most `max` bytes.
    /// Sets `read_eof` at EOF.
    pub fn read_input(&mut self, into: &mut Vec<u8>, max: usize) {
        let mut buf = [0u8; 4096];
        while into.len() < max {
            let want = buf.len().min(max - into.len());
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => {
                    self.read_eof = true;
                    return;
                }
                Ok(n) => into.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.read_eof = true;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_filters() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut c = Client::new(a).unwrap();
        c.role = Role::Attached {
            stdin: false,
            stdout: true,
            stderr: false,
        };
        c.output(Stream::Stdout, b"hi", false);
        c.output(Stream::Stderr, b"no", false);
        c.output(Stream::Stdout, b"raw", true);
        drop(c);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"\x01\x00\x00\x00\x00\x00\x00\x02hiraw");
    }
}
