//! Taking ownership of descriptors the kernel handed us by number.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Own a descriptor received through `SCM_RIGHTS`. Only call it with a number that the
/// kernel just installed in this process for the caller (from `recvmsg` control data).
pub fn from_received(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in our table as part of the message we received;
    // no other owner exists, so wrapping it once is sound.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
