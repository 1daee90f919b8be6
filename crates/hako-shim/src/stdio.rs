//! The container's stdio for one run: pipes, or the pty master that the runtime sends to
//! `console.sock`.
//!
//! Without a terminal the runtime's `create` is spawned with pipes as its stdio and hands
//! them to the container's init; the shim keeps the other ends. With a terminal the init
//! makes a pty and sends the master over `--console-socket` (SCM_RIGHTS, payload = pty name),
//! before `create` returns.

use std::fs::File;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

use crate::logfile::Stream;
use crate::runtime::CreateStdio;

/// The shim's ends of one run's stdio.
#[derive(Debug)]
pub struct ContainerIo {
    /// Output still open, by stream (a tty has one: its master, as stdout).
    pub outputs: Vec<(Stream, OwnedFd)>,
    /// Where attach clients' input goes (a pipe, or a copy of the master); `None` once
    /// closed or when the container has no stdin.
    pub stdin: Option<OwnedFd>,
    /// The pty master, for resizing.
    pub master: Option<OwnedFd>,
}

/// Pipes for a container without a terminal: `create`'s stdio plus the shim's ends.
pub fn pipes(with_stdin: bool) -> io::Result<(CreateStdio, ContainerIo)> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin_r, stdin_w) = if with_stdin {
        let (r, w) = pipe()?;
        set_nonblocking(&w)?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    set_nonblocking(&out_r)?;
    set_nonblocking(&err_r)?;
    Ok((
        CreateStdio {
            stdin: stdin_r,
            stdout: out_w,
            stderr: err_w,
        },
        ContainerIo {
            outputs: vec![(Stream::Stdout, out_r), (Stream::Stderr, err_r)],
            stdin: stdin_w,
            master: None,
        },
    ))
}

/// `create`'s stdio with a terminal: stdout to /dev/null, stderr to a pipe whose read end
/// (returned too) holds the runtime's error message if create fails.
pub fn for_tty_create() -> io::Result<(CreateStdio, OwnedFd)> {
    let (err_r, err_w) = pipe()?;
    set_nonblocking(&err_r)?;
    let null = File::options().write(true).open("/dev/null")?;
    Ok((
        CreateStdio {
            stdin: None,
            stdout: null.into(),
            stderr: err_w,
        },
        err_r,
    ))
}

/// After a successful `create` with a terminal: take the master from the console socket.
pub fn receive_tty(listener: &UnixListener, with_stdin: bool) -> io::Result<ContainerIo> {
    let master = receive_master(listener, Duration::from_secs(10))?;
    set_nonblocking(&master)?;
    let stdin = if with_stdin {
        Some(master.try_clone()?)
    } else {
        None
    };
    Ok(ContainerIo {
        outputs: vec![(Stream::Stdout, master.try_clone()?)],
        stdin,
        master: Some(master),
    })
}

/// Accept one connection on the (non-blocking) console socket and receive the descriptor
/// it carries.
fn receive_master(listener: &UnixListener, timeout: Duration) -> io::Result<OwnedFd> {
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, PollTimeout::from(ms))? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the runtime sent no terminal to the console socket",
        ));
    }
    let (conn, _) = listener.accept()?;
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(timeout))?;
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut master = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // Own every received descriptor so extras are closed, keep the first.
                let fd = hako_sys::fd::from_received(fd);
                master.get_or_insert(fd);
            }
        }
    }
    master.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor received"))
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Set `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}
