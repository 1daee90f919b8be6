//! Session keyrings: every container gets its own, so keys one container adds are not
//! visible to the host or other containers that share the caller's session keyring (runc
//! does the same unless `--no-new-keyring`).

use std::ffi::CStr;
use std::io;

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
const KEYCTL_SETPERM: libc::c_int = 5;
const KEY_SPEC_SESSION_KEYRING: libc::c_int = -3;

/// Create and join a new session keyring named `name`, usable by its possessor and its
/// owning user only (runc's permission mask 0x3f1b0000: nothing for group and others).
pub fn join_new_session_keyring(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let id = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    // Possessor: everything; owning user: view, read, search, link (runc's mask).
    let perm: libc::c_uint = 0x3f1b_0000;
    // SAFETY: integer-only arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_SETPERM,
            KEY_SPEC_SESSION_KEYRING,
            perm,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
