//! hako-runtime: an OCI runtime (the `runc` part of the seed) as a library with a thin,
//! runc-compatible binary on top.
//!
//! What lives where:
//! - `container/`: one file per lifecycle verb (create, start, run, state, kill, delete,
//!   list, spec, features);
//! - `process/`: the processes that make a container (parent, intermediate, init), the
//!   namespace plan, the typed parent/child protocol, the final security steps;
//! - `rootfs/`: mounts, devices, pivot_root, masked and read-only paths;
//! - `state`: the state directory; `config`: loading and validating config.json;
//! - `hooks`, `console`, `seal` (CVE-2019-5736), `logging`, `output` (stdout/stderr that
//!   never panic on a closed pipe), `cli`.
//!
//! No async runtime, no threads before a fork: startup speed is a feature.

pub mod cli;
pub mod config;
pub mod console;
pub mod container;
pub mod error;
pub mod foreground;
pub mod hooks;
pub mod id;
pub mod logging;
pub mod output;
pub mod process;
pub mod rootfs;
pub mod seal;
pub mod state;

pub use error::{Error, Result};
