//! Per-process scratch directories. A fuzzer exits without running destructors, so each
//! directory carries its owner's pid and the next process removes those whose owner is gone.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A fresh, empty `<tmp>/hako-fuzz-<kind>-<pid>`, after removing the ones of dead processes.
pub(crate) fn dir(kind: &str) -> PathBuf {
    let base = std::env::temp_dir();
    let prefix = format!("hako-fuzz-{kind}-");
    if let Ok(entries) = fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                remove(&e.path());
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    remove(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Removes `path` and everything below it, first giving every directory `rwx` for its owner
/// (an unpacked `chmod 000` directory would stop an unprivileged removal).
pub(crate) fn remove(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                remove(&e.path());
            }
        }
        let _ = fs::remove_dir(path);
    } else {
        let _ = fs::remove_file(path);
    }
}
