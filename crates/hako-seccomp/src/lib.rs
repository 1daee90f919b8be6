//! OCI seccomp profiles compiled to classic BPF, in Rust, without libseccomp.
//!
//! `hako-runtime` calls [`compile`] (or [`compile_cached`]) while it still holds the bundle, and
//! hands [`CompiledFilter::instructions`] and [`CompiledFilter::flags`] to
//! `hako_sys::seccomp::set_mode_filter` as the very last step before `execve`. This crate never
//! loads a filter itself: loading needs `unsafe`, which lives only in `hako-sys`.
//!
//! oci-spec rejects unknown action/arch/flag/operator strings while deserializing, with a
//! generic serde message; [`parse_profile`] checks the raw JSON first and names the bad value
//! and its place, so a runtime that wants clear messages parses `linux.seccomp` with it.
//!
//! ```text
//!  config.json ──► LinuxSeccomp ──► compile ──► CompiledFilter ──► hako_sys set_mode_filter
//!   (or parse_profile, for          │  (syscall tables,           (instructions + flags)
//!    clear errors)                  │   seccompiler sections)
//!                                   └─ compile_cached: <cache_dir>/<sha256>.bpf
//! ```
//!
//! How a profile becomes one program (details in `compile.rs` and `program.rs`):
//! seccompiler builds one section per distinct action; the sections are linked in order, a
//! syscall that no section claims falls through to the default action.

mod cache;
mod compile;
mod docker_default;
mod error;
mod filter;
mod profile;
mod program;
mod syscalls;

pub use cache::compile_cached;
pub use compile::compile;
pub use docker_default::{DOCKER_DEFAULT_CAPABILITIES, docker_default_profile};
pub use error::Error;
pub use filter::CompiledFilter;
pub use profile::parse_profile;
