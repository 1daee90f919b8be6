//! Terminals: the init makes a pty inside the container and hands the master to whoever
//! listens on `--console-socket` (SCM_RIGHTS, as runc does: the payload is the pty name),
//! then makes the peer its controlling terminal and stdio.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use crate::error::{Context, Result};

/// In the container, after pivot_root: open `/dev/ptmx` (the container's own devpts),
/// send the master over `socket`, make the peer the controlling terminal and fds 0-2.
pub fn setup_in_container(socket: &OwnedFd, size: Option<oci_spec::runtime::Box>) -> Result<()> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context(|| "open /dev/ptmx".into())?;
    nix::pty::unlockpt(&master).context(|| "unlockpt".into())?;
    let name = nix::pty::ptsname_r(&master).unwrap_or_else(|_| "/dev/pts/?".into());
    let master: OwnedFd = master.into();
    let peer = hako_sys::tty::open_peer(master.as_fd()).context(|| "open pty peer".into())?;
    if let Some(sz) = size {
        let rows = u16::try_from(sz.height()).unwrap_or(u16::MAX);
        let cols = u16::try_from(sz.width()).unwrap_or(u16::MAX);
        hako_sys::tty::set_winsize(peer.as_fd(), rows, cols)
            .context(|| "set console size".into())?;
    }
    send_fd(socket, &master, name.as_bytes())
        .context(|| "send pty master to console socket".into())?;
    drop(master);
    nix::unistd::setsid().context(|| "setsid".into())?;
    hako_sys::tty::set_controlling_terminal(peer.as_fd())
        .context(|| "set controlling terminal".into())?;
    nix::unistd::dup2_stdin(&peer).context(|| "pty as stdin".into())?;
    nix::unistd::dup2_stdout(&peer).context(|| "pty as stdout".into())?;
    nix::unistd::dup2_stderr(&peer).context(|| "pty as stderr".into())?;
    Ok(())
}

/// Send one descriptor with a payload over a unix socket.
pub fn send_fd(socket: &OwnedFd, fd: &OwnedFd, payload: &[u8]) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(payload)];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receive one descriptor sent with [`send_fd`].
pub fn recv_fd(socket: &OwnedFd) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, recvmsg};
    use std::io::IoSliceMut;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            return Ok(owned(fd));
        }
    }
    Err(nix::errno::Errno::EBADMSG)
}

fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    hako_sys::fd::from_received(fd)
}

/// Puts a terminal in raw mode and restores it when dropped.
#[derive(Debug)]
pub struct RawMode {
    fd: Option<OwnedFd>,
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    pub fn enter(fd: std::os::fd::BorrowedFd<'_>) -> RawMode {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let Ok(saved) = tcgetattr(fd) else {
            return RawMode {
                fd: None,
                saved: None,
            };
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(fd, SetArg::TCSANOW, &raw);
        RawMode {
            fd: fd.try_clone_to_owned().ok(),
            saved: Some(saved),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let (Some(fd), Some(saved)) = (&self.fd, &self.saved) {
            let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, saved);
        }
    }
}
