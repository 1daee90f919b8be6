//! Test support for hako: busybox bundles, a driver for any runc-compatible runtime, leak
//! checks and cleanup guards.
//!
//! Every end-to-end scenario follows the same shape:
//!
//! ```text
//!   Runtime::new(kind)            unique --root tempdir; a janitor that cleans up on Drop
//!     └─ rt.bundle(Config)        busybox rootfs copied from the cached fixture + config.json
//!     └─ rt.create/start/run/...  each call returns status + stdout + stderr (never hangs)
//!     └─ rt.assert_no_leaks(..)   state dir, cgroups, mounts, processes: nothing left
//! ```
//!
//! The same scenario runs against `hako-runtime` and `runc` (the oracle), see [`RuntimeKind`].

pub mod cgroups;
mod config;
mod console;
mod fixture;
mod guard;
mod leak;
mod netns;
mod registry;
mod runtime;
mod store;

pub use config::Config;
pub use console::{ConsoleSocket, pty_roundtrip};
pub use fixture::{Bundle, busybox_rootfs, busybox_tar, fixtures_dir, install_bundle};
pub use guard::ContainerGuard;
pub use leak::{LeakReport, find_leaks, processes_under};
pub use netns::{NetSandbox, NetnsGuard};
pub use registry::Registry;
pub use runtime::{Output, Runtime, RuntimeKind};
pub use store::{Inventory, InventoryDiff, db_execute};

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).map(PathBuf::from).unwrap_or(here)
}

/// True when running as root; tests that need root print why they skip otherwise.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when `CI=true` (or `CI=1`): missing pieces become failures instead of skips.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Whether the test can go on as root. Not root: prints `SKIP <what>: needs root` and
/// returns false on a developer's machine; under `CI=true` (which runs every test as root)
/// the test fails instead, so a CI run never passes a test that did not run.
pub fn root_or_skip(what: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        !in_ci(),
        "{what}: needs root (CI=true runs the tests as root)"
    );
    eprintln!("SKIP {what}: needs root");
    false
}

/// A container id unique across processes and threads: `<prefix>-<pid>-<n>`.
///
/// Ids stay short (runc accepts `[\w+-.]+`; cgroup and socket paths have length limits).
pub fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
