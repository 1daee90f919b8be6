//! libnftables, loaded at run time: the library the `nft` command is a thin shell over
//! (Debian's `libnftables1`). hako-net sends it the same text `nft -f` reads, in-process,
//! which spares a fork and exec of `nft` on every container start (see hako-net's
//! `firewall/backend.rs` for the numbers and the `nft` fallback).
//!
//! `dlopen` rather than linking: the `hako` binary must still start (and fall back to the
//! `nft` program, or to no firewall at all for `--network none`) on a machine without the
//! library. A long-lived process (`hako serve`) lets it go when idle ([`unload`]): with
//! its libraries (libgmp, libnftnl, libjansson, ...) it keeps ~1.5 MB mapped otherwise.
//!
//! [`run_shared`] keeps one context per network namespace until [`unload`] or exit (what
//! firewalld does), for two reasons measured on the development VM (kernel 6.18): closing
//! an nf_tables netlink socket right after a transaction that deleted anything (set
//! elements, the rules of a flushed chain) waits for the kernel's deferred destruction of
//! those objects, one RCU grace period (`nft_rcv_nl_event` flushes the destroy work):
//! `close()` took 12 ms of a 14 ms `nft delete element`, where adding took 4 ms in all. A
//! kept socket is closed at exit, by when the grace period has passed during the rest of
//! the command's work. And libnftables keeps its ruleset cache between commands, checked
//! against the kernel's generation id at each command (another process's change is seen),
//! so a context is not set up again per batch.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// `NFT_CTX_DEFAULT`.
const NFT_CTX_DEFAULT: c_uint = 0;

type CtxNew = unsafe extern "C" fn(c_uint) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxInt = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxStr = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The entry points hako uses.
#[derive(Debug, Clone, Copy)]
struct Api {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    buffer_output: CtxInt,
    buffer_error: CtxInt,
    get_output: CtxStr,
    get_error: CtxStr,
    run_cmd: RunCmd,
}

/// The loaded library: closed when the last user (the loader's slot, a context) lets go.
#[derive(Debug)]
struct Lib {
    handle: *mut c_void,
    api: Api,
}

// SAFETY: the handle and the function pointers are plain addresses, valid in every thread
// until `dlclose`, which only runs when the last `Arc<Lib>` is dropped; libnftables keeps
// no per-thread state (each `Nft` context is used by one thread at a time: `&mut self`).
unsafe impl Send for Lib {}
// SAFETY: as above; nothing in `Lib` is mutated after it is made.
unsafe impl Sync for Lib {}

impl Drop for Lib {
    fn drop(&mut self) {
        // SAFETY: `handle` came from dlopen and is closed once, here, when no context
        // (each holds an `Arc<Lib>`) and no caller of `lib()` can use its functions any more.
        unsafe { libc::dlclose(self.handle) };
    }
}

/// The library loaded now (`None` until first use and after [`unload`]).
static LIB: Mutex<Option<Arc<Lib>>> = Mutex::new(None);
/// dlopen failed once: the library is not installed (not tried again).
static MISSING: AtomicBool = AtomicBool::new(false);

fn lib() -> Option<Arc<Lib>> {
    if MISSING.load(Ordering::Relaxed) {
        return None;
    }
    let mut slot = LIB
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.is_none() {
        *slot = load().map(Arc::new);
        if slot.is_none() {
            MISSING.store(true, Ordering::Relaxed);
        }
    }
    slot.clone()
}

/// Lets the library go: it is closed (and its pages unmapped) once no context uses it; the
/// next context loads it again. For a long-lived process between bursts of work.
pub fn unload() {
    SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    let lib = LIB
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    drop(lib);
}

/// Whether the library is loaded now (with [`unload`], for tests).
pub fn loaded() -> bool {
    LIB.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_some()
}

