//! Loading and validating a bundle's `config.json`: everything that can be checked before
//! a single namespace exists is checked here, so bad input fails fast and leaves nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// A validated container configuration with paths made absolute.
#[derive(Debug)]
pub struct Config {
    pub spec: Spec,
    /// Absolute bundle directory.
    pub bundle: PathBuf,
    /// Absolute root filesystem directory.
    pub rootfs: PathBuf,
}

impl Config {
    /// Read `<bundle>/config.json` and validate it.
    pub fn load(bundle: &Path) -> Result<Config> {
        let bundle = std::path::absolute(bundle).map_err(|source| Error::Io {
            context: format!("bundle {}", bundle.display()),
            source,
        })?;
        let path = bundle.join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| Error::ConfigMissing {
            path: path.clone(),
            source,
        })?;
        let spec: Spec = serde_json::from_slice(&bytes).map_err(|e| Error::ConfigParse {
            path: path.clone(),
            msg: short_serde_error(&e),
        })?;
        Self::from_spec(spec, bundle)
    }

    /// Validate an already parsed spec (`bundle` must be absolute).
    pub fn from_spec(spec: Spec, bundle: PathBuf) -> Result<Config> {
        let root = spec.root().as_ref().ok_or_else(|| {
            Error::ConfigInvalid(
                "root.path is missing: set it to the container's root filesystem".into(),
            )
        })?;
        if root.path().as_os_str().is_empty() {
            return Err(Error::ConfigInvalid("root.path is empty".into()));
        }
        let rootfs = bundle.join(root.path());
        let meta = std::fs::metadata(&rootfs).map_err(|source| Error::Io {
            context: format!("root.path {}", rootfs.display()),
            source,
        })?;
        if !meta.is_dir() {
            return Err(Error::ConfigInvalid(format!(
                "root.path {} is not a directory",
                rootfs.display()
            )));
        }
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::ConfigInvalid("process is missing".into()))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::ConfigInvalid(
                "process.args must name a program".into(),
            ));
        }
        if !process.cwd().is_absolute() {
            return Err(Error::ConfigInvalid(format!(
                "process.cwd {} must be an absolute path",
                process.cwd().display()
            )));
        }
        check_lsm(
            process.apparmor_profile().as_deref(),
            process.selinux_label().as_deref(),
        )?;
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| Error::ConfigInvalid("linux section is missing".into()))?;
        check_lsm(None, linux.mount_label().as_deref())?;
        let mut seen = HashSet::new();
        let mut has_user = false;
        for ns in linux.namespaces().iter().flatten() {
            if !seen.insert(ns.typ()) {
                return Err(Error::ConfigInvalid(format!(
                    "namespace {} is listed twice",
                    ns.typ()
                )));
            }
            has_user |= ns.typ() == LinuxNamespaceType::User;
        }
        let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        let new_user = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_none());
        if new_user && !has_maps {
            return Err(Error::ConfigInvalid(
                "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
            ));
        }
        if has_maps && !has_user {
            return Err(Error::ConfigInvalid(
                "uidMappings/gidMappings are set but there is no user namespace".into(),
            ));
        }
        if linux.time_offsets().is_some() && !seen.contains(&LinuxNamespaceType::Time) {
            return Err(Error::ConfigInvalid(
                "timeOffsets need a time namespace".into(),
            ));
        }
        if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
            && !seen.contains(&LinuxNamespaceType::Uts)
        {
            return Err(Error::ConfigInvalid(
                "hostname is set but there is no uts namespace".into(),
            ));
        }
        let restricted = linux.masked_paths().as_ref().is_some_and(|p| !p.is_empty())
            || linux
                .readonly_paths()
                .as_ref()
                .is_some_and(|p| !p.is_empty());
        if restricted && !seen.contains(&LinuxNamespaceType::Mount) {
            // They would mask or freeze the caller's own /proc and /sys (runc's words).
            return Err(Error::ConfigInvalid(
                "unable to restrict sys entries without a private MNT namespace: add a mount \
                 namespace or empty linux.maskedPaths and linux.readonlyPaths"
                    .into(),
            ));
        }
        check_sysctls(linux)?;
        for m in spec.mounts().iter().flatten() {
            if !m.destination().is_absolute() {
                return Err(Error::ConfigInvalid(format!(
                    "mount destination {} must be absolute",
                    m.destination().display()
                )));
            }
        }
        for dev in linux.devices().iter().flatten() {
            if !dev.path().starts_with("/dev") {
                return Err(Error::ConfigInvalid(format!(
                    "device {} must be under /dev",
                    dev.path().display()
                )));
            }
        }
        Ok(Config {
            spec,
            bundle,
            rootfs,
        })
    }
}

