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

/// Unmaps the pages of this program's own code that it has mapped (`r-xp` mappings of
/// `/proc/self/exe` without a private copy of any page), and returns how many bytes the
/// mappings span. The pages stay in the page cache, where every process running this
/// binary shares them; a later call into the code maps them back with minor faults. For
/// a mostly idle server: the kernel maps code in 64 KB fault-around chunks, so after a few
/// requests nearly all of a 14 MB text segment counts in its RSS.
pub fn release_code() -> usize {
    let (Ok(exe), Ok(smaps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return 0;
    };
    let exe = exe.to_string_lossy().into_owned();
    let mut released = 0;
    let mut code: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let (Some(first), Some(second)) = (f.next(), f.next()) else {
            continue;
        };
        if let Some((start, end)) = first.split_once('-')
            && second.len() == 4
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            // A mapping's header: `start-end perms offset dev inode path`.
            let path = f.nth(3).unwrap_or_default();
            code = (second == "r-xp" && path == exe).then_some((start, end));
            continue;
        }
        // "Anonymous: N kB" comes after the header: a copied page (a breakpoint, a text
        // relocation) would be lost by MADV_DONTNEED, so such a mapping is kept.
        if first == "Anonymous:"
            && let Some((start, end)) = code.take()
            && second == "0"
        {
            // SAFETY: [start, end) is a whole mapping of this process's executable code,
            // read-only and with no private page (checked just above), so dropping its
            // page table entries loses nothing: every page reads back from the file.
            let r = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            if r == 0 {
                released += end - start;
            }
        }
    }
    released
}

/// The resident kB of a process's own code (the `r-xp` mappings of its executable): this
/// process's with `None`. For measuring what [`release_code`] gives back.
pub fn code_rss_kb(pid: Option<i32>) -> std::io::Result<u64> {
    let proc = pid.map_or_else(|| "self".to_string(), |p| p.to_string());
    let exe = std::fs::read_link(format!("/proc/{proc}/exe"))?;
    let exe = exe.to_string_lossy().into_owned();
    let smaps = std::fs::read_to_string(format!("/proc/{proc}/smaps"))?;
    let (mut code, mut kb) = (false, 0);
    for line in smaps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 2 && f[0].contains('-') && f[1].len() == 4 {
            code = f[1] == "r-xp" && f.get(5) == Some(&exe.as_str());
        } else if code && f.first() == Some(&"Rss:") {
            kb += f[1].parse::<u64>().map_err(std::io::Error::other)?;
        }
    }
    Ok(kb)
}

#[cfg(test)]
mod tests {
    fn code_rss_kb() -> u64 {
        super::code_rss_kb(None).unwrap()
    }

    #[test]
    fn release_code_unmaps_the_programs_code_and_it_still_runs() {
        let before = code_rss_kb();
        assert!(before > 0, "this test's own code is mapped");
        assert!(super::release_code() > 0);
        let after = code_rss_kb();
        // What runs between the release and the count (reading and parsing smaps, in a
        // debug build spread over the binary) maps some chunks back.
        assert!(after < before, "code RSS {before} kB -> {after} kB");
        // The code still works: a call into a fresh corner of it.
        assert_eq!(format!("{:?}", vec![1, 2]), "[1, 2]");
    }
}