fn load() -> Option<Lib> {
    let name = c"libnftables.so.1";
    // SAFETY: `name` is a valid NUL-terminated string; dlopen has no other precondition.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return None;
    }
    // SAFETY (each call below): the symbol is the libnftables function of that name, whose C
    // prototype (`include/nftables/libnftables.h`, stable since libnftables 0.9) is
    // exactly the function pointer type asked for; they stay valid while the returned
    // `Lib` (which closes `handle`) lives.
    let api = (|| {
        Some(Api {
            // SAFETY: see above.
            ctx_new: unsafe { sym::<CtxNew>(handle, c"nft_ctx_new") }?,
            // SAFETY: see above.
            ctx_free: unsafe { sym::<CtxFree>(handle, c"nft_ctx_free") }?,
            // SAFETY: see above.
            buffer_output: unsafe { sym::<CtxInt>(handle, c"nft_ctx_buffer_output") }?,
            // SAFETY: see above.
            buffer_error: unsafe { sym::<CtxInt>(handle, c"nft_ctx_buffer_error") }?,
            // SAFETY: see above.
            get_output: unsafe { sym::<CtxStr>(handle, c"nft_ctx_get_output_buffer") }?,
            // SAFETY: see above.
            get_error: unsafe { sym::<CtxStr>(handle, c"nft_ctx_get_error_buffer") }?,
            // SAFETY: see above.
            run_cmd: unsafe { sym::<RunCmd>(handle, c"nft_run_cmd_from_buffer") }?,
        })
    })();
    match api {
        Some(api) => Some(Lib { handle, api }),
        None => {
            // SAFETY: `handle` came from dlopen just above and nothing of it is kept.
            unsafe { libc::dlclose(handle) };
            None
        }
    }
}

