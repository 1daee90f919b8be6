//! UTS namespace names that `nix` lacks a wrapper for.

use std::io;

/// `setdomainname(2)`: the NIS domain name of the current UTS namespace.
pub fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, valid for the call; the kernel
    // copies them.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
