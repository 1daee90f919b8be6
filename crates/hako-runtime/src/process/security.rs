//! The process's identity and privileges, set in two steps around the wait for `start`.
//!
//! [`prepare`] does every step that can fail, before the init reports Ready, so `create`
//! fails (as runc's does: "unable to apply caps: operation not permitted") instead of a
//! container that can never run: AppArmor/SELinux exec labels, no_new_privs, the bounding
//! set (while still privileged), groups, gid and uid (keeping capabilities across the
//! switch), the capability sets in one capset, ambient capabilities, descriptors above the
//! preserved ones marked close-on-exec, and signal dispositions reset.
//!
//! [`Prepared::seal`] runs after `start`, right before `execve`: it loads the seccomp filter
//! and nothing else, so no syscall the runtime needs can be denied by the profile. One
//! exception, as in runc: without no_new_privs the kernel only takes a filter from a
//! process holding CAP_SYS_ADMIN, so when the container must not keep it, `prepare` leaves
//! it in the effective and permitted sets and `seal` drops it with one `capset` after the
//! filter (a profile without no_new_privs that denies capset cannot be honoured; runc
//! needs it there too, among others).

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use hako_sys::caps::Sets;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxCapabilities, Process};

use crate::error::{Context, Error, Result};

fn to_caps(set: Option<&oci_spec::runtime::Capabilities>) -> Result<CapsHashSet> {
    let mut out = HashSet::new();
    for c in set.into_iter().flatten() {
        let name = format!("CAP_{c}");
        let cap = Capability::from_str(&name)
            .map_err(|_| Error::ConfigInvalid(format!("unknown capability {name}")))?;
        out.insert(cap);
    }
    Ok(out)
}

fn mask(caps: &CapsHashSet) -> u64 {
    caps.iter().fold(0, |m, c| m | c.bitmask())
}

/// Capabilities parsed up front (so an unknown name fails `create` before anything is made).
#[derive(Debug, Default)]
pub struct CapPlan {
    bounding: CapsHashSet,
    sets: Sets,
    ambient: CapsHashSet,
    present: bool,
}

impl CapPlan {
    pub fn new(c: Option<&LinuxCapabilities>) -> Result<CapPlan> {
        let Some(c) = c else {
            return Ok(CapPlan::default());
        };
        Ok(CapPlan {
            bounding: to_caps(c.bounding().as_ref())?,
            sets: Sets {
                effective: mask(&to_caps(c.effective().as_ref())?),
                permitted: mask(&to_caps(c.permitted().as_ref())?),
                inheritable: mask(&to_caps(c.inheritable().as_ref())?),
            },
            ambient: to_caps(c.ambient().as_ref())?,
            present: true,
        })
    }

    fn drop_bounding(&self) -> Result<()> {
        if !self.present {
            return Ok(());
        }
        for cap in caps::runtime::thread_all_supported() {
            if !self.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| Error::Init(format!("drop {cap} from bounding set: {e}")))?;
            }
        }
        Ok(())
    }
}

/// The last steps, all of which can fail, are done; what is left runs after `start`.
#[derive(Debug)]
#[must_use = "seal() loads the seccomp filter"]
pub struct Prepared<'a> {
    seccomp: Option<&'a hako_seccomp::CompiledFilter>,
    /// The final sets, when `prepare` had to keep CAP_SYS_ADMIN for loading the filter.
    drop_to: Option<Sets>,
}

const SYS_ADMIN: u64 = 1 << 21;

/// Everything up to the seccomp filter (see the module docs). `preserve_fds`: descriptors
/// 3..3+N stay open across `execve` (`--preserve-fds`).
pub fn prepare<'a>(
    process: &Process,
    capplan: &CapPlan,
    seccomp: Option<&'a hako_seccomp::CompiledFilter>,
    preserve_fds: u32,
) -> Result<Prepared<'a>> {
    let user = process.user();
    let nnp = process.no_new_privileges().unwrap_or(false);
    apply_lsm(process)?;
    if nnp {
        nix::sys::prctl::set_no_new_privs().context(|| "set no_new_privs".into())?;
    }
    capplan.drop_bounding()?;
    nix::sys::prctl::set_keepcaps(true).context(|| "keep capabilities".into())?;
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is refused in a user namespace whose setgroups file says "deny" (one
    // mapped id, no newgidmap): runc leaves the groups as they are there, and so do we
    // (an engine lists at least the primary group).
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM)
            if gids.is_empty()
                || std::fs::read_to_string("/proc/self/setgroups")
                    .is_ok_and(|s| s.trim() == "deny") => {}
        Err(e) => return Err(e).context(|| "setgroups".into()),
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).context(|| format!("setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).context(|| format!("setuid {}", user.uid()))?;
    nix::sys::prctl::set_keepcaps(false).context(|| "clear keepcaps".into())?;

    // Without capabilities in the config the sets stay as the uid switch left them.
    let want = if capplan.present {
        capplan.sets
    } else {
        hako_sys::caps::get().context(|| "read capabilities".into())?
    };
    let needs_admin = seccomp.is_some() && !nnp && want.effective & SYS_ADMIN == 0;
    let now = if needs_admin {
        Sets {
            effective: want.effective | SYS_ADMIN,
            permitted: want.permitted | SYS_ADMIN,
            inheritable: want.inheritable,
        }
    } else {
        want
    };
    if capplan.present || needs_admin {
        hako_sys::caps::set(now)
            .map_err(|e| Error::Init(format!("unable to apply caps: {}", errno_text(&e))))?;
    }
    if capplan.present {
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| Error::Init(format!("clear ambient capabilities: {e}")))?;
        for cap in &capplan.ambient {
            // The kernel refuses ambient caps that are not both permitted and inheritable;
            // runc ignores those, and so do we.
            let _ = caps::raise(None, CapSet::Ambient, *cap);
        }
    }
    // Everything above stdio and the preserved descriptors is closed by execve. Our own
    // descriptors are all close-on-exec already; this catches what the caller leaked to us
    // (GHSA-xr7r-f8xq-vfvv), before the filter, which may well deny close_range.
    hako_sys::cloexec_from(3 + preserve_fds).context(|| "mark descriptors close-on-exec".into())?;
    hako_sys::process::reset_signals().context(|| "reset signal handling".into())?;
    Ok(Prepared {
        seccomp,
        drop_to: needs_admin.then_some(want),
    })
}

