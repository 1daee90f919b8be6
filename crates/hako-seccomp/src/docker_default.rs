//! Docker's default seccomp profile, resolved for a capability set and the native arch.
//!
//! `docker_default.json` follows moby's `profiles/seccomp/default.json` format: an allow list
//! with the default action ERRNO(EPERM), plus rules that only apply with (`includes`) or
//! without (`excludes`) certain capabilities or arches. Resolving them gives a plain OCI
//! profile, which is what dockerd writes into `config.json`. Rules follow moby's resolution:
//! - `includes.caps`: every listed capability must be in the set;
//! - `excludes.caps`: any listed capability in the set drops the rule;
//! - `includes.arches` / `excludes.arches`: matched against the Go name of the native arch
//!   (`amd64`, `arm64`, `riscv64`), as dockerd matches `runtime.GOARCH`;
//! - `includes.minKernel` (only 4.8, for ptrace) is treated as met: hako needs a far newer
//!   kernel for its mount API and cgroup code.
//!
//! Compared with the moby file of early 2024 this copy also allows syscalls glibc and Go
//! started using since (cachestat, fchmodat2, futex_wait/wake/requeue, map_shadow_stack, mseal).

use std::sync::OnceLock;

use oci_spec::runtime::{Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg};
use oci_spec::runtime::{LinuxSeccompBuilder, LinuxSyscall, LinuxSyscallBuilder};
use serde::Deserialize;

use crate::syscalls::Arch;

/// The capabilities Docker grants a container by default (`oci.DefaultCapabilities()`); the
/// profile for them denies mount, unshare, setns, clone with namespace flags, and so on.
pub const DOCKER_DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DockerProfile {
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    arch_map: Vec<ArchMap>,
    syscalls: Vec<DockerRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArchMap {
    architecture: OciArch,
    sub_architectures: Vec<OciArch>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DockerRule {
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<LinuxSeccompArg>,
    #[serde(default)]
    #[allow(dead_code)] // documentation inside the JSON
    comment: String,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[allow(dead_code)] // assumed met, see the module docs
    min_kernel: Option<String>,
}

fn embedded() -> &'static DockerProfile {
    static PROFILE: OnceLock<DockerProfile> = OnceLock::new();
    PROFILE.get_or_init(|| {
        serde_json::from_str(include_str!("docker_default.json"))
            .expect("docker_default.json is valid (checked by the unit tests)")
    })
}

/// Capability names as Docker writes them: upper case with the `CAP_` prefix, so `sys_admin`,
/// `SYS_ADMIN` and `CAP_SYS_ADMIN` all mean the same.
fn normalize(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// Docker's default profile for a container whose bounding set is `capabilities`, for the
/// native arch. Pass [`DOCKER_DEFAULT_CAPABILITIES`] for a default `docker run`.
///
/// On a host this crate cannot build filters for, the result lists no architectures and
/// [`crate::compile`] will say why.
pub fn docker_default_profile(capabilities: &[String]) -> LinuxSeccomp {
    resolve(embedded(), capabilities, Arch::native().ok())
}

/// [`docker_default_profile`] for another arch than this one.
#[cfg(test)]
pub(crate) fn docker_default_for(capabilities: &[String], arch: Arch) -> LinuxSeccomp {
    resolve(embedded(), capabilities, Some(arch))
}

fn go_arch(arch: Option<Arch>) -> &'static str {
    match arch {
        Some(Arch::X86_64) => "amd64",
        Some(Arch::Aarch64) => "arm64",
        Some(Arch::Riscv64) => "riscv64",
        None => "",
    }
}

fn native_oci_arch(arch: Arch) -> OciArch {
    match arch {
        Arch::X86_64 => OciArch::ScmpArchX86_64,
        Arch::Aarch64 => OciArch::ScmpArchAarch64,
        Arch::Riscv64 => OciArch::ScmpArchRiscv64,
    }
}

fn resolve(profile: &DockerProfile, capabilities: &[String], arch: Option<Arch>) -> LinuxSeccomp {
    let caps: Vec<String> = capabilities.iter().map(|c| normalize(c)).collect();
    let has = |c: &String| caps.contains(&normalize(c));
    let goarch = go_arch(arch);
    let applies = |rule: &DockerRule| {
        let (inc, exc) = (&rule.includes, &rule.excludes);
        (inc.arches.is_empty() || inc.arches.iter().any(|a| a == goarch))
            && inc.caps.iter().all(has)
            && !exc.arches.iter().any(|a| a == goarch)
            && !exc.caps.iter().any(has)
    };
    let syscalls: Vec<LinuxSyscall> = profile
        .syscalls
        .iter()
        .filter(|r| applies(r))
        .map(|r| {
            let mut b = LinuxSyscallBuilder::default()
                .names(r.names.clone())
                .action(r.action);
            if let Some(errno) = r.errno_ret {
                b = b.errno_ret(errno);
            }
            if !r.args.is_empty() {
                b = b.args(r.args.clone());
            }
            b.build().expect("every LinuxSyscall field has a default")
        })
        .collect();
    let architectures: Vec<OciArch> = arch
        .map(native_oci_arch)
        .and_then(|native| profile.arch_map.iter().find(|m| m.architecture == native))
        .map(|m| std::iter::once(m.architecture).chain(m.sub_architectures.iter().copied()))
        .into_iter()
        .flatten()
        .collect();
    let mut builder = LinuxSeccompBuilder::default()
        .default_action(profile.default_action)
        .architectures(architectures)
        .syscalls(syscalls);
    if let Some(errno) = profile.default_errno_ret {
        builder = builder.default_errno_ret(errno);
    }
    builder
        .build()
        .expect("every LinuxSeccomp field has a default")
}

#[cfg(test)]
mod tests;
