//! Reading the json-file logs the shim writes (`<id>-json.log`, rotated to `.1`, `.2`, ...):
//! `hako logs` with `--tail`, `--since`, `--until`, `-t` and `-f`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::error::{IoContext, Result};

/// One log entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The text, with its newline if it had one.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
    /// Docker's extra attributes (the labels, env and tag log options).
    #[serde(default)]
    pub attrs: std::collections::BTreeMap<String, String>,
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep following new output until the container stops.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Only entries at or after this time.
    pub since: Option<SystemTime>,
    /// Only entries before this time.
    pub until: Option<SystemTime>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Show stdout.
    pub stdout: bool,
    /// Show stderr.
    pub stderr: bool,
    /// Prefix each line with its attributes (`k=v,k2=v2 `, escaped as URL query values).
    pub details: bool,
}

fn parse_time(t: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(t).ok())
}

/// The log files of `path`, oldest first.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in (1..100).rev() {
        let p = PathBuf::from(format!("{}.{n}", path.display()));
        if p.exists() {
            out.push(p);
        }
    }
    out.push(path.to_path_buf());
    out
}

fn keep(e: &Entry, o: &LogOptions) -> bool {
    let stream_ok = match e.stream.as_str() {
        "stderr" => o.stderr,
        _ => o.stdout,
    };
    if !stream_ok {
        return false;
    }
    if o.since.is_none() && o.until.is_none() {
        return true;
    }
    let Some(t) = parse_time(&e.time) else {
        return true;
    };
    o.since.is_none_or(|s| t >= s) && o.until.is_none_or(|u| t < u)
}

fn emit(
    e: &Entry,
    o: &LogOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let w: &mut dyn Write = if e.stream == "stderr" { err } else { out };
    if o.timestamps {
        write!(w, "{} ", e.time)?;
    }
    if o.details {
        let attrs: Vec<String> = e
            .attrs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    hako_format::query_escape(k),
                    hako_format::query_escape(v)
                )
            })
            .collect();
        write!(w, "{} ", attrs.join(","))?;
    }
    w.write_all(e.log.as_bytes())?;
    w.flush()
}

/// A container's log files (the rotated ones, then the current one), open: what
/// [`print_opened`] reads first. What was logged before [`open`] stays readable through
/// them when the container is removed meanwhile (docker-py's `run(remove=True)` reads the
/// log it asked for only after its `remove`).
#[derive(Debug)]
pub struct Opened {
    path: PathBuf,
    files: Vec<(PathBuf, File)>,
}

/// Opens the log at `path` and its rotated files.
pub fn open(path: &Path) -> Opened {
    Opened {
        path: path.to_path_buf(),
        files: files(path)
            .into_iter()
            .filter_map(|f| File::open(&f).ok().map(|h| (f, h)))
            .collect(),
    }
}

/// Prints the log at `path`; with `follow`, keeps printing until `still_running` says the
/// container is gone (checked whenever there is no new data).
pub fn print(
    path: &Path,
    o: &LogOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
    still_running: &mut dyn FnMut() -> bool,
) -> Result<()> {
    print_opened(open(path), o, out, err, still_running)
}

