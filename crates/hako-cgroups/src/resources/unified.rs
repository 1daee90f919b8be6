//! linux.resources.unified: raw cgroup v2 files, written as given.

use std::collections::HashMap;
use std::path::Path;

use crate::error::Error;
use crate::fs;

/// A key must name a file directly in the cgroup directory: "memory.high", not
/// "../x" or "a/b". cgroup.procs and friends are ours to manage, not the spec's.
pub(super) fn validate(unified: &HashMap<String, String>) -> Result<(), Error> {
    for key in unified.keys() {
        let reason = if key.contains('/') || key.starts_with('.') || !key.contains('.') {
            "a key must be a cgroup v2 file name such as memory.high"
        } else if matches!(
            key.as_str(),
            "cgroup.procs" | "cgroup.threads" | "cgroup.kill" | "cgroup.freeze"
        ) {
            "this file is managed by the runtime, not by resources"
        } else {
            continue;
        };
        return Err(Error::InvalidResource {
            setting: "unified",
            value: key.clone(),
            reason,
        });
    }
    Ok(())
}

pub(super) fn apply(dir: &Path, unified: &HashMap<String, String>) -> Result<(), Error> {
    // Sorted, so the order of writes does not depend on hashing.
    let mut entries: Vec<_> = unified.iter().collect();
    entries.sort();
    for (key, value) in entries {
        let controller = key.split('.').next().unwrap_or(key);
        fs::write_setting(dir, controller, key, value)?;
    }
    Ok(())
}
