//! The typed protocol between `hako-runtime create` (the parent), the optional
//! intermediate process and the container's init.
//!
//! ```text
//!  parent (hako-runtime create)       hako:[1:INTER] (only if needed)    hako:[2:INIT]
//!  ────────────────────────────       ───────────────────────────────    ─────────────
//!  setns(pid/time paths), unshare(time)
//!  clone3(new namespaces) ──────────────────────────────────────────────► waits
//!    (intermediate path instead:)
//!    clone3(0) ──────────────────────► setns(paths), unshare(user)
//!        ◄──────── MappingRequest ────
//!    write uid_map/gid_map
//!        ───────── MappingWritten ───► unshare(pid, ...), clone(PARENT) ─► waits
//!        ◄──────── InitPid(pid) ─────── exits
//!  write maps (single path, new user ns)
//!  put init in its cgroup
//!  ─────────── Proceed(pid) ────────────────────────────────────────────► unshare(cgroup), setns(paths),
//!                                                                         mounts, devices
//!  ◄────────── RuntimeHooks (only if prestart/createRuntime hooks) ──────
//!  run the hooks
//!  ─────────── HooksDone ───────────────────────────────────────────────► createContainer hooks,
//!                                                                         pivot_root, masks, console
//!                                                                         uid/gid, caps, fds (prepare)
//!  ◄────────── Ready ───────────────────────────────────────────────────  blocks on exec.fifo
//!  write state.json + pid file, exit           `hako-runtime start` ─fifo─► startContainer hooks,
//!                                                                         seccomp, execve
//!                                              `start` ◄─ exec.error ────  (only on failure)
//!  At any step: ◄── Failed(msg) ── and the parent cleans up everything it made.
//! ```
//!
//! Transport: a `SOCK_SEQPACKET` socketpair (message boundaries for free), one JSON
//! message per packet. Each side holds a typed end, so a step can only send what the
//! protocol allows at that step.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// Messages that flow from the parent down to the intermediate or the init.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Down {
    MappingWritten,
    /// Carries the init's pid as the host sees it (hooks report that pid).
    Proceed(i32),
    HooksDone,
    /// A parent-side step failed; the child must give up.
    Abort,
}

/// Messages that flow up from the intermediate or the init to the parent.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Up {
    MappingRequest,
    InitPid(i32),
    RuntimeHooks,
    Ready,
    Failed(String),
}

/// The parent's end.
#[derive(Debug)]
pub struct ParentEnd(OwnedFd);

/// The child's end (intermediate and init share it).
#[derive(Debug)]
pub struct ChildEnd(OwnedFd);

/// Make a connected pair. Both ends are close-on-exec: the container's program never
/// inherits them.
pub fn pair() -> Result<(ParentEnd, ChildEnd)> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context(|| "sync socketpair".into())?;
    Ok((ParentEnd(a), ChildEnd(b)))
}

fn send<T: Serialize>(fd: &OwnedFd, msg: &T) -> Result<()> {
    let bytes = serde_json::to_vec(msg).expect("protocol messages serialize");
    socket::send(fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL).context(|| "sync send".into())?;
    Ok(())
}

/// `Ok(None)` means the peer closed its end (it exited).
fn recv<T: for<'de> Deserialize<'de>>(fd: &OwnedFd) -> Result<Option<T>> {
    let mut buf = [0u8; 8192];
    loop {
        match socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                return serde_json::from_slice(&buf[..n])
                    .map(Some)
                    .map_err(|e| Error::Io {
                        context: "sync message".into(),
                        source: std::io::Error::other(e),
                    });
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context(|| "sync recv".into()),
        }
    }
}

impl ParentEnd {
    pub fn send(&self, msg: Down) -> Result<()> {
        send(&self.0, &msg)
    }

    pub fn recv(&self) -> Result<Option<Up>> {
        recv(&self.0)
    }
}

impl ChildEnd {
    pub fn send(&self, msg: Up) -> Result<()> {
        send(&self.0, &msg)
    }

    /// Wait for the parent's next word; `expected` is what the protocol allows here.
    pub fn expect(&self, expected: Down) -> Result<()> {
        match recv::<Down>(&self.0)? {
            Some(m) if m == expected => Ok(()),
            Some(Down::Abort) | None => Err(Error::Init("parent gave up".into())),
            Some(other) => Err(Error::Init(format!(
                "protocol error: expected {expected:?}, got {other:?}"
            ))),
        }
    }

    /// Wait for `Proceed`; returns the init's host pid.
    pub fn expect_proceed(&self) -> Result<i32> {
        match recv::<Down>(&self.0)? {
            Some(Down::Proceed(pid)) => Ok(pid),
            Some(Down::Abort) | None => Err(Error::Init("parent gave up".into())),
            Some(other) => Err(Error::Init(format!(
                "protocol error: expected Proceed, got {other:?}"
            ))),
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.0.as_raw_fd()
    }
}
