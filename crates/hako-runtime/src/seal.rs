//! CVE-2019-5736: a process inside a container must never be able to overwrite the host's
//! runtime binary through `/proc/<pid>/exe` of a runtime process that entered the
//! container (the init before its execve, an `exec`'d process, a re-executed
//! `#!/proc/self/exe`).
//!
//! Before anything joins a container, `create`/`run` make sure the running image cannot be
//! written through that link, re-executing once if needed:
//! 1. already safe: the binary sits on a read-only mount, or is a sealed memfd: nothing to do;
//! 2. otherwise re-exec from a *detached read-only bind mount* of the binary
//!    (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(RDONLY)`): writes through
//!    `/proc/self/exe` fail with EROFS, and the mount is in no namespace, so nobody can
//!    remount it. No copy is made (runc 1.2 uses a detached overlayfs for the same reason);
//! 3. fallback (no new mount API, no privilege): a sealed memfd copy, as crun does.
//!
//! All of it happens before the process joins the container's cgroup, so nothing is ever
//! charged to the container's memory limit (runc#1980).

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

/// Is the image behind `/proc/self/exe` safe from writes (read-only mount or sealed memfd)?
pub fn is_sealed() -> bool {
    exe_on_readonly_mount()
        || File::open("/proc/self/exe")
            .ok()
            .and_then(|f| fcntl(f.as_fd(), FcntlArg::F_GET_SEALS).ok())
            .is_some_and(|bits| SealFlag::from_bits_truncate(bits).contains(SEALS))
}

/// Re-exec from a sealed copy unless already running from one. Returns only if the
/// image is sealed (or on error).
pub fn ensure_sealed() -> Result<()> {
    if exe_on_readonly_mount() {
        return Ok(());
    }
    let mut exe = File::open("/proc/self/exe").context(|| "open /proc/self/exe".into())?;
    if fcntl(exe.as_fd(), FcntlArg::F_GET_SEALS)
        .is_ok_and(|bits| SealFlag::from_bits_truncate(bits).contains(SEALS))
    {
        return Ok(());
    }
    if let Ok(tree) = hako_sys::mount::open_tree_clone(c"/proc/self/exe")
        && hako_sys::mount::set_readonly(tree.as_fd()).is_ok()
    {
        let (args, env) = argv_envp();
        // Only returns on failure; then fall through to the memfd copy.
        let _ = nix::unistd::execveat(
            tree.as_fd(),
            c"",
            &args,
            &env,
            nix::fcntl::AtFlags::AT_EMPTY_PATH,
        );
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
    let (args, env) = argv_envp();
    let err = nix::unistd::fexecve(copy.as_fd(), &args, &env).unwrap_err();
    Err(err).context(|| "re-exec sealed runtime copy".into())
}

/// Is `/proc/self/exe` on a read-only mount (so it cannot be opened for writing)?
pub fn exe_on_readonly_mount() -> bool {
    nix::sys::statvfs::statvfs("/proc/self/exe")
        .is_ok_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

fn argv_envp() -> (Vec<CString>, Vec<CString>) {
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
    (args, env)
}