/// A sysctl is written only where the container has the namespace that holds it, as runc
/// checks: anything else would change the host's own setting (`net.ipv4.ip_forward` with
/// the host's network, `vm.swappiness` anywhere).
fn check_sysctls(linux: &oci_spec::runtime::Linux) -> Result<()> {
    let Some(sysctls) = linux.sysctl().as_ref().filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let ns = |t: LinuxNamespaceType| linux.namespaces().iter().flatten().find(|n| n.typ() == t);
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for raw in keys {
        // runc takes both spellings: net.ipv4.ip_forward and net/ipv4/ip_forward.
        let key = raw.replace('/', ".");
        let uts = ns(LinuxNamespaceType::Uts).is_some();
        let refused = if hako_sys::sysctl::in_ipc_namespace(&key) {
            ns(LinuxNamespaceType::Ipc)
                .is_none()
                .then(|| format!("sysctl {raw:?} is not allowed in the host's ipc namespace"))
        } else if hako_sys::sysctl::in_net_namespace(&key) {
            let host = match ns(LinuxNamespaceType::Network) {
                None => true,
                Some(n) => match n.path() {
                    None => false,
                    Some(p) => same_file(p, Path::new("/proc/self/ns/net"))?,
                },
            };
            host.then(|| format!("sysctl {raw:?} not allowed in host network namespace"))
        } else if uts && key == "kernel.domainname" {
            None
        } else if uts && key == "kernel.hostname" {
            Some(
                "sysctl \"kernel.hostname\" is not allowed; use the \"hostname\" field instead"
                    .into(),
            )
        } else {
            Some(format!(
                "sysctl {raw:?} is not in a separate kernel namespace"
            ))
        };
        if let Some(m) = refused {
            return Err(Error::ConfigInvalid(m));
        }
    }
    Ok(())
}

