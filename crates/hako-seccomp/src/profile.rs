//! Reading and checking an OCI `LinuxSeccomp` profile, and the meaning of its actions and flags.
//!
//! oci-spec's enums reject unknown strings during deserialization, with a generic serde
//! message. [`parse_profile`] checks the raw JSON first so each mistake gets its own
//! [`Error`] naming the bad value, where it is, and what is accepted.

use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag,
};
use oci_spec::runtime::{LinuxSeccompOperator, LinuxSyscall};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// Parse a seccomp profile (the `linux.seccomp` object of an OCI `config.json`, or a Docker
/// `--security-opt seccomp=FILE` profile already resolved to OCI form).
///
/// Unknown actions, arches, flags and operators are reported one by one with their JSON
/// location instead of as a generic "unknown variant" serde error.
pub fn parse_profile(json: &str) -> Result<LinuxSeccomp, Error> {
    let value: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        // Text only a typed read takes: a lone surrogate (`"\ud800"`) in a field hako ignores
        // (Docker's `archMap`), which serde skips unchecked and Go reads as U+FFFD. The
        // names are then serde's to check; its message is plainer, but the profile works.
        Err(e) => return serde_json::from_str(json).map_err(|_| Error::Json(e)),
    };
    check_names(&value)?;
    serde_json::from_value(value).map_err(Error::Json)
}

/// Is `s` a string oci-spec's enum `T` accepts? Asking serde keeps the lists in one place.
fn known<T: DeserializeOwned>(s: &str) -> bool {
    serde_json::from_value::<T>(Value::String(s.to_owned())).is_ok()
}

fn check_names(profile: &Value) -> Result<(), Error> {
    let action = |v: &Value, at: String| match v.as_str() {
        Some(s) if !known::<LinuxSeccompAction>(s) => Err(Error::UnknownAction {
            value: s.to_owned(),
            at,
        }),
        _ => Ok(()),
    };
    action(&profile["defaultAction"], "defaultAction".into())?;
    for (i, arch) in array(&profile["architectures"]).iter().enumerate() {
        if let Some(s) = arch.as_str().filter(|s| !known::<OciArch>(s)) {
            let at = format!("architectures[{i}]");
            return Err(Error::UnknownArch {
                value: s.to_owned(),
                at,
            });
        }
    }
    for (i, flag) in array(&profile["flags"]).iter().enumerate() {
        if let Some(s) = flag
            .as_str()
            .filter(|s| !known::<LinuxSeccompFilterFlag>(s))
        {
            let at = format!("flags[{i}]");
            return Err(Error::UnknownFlag {
                value: s.to_owned(),
                at,
            });
        }
    }
    for (i, rule) in array(&profile["syscalls"]).iter().enumerate() {
        action(&rule["action"], format!("syscalls[{i}].action"))?;
        for (j, arg) in array(&rule["args"]).iter().enumerate() {
            if let Some(s) = arg["op"]
                .as_str()
                .filter(|s| !known::<LinuxSeccompOperator>(s))
            {
                let at = format!("syscalls[{i}].args[{j}].op");
                return Err(Error::UnknownOperator {
                    value: s.to_owned(),
                    at,
                });
            }
        }
    }
    Ok(())
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The largest errno the kernel passes through: larger `SECCOMP_RET_ERRNO` data is clamped to
/// it (`MAX_ERRNO` in include/linux/err.h), so we refuse it instead of silently changing it.
const MAX_ERRNO: u32 = 4095;

/// The filter return value for `action`, as the kernel defines it (linux/seccomp.h) and as
/// runc/libseccomp build it: ERRNO and TRACE carry `errno_ret` (EPERM when unset, as runc does),
/// `SCMP_ACT_KILL` is the historical name of KILL_THREAD.
pub(crate) fn action_ret(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    at: &str,
) -> Result<u32, Error> {
    let data = |max: u32| {
        let value = errno_ret.unwrap_or(libc::EPERM.unsigned_abs());
        if value > max {
            return Err(Error::ErrnoOutOfRange {
                at: at.to_owned(),
                value,
                max,
            });
        }
        Ok(value)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            libc::SECCOMP_RET_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data(MAX_ERRNO)?,
        LinuxSeccompAction::ScmpActTrace => libc::SECCOMP_RET_TRACE | data(libc::SECCOMP_RET_DATA)?,
        LinuxSeccompAction::ScmpActNotify => libc::SECCOMP_RET_USER_NOTIF,
        LinuxSeccompAction::ScmpActLog => libc::SECCOMP_RET_LOG,
        LinuxSeccompAction::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
    })
}

/// How strict a return value is, in the kernel's precedence order (lower wins when several
/// filters are stacked, see `seccomp_run_filters`): KILL_PROCESS < KILL_THREAD < TRAP < ERRNO <
/// USER_NOTIF < TRACE < LOG < ALLOW.
pub(crate) fn strictness(ret: u32) -> u8 {
    match ret & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_KILL_PROCESS => 0,
        libc::SECCOMP_RET_KILL_THREAD => 1,
        libc::SECCOMP_RET_TRAP => 2,
        libc::SECCOMP_RET_ERRNO => 3,
        libc::SECCOMP_RET_USER_NOTIF => 4,
        libc::SECCOMP_RET_TRACE => 5,
        libc::SECCOMP_RET_LOG => 6,
        _ => 7,
    }
}

