//! Setting all three capability sets in one `capset(2)`.
//!
//! The `caps` crate sets one set per call (a `capget` and a `capset` each); the runtime's
//! last steps need the three sets changed at once, with no other syscall in between (a
//! seccomp filter may already be loaded, see `hako-runtime`'s `process/security.rs`).

use std::io;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Bit masks of capabilities (bit N = capability number N) for the calling thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

fn split(v: u64) -> (u32, u32) {
    // Truncation is the point: version 3 takes the 64 bits as two 32-bit words.
    #[allow(clippy::cast_possible_truncation)]
    (v as u32, (v >> 32) as u32)
}

/// `capset(2)` of the calling thread: all three sets at once.
pub fn set(sets: Sets) -> io::Result<()> {
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let (e0, e1) = split(sets.effective);
    let (p0, p1) = split(sets.permitted);
    let (i0, i1) = split(sets.inheritable);
    let data = [
        Data {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        Data {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: `header` and `data` are live, correctly laid out (#[repr(C)], two elements as
    // version 3 requires) for the duration of the call; the kernel only reads `data` and
    // may write `header.version`, which is ours and mutable.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `capget(2)` of the calling thread.
pub fn get() -> io::Result<Sets> {
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: as in `set`; the kernel writes two `Data` elements, which `data` holds.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(Sets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_what_we_have_is_a_no_op() {
        let now = get().unwrap();
        set(now).unwrap();
        assert_eq!(get().unwrap(), now);
    }
}