/// Whether two paths name one file (a namespace file joined is the host's own).
fn same_file(a: &Path, b: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let stat = |p: &Path| {
        std::fs::metadata(p).map_err(|source| Error::Io {
            context: format!("namespace {}", p.display()),
            source,
        })
    };
    let (a, b) = (stat(a)?, stat(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// AppArmor profiles and SELinux labels are applied only where the kernel has the LSM;
/// asking for one where it is absent must fail loudly, not run the container unconfined.
fn check_lsm(apparmor: Option<&str>, selinux: Option<&str>) -> Result<()> {
    if let Some(profile) = apparmor.filter(|p| !p.is_empty() && *p != "unconfined")
        && !Path::new("/sys/kernel/security/apparmor").exists()
    {
        return Err(Error::Unsupported(format!(
            "AppArmor profile {profile:?} requested but AppArmor is not enabled in this kernel"
        )));
    }
    if let Some(label) = selinux.filter(|l| !l.is_empty())
        && !Path::new("/sys/fs/selinux/enforce").exists()
    {
        return Err(Error::Unsupported(format!(
            "SELinux label {label:?} requested but SELinux is not enabled in this kernel"
        )));
    }
    Ok(())
}

/// serde's messages for unknown enum variants list every accepted value (dozens of
/// capabilities); keep the part a user needs.
fn short_serde_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.find(", expected one of") {
        Some(cut) => {
            let tail = msg.rfind(" at line").map(|i| &msg[i..]).unwrap_or("");
            format!("{}{tail}", &msg[..cut])
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        dir
    }

    const MINIMAL: &str = r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},
        "process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
        "linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}}"#;

    #[test]
    fn loads_minimal_config() {
        let b = bundle_with(MINIMAL);
        let cfg = Config::load(b.path()).unwrap();
        assert!(cfg.rootfs.ends_with("rootfs"));
    }

    #[test]
    fn missing_config_is_clear() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("No such file"),
            "{err}"
        );
    }

    #[test]
    fn not_json_is_clear() {
        let b = bundle_with("this is not json");
        let err = Config::load(b.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid ") && err.contains("config.json"),
            "{err}"
        );
    }

    #[test]
    fn unknown_namespace_is_rejected() {
        let b = bundle_with(&MINIMAL.replace(r#"{"type":"mount"}"#, r#"{"type":"bogus"}"#));
        let err = Config::load(b.path()).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        assert!(!err.contains("expected one of"), "{err}");
    }

    /// A config of MINIMAL's with these namespaces and sysctls; Ok or the error's text.
    fn with_sysctls(namespaces: &str, sysctls: &str) -> std::result::Result<(), String> {
        let cfg = MINIMAL.replace(
            r#""namespaces":[{"type":"pid"},{"type":"mount"}]"#,
            &format!(r#""namespaces":[{namespaces}],"sysctl":{{{sysctls}}}"#),
        );
        let b = bundle_with(&cfg);
        Config::load(b.path())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sysctls_only_in_the_namespace_that_holds_them() {
        let mnt = r#"{"type":"mount"}"#;
        let own = r#"{"type":"mount"},{"type":"network"},{"type":"ipc"},{"type":"uts"}"#;
        // The container's own namespaces: allowed, both spellings.
        for ok in [
            r#""net.ipv4.ip_forward":"1""#,
            r#""net/ipv4/ip_forward":"1""#,
            r#""kernel.msgmax":"9999""#,
            r#""fs.mqueue.msg_max":"20""#,
            r#""kernel.domainname":"example""#,
        ] {
            assert_eq!(with_sysctls(own, ok), Ok(()), "{ok}");
        }
        // The host's network: refused, also when joined by the host's own namespace file.
        let err = with_sysctls(mnt, r#""net.ipv4.ip_forward":"0""#).unwrap_err();
        assert!(
            err.contains("not allowed in host network namespace"),
            "{err}"
        );
        let host_by_path = r#"{"type":"mount"},{"type":"network","path":"/proc/self/ns/net"}"#;
        let err = with_sysctls(host_by_path, r#""net.ipv4.ip_forward":"0""#).unwrap_err();
        assert!(err.contains("host network namespace"), "{err}");
        // The host's IPC namespace, the hostname, and what no namespace holds.
        let err = with_sysctls(mnt, r#""kernel.shmmax":"1""#).unwrap_err();
        assert!(err.contains("host's ipc namespace"), "{err}");
        let err = with_sysctls(own, r#""kernel.hostname":"x""#).unwrap_err();
        assert!(err.contains("hostname"), "{err}");
        for host_only in [r#""vm.swappiness":"1""#, r#""kernel.pid_max":"4096""#] {
            let err = with_sysctls(own, host_only).unwrap_err();
            assert!(err.contains("not in a separate kernel namespace"), "{err}");
        }
    }

    #[test]
    fn missing_root_is_rejected() {
        let b = bundle_with(&MINIMAL.replace(r#""root":{"path":"rootfs"},"#, ""));
        let err = Config::load(b.path()).unwrap_err().to_string();
        assert!(err.contains("root.path"), "{err}");
    }

    #[test]
    fn lsm_without_kernel_support_is_rejected() {
        if Path::new("/sys/kernel/security/apparmor").exists() {
            return;
        }
        let b = bundle_with(&MINIMAL.replace(
            r#""cwd":"/""#,
            r#""cwd":"/","apparmorProfile":"docker-default""#,
        ));
        let err = Config::load(b.path()).unwrap_err().to_string();
        assert!(
            err.contains("AppArmor") && err.contains("docker-default"),
            "{err}"
        );
    }

    #[test]
    fn unknown_capability_is_rejected() {
        let b = bundle_with(&MINIMAL.replace(
            r#""cwd":"/""#,
            r#""cwd":"/","capabilities":{"bounding":["CAP_NOPE"]}"#,
        ));
        let err = Config::load(b.path()).unwrap_err().to_string();
        assert!(err.contains("NOPE"), "{err}");
    }
}
