//! Reading the event log (`hako events`, `GET /events`): past events between `since` and
//! `until`, then, when following, new ones as they are appended by any hako process. The
//! log format and the writer are [`hako_shim::events`] (the shims write there too).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use hako_shim::events::{Actor, Event};

use crate::error::{Error, Result};
use crate::filters::Filters;

/// The filter keys `events` accepts (Docker's).
pub const FILTER_KEYS: &[&str] = &[
    "container",
    "event",
    "image",
    "label",
    "type",
    "volume",
    "network",
    "daemon",
    "scope",
    "plugin",
    "node",
    "service",
    "secret",
    "config",
];

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events at or after this time (unix nanoseconds).
    pub since: Option<i64>,
    /// Only events at or before this time (unix nanoseconds); following stops there.
    pub until: Option<i64>,
    /// Docker's event filters.
    pub filters: Filters,
}

impl EventQuery {
    /// Whether `ev` passes the filters and the time window.
    pub fn matches(&self, ev: &Event) -> bool {
        if self.since.is_some_and(|s| ev.time_nano < s)
            || self.until.is_some_and(|u| ev.time_nano > u)
        {
            return false;
        }
        let f = &self.filters;
        let attrs = &ev.actor.attributes;
        let is = |t: &str| ev.typ == t;
        let action_base = ev.action.split(':').next().unwrap_or("");
        let labels: HashMap<String, String> =
            attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        f.any("type", |t| t == ev.typ)
            && f.any("event", |e| {
                e == ev.action || (e == action_base && !e.contains(':'))
            })
            && f.any("scope", |s| s == ev.scope)
            && f.labels_match("label", &labels)
            && (!f.contains("container")
                || (is("container")
                    && f.any("container", |c| {
                        ev.actor.id.starts_with(c) || attrs.get("name").is_some_and(|n| n == c)
                    })))
            && (!f.contains("image")
                || f.any("image", |i| {
                    let i = i.trim_start_matches("sha256:");
                    let id = ev.actor.id.trim_start_matches("sha256:");
                    (is("image")
                        && (id.starts_with(i) || attrs.get("name").is_some_and(|n| n == i)))
                        || attrs.get("image").is_some_and(|n| same_image(n, i))
                }))
            && (!f.contains("volume") || (is("volume") && f.any("volume", |v| ev.actor.id == v)))
            && (!f.contains("network")
                || (is("network")
                    && f.any("network", |n| {
                        ev.actor.id.starts_with(n) || attrs.get("name").is_some_and(|x| x == n)
                    })))
            && (!f.contains("daemon") || is("daemon"))
    }
}

/// `busybox` and `busybox:latest` name the same image.
fn same_image(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let last = s.rsplit('/').next().unwrap_or(s);
        if last.contains(':') || s.contains('@') {
            s.to_string()
        } else {
            format!("{s}:latest")
        }
    };
    a == b || norm(a) == norm(b)
}

/// A reader positioned in the log.
#[derive(Debug)]
pub struct EventReader {
    path: PathBuf,
    file: Option<BufReader<File>>,
    query: EventQuery,
}

impl EventReader {
    /// Opens the log at `path`; `past()` then `wait_next()`.
    pub fn new(path: &Path, query: EventQuery) -> EventReader {
        EventReader {
            path: path.to_path_buf(),
            file: None,
            query,
        }
    }

    /// The events already in the log that match (oldest first), leaving the reader at the
    /// end for `follow`. Without `since` there is no past to show (Docker's rule).
    pub fn past(&mut self) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        if self.query.since.is_some() {
            let old = hako_shim::events::rotated(&self.path);
            if let Ok(f) = File::open(&old) {
                read_lines(&mut BufReader::new(f), &self.query, &mut out);
            }
        }
        match File::open(&self.path) {
            Ok(f) => {
                let mut r = BufReader::new(f);
                if self.query.since.is_some() {
                    read_lines(&mut r, &self.query, &mut out);
                } else {
                    r.seek(SeekFrom::End(0))
                        .map_err(|e| io_err(&self.path, e))?;
                }
                self.file = Some(r);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&self.path, e)),
        }
        Ok(out)
    }

    /// Whether `until` has passed (a follower stops then).
    pub fn done(&self) -> bool {
        self.query.until.is_some_and(|u| now_nanos() > u)
    }

    /// New matching events, waiting up to `timeout` for some to arrive. Follows a rotation:
    /// the rest of the old file is read, then the new one from its start.
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Vec<Event>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut out = Vec::new();
            if let Some(r) = self.file.as_mut() {
                read_lines(r, &self.query, &mut out);
            }
            let rotated = match (&self.file, std::fs::metadata(&self.path)) {
                (Some(r), Ok(m)) => r
                    .get_ref()
                    .metadata()
                    .map(|ours| ours.ino() != m.ino() || ours.dev() != m.dev())
                    .unwrap_or(true),
                (None, Ok(_)) => true,
                (_, Err(_)) => false,
            };
            if rotated && let Ok(f) = File::open(&self.path) {
                let mut r = BufReader::new(f);
                read_lines(&mut r, &self.query, &mut out);
                self.file = Some(r);
            }
            if !out.is_empty() || std::time::Instant::now() >= deadline || self.done() {
                return Ok(out);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        context: format!("read {}", path.display()),
        source: e,
    }
}

