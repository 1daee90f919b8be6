//! The container log in Docker's json-file format, with Docker's rotation.
//!
//! One entry per output line, `{"log":"text\n","stream":"stdout","time":"<RFC 3339 nanos>"}`.
//! A line longer than [`MAX_PARTIAL`] bytes, and whatever is left at EOF, is written as an
//! entry without the trailing `\n` (Docker's partial messages). Bytes that are not UTF-8 are
//! replaced by U+FFFD, as Go's JSON encoder does for Docker.
//!
//! Rotation: when an entry would take the file past `max_size`, `FILE.(n-1)` → `FILE.n`, ...,
//! `FILE` → `FILE.1` (the oldest falls off so at most `max_file` files exist), then a fresh
//! `FILE` is opened. With `max_file == 1` the file is truncated instead.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

/// A pending line is flushed as a partial entry once it reaches this size.
pub const MAX_PARTIAL: usize = 16 * 1024;

/// Once a write found the disk full, the log writes again only when this much of it is
/// free (or [`HOLD_AT_MOST`] later). Why: output keeps coming, and a log that wrote
/// whenever a block came free would take every block anything else frees, such as the
/// store's `-shm` that SQLite's first opener truncates and extends again: the engine's
/// commands on that disk would fail until the log's owner freed space.
const RESUME_FREE: u64 = 1 << 20;

/// A try to write all the same, for filesystems whose free space statvfs does not tell.
const HOLD_AT_MOST: Duration = Duration::from_secs(5);

/// Which output stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// fd 1 (and everything of a tty).
    Stdout,
    /// fd 2.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    attrs: &'a BTreeMap<String, String>,
    time: &'a str,
}

/// The open log file plus the unfinished line of each stream.
#[derive(Debug)]
pub struct JsonLog {
    path: PathBuf,
    max_size: u64,
    max_file: u32,
    file: File,
    size: u64,
    pending: [Vec<u8>; 2],
    /// Docker's `attrs` of every entry (labels, env, tag the log options asked for).
    attrs: BTreeMap<String, String>,
    /// Since when the disk was full (output is dropped, [`RESUME_FREE`]).
    full_since: Option<Instant>,
}

