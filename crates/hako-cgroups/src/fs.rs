//! Reading and writing cgroup files, with the file and directory in every error.
//!
//! Writes never create files: on cgroupfs a missing file means the kernel or the
//! controller does not offer the knob, and callers turn that into
//! [`Error::Unsupported`]. Each value goes out in a single `write(2)`, as cgroupfs
//! parses each write on its own.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::error::Error;

/// Writes `value` to `dir/file`.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), Error> {
    let path = dir.join(file);
    let result = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    #[cfg(test)]
    if result.is_ok() {
        log::record(&path, value);
    }
    result.map_err(|source| Error::Write {
        value: value.to_owned(),
        file: file.to_owned(),
        dir: dir.to_owned(),
        source,
    })
}

/// Writes a resource setting; a missing file becomes [`Error::Unsupported`] naming the
/// controller, so the user learns which knob this kernel lacks.
pub(crate) fn write_setting(
    dir: &Path,
    controller: &str,
    file: &str,
    value: &str,
) -> Result<(), Error> {
    write(dir, file, value).map_err(|e| {
        if e.is_not_found() {
            unsupported(dir, controller, file)
        } else {
            e
        }
    })
}

pub(crate) fn unsupported(dir: &Path, controller: &str, file: &str) -> Error {
    Error::Unsupported {
        controller: controller.to_owned(),
        file: file.to_owned(),
        dir: dir.to_owned(),
    }
}

/// Reads `dir/file`, trimmed.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, Error> {
    std::fs::read_to_string(dir.join(file))
        .map(|s| s.trim().to_owned())
        .map_err(|source| Error::Read {
            file: file.to_owned(),
            dir: dir.to_owned(),
            source,
        })
}

/// Reads `dir/file`, `None` when it does not exist (a controller that is not there).
pub(crate) fn read_optional(dir: &Path, file: &str) -> Result<Option<String>, Error> {
    match read(dir, file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a single number; "max" (v2) reads as `u64::MAX`.
pub(crate) fn parse_u64(dir: &Path, file: &str, content: &str) -> Result<u64, Error> {
    let s = content.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().map_err(|_| Error::Parse {
        file: file.to_owned(),
        dir: dir.to_owned(),
        content: content.to_owned(),
    })
}

pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, Error> {
    let s = read(dir, file)?;
    parse_u64(dir, file, &s)
}

/// `Some(n)` for a present file, `None` when missing.
pub(crate) fn read_u64_optional(dir: &Path, file: &str) -> Result<Option<u64>, Error> {
    match read_optional(dir, file)? {
        Some(s) => parse_u64(dir, file, &s).map(Some),
        None => Ok(None),
    }
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events, ...). Lines that
/// do not parse are skipped: the kernel adds keys over time and they must not break us.
pub(crate) fn flat_keyed(content: &str) -> HashMap<String, u64> {
    content
        .lines()
        .filter_map(|line| {
            let (k, v) = line.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Reads a flat-keyed file; missing file gives an empty map.
pub(crate) fn read_flat_keyed(dir: &Path, file: &str) -> Result<HashMap<String, u64>, Error> {
    Ok(read_optional(dir, file)?
        .map(|s| flat_keyed(&s))
        .unwrap_or_default())
}

/// Lists the pids in `dir/cgroup.procs` and every descendant cgroup, so that nested
/// cgroups created inside a container are not missed. A missing directory is empty.
pub(crate) fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<(), Error> {
    let content = match read(dir, "cgroup.procs") {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    for line in content.lines() {
        let pid = line.trim().parse().map_err(|_| Error::Parse {
            file: "cgroup.procs".into(),
            dir: dir.to_owned(),
            content: line.to_owned(),
        })?;
        out.push(pid);
    }
    for child in subdirs(dir) {
        procs_recursive(&child, out)?;
    }
    Ok(())
}

/// Child cgroup directories (not symlinks); unreadable or missing directories have none.
pub(crate) fn subdirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// `mkdir -p`, with the failing directory in the error.
pub(crate) fn create_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Create {
            dir: dir.to_owned(),
            source,
        }),
    }
}

/// In unit tests, every successful write is recorded per thread, so tests can check the
/// exact values and their order (a fake cgroupfs file only keeps the last value).
#[cfg(test)]
pub(crate) mod log {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static WRITES: RefCell<Vec<(PathBuf, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn record(path: &Path, value: &str) {
        WRITES.with(|w| w.borrow_mut().push((path.to_owned(), value.to_owned())));
    }

    /// Takes the writes recorded so far, as (path relative to `root`, value).
    pub(crate) fn take(root: &Path) -> Vec<(String, String)> {
        WRITES.with(|w| {
            w.borrow_mut()
                .drain(..)
                .map(|(p, v)| {
                    let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                    (rel, v)
                })
                .collect()
        })
    }
}
