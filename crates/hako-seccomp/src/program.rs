//! Linking seccompiler sections into one classic-BPF program.
//!
//! seccompiler compiles a `SeccompFilter`: a set of syscalls (each with OR-ed rules of AND-ed
//! argument conditions) sharing ONE match action and ONE mismatch action. An OCI profile has
//! an action per rule, so we compile one section per action and chain them:
//!
//! ```text
//!   ld arch; jeq NATIVE ? next : ret FOREIGN       our arch check (replaces seccompiler's)
//!   [x86_64] ld nr; jge X32_BIT ? ret FOREIGN      x32 syscalls share AUDIT_ARCH_X86_64
//!   section 1 (action A) ── no match ──┐          seccompiler body, RETs rewritten:
//!   section 2 (action B) ◄─────────────┘            "matched"     -> ret <action>
//!   ...                                             "not matched" -> ja <end of section>
//!   ret DEFAULT
//! ```
//!
//! Each section is built with two placeholder actions that cannot be confused (seccompiler
//! itself refuses identical match/mismatch actions), then every `ret MATCHED` becomes
//! `ret <the real action>` and every `ret NOT_MATCHED` becomes a forward jump past the section.
//! Rewriting one instruction in place keeps every relative jump inside the section valid, and
//! every section body starts by reloading the syscall number, so falling into the next one is
//! safe. This also lets us return actions seccompiler has no name for (`SECCOMP_RET_USER_NOTIF`).

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule};

use crate::Error;
use crate::syscalls::Arch;

/// Instruction encodings (linux/bpf_common.h), as the `code` field of `sock_filter`.
const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS
const JMP_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
const JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets into `struct seccomp_data` (linux/seccomp.h).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// `__X32_SYSCALL_BIT`: x32 syscalls arrive with AUDIT_ARCH_X86_64 and this bit set in `nr`.
/// Without this check an x32 process could reach a syscall the x86_64 rules deny
/// (the classic hole libseccomp also closes).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The kernel's limit on one filter program (`BPF_MAXINSNS`).
pub(crate) const MAX_INSTRUCTIONS: usize = 4096;

/// seccompiler starts every program with this many instructions of arch check.
const SECCOMPILER_ARCH_CHECK_LEN: usize = 3;

const MATCHED: SeccompAction = SeccompAction::Allow;
const NOT_MATCHED: SeccompAction = SeccompAction::KillProcess;

/// Syscalls sharing one return value. An empty rule list means "always".
#[derive(Debug)]
pub(crate) struct Section {
    pub(crate) ret: u32,
    pub(crate) rules: BTreeMap<i64, Vec<SeccompRule>>,
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The whole program: arch check, sections in order, default action.
pub(crate) fn link(
    arch: Arch,
    sections: Vec<Section>,
    default_ret: u32,
    foreign_ret: u32,
) -> Result<Vec<libc::sock_filter>, Error> {
    let mut program = vec![
        stmt(LD_W_ABS, DATA_ARCH),
        jump(JMP_JEQ_K, arch.audit_arch(), 1, 0),
        stmt(RET_K, foreign_ret),
    ];
    if arch == Arch::X86_64 {
        program.extend([
            stmt(LD_W_ABS, DATA_NR),
            jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
            stmt(RET_K, foreign_ret),
        ]);
    }
    for section in sections.into_iter().filter(|s| !s.rules.is_empty()) {
        append_section(&mut program, arch, section)?;
    }
    program.push(stmt(RET_K, default_ret));
    if program.len() > MAX_INSTRUCTIONS {
        return Err(Error::FilterTooLarge {
            instructions: program.len(),
        });
    }
    Ok(program)
}

fn append_section(
    program: &mut Vec<libc::sock_filter>,
    arch: Arch,
    section: Section,
) -> Result<(), Error> {
    let filter = SeccompFilter::new(section.rules, NOT_MATCHED, MATCHED, arch.target())
        .map_err(Error::Backend)?;
    let compiled: BpfProgram = filter.try_into().map_err(|e| match e {
        seccompiler::BackendError::FilterTooLarge(n) => Error::FilterTooLarge { instructions: n },
        other => Error::Backend(other),
    })?;
    let starts_with_arch_check = compiled
        .first()
        .is_some_and(|i| i.code == LD_W_ABS && i.k == DATA_ARCH);
    if !starts_with_arch_check || compiled.len() <= SECCOMPILER_ARCH_CHECK_LEN {
        return Err(Error::Unsupported(
            "this seccompiler version lays out programs differently than hako-seccomp expects \
             (no leading arch check); pin seccompiler 0.5"
                .into(),
        ));
    }
    let body = &compiled[SECCOMPILER_ARCH_CHECK_LEN..];
    let (matched, not_matched) = (u32::from(MATCHED), u32::from(NOT_MATCHED));
    for (i, ins) in body.iter().enumerate() {
        let rewritten = match (ins.code, ins.k) {
            (RET_K, k) if k == matched => stmt(RET_K, section.ret),
            (RET_K, k) if k == not_matched => {
                let to_end =
                    u32::try_from(body.len() - i - 1).map_err(|_| Error::FilterTooLarge {
                        instructions: body.len(),
                    })?;
                stmt(JMP_JA, to_end)
            }
            _ => jump(ins.code, ins.k, ins.jt, ins.jf),
        };
        program.push(rewritten);
    }
    Ok(())
}
