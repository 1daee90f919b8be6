//! The one error type of this crate. Every variant names the file or value involved and,
//! where there is one, what the user can do about it.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while managing a container's cgroups.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cgroup file could not be read.
    #[error("cannot read {file} in {dir}: {source}")]
    Read {
        file: String,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A value was rejected by the kernel (or the file could not be opened).
    #[error("cannot write {value} to {file} in {dir}: {source}")]
    Write {
        value: String,
        file: String,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A cgroup file held something this crate does not understand.
    #[error("cannot parse {file} in {dir}: unexpected content {content:?}")]
    Parse {
        file: String,
        dir: PathBuf,
        content: String,
    },
    /// `mkdir` of a cgroup directory failed.
    #[error("cannot create cgroup directory {dir}: {source}")]
    Create {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `rmdir` of a cgroup directory failed (after retries for EBUSY).
    #[error("cannot remove cgroup directory {dir}: {source}")]
    Remove {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// /proc/self/mountinfo lists no cgroup filesystem at all.
    #[error(
        "no cgroup filesystem is mounted (checked /proc/self/mountinfo); mount cgroup2 at /sys/fs/cgroup"
    )]
    NoCgroupMounts,
    /// The caller's own cgroup is missing from /proc/self/cgroup, so a relative
    /// cgroupsPath cannot be resolved.
    #[error(
        "cannot resolve relative cgroupsPath {path:?}: /proc/self/cgroup has no entry for {hierarchy}; use an absolute cgroupsPath"
    )]
    OwnCgroupNotFound { path: String, hierarchy: String },
    /// cgroupsPath was given in systemd form to the cgroupfs driver.
    #[error(
        "cgroupsPath {path:?} is in systemd form (slice:prefix:name) but the cgroupfs driver is in use: pass --systemd-cgroup, or give a path such as /hako/<id>"
    )]
    SystemdUnsupported { path: String },
    /// The systemd driver was asked for with a cgroupsPath it cannot take.
    #[error("invalid cgroupsPath {path:?} for the systemd cgroup driver: {reason}")]
    InvalidSystemdPath { path: String, reason: &'static str },
    /// The systemd driver was asked for, but there is no systemd to ask.
    #[error("the systemd cgroup driver cannot be used: {what}; use the cgroupfs driver instead")]
    SystemdNotRunning { what: String },
    /// The systemd driver on a host that is not pure cgroup v2.
    #[error(
        "the systemd cgroup driver of hako needs a pure cgroup v2 host, and this one has cgroup v1 controllers; use the cgroupfs driver"
    )]
    SystemdNeedsV2,
    /// systemd answered a request with an error.
    #[error("systemd: cannot {what}: {message}")]
    Systemd { what: String, message: String },
    /// A path handed to [`crate::Manager::from_resolved`] is not a resolved path.
    #[error("invalid resolved cgroup path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// A resource needs a controller that is not mounted (v1) on this host.
    #[error(
        "{setting} needs the {controller} cgroup controller, which is not mounted on this host; remove the setting or mount the controller"
    )]
    ControllerNotMounted {
        controller: &'static str,
        setting: &'static str,
    },
    /// The kernel does not offer the file a resource maps to (controller disabled or
    /// too old a kernel).
    #[error(
        "{file} does not exist in {dir}: the {controller} controller is not enabled there or this kernel does not support it; remove the setting"
    )]
    Unsupported {
        controller: String,
        file: String,
        dir: PathBuf,
    },
    /// A cgroup v2 controller a setting needs is not available in the container's cgroup
    /// (not delegated down to it, or not built into the kernel).
    #[error(
        "{setting} needs the {controller} cgroup controller, which {dir} does not have (its cgroup.controllers: {available}); enable {controller} in the parent's cgroup.subtree_control (for a systemd unit: Delegate=) or drop the setting"
    )]
    ControllerMissing {
        controller: String,
        setting: &'static str,
        dir: PathBuf,
        available: String,
    },
    /// memory.swap was requested but swap accounting is off.
    #[error(
        "memory.swap was set but swap accounting is off ({file} is missing in {dir}); boot with swapaccount=1 or drop the swap limit"
    )]
    SwapAccountingDisabled { file: &'static str, dir: PathBuf },
    /// A resource value is invalid before it even reaches the kernel.
    #[error("invalid {setting} {value}: {reason}")]
    InvalidResource {
        setting: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The kernel refused a memory limit because the cgroup already uses more.
    #[error(
        "cannot set memory limit of {dir} to {limit}: current usage is {usage} bytes; raise the limit or free memory first"
    )]
    MemoryLimitBelowUsage {
        dir: PathBuf,
        limit: i64,
        usage: u64,
    },
    /// `linux.resources.unified` only means something on cgroup v2.
    #[error(
        "linux.resources.unified ({key}) needs cgroup v2, but this host has cgroup v1 only; use the v1 resource fields instead"
    )]
    UnifiedOnV1 { key: String },
    /// Freezing did not finish in time; the cgroup was thawed again.
    #[error(
        "cannot freeze {dir}: still not frozen after {millis} ms (a process may be stuck in the kernel); try again"
    )]
    FreezeTimeout { dir: PathBuf, millis: u64 },
    /// A signal number that Linux does not know.
    #[error("invalid signal number {0}")]
    InvalidSignal(i32),
    /// kill(2) failed for a reason other than the process being gone.
    #[error("cannot send signal {signal} to pid {pid}: {source}")]
    Signal {
        pid: i32,
        signal: i32,
        #[source]
        source: nix::Error,
    },
    /// Processes survived SIGKILL for too long.
    #[error("cgroup {dir} still has processes {pids:?} after SIGKILL")]
    NotEmpty { dir: PathBuf, pids: Vec<i32> },
    /// A rootless container asked for a limit, and the host gives its user no cgroup to
    /// set it in.
    #[error(
        "{setting} needs a cgroup this user may write, and this host delegates none to it (rootless mode without cgroup v2 and systemd --user delegation): drop the limit or run as root"
    )]
    NoDelegation { setting: String },
    /// An operation that needs the container's cgroup, for a container that has none
    /// (rootless without delegation).
    #[error("cannot {what}: the container has no cgroup (rootless mode without cgroup delegation)")]
    NoCgroup { what: &'static str },
    /// Teardown gathers every failure instead of stopping at the first one.
    #[error("cannot destroy cgroup {path}: {}", join(.errors))]
    Destroy { path: String, errors: Vec<Error> },
}

fn join(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// True when the kernel refused a cgroup directory or file for lack of permission:
    /// what a user namespace without delegation meets.
    pub fn is_permission(&self) -> bool {
        let source = match self {
            Error::Create { source, .. }
            | Error::Write { source, .. }
            | Error::Read { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.kind(),
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
        ) || source.raw_os_error() == Some(nix::libc::EPERM)
    }

    /// True when the underlying cause is a missing file or directory.
    pub(crate) fn is_not_found(&self) -> bool {
        match self {
            Error::Read { source, .. } | Error::Write { source, .. } => {
                source.kind() == io::ErrorKind::NotFound
            }
            _ => false,
        }
    }

    /// The raw OS error number of a failed write, if any.
    pub(crate) fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Write { source, .. } | Error::Read { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
