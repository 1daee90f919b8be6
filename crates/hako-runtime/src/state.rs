//! A container's state on disk: `<root>/<id>/state.json`, written atomically (temp file,
//! then rename) so a crash never leaves a torn file, plus `exec.fifo`, whose presence
//! means "created, waiting for start".
//!
//! Status is never stored; it is derived from the init process every time it is read
//! (runc does the same), so a container whose init died while nobody watched reads as
//! `stopped`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// OCI runtime-spec container status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What the runtime remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Persisted {
    pub id: String,
    /// Host pid of the container's init; 0 while creating.
    pub pid: i32,
    /// Start time of the init in clock ticks since boot (`/proc/<pid>/stat` field 22), so a
    /// recycled pid is never mistaken for our init.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
    /// Resolved cgroup path (see `hako_cgroups::resolve_path`); empty if none was made.
    pub cgroup_path: String,
    #[serde(default)]
    pub poststart: Vec<Hook>,
    #[serde(default)]
    pub poststop: Vec<Hook>,
    /// The config's ociVersion, echoed in `state` and to hooks.
    #[serde(default)]
    pub oci_version: String,
    /// Whether the container has its own pid namespace (then killing init kills all).
    pub own_pid_ns: bool,
    /// No mount namespace of its own: the mounts its init made under the rootfs in the
    /// caller's mount namespace, which `delete` detaches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_mounts: Vec<HostMount>,
}

/// A mount made in the caller's mount namespace (`/proc/self/mountinfo` id and point: the
/// pair names it, ids are reused only after an unmount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMount {
    pub id: u64,
    pub point: PathBuf,
}

/// The state directory of one container.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path, id: &str) -> StateDir {
        StateDir { dir: root.join(id) }
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    /// Where the init writes why it could not start the program after `start` released it
    /// (empty when it could); `start` reads it once the init has exec'd or died.
    pub fn exec_error(&self) -> PathBuf {
        self.dir.join("exec.error")
    }

    /// Create the directory; fails with `ContainerExists` if it is already there (mkdir is
    /// the atomic claim on the id when many creates race).
    pub fn claim(root: &Path, id: &str) -> Result<StateDir> {
        fs::create_dir_all(root).context(|| format!("state root {}", root.display()))?;
        let sd = StateDir::new(root, id);
        match fs::DirBuilder::new().mode(0o711).create(&sd.dir) {
            Ok(()) => Ok(sd),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::ContainerExists(id.to_owned()))
            }
            Err(e) => Err(e).context(|| format!("state dir {}", sd.dir.display())),
        }
    }

    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    pub fn load(&self, id: &str) -> Result<Persisted> {
        let bytes = match fs::read(self.state_file()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ContainerNotFound(id.to_owned()));
            }
            Err(e) => return Err(e).context(|| format!("state of {id}")),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Io {
            context: format!("state of {id} is corrupt"),
            source: std::io::Error::other(e),
        })
    }

    /// Write `state.json` atomically.
    pub fn save(&self, st: &Persisted) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec(st).expect("state serializes");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .context(|| format!("write {}", tmp.display()))?;
        // No fsync: the state root is runtime state on tmpfs (/run) that does not outlive a
        // reboot; rename alone keeps readers from ever seeing a torn file.
        f.write_all(&data)
            .context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, self.state_file()).context(|| format!("commit {}", tmp.display()))
    }

    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context(|| format!("remove {}", self.dir.display())),
        }
    }
}

/// One reader of `/proc/<pid>/stat` for the workspace (the shim's pid file uses it too).
pub use hako_sys::process::proc_stat;

impl Persisted {
    /// Is our init still alive (not exited, not a zombie, and not a recycled pid)?
    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match proc_stat(self.pid) {
            Some((state, start)) => start == self.pid_start_time && state != 'Z' && state != 'X',
            None => false,
        }
    }
}

/// RFC 3339 UTC time with nanoseconds, as runc prints `created`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_is_rfc3339_with_nanoseconds() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2026-11-28T14:20:37.794423202Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }

    #[test]
    fn proc_stat_of_self() {
        let (state, start) = proc_stat(std::process::id() as i32).unwrap();
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(start > 0);
    }

    #[test]
    fn claim_is_exclusive_and_save_is_atomic() {
        let root = tempfile::tempdir().unwrap();
        let sd = StateDir::claim(root.path(), "c1").unwrap();
        assert!(matches!(
            StateDir::claim(root.path(), "c1"),
            Err(Error::ContainerExists(_))
        ));
        let st = Persisted {
            id: "c1".into(),
            pid: 1,
            pid_start_time: 2,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: now_rfc3339(),
            owner: String::new(),
            annotations: Default::default(),
            cgroup_path: "/x".into(),
            poststart: vec![],
            poststop: vec![],
            own_pid_ns: true,
            host_mounts: vec![],
            oci_version: "1.2.0".into(),
        };
        sd.save(&st).unwrap();
        assert_eq!(sd.load("c1").unwrap().pid_start_time, 2);
        assert!(!sd.dir.join(".state.json.tmp").exists());
        sd.remove().unwrap();
        assert!(matches!(sd.load("c1"), Err(Error::ContainerNotFound(_))));
    }
}