/// Reads the complete lines available; a partial last line is left for later.
fn read_lines(r: &mut BufReader<File>, q: &EventQuery, out: &mut Vec<Event>) {
    let mut line = String::new();
    loop {
        line.clear();
        let pos = r.stream_position().unwrap_or(0);
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if !line.ends_with('\n') => {
                let _ = r.seek(SeekFrom::Start(pos));
                return;
            }
            Ok(_) => {
                if let Ok(ev) = serde_json::from_str::<Event>(line.trim_end())
                    && q.matches(&ev)
                {
                    out.push(ev);
                }
            }
        }
    }
}

/// Now, unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Docker's `--since`/`--until` values: unix seconds (`1700000000`, `1700000000.5`), an RFC
/// 3339 date, a date without zone (UTC), or a duration before now (`10m`, `1h30m`).
pub fn parse_time(s: &str) -> Result<i64> {
    let s = s.trim();
    let bad = || {
        Error::InvalidArgument(format!(
            "invalid time value {s:?}: use a unix timestamp, an RFC 3339 date or a duration like 10m"
        ))
    };
    if s.is_empty() {
        return Err(bad());
    }
    if let Some((secs, frac)) = s.split_once('.').or(Some((s, "")))
        && !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let mut frac = frac.to_string();
        frac.truncate(9);
        while frac.len() < 9 {
            frac.push('0');
        }
        let nanos: i64 = frac.parse().unwrap_or(0);
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(bad);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return to_nanos(t).ok_or_else(bad);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        let back = std::time::SystemTime::now()
            .checked_sub(d)
            .ok_or_else(bad)?;
        return to_nanos(back).ok_or_else(bad);
    }
    Err(bad())
}

fn to_nanos(t: std::time::SystemTime) -> Option<i64> {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
}

/// A container's attributes in its events: name, image, labels.
pub(crate) fn container_attributes(rec: &crate::Record) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = rec
        .config
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    a.insert("name".into(), rec.name.clone());
    a.insert("image".into(), rec.image.clone());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(typ: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event::now(
            typ,
            action,
            id,
            attrs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        )
    }

    #[test]
    fn filters_like_docker() {
        let q = |args: &[&str]| EventQuery {
            filters: Filters::from_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
            ..Default::default()
        };
        let die = ev(
            "container",
            "die",
            "abc123",
            &[("name", "web"), ("image", "busybox"), ("app", "x")],
        );
        let health = ev(
            "container",
            "health_status: healthy",
            "abc123",
            &[("name", "web")],
        );
        let tag = ev("image", "tag", "sha256:ff00", &[("name", "busybox:1")]);
        assert!(q(&["container=web"]).matches(&die));
        assert!(q(&["container=abc"]).matches(&die));
        assert!(!q(&["container=abc"]).matches(&tag));
        assert!(q(&["event=die", "event=start"]).matches(&die));
        assert!(!q(&["event=start"]).matches(&die));
        assert!(q(&["event=health_status"]).matches(&health));
        assert!(q(&["event=health_status: healthy"]).matches(&health));
        assert!(q(&["type=image"]).matches(&tag));
        assert!(q(&["image=busybox:latest"]).matches(&die));
        assert!(q(&["image=ff00"]).matches(&tag));
        assert!(q(&["label=app=x"]).matches(&die));
        assert!(!q(&["label=app=y"]).matches(&die));
        assert!(!q(&["type=container", "event=tag"]).matches(&tag));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(
            parse_time("1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        let ten_min = parse_time("10m").unwrap();
        assert!((now_nanos() - ten_min - 600_000_000_000).abs() < 5_000_000_000);
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn past_then_follow_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.log");
        let old = ev("container", "create", "a", &[]);
        hako_shim::events::append(&log, &old).unwrap();
        let mut r = EventReader::new(
            &log,
            EventQuery {
                since: Some(0),
                ..Default::default()
            },
        );
        assert_eq!(r.past().unwrap(), vec![old]);
        assert!(r.next_batch(Duration::from_millis(10)).unwrap().is_empty());
        let new = ev("container", "start", "a", &[]);
        hako_shim::events::append(&log, &new).unwrap();
        assert_eq!(r.next_batch(Duration::from_secs(1)).unwrap(), vec![new]);
        std::fs::rename(&log, hako_shim::events::rotated(&log)).unwrap();
        let after = ev("container", "die", "a", &[]);
        hako_shim::events::append(&log, &after).unwrap();
        assert_eq!(r.next_batch(Duration::from_secs(1)).unwrap(), vec![after]);
        // Without since: nothing of the past.
        let mut r = EventReader::new(&log, EventQuery::default());
        assert!(r.past().unwrap().is_empty());
    }
}
