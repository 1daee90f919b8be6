//! A `--console-socket` receiver: a unix socket on which the runtime sends the pty master
//! of a `terminal: true` container as SCM_RIGHTS ancillary data (runc's protocol).

use std::fs::File;
use std::io::{IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};

/// Listens on a socket path; [`ConsoleSocket::receive`] returns the pty master.
#[derive(Debug)]
pub struct ConsoleSocket {
    path: PathBuf,
    rx: mpsc::Receiver<Result<OwnedFd>>,
}

impl ConsoleSocket {
    /// Bind `path` and accept one connection in a background thread.
    pub fn bind(path: &Path) -> Result<Self> {
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let result = listener
                .accept()
                .map_err(anyhow::Error::from)
                .and_then(|(stream, _)| receive_fd(&stream));
            let _ = tx.send(result);
        });
        Ok(Self {
            path: path.to_path_buf(),
            rx,
        })
    }

    /// The socket path to pass as `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait for the runtime to send the pty master.
    pub fn receive(&self, timeout: Duration) -> Result<File> {
        let fd = self
            .rx
            .recv_timeout(timeout)
            .map_err(|_| anyhow!("no pty master received on {}", self.path.display()))??;
        Ok(File::from(fd))
    }
}

fn receive_fd(stream: &std::os::unix::net::UnixStream) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
        .context("recvmsg on console socket")?;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    bail!("console socket message carried no file descriptor")
}

/// Write `input` to a pty master, then read until `needle` shows up in what comes back (or
/// `timeout` passes); returns everything read.
pub fn pty_roundtrip(master: &mut File, input: &str, needle: &str, timeout: Duration) -> String {
    let _ = master.write_all(input.as_bytes());
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) if n > 0 => {
                let mut chunk = [0u8; 1024];
                match master.read(&mut chunk) {
                    Ok(0) | Err(_) => break, // EIO: the slave side closed
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
                if String::from_utf8_lossy(&seen).contains(needle) {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}
