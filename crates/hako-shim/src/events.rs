//! The event log: one file that every hako process appends to (the CLI, `hako serve`, the
//! shims and exec monitors), read by `hako events` and `GET /events`.
//!
//! One event per line, Docker's `EventMessage` JSON:
//!
//! ```text
//! {"Type":"container","Action":"die","Actor":{"ID":"4f2…","Attributes":{"exitCode":"0",
//!  "image":"busybox","name":"web"}},"scope":"local","time":1764932400,"timeNano":1764932400123456789}
//! ```
//!
//! A line is written with one `write(2)` on a descriptor opened with `O_APPEND`, so lines of
//! concurrent writers never interleave. When the file passes [`MAX_SIZE`] the writer that
//! notices renames it to `<file>.1` under an exclusive `flock` (the older `.1` is dropped):
//! the log keeps between one and two files' worth of history, as Docker keeps its last
//! events in memory. Readers read `<file>.1` then `<file>`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name under the data root.
pub const EVENTS_FILE: &str = "events.log";
/// Size at which the log is rotated.
pub const MAX_SIZE: u64 = 4 << 20;
/// The container's attributes for events (`name`, `image`, labels), as JSON, in the
/// container's bundle directory; the engine keeps it current, shims read it.
pub const ATTRIBUTES_FILE: &str = "event-attributes.json";

/// Who an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Container id, image id or name, volume name, network id.
    #[serde(rename = "ID")]
    pub id: String,
    /// `name`, `image`, labels, `exitCode`, `signal`, `execID`...
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `container`, `image`, `volume`, `network`, `daemon`...
    #[serde(rename = "Type")]
    pub typ: String,
    /// `create`, `start`, `die`, `health_status: healthy`, `exec_start: sh -c ...`, `tag`...
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`.
    #[serde(default = "local")]
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

fn local() -> String {
    "local".into()
}

impl Event {
    /// An event happening now.
    pub fn now(
        typ: &str,
        action: impl Into<String>,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) -> Event {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Event {
            typ: typ.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: local(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        }
    }
}

/// The rotated file beside `path`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Appends `ev` to the log at `path` (mode 0600), rotating it when it is full.
pub fn append(path: &Path, ev: &Event) -> io::Result<()> {
    let mut line = serde_json::to_vec(ev).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut f = open(path)?;
    if f.metadata()?.len() >= MAX_SIZE {
        rotate(path, &f)?;
        f = open(path)?;
    }
    // One write: O_APPEND makes it land whole at the end, whatever others write.
    let n = f.write(&line)?;
    if n != line.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to the event log",
        ));
    }
    Ok(())
}

/// Appends a container event with the attributes the engine left in `bundle` (name, image,
/// labels) plus `extra`. Best effort: an event that cannot be written is not worth failing
/// the operation that caused it.
pub fn container_event(
    log: &Path,
    bundle: &Path,
    id: &str,
    action: &str,
    extra: &[(&str, String)],
) {
    let mut attributes: BTreeMap<String, String> = std::fs::read(bundle.join(ATTRIBUTES_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for (k, v) in extra {
        attributes.insert((*k).to_string(), v.clone());
    }
    let _ = append(log, &Event::now("container", action, id, attributes));
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Renames a full log to `.1`, once: whoever holds the lock first does it, the others find
/// the path already pointing to a fresh file.
fn rotate(path: &Path, f: &File) -> io::Result<()> {
    let lock = nix::fcntl::Flock::lock(f.try_clone()?, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))?;
    let ours = f.metadata()?;
    let still_ours = std::fs::metadata(path)
        .map(|m| m.ino() == ours.ino() && m.dev() == ours.dev())
        .unwrap_or(false);
    if still_ours {
        std::fs::rename(path, rotated(path))?;
    }
    drop(lock);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(EVENTS_FILE);
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), "web".to_string());
        let ev = Event::now("container", "start", "abc", attrs);
        append(&log, &ev).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with(r#"{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web"}},"scope":"local","time":"#));
        let back: Event = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(back, ev);
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&log).unwrap().permissions()
            ) & 0o777,
            0o600
        );
        // Fill past the limit: the next append rotates.
        let f = OpenOptions::new().append(true).open(&log).unwrap();
        f.set_len(MAX_SIZE).unwrap();
        append(&log, &ev).unwrap();
        assert_eq!(std::fs::metadata(rotated(&log)).unwrap().len(), MAX_SIZE);
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    }

    #[test]
    fn container_events_carry_the_bundle_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(EVENTS_FILE);
        std::fs::write(
            dir.path().join(ATTRIBUTES_FILE),
            r#"{"name":"web","image":"busybox","a.label":"x"}"#,
        )
        .unwrap();
        container_event(&log, dir.path(), "abc", "die", &[("exitCode", "3".into())]);
        let ev: Event =
            serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
        assert_eq!(ev.action, "die");
        assert_eq!(ev.actor.attributes["exitCode"], "3");
        assert_eq!(ev.actor.attributes["a.label"], "x");
        assert_eq!(ev.actor.attributes["name"], "web");
    }
}
