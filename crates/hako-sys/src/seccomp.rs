//! Loading a compiled seccomp BPF program.

use std::io;

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`. The caller either holds
/// `CAP_SYS_ADMIN` or has set no_new_privs; `flags` are `SECCOMP_FILTER_FLAG_*`.
/// Returns the listener fd when `SECCOMP_FILTER_FLAG_NEW_LISTENER` was passed.
pub fn set_mode_filter(program: &[libc::sock_filter], flags: u32) -> io::Result<i32> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long"))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies the
    // instructions and never writes through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret as i32)
}
