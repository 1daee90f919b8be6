//! A second, independent reading of an OCI seccomp profile, to check what the compiled
//! program decides (`CompiledFilter::simulate`, the kernel's semantics) against what the
//! profile says, as hako-seccomp documents it (`compile.rs`):
//!
//! - rules with argument conditions first: the first *action* (in order of its first
//!   conditional rule) with a matching rule wins; conditions of a rule are AND-ed, unless
//!   the rule compares one argument twice, then each condition is a rule of its own (runc);
//! - then the first unconditional rule naming the syscall; else the default action;
//! - a foreign arch, or an x32 syscall on x86_64, gets the default action, or KILL_PROCESS
//!   when some rule is stricter than the default.
//!
//! Syscall numbers come from `libc::SYS_*` (not hako's tables), for a fixed set of names;
//! only those syscalls are checked, on x86_64 only.

use hako_seccomp::CompiledFilter;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator};

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn check(_: &LinuxSeccomp, _: &CompiledFilter) {}

#[cfg(target_arch = "x86_64")]
pub(crate) fn check(profile: &LinuxSeccomp, filter: &CompiledFilter) {
    x86_64::check(profile, filter);
}

/// `SECCOMP_RET_*` for an action (linux/seccomp.h); ERRNO and TRACE carry the errno,
/// EPERM when unset.
fn ret(action: LinuxSeccompAction, errno: Option<u32>) -> u32 {
    let data = errno.unwrap_or(1);
    match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => 0,
        LinuxSeccompAction::ScmpActKillProcess => 0x8000_0000,
        LinuxSeccompAction::ScmpActTrap => 0x0003_0000,
        LinuxSeccompAction::ScmpActErrno => 0x0005_0000 | data,
        LinuxSeccompAction::ScmpActTrace => 0x7ff0_0000 | data,
        LinuxSeccompAction::ScmpActNotify => 0x7fc0_0000,
        LinuxSeccompAction::ScmpActLog => 0x7ffc_0000,
        LinuxSeccompAction::ScmpActAllow => 0x7fff_0000,
    }
}

/// The kernel's precedence: lower is stricter.
fn strictness(ret: u32) -> u8 {
    match ret & 0xffff_0000 {
        0x8000_0000 => 0,
        0 => 1,
        0x0003_0000 => 2,
        0x0005_0000 => 3,
        0x7fc0_0000 => 4,
        0x7ff0_0000 => 5,
        0x7ffc_0000 => 6,
        _ => 7,
    }
}

fn matches(arg: &LinuxSeccompArg, args: &[u64; 6]) -> bool {
    let Some(&a) = args.get(arg.index()) else {
        return false;
    };
    let v = arg.value();
    match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => a != v,
        LinuxSeccompOperator::ScmpCmpLt => a < v,
        LinuxSeccompOperator::ScmpCmpLe => a <= v,
        LinuxSeccompOperator::ScmpCmpEq => a == v,
        LinuxSeccompOperator::ScmpCmpGe => a >= v,
        LinuxSeccompOperator::ScmpCmpGt => a > v,
        // libseccomp masks the expected value too (its _db_node_mask_fixup): bits of
        // valueTwo outside the mask never count.
        LinuxSeccompOperator::ScmpCmpMaskedEq => a & v == arg.value_two().unwrap_or(0) & v,
    }
}

/// Whether a rule's conditions hold (see the module docs for a repeated argument).
fn rule_matches(conds: &[LinuxSeccompArg], args: &[u64; 6]) -> bool {
    let mut seen = std::collections::HashSet::new();
    if conds.iter().all(|c| seen.insert(c.index())) {
        conds.iter().all(|c| matches(c, args))
    } else {
        conds.iter().any(|c| matches(c, args))
    }
}

