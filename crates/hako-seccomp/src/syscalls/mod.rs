//! Syscall name tables for the arches seccompiler can target, plus the names that only exist
//! elsewhere.
//!
//! Why our own tables: seccompiler keeps its tables private, and `libc::SYS_*` exists only for
//! the arch being compiled. A profile is checked against all arches at once: a name unknown
//! everywhere is a typo ([`crate::Error::UnknownSyscall`]); a name known on another arch is
//! skipped, as runc/libseccomp do (Docker's profile lists `chown32`, `_llseek`, `s390_*`...).

mod aarch64;
mod other_arches;
mod riscv64;
pub(crate) mod x86_64;

use crate::Error;

/// An architecture this crate can build a filter for (the targets seccompiler supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arch {
    X86_64,
    Aarch64,
    Riscv64,
}

/// Where a syscall name is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The syscall number on the arch being compiled for.
    Native(u32),
    /// Defined on some other arch only: the rule is skipped.
    OtherArch,
    /// Defined nowhere: a typo.
    Unknown,
}

impl Arch {
    pub(crate) const ALL: [Arch; 3] = [Arch::X86_64, Arch::Aarch64, Arch::Riscv64];

    /// The arch this binary runs on; filters are always built for it (the kernel checks the
    /// arch of every syscall against the filter's, see `program.rs`).
    pub(crate) fn native() -> Result<Arch, Error> {
        if cfg!(target_arch = "x86_64") {
            Ok(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Ok(Arch::Aarch64)
        } else if cfg!(target_arch = "riscv64") {
            Ok(Arch::Riscv64)
        } else {
            Err(Error::Unsupported(format!(
                "seccomp filters can only be built on x86_64, aarch64 and riscv64 hosts, not {}",
                std::env::consts::ARCH
            )))
        }
    }

    /// The name used in cache keys and messages (Rust's `target_arch` spelling).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
        }
    }

    pub(crate) fn target(self) -> seccompiler::TargetArch {
        match self {
            Arch::X86_64 => seccompiler::TargetArch::x86_64,
            Arch::Aarch64 => seccompiler::TargetArch::aarch64,
            Arch::Riscv64 => seccompiler::TargetArch::riscv64,
        }
    }

    /// `AUDIT_ARCH_*` from linux/audit.h: what the kernel puts in `seccomp_data.arch`.
    pub(crate) fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => 0xc000_003e,
            Arch::Aarch64 => 0xc000_00b7,
            Arch::Riscv64 => 0xc000_00f3,
        }
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => x86_64::SYSCALLS,
            Arch::Aarch64 => aarch64::SYSCALLS,
            Arch::Riscv64 => riscv64::SYSCALLS,
        }
    }

    fn number(self, name: &str) -> Option<u32> {
        let table = self.table();
        table
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| table[i].1)
    }

    /// Resolve `name` for a filter built for `self`.
    pub(crate) fn lookup(self, name: &str) -> Lookup {
        if let Some(nr) = self.number(name) {
            return Lookup::Native(nr);
        }
        let elsewhere = Arch::ALL.iter().any(|a| a.number(name).is_some())
            || other_arches::NAMES.binary_search(&name).is_ok();
        if elsewhere {
            Lookup::OtherArch
        } else {
            Lookup::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique() {
        for arch in Arch::ALL {
            assert!(arch.table().windows(2).all(|w| w[0].0 < w[1].0), "{arch:?}");
        }
        assert!(other_arches::NAMES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn known_numbers() {
        assert_eq!(Arch::X86_64.lookup("read"), Lookup::Native(0));
        assert_eq!(Arch::X86_64.lookup("getpid"), Lookup::Native(39));
        assert_eq!(Arch::X86_64.lookup("clone3"), Lookup::Native(435));
        assert_eq!(Arch::X86_64.lookup("fchmodat2"), Lookup::Native(452));
        assert_eq!(Arch::Aarch64.lookup("getpid"), Lookup::Native(172));
        assert_eq!(Arch::Aarch64.lookup("close"), Lookup::Native(57));
        assert_eq!(
            Arch::Riscv64.lookup("riscv_flush_icache"),
            Lookup::Native(259)
        );
    }

    #[test]
    fn agrees_with_libc_for_the_native_arch() {
        let native = Arch::native().unwrap();
        for (name, nr) in [
            ("getpid", libc::SYS_getpid),
            ("mkdirat", libc::SYS_mkdirat),
            ("uname", libc::SYS_uname),
            ("personality", libc::SYS_personality),
            ("keyctl", libc::SYS_keyctl),
            ("unshare", libc::SYS_unshare),
            ("mount", libc::SYS_mount),
            ("clone3", libc::SYS_clone3),
        ] {
            assert_eq!(
                native.lookup(name),
                Lookup::Native(u32::try_from(nr).unwrap())
            );
        }
    }

    #[test]
    fn other_arch_names_are_skippable_and_typos_are_not() {
        // i386 only, arm only, s390 only, and x86_64 only seen from aarch64.
        assert_eq!(Arch::X86_64.lookup("chown32"), Lookup::OtherArch);
        assert_eq!(Arch::X86_64.lookup("set_tls"), Lookup::OtherArch);
        assert_eq!(Arch::X86_64.lookup("s390_runtime_instr"), Lookup::OtherArch);
        assert_eq!(Arch::Aarch64.lookup("arch_prctl"), Lookup::OtherArch);
        assert_eq!(Arch::X86_64.lookup("opne"), Lookup::Unknown);
        assert_eq!(Arch::X86_64.lookup(""), Lookup::Unknown);
    }
}