impl Prepared<'_> {
    /// Load the seccomp filter (and drop the CAP_SYS_ADMIN kept for it). The caller's next
    /// syscall must be `execve`.
    pub fn seal(self) -> Result<()> {
        if let Some(f) = self.seccomp {
            hako_sys::seccomp::set_mode_filter(f.instructions(), f.flags())
                .context(|| "load seccomp filter".into())?;
        }
        if let Some(sets) = self.drop_to {
            hako_sys::caps::set(sets)
                .map_err(|e| Error::Init(format!("unable to apply caps: {}", errno_text(&e))))?;
        }
        Ok(())
    }
}

/// Why execve failed, in runc's words (engines map "executable file not found", "permission
/// denied", "exec format error" to exit codes 126/127).
pub fn exec_failed(program: &std::ffi::CStr, err: &std::io::Error) -> Error {
    Error::Init(format!(
        "unable to start container process: exec {}: {}",
        program.to_string_lossy(),
        errno_text(err)
    ))
}

/// An errno as Go (and so runc) prints it: "operation not permitted".
pub fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let desc = nix::errno::Errno::from_raw(n).desc();
            let mut s = desc.to_owned();
            if let Some(first) = s.get_mut(..1) {
                first.make_ascii_lowercase();
            }
            s
        }
        None => e.to_string(),
    }
}

/// AppArmor profile / SELinux label for the next execve (config validation already made
/// sure the LSM exists when one is asked for). Written to the process's own attr files,
/// so it takes effect exactly at the exec of the user's program.
fn apply_lsm(process: &Process) -> Result<()> {
    let apparmor = Path::new("/sys/kernel/security/apparmor").exists();
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty() && (apparmor || *p != "unconfined"))
    {
        let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(attr, format!("exec {profile}"))
            .context(|| format!("set AppArmor profile {profile}"))?;
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        std::fs::write("/proc/self/attr/exec", label)
            .context(|| format!("set SELinux label {label}"))?;
    }
    Ok(())
}

/// Find the program to run the way execvp would, inside the container (after pivot_root):
/// a name with a slash is taken as is, anything else is searched in `$PATH` of the
/// process's environment. The message mirrors runc's so scripts matching it keep working.
pub fn lookup_program(arg0: &str, env: &[String]) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if arg0.contains('/') {
        let p = std::path::PathBuf::from(arg0);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err(Error::Init(format!("exec: {arg0:?}: is a directory"))),
            Ok(_) if is_exec(&p) => Ok(p),
            Ok(_) => Err(Error::Init(format!("exec: {arg0:?}: permission denied"))),
            Err(_) => Err(Error::Init(format!(
                "exec: {arg0:?}: stat {arg0}: no such file or directory"
            ))),
        };
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = std::path::Path::new(dir).join(arg0);
        if is_exec(&cand) {
            return Ok(cand);
        }
    }
    Err(Error::Init(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// `HOME` from the container's /etc/passwd when the config does not set it (runc does
/// this too; shells and many programs misbehave without it).
pub fn home_for(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_owned())
            })
        })
        .unwrap_or_else(|| "/".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_sh_and_reports_missing() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_owned()];
        assert!(lookup_program("sh", &env).unwrap().ends_with("sh"));
        let err = lookup_program("no-such-program-hako", &env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            r#"exec: "no-such-program-hako": executable file not found in $PATH"#
        );
        assert!(lookup_program("/no/such", &env).is_err());
    }

    #[test]
    fn capabilities_become_masks() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_SYS_ADMIN","CAP_CHOWN"]}"#,
        )
        .unwrap();
        let plan = CapPlan::new(Some(&c)).unwrap();
        assert_eq!(plan.bounding.len(), 2);
        assert_eq!(plan.sets.effective, SYS_ADMIN | 1);
        assert_eq!(plan.sets.permitted, 0);
    }

    #[test]
    fn errno_reads_like_go() {
        let e = std::io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(errno_text(&e), "operation not permitted");
    }
}
