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

/// Closes every descriptor from 3 up except those in `keep`: `close_range(2)` over the
/// gaps (a few system calls), or, on a kernel without it (before 5.9), each number listed
/// in `/proc/self/fd`.
pub fn close_all_but_stdio(keep: &[RawFd]) {
    let mut kept: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd > 2)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    let mut first = 3u32;
    let mut ranges = Vec::with_capacity(kept.len() + 1);
    for k in kept {
        if k > first {
            ranges.push((first, k - 1));
        }
        first = k + 1;
    }
    ranges.push((first, u32::MAX));
    let mut fell_back = false;
    for (lo, hi) in ranges {
        // SAFETY: integer-only system call; the caller owns no descriptor in these ranges
        // that it still uses (that is this function's contract).
        if unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0) } != 0 {
            fell_back = true;
            break;
        }
    }
    if !fell_back {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own descriptor is among them; it is closed by now, and closing its
    // number again only fails with EBADF: nothing was opened in between.
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing a number this function's contract gives it.
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    /// In a fork (it closes this process's descriptors): three descriptors, one kept.
    #[test]
    fn close_all_but_stdio_keeps_stdio_and_the_kept_ones() {
        // SAFETY: the child only makes system calls and exits (nextest runs each test in a
        // process of its own).
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: a valid C string; the descriptor is this child's.
                let open = || unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
                let (a, b, c) = (open(), open(), open());
                super::close_all_but_stdio(&[b]);
                // SAFETY: reads a descriptor's flags, nothing else.
                let is_open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
                let ok = a > 2 && !is_open(a) && is_open(b) && !is_open(c) && is_open(2);
                // SAFETY: ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            pid if pid > 0 => {
                let mut status = 0;
                // SAFETY: waits for the child forked above, into a local.
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            }
            _ => panic!("fork: {}", std::io::Error::last_os_error()),
        }
    }
}