/// [`print`] of log files opened earlier.
pub fn print_opened(
    opened: Opened,
    o: &LogOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
    still_running: &mut dyn FnMut() -> bool,
) -> Result<()> {
    let path = opened.path.as_path();
    // Without a tail every entry goes out as it is read (a log may be far larger than
    // memory should hold); with one, only the last `tail` entries are kept.
    let mut last: VecDeque<Entry> = VecDeque::new();
    // The current file, held open: `follow` goes on reading through it, so what the
    // container logs after the open is printed also when the files are removed before
    // it is read (docker-py's `run(remove=True)` reads a followed log after its removal).
    let mut current: Option<(File, u64)> = None;
    let mut position = 0u64;
    for (f, file) in opened.files {
        let mut kept = |e: Entry| -> Result<()> {
            match o.tail {
                None => emit(&e, o, out, err).ctx(|| "write log output".into())?,
                Some(0) => {}
                Some(t) => {
                    if last.len() == t {
                        last.pop_front();
                    }
                    last.push_back(e);
                }
            }
            Ok(())
        };
        let read = read_entries(&file, &f, o, &mut kept)?;
        if f == path {
            let ino = file
                .metadata()
                .ctx(|| format!("stat {}", f.display()))?
                .ino();
            position = read;
            current = Some((file, ino));
        }
    }
    for e in &last {
        emit(e, o, out, err).ctx(|| "write log output".into())?;
    }
    if !o.follow {
        return Ok(());
    }
    let mut print = |e: Entry| emit(&e, o, out, err).ctx(|| "write log output".into());
    let mut idle_checks = 0u32;
    loop {
        // A file at `path` other than the one held: the log rotated (the held one is `.1`
        // now: its rest first), or it appeared.
        if let Ok(file) = File::open(path) {
            let ino = file
                .metadata()
                .ctx(|| format!("stat {}", path.display()))?
                .ino();
            if current.as_ref().is_none_or(|(_, held)| *held != ino) {
                if let Some((old, _)) = current.take() {
                    (&old)
                        .seek(SeekFrom::Start(position))
                        .ctx(|| format!("seek {}", path.display()))?;
                    read_entries(&old, path, o, &mut print)?;
                }
                current = Some((file, ino));
                position = 0;
            }
        }
        let got = match &current {
            Some((file, _)) => {
                (&*file)
                    .seek(SeekFrom::Start(position))
                    .ctx(|| format!("seek {}", path.display()))?;
                let n = read_entries(file, path, o, &mut print)?;
                position += n;
                n > 0
            }
            None => false,
        };
        if got {
            idle_checks = 0;
            continue;
        }
        idle_checks += 1;
        // The shim writes the last output before it records the exit, so one more read
        // after "not running" gets everything.
        if idle_checks > 1 && !still_running() {
            if idle_checks > 2 {
                return Ok(());
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the whole lines of `file` from its offset on, passing the entries `o` keeps to
/// `each`; the bytes those lines take (a last line not ended yet is left for later).
fn read_entries(
    file: &File,
    name: &Path,
    o: &LogOptions,
    each: &mut dyn FnMut(Entry) -> Result<()>,
) -> Result<u64> {
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut read = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .ctx(|| format!("read {}", name.display()))?;
        if n == 0 || !line.ends_with('\n') {
            return Ok(read);
        }
        read += u64::try_from(n).unwrap_or(0);
        if let Ok(e) = serde_json::from_str::<Entry>(&line)
            && keep(&e, o)
        {
            each(e)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, stream: &str, time: &str) -> String {
        format!(
            "{}\n",
            serde_json::json!({"log": text, "stream": stream, "time": time})
        )
    }

    #[test]
    fn tail_streams_and_rotation_order() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        std::fs::write(
            format!("{}.1", p.display()),
            line("one\n", "stdout", "2026-01-01T00:00:01.000000001Z"),
        )
        .unwrap();
        std::fs::write(
            &p,
            line("two\n", "stderr", "2026-01-01T00:00:02Z")
                + &line("three\n", "stdout", "2026-01-01T00:00:03Z")
                + "{\"log\":\"partial",
        )
        .unwrap();
        let all = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print(&p, &all, &mut out, &mut err, &mut || false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "one\nthree\n");
        assert_eq!(String::from_utf8(err).unwrap(), "two\n");

        let tail = LogOptions {
            tail: Some(1),
            timestamps: true,
            ..all.clone()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print(&p, &tail, &mut out, &mut err, &mut || false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-01-01T00:00:03Z three\n"
        );
        assert!(err.is_empty());
        for (n, want_out, want_err) in [
            (0, "", ""),
            (2, "three\n", "two\n"),
            (9, "one\nthree\n", "two\n"),
        ] {
            let tail = LogOptions {
                tail: Some(n),
                ..all.clone()
            };
            let (mut out, mut err) = (Vec::new(), Vec::new());
            print(&p, &tail, &mut out, &mut err, &mut || false).unwrap();
            assert_eq!((out, err), (want_out.into(), want_err.into()), "tail {n}");
        }

        let since = LogOptions {
            since: parse_time("2026-01-01T00:00:02Z"),
            ..all
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print(&p, &since, &mut out, &mut err, &mut || false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "three\n");
    }

    /// What was logged before the log was opened is printed even when the files are gone
    /// by then (the container removed between an API `logs` answer and its reading).
    #[test]
    fn an_opened_log_outlives_its_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        std::fs::write(
            format!("{}.1", p.display()),
            line("old\n", "stdout", "2026-01-01T00:00:01Z"),
        )
        .unwrap();
        std::fs::write(&p, line("kept\n", "stdout", "2026-01-01T00:00:02Z")).unwrap();
        let opened = open(&p);
        std::fs::remove_dir_all(d.path()).unwrap();
        let o = LogOptions {
            stdout: true,
            stderr: true,
            follow: true,
            ..Default::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_opened(opened, &o, &mut out, &mut err, &mut || false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "old\nkept\n");
    }

    /// Follows a log of one entry (`first`), `change` made to it (its path given) at the
    /// follow's first look at the container, which stops at the next: what it printed.
    fn followed(first: &str, change: impl FnOnce(&Path)) -> String {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        std::fs::write(&p, line(first, "stdout", "2026-01-01T00:00:01Z")).unwrap();
        let opened = open(&p);
        let o = LogOptions {
            stdout: true,
            stderr: true,
            follow: true,
            ..Default::default()
        };
        let mut change = Some(change);
        let mut running = || match change.take() {
            Some(c) => {
                c(&p);
                true
            }
            None => false,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_opened(opened, &o, &mut out, &mut err, &mut running).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn append(p: &Path, text: &str, time: &str) {
        let mut f = File::options().append(true).open(p).unwrap();
        f.write_all(line(text, "stdout", time).as_bytes()).unwrap();
    }

    /// What is logged after the open, while followed, is printed too when the files are
    /// removed before it is read (docker-py's `run(remove=True)`: the container's output,
    /// its exit, the removal, then the read of the followed log).
    #[test]
    fn a_followed_log_is_read_to_its_end_after_its_removal() {
        let out = followed("first\n", |p| {
            append(p, "late\n", "2026-01-01T00:00:02Z");
            std::fs::remove_file(p).unwrap();
        });
        assert_eq!(out, "first\nlate\n");
    }

    /// A rotation while followed: the rest of the old file, then the new one.
    #[test]
    fn a_followed_log_keeps_the_rest_of_a_rotated_file() {
        let out = followed("one\n", |p| {
            append(p, "two\n", "2026-01-01T00:00:02Z");
            std::fs::rename(p, format!("{}.1", p.display())).unwrap();
            std::fs::write(p, line("three\n", "stdout", "2026-01-01T00:00:03Z")).unwrap();
        });
        assert_eq!(out, "one\ntwo\nthree\n");
    }
}