/// `SECCOMP_FILTER_FLAG_*` bit for a profile flag (linux/seccomp.h).
pub(crate) fn flag_bits(flag: LinuxSeccompFilterFlag) -> u32 {
    let bits = match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        }
    };
    // The flags are single low bits (1 << 0 ..= 1 << 5); the conversion cannot fail.
    u32::try_from(bits).unwrap_or(0)
}

/// Checks that need the whole profile: NOTIFY needs a listener and cannot be the default
/// (libseccomp refuses both: the kernel would answer ENOSYS to every syscall with no agent).
pub(crate) fn check_notify(profile: &LinuxSeccomp) -> Result<(), Error> {
    if profile.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::Unsupported(
            "SCMP_ACT_NOTIFY cannot be the defaultAction (the runtime itself could not make \
             another syscall after loading the filter); use it in syscalls[].action"
                .into(),
        ));
    }
    let rules: &[LinuxSyscall] = profile.syscalls().as_deref().unwrap_or_default();
    let notify = rules
        .iter()
        .position(|r| r.action() == LinuxSeccompAction::ScmpActNotify);
    if let Some(i) = notify
        && profile.listener_path().is_none()
    {
        return Err(Error::NotifyWithoutListener {
            at: format!("syscalls[{i}].action"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> Error {
        parse_profile(json).unwrap_err()
    }

    #[test]
    fn parses_a_small_profile() {
        let p = parse_profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "flags":["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW",
                             "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        )
        .unwrap();
        assert_eq!(p.default_errno_ret(), Some(38));
        assert_eq!(p.syscalls().as_ref().unwrap().len(), 1);
    }

    #[test]
    fn a_lone_surrogate_where_hako_does_not_look_is_no_error() {
        // Found by the seccomp_profile fuzz target (Docker's format: archMap is not OCI's).
        let p = parse_profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64",
                "subArchitectures":["SCMP\ud800X"]}],"syscalls":[]}"#,
        )
        .unwrap();
        assert!(p.syscalls().as_ref().is_some_and(|s| s.is_empty()));
        // In a field hako reads it is still an error.
        assert!(parse_profile(r#"{"defaultAction":"SCMP\ud800"}"#).is_err());
    }

    #[test]
    fn unknown_action_names_value_and_place() {
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW",
                        "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALOW"}]}"#);
        assert!(matches!(&e, Error::UnknownAction { value, at }
            if value == "SCMP_ACT_ALOW" && at == "syscalls[0].action"));
        assert!(e.to_string().contains("use one of SCMP_ACT_ALLOW"), "{e}");
        let e = err(r#"{"defaultAction":"DENY"}"#);
        assert!(matches!(&e, Error::UnknownAction { at, .. } if at == "defaultAction"));
    }

    #[test]
    fn unknown_arch_flag_and_operator() {
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_Z80"]}"#);
        assert!(matches!(&e, Error::UnknownArch { value, .. } if value == "SCMP_ARCH_Z80"));
        assert!(e.to_string().contains("SCMP_ARCH_X86_64"), "{e}");

        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_FAST"]}"#);
        assert!(matches!(&e, Error::UnknownFlag { value, at }
            if value == "SECCOMP_FILTER_FLAG_FAST" && at == "flags[0]"));

        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
            "action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_LIKE"}]}]}"#,
        );
        assert!(matches!(&e, Error::UnknownOperator { value, at }
            if value == "SCMP_CMP_LIKE" && at == "syscalls[0].args[0].op"));
        assert!(e.to_string().contains("SCMP_CMP_MASKED_EQ"), "{e}");
    }

    #[test]
    fn bad_json_is_a_json_error() {
        assert!(matches!(err("{"), Error::Json(_)));
        assert!(matches!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":3}"#),
            Error::Json(_)
        ));
    }

    #[test]
    fn action_values_match_the_kernel() {
        use LinuxSeccompAction as A;
        let ret = |a, e| action_ret(a, e, "x").unwrap();
        assert_eq!(ret(A::ScmpActKill, None), 0);
        assert_eq!(ret(A::ScmpActKillProcess, None), 0x8000_0000);
        assert_eq!(ret(A::ScmpActErrno, None), 0x0005_0001);
        assert_eq!(ret(A::ScmpActErrno, Some(38)), 0x0005_0026);
        assert_eq!(ret(A::ScmpActTrace, Some(7)), 0x7ff0_0007);
        assert_eq!(ret(A::ScmpActNotify, None), 0x7fc0_0000);
        assert!(matches!(
            action_ret(A::ScmpActErrno, Some(70000), "syscalls[2]"),
            Err(Error::ErrnoOutOfRange {
                value: 70000,
                max: 4095,
                ..
            })
        ));
        assert!(strictness(ret(A::ScmpActErrno, Some(1))) < strictness(ret(A::ScmpActLog, None)));
    }
}