/// Argument values worth trying against `conds`: each value, its neighbours, the masked
/// value, and ones that differ only in the high or the low 32 bits.
fn candidates(conds: &[&LinuxSeccompArg]) -> Vec<[u64; 6]> {
    let mut per_index: [Vec<u64>; 6] = Default::default();
    for c in conds {
        let Some(slot) = per_index.get_mut(c.index()) else {
            continue;
        };
        let v = c.value();
        let w = c.value_two().unwrap_or(0);
        slot.extend([
            v,
            v.wrapping_add(1),
            v.wrapping_sub(1),
            v ^ (1 << 32),
            v ^ 1,
            w,
            w | !v,
            w.wrapping_add(1),
        ]);
    }
    let mut out = vec![[0u64; 6], [u64::MAX; 6]];
    for (i, vals) in per_index.iter().enumerate() {
        for v in vals {
            let mut a = [0u64; 6];
            a[i] = *v;
            out.push(a);
        }
    }
    // Combinations: the k-th candidate of every argument at once.
    let longest = per_index.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        let mut a = [0u64; 6];
        for (i, vals) in per_index.iter().enumerate() {
            if !vals.is_empty() {
                a[i] = vals[k % vals.len()];
            }
        }
        out.push(a);
    }
    out.truncate(96);
    out
}

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use super::*;

    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
    const X32_BIT: u32 = 0x4000_0000;
    const KILL_PROCESS: u32 = 0x8000_0000;

    /// Names whose numbers the oracle takes from libc.
    const SYSCALLS: &[(&str, libc::c_long)] = &[
        ("read", libc::SYS_read),
        ("write", libc::SYS_write),
        ("open", libc::SYS_open),
        ("close", libc::SYS_close),
        ("mmap", libc::SYS_mmap),
        ("mprotect", libc::SYS_mprotect),
        ("ioctl", libc::SYS_ioctl),
        ("socket", libc::SYS_socket),
        ("connect", libc::SYS_connect),
        ("clone", libc::SYS_clone),
        ("clone3", libc::SYS_clone3),
        ("execve", libc::SYS_execve),
        ("kill", libc::SYS_kill),
        ("fchmod", libc::SYS_fchmod),
        ("chown", libc::SYS_chown),
        ("ptrace", libc::SYS_ptrace),
        ("personality", libc::SYS_personality),
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("reboot", libc::SYS_reboot),
        ("sethostname", libc::SYS_sethostname),
        ("keyctl", libc::SYS_keyctl),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        ("bpf", libc::SYS_bpf),
        ("kexec_load", libc::SYS_kexec_load),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("getpid", libc::SYS_getpid),
        ("setuid", libc::SYS_setuid),
    ];

    pub(super) fn check(profile: &LinuxSeccomp, filter: &CompiledFilter) {
        let rules = profile.syscalls().as_deref().unwrap_or_default();
        let default = ret(profile.default_action(), profile.default_errno_ret());
        // Foreign arches and x32.
        let stricter = |r: u32| strictness(r) < strictness(default);
        let rets: Vec<(u32, bool)> = rules
            .iter()
            .map(|r| {
                let known = r.names().iter().any(|n| number(n).is_some());
                (ret(r.action(), r.errno_ret()), known)
            })
            .collect();
        let foreign_kill = rets.iter().any(|(r, known)| *known && stricter(*r));
        let foreign_may_kill = rets.iter().any(|(r, _)| stricter(*r));
        let getpid = u32::try_from(libc::SYS_getpid).unwrap_or(0);
        for (arch, nr) in [
            (AUDIT_ARCH_I386, 20),
            (AUDIT_ARCH_AARCH64, 172),
            (AUDIT_ARCH_X86_64, getpid | X32_BIT),
        ] {
            let got = filter.simulate(arch, nr, [0; 6]);
            let ok = if foreign_kill {
                got == KILL_PROCESS
            } else if foreign_may_kill {
                got == KILL_PROCESS || got == default
            } else {
                got == default
            };
            assert!(
                ok,
                "arch {arch:#x} nr {nr:#x}: the filter returns {got:#x}; default {default:#x}, \
                 a stricter rule {foreign_kill}/{foreign_may_kill}"
            );
        }
        // Native syscalls the oracle knows.
        for (name, nr) in SYSCALLS {
            let Ok(nr) = u32::try_from(*nr) else {
                continue;
            };
            let naming: Vec<_> = rules
                .iter()
                .filter(|r| r.names().iter().any(|n| n == name))
                .collect();
            let conds: Vec<&LinuxSeccompArg> = naming
                .iter()
                .flat_map(|r| r.args().as_deref().unwrap_or_default())
                .collect();
            for args in candidates(&conds) {
                let got = filter.simulate(AUDIT_ARCH_X86_64, nr, args);
                let want = expected(rules, name, &args, default);
                assert!(
                    want.contains(&got),
                    "{name}({args:x?}): the filter returns {got:#x}, the profile says {want:x?}"
                );
            }
        }
    }

    fn number(name: &str) -> Option<u32> {
        SYSCALLS
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, nr)| u32::try_from(*nr).ok())
    }

    /// The return values the profile allows for `name(args)`: one, or several when two
    /// conditional actions match and their order depends on rules for syscalls the oracle
    /// cannot resolve.
    fn expected(
        rules: &[oci_spec::runtime::LinuxSyscall],
        name: &str,
        args: &[u64; 6],
        default: u32,
    ) -> Vec<u32> {
        let matching: Vec<u32> = rules
            .iter()
            .filter(|r| r.names().iter().any(|n| n == name))
            .filter_map(|r| {
                let conds = r.args().as_deref().unwrap_or_default();
                (!conds.is_empty() && rule_matches(conds, args))
                    .then(|| ret(r.action(), r.errno_ret()))
            })
            .collect();
        if !matching.is_empty() {
            // Sections are ordered by the first conditional rule of each action, among
            // rules with a name native here: the oracle only knows that order when every
            // rule before is about names it resolves.
            let mut order: Vec<u32> = Vec::new();
            for r in rules {
                let conds = r.args().as_deref().unwrap_or_default();
                if conds.is_empty() {
                    continue;
                }
                let rv = ret(r.action(), r.errno_ret());
                if r.names().iter().all(|n| number(n).is_none()) {
                    // Unknown to the oracle: it may start a section here, or not.
                    if !order.contains(&rv) && matching.contains(&rv) {
                        return matching;
                    }
                    continue;
                }
                if !order.contains(&rv) {
                    order.push(rv);
                }
            }
            let first = order.iter().find(|rv| matching.contains(rv));
            return first.map_or(matching.clone(), |rv| vec![*rv]);
        }
        let first_plain = rules.iter().find(|r| {
            r.names().iter().any(|n| n == name)
                && r.args().as_deref().unwrap_or_default().is_empty()
        });
        vec![first_plain.map_or(default, |r| ret(r.action(), r.errno_ret()))]
    }
}
