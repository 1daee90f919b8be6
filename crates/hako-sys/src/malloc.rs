//! The C allocator's knobs for a long-lived, mostly idle process (`hako serve`): fewer
//! arenas, and freed memory handed back to the kernel when idle. glibc only; elsewhere
//! (musl) these do nothing.

/// Caps glibc's malloc arenas at `n` (by default up to 8 per CPU, one per thread that met
/// contention, each keeping its freed memory). Call before threads start.
pub fn limit_arenas(n: i32) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive
    // count, and it is called before the process starts its threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = n;
}

/// Returns the free memory at the top of the heap and in every arena to the kernel.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim walks the allocator's own free lists under its locks; it takes no
    // pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