impl JsonLog {
    /// Open (append to) `path`; `max_size == 0` never rotates.
    pub fn open(path: &Path, max_size: u64, max_file: u32) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            max_size,
            max_file: max_file.max(1),
            file,
            size,
            pending: [Vec::new(), Vec::new()],
            attrs: BTreeMap::new(),
            full_since: None,
        })
    }

    /// Every entry carries `attrs` (none: no `attrs` key, as Docker writes it).
    #[must_use]
    pub fn with_attrs(mut self, attrs: BTreeMap<String, String>) -> Self {
        self.attrs = attrs;
        self
    }

    /// Log a chunk of output: every complete line becomes an entry, the rest waits.
    /// On a full disk the output is dropped until [`RESUME_FREE`] is free again.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        if let Some(since) = self.full_since {
            if since.elapsed() < HOLD_AT_MOST && free_space(&self.path) < RESUME_FREE {
                self.pending[stream as usize].clear();
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.full_since = None;
        }
        let r = self.write_lines(stream, data);
        if r.as_ref().err().and_then(io::Error::raw_os_error) == Some(libc::ENOSPC) {
            self.full_since = Some(Instant::now());
        }
        r
    }

    fn write_lines(&mut self, stream: Stream, mut data: &[u8]) -> io::Result<()> {
        let time = now();
        let idx = stream as usize;
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let line = &data[..=nl];
                    data = &data[nl + 1..];
                    if self.pending[idx].is_empty() {
                        self.entry(stream, line, &time)?;
                    } else {
                        let mut whole = std::mem::take(&mut self.pending[idx]);
                        whole.extend_from_slice(line);
                        self.entry(stream, &whole, &time)?;
                        whole.clear();
                        whole.shrink_to(1024);
                        self.pending[idx] = whole;
                    }
                }
                None => {
                    let room = MAX_PARTIAL - self.pending[idx].len();
                    let take = room.min(data.len());
                    self.pending[idx].extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.pending[idx].len() >= MAX_PARTIAL {
                        self.flush_partial(stream, &time)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// EOF on `stream`: write its unfinished line, if any.
    pub fn finish(&mut self, stream: Stream) -> io::Result<()> {
        self.flush_partial(stream, &now())
    }

    fn flush_partial(&mut self, stream: Stream, time: &str) -> io::Result<()> {
        let idx = stream as usize;
        if self.pending[idx].is_empty() {
            return Ok(());
        }
        let part = std::mem::take(&mut self.pending[idx]);
        let res = self.entry(stream, &part, time);
        self.pending[idx] = Vec::new();
        res
    }

    fn entry(&mut self, stream: Stream, text: &[u8], time: &str) -> io::Result<()> {
        let text = String::from_utf8_lossy(text);
        let entry = Entry {
            log: &text,
            stream: stream.name(),
            attrs: &self.attrs,
            time,
        };
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        let len = line.len() as u64;
        if self.max_size > 0 && self.size > 0 && self.size + len > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_file == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        for n in (1..self.max_file - 1).rev() {
            match fs::rename(numbered(n), numbered(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fs::rename(&self.path, numbered(1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// 0640 as Docker's json logs, whatever the umask.
/// Bytes free on the filesystem of `path` for this process (root may use the reserved
/// blocks); 0 when statvfs fails.
fn free_space(path: &Path) -> u64 {
    let dir = path.parent().unwrap_or(Path::new("/"));
    nix::sys::statvfs::statvfs(dir).map_or(0, |s| {
        let blocks = match nix::unistd::geteuid().is_root() {
            true => s.blocks_free(),
            false => s.blocks_available(),
        };
        blocks.saturating_mul(s.fragment_size())
    })
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::PermissionsExt;
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o640))?;
    Ok(f)
}

/// Now, RFC 3339 UTC with nanoseconds (`2026-11-28T16:03:24.123456789Z`).
pub fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_partials_and_eof() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = JsonLog::open(&path, 0, 1).unwrap();
        log.write(Stream::Stdout, b"hel").unwrap();
        log.write(Stream::Stderr, b"oops\n").unwrap();
        log.write(Stream::Stdout, b"lo\nwor").unwrap();
        log.write(Stream::Stdout, &vec![b'x'; MAX_PARTIAL]).unwrap();
        log.finish(Stream::Stdout).unwrap();
        let e = entries(&path);
        let logs: Vec<(&str, &str)> = e
            .iter()
            .map(|v| (v["stream"].as_str().unwrap(), v["log"].as_str().unwrap()))
            .collect();
        assert_eq!(logs[0], ("stderr", "oops\n"));
        assert_eq!(logs[1], ("stdout", "hello\n"));
        assert_eq!(logs[2].1.len(), MAX_PARTIAL);
        assert!(logs[2].1.starts_with("worxx"));
        assert_eq!(logs[3].1, "xxx");
        assert_eq!(logs.len(), 4);
        assert!(e[0]["time"].as_str().unwrap().ends_with('Z'));
        assert!(e[0].get("attrs").is_none(), "no attrs key without attrs");
    }

    #[test]
    fn attrs_go_into_every_entry_between_stream_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let attrs = BTreeMap::from([("tag".to_string(), "web/app".to_string())]);
        let mut log = JsonLog::open(&path, 0, 1).unwrap().with_attrs(attrs);
        log.write(Stream::Stdout, b"a\nb\n").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            assert!(
                line.contains(r#""stream":"stdout","attrs":{"tag":"web/app"},"time":"#),
                "{line}"
            );
        }
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn rotation_keeps_max_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = JsonLog::open(&path, 200, 3).unwrap();
        for i in 0..50 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["c.log", "c.log.1", "c.log.2"]);
        for n in &names {
            assert!(fs::metadata(dir.path().join(n)).unwrap().len() <= 200);
        }
        let last = entries(&path);
        assert_eq!(last.last().unwrap()["log"], "line 49\n");
    }
}
