//! hako's engine: everything `docker run` does above the OCI runtime, as a library that the
//! `hako` CLI links (no daemon) and that `hako serve` will serve.
//!
//! ```text
//!  Engine::create ── record (SQLite) ── rootfs (storage driver) ── bundle (config.json, /etc files)
//!  Engine::start  ── hako-shim (detached, one per container) ── RUNTIME create ── "start"
//!                      │ owns stdio/pty, json-file logs, exit.json, restart policy
//!  Engine::{stop,kill,pause,exec,...} ── RUNTIME kill/pause/exec (the OCI command line)
//!  Engine::remove ── shim gone ── rootfs released ── files and record deleted
//! ```
//!
//! The engine is never the parent of a container: the shim is. A container's status is
//! derived from its shim and the exit record the shim leaves (see [`state`]), so any hako
//! process can pick up where another one (killed, say) left off.
//!
//! Files: `<root>/containers/<id>/` (bundle `config.json`, `hostname`, `hosts`,
//! `resolv.conf`, `<id>-json.log`), `<exec-root>/containers/<id>/` (the shim's state dir:
//! `attach.sock`, `shim.pid`, `exit.json`), `<exec-root>/runtime/<runtime>/` (the runtime's
//! `--root`), `<root>/volumes/<name>/_data`.

pub mod archive;
mod check;
mod copy;
mod devices;
mod engine;
mod error;
pub mod events;
mod files;
pub mod filters;
mod housekeeping;
mod locks;
pub mod logs;
pub mod mounts;
mod names;
mod records;
mod recovery;
pub mod shape;
mod spec;
pub mod state;
pub mod stream;
pub mod units;
pub mod user;
pub mod version;
mod volumes;
mod zygote;

pub use bollard_stubs::models;
pub use check::CheckReport;
pub use engine::{
    AttachOptions, Attached, BootReport, BuildContext, BuildRequest, CONTAINER_FILTERS,
    CONTAINER_PRUNE_FILTERS, CgroupDriver, ContainerListOptions, CreateOptions, CredentialLookup,
    DiskUsage, Dockerfile, EXEC_KEEP, Engine, EngineOptions, ExecOptions, IMAGE_FILTERS,
    IMAGE_PRUNE_FILTERS, ImageListOptions, LiveState, NETWORK_FILTERS, NETWORK_PRUNE_FILTERS,
    NetworkMode, OpenLogs, PendingAttach, RemovalLock, Resizer, SignalSender, VOLUME_FILTERS,
    VOLUME_PRUNE_FILTERS, WaitCondition, Waiter, add_legacy_network_fields, cleanup_needed,
    parse_size, sibling_binary, status_text,
};
pub use error::{Error, Result};
pub use records::Record;
pub use spec::{DEFAULT_PATH, INIT_PATH};
pub use state::{Action, Status};

/// Now, as RFC 3339 UTC with nanoseconds (Docker's timestamps).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// 64 random hex digits (a container id).
pub fn random_id() -> String {
    use std::io::Read;
    let mut buf = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = u8::try_from((t >> ((i % 16) * 8)) & 0xff).unwrap_or(0)
                ^ u8::try_from(i).unwrap_or(0);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
