//! CVE-2019-5736: a process inside a container must never be able to overwrite the host's
//! runtime binary through `/proc/<pid>/exe` of a runtime process that entered the
//! container (the init before its execve, an `exec`'d process, a re-executed
//! `#!/proc/self/exe`).
//!
//! Before anything joins a container, `create`/`run` make sure the running image is a
//! sealed `memfd` copy (write, grow, shrink and seal-changes forbidden) and re-exec from it
//! once. Writes through `/proc/self/exe` then hit the sealed copy (`EPERM`), never the file
//! on disk. The copy is made before the process joins the container's cgroup, so it is
//! never charged to the container's memory limit (runc#1980).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsFd;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::error::{Context, Result};

const SEALS: SealFlag = SealFlag::F_SEAL_SEAL
    .union(SealFlag::F_SEAL_SHRINK)
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE);

/// Is the file behind `/proc/self/exe` a fully sealed memfd?
pub fn is_sealed() -> bool {
    File::open("/proc/self/exe")
        .ok()
        .and_then(|f| fcntl(f.as_fd(), FcntlArg::F_GET_SEALS).ok())
        .is_some_and(|bits| SealFlag::from_bits_truncate(bits).contains(SEALS))
}

/// Re-exec from a sealed copy unless already running from one. Returns only if the
/// image is sealed (or on error).
pub fn ensure_sealed() -> Result<()> {
    let mut exe = File::open("/proc/self/exe").context(|| "open /proc/self/exe".into())?;
    if fcntl(exe.as_fd(), FcntlArg::F_GET_SEALS)
        .is_ok_and(|bits| SealFlag::from_bits_truncate(bits).contains(SEALS))
    {
        return Ok(());
    }
    let memfd = memfd_create(
        "hako-runtime",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .context(|| "memfd_create".into())?;
    let mut copy = File::from(memfd);
    // std uses copy_file_range/sendfile here: no userspace buffer.
    std::io::copy(&mut exe, &mut copy).context(|| "copy runtime binary to memfd".into())?;
    fcntl(copy.as_fd(), FcntlArg::F_ADD_SEALS(SEALS)).context(|| "seal runtime copy".into())?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()).expect("argv has no NUL"))
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).expect("env has no NUL")
        })
        .collect();
    let err = nix::unistd::fexecve(copy.as_fd(), &args, &env).unwrap_err();
    Err(err).context(|| "re-exec sealed runtime copy".into())
}
