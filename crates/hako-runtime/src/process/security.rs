//! The last steps before `execve`: user and groups, capabilities, no_new_privs, seccomp.
//!
//! Order matters (it is runc's): drop the bounding set while still privileged; keep
//! capabilities across the uid switch; switch ids; set permitted, inheritable, effective;
//! raise ambient. Without no_new_privs seccomp must be loaded while CAP_SYS_ADMIN is still
//! held; with it, as late as possible so the filter need not allow the setup syscalls.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
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

/// Capabilities parsed up front (so an unknown name fails `create`, not `start`).
#[derive(Debug, Default)]
pub struct CapPlan {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
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
            effective: to_caps(c.effective().as_ref())?,
            permitted: to_caps(c.permitted().as_ref())?,
            inheritable: to_caps(c.inheritable().as_ref())?,
            ambient: to_caps(c.ambient().as_ref())?,
            present: true,
        })
    }

    fn drop_bounding(&self) -> Result<()> {
        if !self.present {
            return Ok(());
        }
        let supported = caps::runtime::thread_all_supported();
        for cap in supported {
            if !self.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| Error::Init(format!("drop {cap} from bounding set: {e}")))?;
            }
        }
        Ok(())
    }

    fn apply(&self) -> Result<()> {
        if !self.present {
            return Ok(());
        }
        let set = |which, caps: &CapsHashSet, name: &str| {
            caps::set(None, which, caps)
                .map_err(|e| Error::Init(format!("set {name} capabilities: {e}")))
        };
        // capset checks each call against the sets as they are: inheritable first (still
        // within the full permitted set), then effective, then shrink permitted last.
        set(CapSet::Inheritable, &self.inheritable, "inheritable")?;
        set(CapSet::Effective, &self.effective, "effective")?;
        set(CapSet::Permitted, &self.permitted, "permitted")?;
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| Error::Init(format!("clear ambient capabilities: {e}")))?;
        for cap in &self.ambient {
            // The kernel refuses ambient caps that are not both permitted and inheritable;
            // runc ignores those, and so do we.
            let _ = caps::raise(None, CapSet::Ambient, *cap);
        }
        Ok(())
    }
}

/// Switch to the process's user and apply capabilities. `load_seccomp` is called at the
/// right point for the no_new_privs setting.
pub fn finalize(
    process: &Process,
    capplan: &CapPlan,
    load_seccomp: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let user = process.user();
    let nnp = process.no_new_privileges().unwrap_or(false);
    apply_lsm(process)?;
    capplan.drop_bounding()?;
    if !nnp {
        load_seccomp()?;
    }
    nix::sys::prctl::set_keepcaps(true).context(|| "keep capabilities".into())?;
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is refused in a user namespace whose setgroups file says "deny"; then
    // only an empty list is acceptable anyway.
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) if gids.is_empty() => {}
        Err(e) => return Err(e).context(|| "setgroups".into()),
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).context(|| format!("setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).context(|| format!("setuid {}", user.uid()))?;
    nix::sys::prctl::set_keepcaps(false).context(|| "clear keepcaps".into())?;
    capplan.apply()?;
    if nnp {
        nix::sys::prctl::set_no_new_privs().context(|| "set no_new_privs".into())?;
        load_seccomp()?;
    }
    Ok(())
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
    fn unknown_capability_is_an_error() {
        let c: LinuxCapabilities =
            serde_json::from_str(r#"{"bounding":["CAP_CHOWN","CAP_KILL"]}"#).unwrap();
        let plan = CapPlan::new(Some(&c)).unwrap();
        assert_eq!(plan.bounding.len(), 2);
    }
}
