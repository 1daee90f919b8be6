//! The compiled filter handed to the loader in `hako-sys`.

/// A seccomp filter ready to load: classic-BPF instructions for the native arch plus the
/// `seccomp(2)` flags to load them with.
///
/// Loading (in `hako-sys`, the only crate allowed `unsafe`):
/// `seccomp(SECCOMP_SET_MODE_FILTER, filter.flags(), &sock_fprog { len, filter: ptr })`, after
/// `prctl(PR_SET_NO_NEW_PRIVS, 1)` unless the process keeps CAP_SYS_ADMIN. When
/// [`wants_listener`](Self::wants_listener) is true the flags include
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`, so the syscall returns a notification fd that the
/// runtime must send to the profile's `listenerPath`.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    pub(crate) instructions: Vec<libc::sock_filter>,
    pub(crate) flags: u32,
    pub(crate) wants_listener: bool,
}

impl CompiledFilter {
    /// The program, at most 4096 instructions, never empty.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.instructions
    }

    /// `SECCOMP_FILTER_FLAG_*` bits: the profile's flags, plus NEW_LISTENER (and TSYNC_ESRCH
    /// when TSYNC is set, which the kernel requires alongside NEW_LISTENER) if the filter uses
    /// SCMP_ACT_NOTIFY. WAIT_KILLABLE_RECV is dropped when there is no listener, since the kernel
    /// rejects it on its own (EINVAL), as libseccomp does.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Whether some syscall gets SCMP_ACT_NOTIFY, so the loader must keep the listener fd.
    pub fn wants_listener(&self) -> bool {
        self.wants_listener
    }

    /// The same program as seccompiler's type, for `seccompiler::apply_filter` in tests and
    /// tools (it loads without flags).
    pub fn to_bpf_program(&self) -> seccompiler::BpfProgram {
        self.instructions
            .iter()
            .map(|i| seccompiler::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect()
    }

    /// Run the program the way the kernel would, for one syscall, and return the filter's
    /// `SECCOMP_RET_*` value. `arch` is an `AUDIT_ARCH_*` value.
    ///
    /// Why: tests and `--debug` tooling can check what a profile does to any syscall on any arch
    /// without loading it. Only the instructions this crate emits are understood; anything else
    /// (or running off the end) yields `SECCOMP_RET_KILL_PROCESS`, as a malformed program would.
    pub fn simulate(&self, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
        // `struct seccomp_data` as 32-bit little-endian words: nr, arch, ip (2 words), args.
        let word = |offset: u32| -> Option<u32> {
            match offset {
                0 => Some(nr),
                4 => Some(arch),
                8 | 12 => Some(0),
                16..=63 if offset.is_multiple_of(4) => {
                    let arg = args[usize::try_from((offset - 16) / 8).ok()?];
                    let bytes = arg.to_le_bytes();
                    let at = usize::try_from(offset % 8).ok()?;
                    Some(u32::from_le_bytes(bytes[at..at + 4].try_into().ok()?))
                }
                _ => None,
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        while let Some(ins) = self.instructions.get(pc) {
            let k = ins.k;
            let branch = |taken: bool| usize::from(if taken { ins.jt } else { ins.jf });
            pc += 1;
            match ins.code {
                0x20 => match word(k) {
                    Some(w) => acc = w,
                    None => return KILL,
                },
                0x54 => acc &= k, // ALU AND K
                0x05 => pc += usize::try_from(k).unwrap_or(usize::MAX / 2), // JA
                0x15 => pc += branch(acc == k), // JEQ K
                0x25 => pc += branch(acc > k), // JGT K
                0x35 => pc += branch(acc >= k), // JGE K
                0x06 => return k, // RET K
                _ => return KILL,
            }
        }
        KILL
    }
}

impl PartialEq for CompiledFilter {
    fn eq(&self, other: &Self) -> bool {
        let key = |i: &libc::sock_filter| (i.code, i.jt, i.jf, i.k);
        self.flags == other.flags
            && self.wants_listener == other.wants_listener
            && self.instructions.len() == other.instructions.len()
            && self
                .instructions
                .iter()
                .map(key)
                .eq(other.instructions.iter().map(key))
    }
}

impl Eq for CompiledFilter {}
