//! From an OCI profile to a [`CompiledFilter`]: resolve names, group rules by action, link.
//!
//! Rules of the profile, in the order the kernel will see them:
//! - Every syscall is resolved for the native arch. A name only other arches have is skipped
//!   (runc/libseccomp do the same); a name no arch has is [`Error::UnknownSyscall`].
//! - Rules with argument conditions come before rules without: a specific rule beats the
//!   catch-all, as in libseccomp's per-syscall decision tree. Conditional rules are grouped by
//!   action, in order of the action's first appearance.
//! - Of several unconditional rules for one syscall, the first wins. One whose action equals
//!   the default is not emitted (runc skips those too; libseccomp would refuse them).
//! - Several conditions in one rule are AND-ed; several rules for one syscall are OR-ed.
//!   Like runc, a rule that compares the same argument twice is split into one rule per
//!   condition (OR), because libseccomp cannot AND two conditions on one argument.
//! - `architectures` other than the native one are accepted and not compiled: the filter
//!   checks `seccomp_data.arch`, and a syscall from another arch (or an x32 syscall) gets the
//!   default action when that is at least as strict as every rule's action; otherwise it
//!   gets SCMP_ACT_KILL_PROCESS, like arches missing from a libseccomp filter. Either way a
//!   foreign-arch syscall is never treated more permissively than the profile intends.
//! - Arguments are compared as 64-bit values; MASKED_EQ uses `value` as the mask and
//!   `valueTwo` as the expected masked value (libseccomp's order).

use std::collections::{BTreeMap, HashSet};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompArg, LinuxSeccompOperator, LinuxSyscall};
use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use crate::profile::{action_ret, check_notify, flag_bits, strictness};
use crate::program::{self, Section};
use crate::syscalls::{Arch, Lookup};
use crate::{CompiledFilter, Error};

/// Compile `profile` into a BPF filter for the arch this process runs on.
///
/// The result is deterministic: the same profile always gives the same instructions, which
/// is what makes [`crate::compile_cached`] valid.
pub fn compile(profile: &LinuxSeccomp) -> Result<CompiledFilter, Error> {
    compile_for(profile, Arch::native()?)
}

pub(crate) fn compile_for(profile: &LinuxSeccomp, arch: Arch) -> Result<CompiledFilter, Error> {
    compile_with(profile, arch, program::link)
}

/// The program's layout, as [`program::link`] takes it.
type Linker = fn(Arch, Vec<Section>, u32, u32) -> Result<Vec<libc::sock_filter>, Error>;

fn compile_with(profile: &LinuxSeccomp, arch: Arch, link: Linker) -> Result<CompiledFilter, Error> {
    check_notify(profile)?;
    let default_ret = action_ret(
        profile.default_action(),
        profile.default_errno_ret(),
        "defaultAction/defaultErrnoRet",
    )?;
    let rules: &[LinuxSyscall] = profile.syscalls().as_deref().unwrap_or_default();
    let sections = plan(rules, arch, default_ret)?;

    let strictest_rule = sections.iter().map(|s| strictness(s.ret)).min();
    let foreign_ret = match strictest_rule {
        Some(rule) if rule < strictness(default_ret) => libc::SECCOMP_RET_KILL_PROCESS,
        _ => default_ret,
    };
    let wants_listener = sections
        .iter()
        .any(|s| s.ret == libc::SECCOMP_RET_USER_NOTIF && !s.rules.is_empty());
    let instructions = link(arch, sections, default_ret, foreign_ret)?;
    Ok(CompiledFilter {
        instructions,
        flags: load_flags(profile, wants_listener),
        wants_listener,
    })
}

fn load_flags(profile: &LinuxSeccomp, wants_listener: bool) -> u32 {
    let mut flags = profile
        .flags()
        .iter()
        .flatten()
        .fold(0, |acc, f| acc | flag_bits(*f));
    let bit = |f: libc::c_ulong| u32::try_from(f).unwrap_or(0);
    if wants_listener {
        flags |= bit(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
        if flags & bit(libc::SECCOMP_FILTER_FLAG_TSYNC) != 0 {
            flags |= bit(libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH);
        }
    } else {
        flags &= !bit(libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
    }
    flags
}

/// Group the profile's rules into sections, conditional ones first (see the module docs).
fn plan(rules: &[LinuxSyscall], arch: Arch, default_ret: u32) -> Result<Vec<Section>, Error> {
    let mut conditional: Vec<Section> = Vec::new();
    let mut unconditional: Vec<Section> = Vec::new();
    let mut has_catch_all: HashSet<u32> = HashSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let ret = action_ret(rule.action(), rule.errno_ret(), &format!("syscalls[{i}]"))?;
        let conditions = conditions(rule)?;
        for name in rule.names() {
            let nr = match arch.lookup(name) {
                Lookup::Native(nr) => nr,
                Lookup::OtherArch => continue,
                Lookup::Unknown => return Err(Error::UnknownSyscall(name.clone())),
            };
            if conditions.is_empty() {
                if has_catch_all.insert(nr) && ret != default_ret {
                    section(&mut unconditional, ret).insert(i64::from(nr), Vec::new());
                }
            } else {
                let rules = section(&mut conditional, ret)
                    .entry(i64::from(nr))
                    .or_default();
                rules.extend(conditions.iter().cloned());
            }
        }
    }
    conditional.extend(unconditional);
    Ok(conditional)
}

fn section(sections: &mut Vec<Section>, ret: u32) -> &mut BTreeMap<i64, Vec<SeccompRule>> {
    let i = match sections.iter().position(|s| s.ret == ret) {
        Some(i) => i,
        None => {
            sections.push(Section {
                ret,
                rules: BTreeMap::new(),
            });
            sections.len() - 1
        }
    };
    &mut sections[i].rules
}

/// The seccompiler rules for one profile rule: none (always matches), one rule of AND-ed
/// conditions, or, when an argument is compared twice, one rule per condition (runc's way).
fn conditions(rule: &LinuxSyscall) -> Result<Vec<SeccompRule>, Error> {
    let args: &[LinuxSeccompArg] = rule.args().as_deref().unwrap_or_default();
    let conditions = args
        .iter()
        .map(|arg| condition(rule, arg))
        .collect::<Result<Vec<_>, _>>()?;
    if conditions.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = HashSet::new();
    let repeats_an_argument = !args.iter().all(|a| seen.insert(a.index()));
    let groups = if repeats_an_argument {
        conditions.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conditions]
    };
    groups
        .into_iter()
        .map(|g| SeccompRule::new(g).map_err(Error::Backend))
        .collect()
}

fn condition(rule: &LinuxSyscall, arg: &LinuxSeccompArg) -> Result<SeccompCondition, Error> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| Error::ArgIndex {
            syscall: rule.names().join(","),
            index: arg.index(),
        })?;
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(Error::Backend)
}

#[cfg(test)]
mod tests;