/// Looks up `name` in `handle` as a function pointer of type `T`.
///
/// # Safety
/// `handle` is a live dlopen handle, and `T` is a function pointer type matching the C
/// prototype of `name`.
unsafe fn sym<T: Copy>(handle: *mut c_void, name: &CStr) -> Option<T> {
    // SAFETY: `handle` is live (caller) and `name` NUL-terminated.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() || std::mem::size_of::<T>() != std::mem::size_of::<*mut c_void>() {
        return None;
    }
    // SAFETY: `T` is a function pointer type of the symbol (caller), the same size as the
    // data pointer dlsym returns (checked), which is how POSIX hands out functions.
    Some(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

/// Whether libnftables could be loaded.
pub fn available() -> bool {
    lib().is_some()
}

/// One libnftables context (`struct nft_ctx`), output and errors buffered.
///
/// A context keeps a cache of the kernel's ruleset between commands, refreshed when the
/// kernel's ruleset generation changed (another process's change is seen). Its netlink
/// socket talks to the network namespace of the thread that made it.
#[derive(Debug)]
pub struct Nft {
    /// Keeps the library loaded while the context lives.
    lib: Arc<Lib>,
    ctx: *mut c_void,
}

// SAFETY: a libnftables context has no thread affinity (no thread-local state; its socket
// belongs to a namespace, not a thread); it must not be used from two threads at once,
// which `&mut self` on `run` (and the mutex of `run_shared`) rules out.
unsafe impl Send for Nft {}

/// (device, inode) of the calling thread's network namespace.
fn netns_id() -> io::Result<(u64, u64)> {
    let m = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((
        std::os::unix::fs::MetadataExt::dev(&m),
        std::os::unix::fs::MetadataExt::ino(&m),
    ))
}

/// The process's contexts, by network namespace (a handful at most: tests move between
/// namespaces, the engine never does; the oldest goes beyond [`SHARED_MAX`]).
static SHARED: Mutex<Vec<((u64, u64), Nft)>> = Mutex::new(Vec::new());
const SHARED_MAX: usize = 4;

/// Runs `commands` (see [`Nft::run`]) on the process's context for the calling thread's
/// network namespace, made at first use and kept until [`unload`]. All callers in the
/// process take turns (the library also has process-wide state of its own). `None`:
/// libnftables is not installed or makes no context.
pub fn run_shared(commands: &str) -> Option<io::Result<String>> {
    let ns = match netns_id() {
        Ok(ns) => ns,
        Err(e) => return Some(Err(e)),
    };
    let mut all = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let i = match all.iter().position(|(id, _)| *id == ns) {
        Some(i) => i,
        None => {
            let nft = Nft::new_kept()?;
            if all.len() >= SHARED_MAX {
                all.remove(0);
            }
            all.push((ns, nft));
            all.len() - 1
        }
    };
    Some(all[i].1.run(commands))
}

/// The open file descriptors of this process.
fn open_fds() -> Vec<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `fd` is an nf_tables netlink socket (`AF_NETLINK`, `NETLINK_NETFILTER`).
fn is_netfilter_socket(fd: RawFd) -> bool {
    let get = |opt: c_int| -> Option<c_int> {
        let mut v: c_int = 0;
        let mut len = libc::socklen_t::try_from(std::mem::size_of::<c_int>()).ok()?;
        // SAFETY: `v` and `len` are valid for writes of an int and its length; a bad or
        // non-socket fd only makes the call fail.
        let rc = unsafe {
            libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &raw mut len)
        };
        (rc == 0).then_some(v)
    };
    get(libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
        && get(libc::SO_PROTOCOL) == Some(libc::NETLINK_NETFILTER)
}

impl Nft {
    /// A new context, or `None` when libnftables is not installed.
    pub fn new() -> Option<Nft> {
        let lib = lib()?;
        let api = lib.api;
        // SAFETY: plain constructor; a null return is handled.
        let ctx = unsafe { (api.ctx_new)(NFT_CTX_DEFAULT) };
        if ctx.is_null() {
            return None;
        }
        // SAFETY: `ctx` is the live context just made; the call only sets a flag on it.
        let out = unsafe { (api.buffer_output)(ctx) };
        // SAFETY: as above.
        let err = unsafe { (api.buffer_error)(ctx) };
        let ok = out == 0 && err == 0;
        if !ok {
            // SAFETY: `ctx` came from nft_ctx_new and is freed once, here.
            unsafe { (api.ctx_free)(ctx) };
            return None;
        }
        Some(Nft { lib, ctx })
    }

    /// A context to keep: its netlink socket (which libmnl opens without close-on-exec)
    /// is marked close-on-exec, so that no child (a shim, `iptables`) inherits it. Every
    /// nf_tables socket of the process is libnftables' (hako opens none itself).
    fn new_kept() -> Option<Nft> {
        let nft = Nft::new()?;
        for fd in open_fds() {
            if is_netfilter_socket(fd) {
                // SAFETY: F_SETFD on a descriptor number only sets its flags; the socket
                // is libnftables' own, which stays open while the context lives.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
        Some(nft)
    }

    /// Runs `commands` (nft's text syntax, as for `nft -f`) as one transaction: all or
    /// nothing. Returns the output; an error carries nft's error text.
    pub fn run(&mut self, commands: &str) -> io::Result<String> {
        let text = CString::new(commands)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in nft commands"))?;
        // SAFETY: `self.ctx` is live for as long as `self`, `text` is NUL-terminated and
        // outlives the call (libnftables copies what it keeps).
        let rc = unsafe { (self.lib.api.run_cmd)(self.ctx, text.as_ptr()) };
        // SAFETY: with buffering on, the getter returns a NUL-terminated string owned by the
        // context (valid until the next command), or null.
        let out = unsafe { (self.lib.api.get_output)(self.ctx) };
        // SAFETY: as above.
        let err = unsafe { (self.lib.api.get_error)(self.ctx) };
        // SAFETY: null or a valid NUL-terminated string, copied at once.
        let out = unsafe { owned(out) };
        // SAFETY: as above.
        let err = unsafe { owned(err) };
        if rc == 0 {
            Ok(out)
        } else {
            Err(io::Error::other(if err.trim().is_empty() {
                format!("nft exited with status {rc}")
            } else {
                err
            }))
        }
    }
}

/// # Safety
/// `p` is null or a valid NUL-terminated string.
unsafe fn owned(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl Drop for Nft {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from nft_ctx_new and is freed exactly once, here.
        unsafe { (self.lib.api.ctx_free)(self.ctx) };
    }
}

#[cfg(test)]
mod tests {
    fn mapped() -> bool {
        std::fs::read_to_string("/proc/self/maps")
            .expect("maps")
            .contains("libnftables")
    }

    #[test]
    fn the_library_is_unmapped_when_let_go_and_loaded_again_when_needed() {
        let Some(nft) = super::Nft::new() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "libnftables.so.1 is missing (Debian's libnftables1)"
            );
            return;
        };
        super::unload();
        assert!(mapped(), "a live context keeps the library loaded");
        assert!(!super::loaded());
        drop(nft);
        assert!(!mapped(), "unmapped once nothing uses it");
        let again = super::Nft::new().expect("loaded again");
        assert!(mapped() && super::loaded());
        drop(again);
        super::unload();
        assert!(!mapped());
    }
}
