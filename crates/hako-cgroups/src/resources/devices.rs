//! linux.resources.devices on cgroup v1.
//!
//! The device cgroup starts from its parent's rules, so the only way to get exactly the
//! rules of the spec is to deny everything and then replay the rules in order: an allow
//! rule goes to devices.allow, a deny rule to devices.deny, so a later deny carves a
//! hole into an earlier allow, as in the spec. runc reaches the same end state with its
//! rule emulator; replaying in order is simpler and has the same meaning.
//!
//! cgroup v2 has no device files: access is checked by an eBPF program attached to the
//! cgroup. The v2 path of this crate only records the rules
//! ([`crate::Manager::device_rules`]); the runtime attaches the program.

use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::Error;
use crate::fs;

/// The rule as devices.allow/devices.deny want it: "c 1:3 rwm", "a *:* rwm".
pub(crate) fn rule_string(d: &LinuxDeviceCgroup) -> String {
    let num = |n: Option<i64>| {
        n.filter(|&n| n >= 0)
            .map_or("*".to_owned(), |n| n.to_string())
    };
    let access = d
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    format!(
        "{} {}:{} {access}",
        d.typ().unwrap_or_default().as_str(),
        num(d.major()),
        num(d.minor())
    )
}

fn is_deny_all(d: &LinuxDeviceCgroup) -> bool {
    !d.allow()
        && d.typ().unwrap_or_default() == LinuxDeviceType::A
        && d.major().is_none_or(|m| m < 0)
        && d.minor().is_none_or(|m| m < 0)
        && d.access()
            .as_deref()
            .is_none_or(|a| a.is_empty() || a == "rwm")
}

/// The (file, value) writes for `rules`, in order. Pure, so tests can check it.
pub(crate) fn plan(rules: &[LinuxDeviceCgroup]) -> Vec<(&'static str, String)> {
    let mut writes = vec![("devices.deny", "a".to_owned())];
    for rule in rules {
        // A leading "deny all" is what we just wrote; writing it again would be a no-op.
        if is_deny_all(rule) && writes.len() == 1 {
            continue;
        }
        let file = if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        writes.push((file, rule_string(rule)));
    }
    writes
}

pub(super) fn apply_v1(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), Error> {
    for (file, value) in plan(rules) {
        fs::write_setting(dir, "devices", file, &value)?;
    }
    Ok(())
}
