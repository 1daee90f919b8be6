//! The only crate in hako that says `unsafe`.
//!
//! Each wrapper is a thin, typed shell over one system call that `nix` (or `rustix`) does not
//! cover safely. Every `unsafe` block carries a SAFETY comment saying why *this* call is
//! sound; the workspace lint `clippy::undocumented_unsafe_blocks` holds the line.
#![allow(unsafe_code)]

pub mod bpf;
pub mod caps;
pub mod crash;
pub mod fd;
pub mod fs;
pub mod keyring;
pub mod malloc;
pub mod mount;
pub mod mountinfo;
pub mod netif;
pub mod nftables;
pub mod process;
pub mod quota;
pub mod seccomp;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod sysctl;
pub mod tty;
pub mod userns;
pub mod uts;

pub use process::{
    CloneResult, cloexec_from, clone3_fork, clone3_fork_into, close_range_cloexec, pidfd_open,
    pidfd_send_signal,
};
