//! Taking ownership of descriptors the kernel handed us by number.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Own a descriptor received through `SCM_RIGHTS`. Only call it with a number that the
/// kernel just installed in this process for the caller (from `recvmsg` control data).
pub fn from_received(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in our table as part of the message we received;
    // no other owner exists, so wrapping it once is sound.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Own a descriptor inherited from the spawning process and named on the command line
/// (`--hold-fd N`). Call it once per number, first thing, before anything else in the
/// process could open or adopt that number.
pub fn from_inherited(fd: RawFd) -> Option<OwnedFd> {
    // fcntl(F_GETFD) on a number we do not own is harmless: it only asks whether it is open.
    if nix::fcntl::fcntl(
        // SAFETY: borrowed only for this query; no ownership is claimed yet.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .is_err()
    {
        return None;
    }
    // SAFETY: the spawner passed this open descriptor to us by number; nothing else in
    // this process owns it (the caller takes each number once, at startup).
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The cookie of the network namespace a socket lives in (`SO_NETNS_COOKIE`, Linux 5.14):
/// unlike the namespace's inode number, never reused within a boot.
pub fn netns_cookie(sock: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    const SO_NETNS_COOKIE: libc::c_int = 71;
    let mut cookie: u64 = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<u64>()).unwrap_or(8);
    // SAFETY: `sock` is open for the call; the kernel writes at most `len` bytes into
    // `cookie`, which outlives the call.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            std::ptr::addr_of_mut!(cookie).cast(),
            &raw mut len,
        )
    };
    match r {
        0 => Ok(cookie),
        _ => Err(std::io::Error::last_os_error()),
    }
}
