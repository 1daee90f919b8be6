//! Linking a profile's sections into one classic-BPF program.
//!
//! seccompiler compiles a `SeccompFilter`: a set of syscalls (each with OR-ed rules of AND-ed
//! argument conditions) sharing ONE match action and ONE mismatch action. An OCI profile has
//! an action per rule, so the sections with argument conditions are compiled one per action
//! and chained; the syscalls whose action does not depend on arguments (in Docker's default
//! profile, ~350 of ~360) are looked up in a binary search tree over syscall numbers:
//!
//! ```text
//!   ld arch; jeq NATIVE ? next : ret FOREIGN       our arch check (replaces seccompiler's)
//!   [x86_64] ld nr; jge X32_BIT ? ret FOREIGN      x32 syscalls share AUDIT_ARCH_X86_64
//!   section 1 (action A) ── no match ──┐          seccompiler body, RETs rewritten:
//!   section 2 (action B) ◄─────────────┘            "matched"     -> ret <action>
//!   ...                                             "not matched" -> ja <end of section>
//!   ld nr; jge K ? right : left ... ret <action>   the tree: ranges of numbers, each with
//!                                                  its action (DEFAULT in the gaps)
//! ```
//!
//! Why a tree: the kernel runs the program when it is loaded, once per syscall number, to
//! build its cache of always-allowed syscalls, and again on every syscall not in that cache.
//! A chain of one comparison per syscall (seccompiler's layout, ~1,770 instructions for
//! Docker's profile) made loading it cost ~0.55 ms per container start and exec; the tree
//! answers in ~2·log2(ranges) steps and is a fraction of the size.
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

/// What [`link`] lays out; part of the cache key, so a cached program of another layout is
/// never read back as this one.
pub(crate) const LAYOUT: &str = "conditional-chain+tree-1";

/// The whole program: arch check, the sections with conditions in order, then the tree of
/// the unconditional ones with the default action in its gaps.
pub(crate) fn link(
    arch: Arch,
    sections: Vec<Section>,
    default_ret: u32,
    foreign_ret: u32,
) -> Result<Vec<libc::sock_filter>, Error> {
    let mut program = arch_check(arch, foreign_ret);
    // Unconditional syscalls, each with the action of the first section naming it (the
    // planner already gives each syscall at most one catch-all).
    let mut always: BTreeMap<u32, u32> = BTreeMap::new();
    for section in sections.into_iter().filter(|s| !s.rules.is_empty()) {
        if section.rules.values().all(Vec::is_empty) {
            for nr in section.rules.keys() {
                let nr = u32::try_from(*nr)
                    .map_err(|_| Error::Unsupported(format!("syscall number {nr} out of range")))?;
                always.entry(nr).or_insert(section.ret);
            }
        } else {
            append_section(&mut program, arch, section)?;
        }
    }
    let ranges = ranges(&always, default_ret);
    if ranges.len() > 1 {
        // A conditional section may have left an argument in the accumulator.
        program.push(stmt(LD_W_ABS, DATA_NR));
    }
    program.extend(tree(&ranges));
    if program.len() > MAX_INSTRUCTIONS {
        return Err(Error::FilterTooLarge {
            instructions: program.len(),
        });
    }
    Ok(program)
}

fn arch_check(arch: Arch, foreign_ret: u32) -> Vec<libc::sock_filter> {
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
    program
}

/// The number line cut into ranges of one action: `(first number, action)`, ascending, the
/// first starting at 0, each running up to the next one's start. Neighbours never share an
/// action.
fn ranges(always: &BTreeMap<u32, u32>, default_ret: u32) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut add = |start: u32, ret: u32| {
        if out.last().is_none_or(|&(_, last)| last != ret) {
            out.push((start, ret));
        }
    };
    let mut next: u64 = 0;
    for (&nr, &ret) in always {
        if u64::from(nr) > next {
            add(u32::try_from(next).unwrap_or(u32::MAX), default_ret);
        }
        add(nr, ret);
        next = u64::from(nr) + 1;
    }
    if next <= u64::from(u32::MAX) {
        add(u32::try_from(next).unwrap_or(u32::MAX), default_ret);
    }
    out
}

/// A binary search over `ranges` (non-empty) on the syscall number in the accumulator: every
/// path ends in a `ret`. Jumps are forward and relative, so a subtree can be placed anywhere.
fn tree(ranges: &[(u32, u32)]) -> Vec<libc::sock_filter> {
    if let [(_, ret)] = ranges {
        return vec![stmt(RET_K, *ret)];
    }
    let mid = ranges.len() / 2;
    let (left, right) = (tree(&ranges[..mid]), tree(&ranges[mid..]));
    let k = ranges[mid].0;
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        // nr >= k: over the left subtree; else into it.
        Ok(over) => out.push(jump(JMP_JGE_K, k, over, 0)),
        // Too far for the 8-bit offset: the true branch takes a long jump instead.
        Err(_) => out.extend([
            jump(JMP_JGE_K, k, 0, 1),
            stmt(
                JMP_JA,
                u32::try_from(left.len()).expect("programs are < 4096 instructions"),
            ),
        ]),
    }
    out.extend(left);
    out.extend(right);
    out
}

/// The layout before the tree, every section a chain (kept for the equivalence test).
#[cfg(test)]
pub(crate) fn link_chain(
    arch: Arch,
    sections: Vec<Section>,
    default_ret: u32,
    foreign_ret: u32,
) -> Result<Vec<libc::sock_filter>, Error> {
    let mut program = arch_check(arch, foreign_ret);
    for section in sections.into_iter().filter(|s| !s.rules.is_empty()) {
        append_section(&mut program, arch, section)?;
    }
    program.push(stmt(RET_K, default_ret));
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
