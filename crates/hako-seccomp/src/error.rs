//! One error per way a profile can be wrong or a cache can fail, each saying what to fix.

use std::path::PathBuf;

/// Why a seccomp profile could not be turned into a filter.
///
/// Profile errors carry the JSON location (`syscalls[3].names[1]`) so the user can find the
/// offending entry in `config.json` or in a `--security-opt seccomp=FILE` profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The profile text is not JSON, or a field has the wrong JSON type.
    #[error("seccomp profile is not valid: {0}")]
    Json(#[source] serde_json::Error),

    /// An action string libseccomp does not define.
    #[error(
        "unknown seccomp action {value:?} at {at}; use one of SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, \
         SCMP_ACT_KILL, SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, \
         SCMP_ACT_TRACE, SCMP_ACT_LOG, SCMP_ACT_NOTIFY"
    )]
    UnknownAction { value: String, at: String },

    /// An architecture string that is not a libseccomp `SCMP_ARCH_*` name.
    #[error(
        "unknown seccomp architecture {value:?} at {at}; use an SCMP_ARCH_* name such as \
         SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32, SCMP_ARCH_AARCH64, SCMP_ARCH_ARM"
    )]
    UnknownArch { value: String, at: String },

    /// A filter flag the kernel's `seccomp(2)` does not define for profiles.
    #[error(
        "unknown seccomp flag {value:?} at {at}; use SECCOMP_FILTER_FLAG_TSYNC, \
         SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW or \
         SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
    )]
    UnknownFlag { value: String, at: String },

    /// An argument comparison that libseccomp does not define.
    #[error(
        "unknown seccomp argument operator {value:?} at {at}; use one of SCMP_CMP_NE, \
         SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ"
    )]
    UnknownOperator { value: String, at: String },

    /// A syscall name that exists on no Linux architecture: almost always a typo.
    #[error(
        "unknown syscall {0:?} in seccomp profile: no Linux architecture has a syscall of that \
         name; check the spelling"
    )]
    UnknownSyscall(String),

    /// An argument condition on an index a syscall cannot have.
    #[error(
        "seccomp rule for {syscall:?} compares argument index {index}; syscalls have at most 6 \
         arguments, so use an index from 0 to 5"
    )]
    ArgIndex { syscall: String, index: usize },

    /// An errno or trace value that does not fit in the filter's return data.
    #[error("{at}: errnoRet {value} is out of range; use a value from 0 to {max}")]
    ErrnoOutOfRange { at: String, value: u32, max: u32 },

    /// `SCMP_ACT_NOTIFY` without a socket to hand the notification fd to.
    #[error(
        "seccomp profile uses SCMP_ACT_NOTIFY at {at} but sets no listenerPath; set \
         listenerPath to the seccomp agent's unix socket, or use another action"
    )]
    NotifyWithoutListener { at: String },

    /// Something the kernel or this crate cannot express; the message names it.
    #[error("unsupported seccomp profile: {0}")]
    Unsupported(String),

    /// The linked program is longer than the kernel accepts (`BPF_MAXINSNS`).
    #[error(
        "compiled seccomp filter has {instructions} instructions, the kernel accepts at most \
         4096; list fewer syscalls or fewer argument rules"
    )]
    FilterTooLarge { instructions: usize },

    /// seccompiler refused a section; a bug in how this crate drives it.
    #[error("seccompiler rejected a filter section: {0}")]
    Backend(#[source] seccompiler::BackendError),

    /// The cache directory could not be created or the cache file could not be written.
    #[error("cannot write seccomp cache file {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
