//! Leak checks: after a container is deleted nothing of it may remain. Four places are
//! searched: the runtime's `--root`, every cgroup hierarchy, this mount namespace's mount
//! table, and every process on the host.
//!
//! Processes are found by three traits, because after `pivot_root` a container process's
//! root and cwd no longer name the bundle: its root or cwd inside the bundle (before pivot or
//! with `--no-pivot`), the bundle's env marker (see [`crate::Bundle::env_marker`]), or a
//! command line with the container id as an argument (a runtime process still running).

use std::fmt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Everything found; empty means clean.
#[derive(Debug, Default)]
pub struct LeakReport {
    /// Entries under the runtime's `--root`.
    pub state: Vec<PathBuf>,
    /// cgroup directories named after a container id.
    pub cgroups: Vec<PathBuf>,
    /// Mount points under a bundle.
    pub mounts: Vec<PathBuf>,
    /// Processes that belong to a container or its runtime: (pid, why).
    pub processes: Vec<(i32, String)>,
}

impl LeakReport {
    /// True when nothing leaked.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
            && self.cgroups.is_empty()
            && self.mounts.is_empty()
            && self.processes.is_empty()
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.state {
            writeln!(f, "  state entry: {}", p.display())?;
        }
        for p in &self.cgroups {
            writeln!(f, "  cgroup: {}", p.display())?;
        }
        for p in &self.mounts {
            writeln!(f, "  mount: {}", p.display())?;
        }
        for (pid, why) in &self.processes {
            writeln!(f, "  process {pid}: {why}")?;
        }
        Ok(())
    }
}

/// Look for anything left by containers `ids` of `bundles` under state dir `root`.
pub fn find_leaks(root: &Path, ids: &[&str], bundles: &[&Path]) -> LeakReport {
    LeakReport {
        state: state_entries(root),
        cgroups: cgroups_named(ids),
        mounts: bundles.iter().flat_map(|b| mounts_under(b)).collect(),
        processes: processes_of(root, ids, bundles),
    }
}

fn state_entries(root: &Path) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(root) else {
        return Vec::new();
    };
    dir.flatten()
        // Lock files and the like may stay; per-container state may not.
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect()
}

/// Directories named after any id, in every hierarchy under /sys/fs/cgroup.
pub(crate) fn cgroups_named(ids: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if ids.is_empty() {
        return found;
    }
    fn walk(dir: &Path, ids: &[&str], depth: u32, found: &mut Vec<PathBuf>) {
        if depth > 8 {
            return;
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name();
            let path = entry.path();
            if ids
                .iter()
                .any(|id| !id.is_empty() && name.to_str() == Some(*id))
            {
                found.push(path.clone());
            }
            walk(&path, ids, depth + 1, found);
        }
    }
    walk(Path::new("/sys/fs/cgroup"), ids, 0, &mut found);
    found
}

/// Decode the octal escapes (`\040`) of a mountinfo path.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|c| (b'0'..=b'7').contains(c))
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points in this mount namespace at or under `dir`, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    // The calling thread's view: a test may have unshared its mount namespace.
    let Ok(table) = fs::read_to_string("/proc/thread-self/mountinfo") else {
        return Vec::new();
    };
    let prefix = dir.display().to_string();
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .filter(|mp| mp == &prefix || mp.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.dedup();
    found
}

/// Lazily unmount everything at or under `dir` (deepest first).
pub(crate) fn detach_mounts_under(dir: &Path) {
    for _ in 0..8 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for mp in mounts {
            let _ = nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn processes_of(root: &Path, ids: &[&str], bundles: &[&Path]) -> Vec<(i32, String)> {
    let root = root.as_os_str().as_encoded_bytes();
    let me = std::process::id().to_string();
    let markers: Vec<String> = bundles
        .iter()
        .map(|b| format!("HAKO_E2E_BUNDLE={}", b.display()))
        .collect();
    let mut found = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        if name == me {
            continue;
        }
        let dir = entry.path();
        for link in ["root", "cwd"] {
            if let Ok(target) = fs::read_link(dir.join(link))
                && let Some(b) = bundles.iter().find(|b| target.starts_with(b))
            {
                found.push((
                    pid,
                    format!("{link} -> {} (bundle {})", target.display(), b.display()),
                ));
            }
        }
        if let Ok(environ) = fs::read(dir.join("environ")) {
            let hit = environ
                .split(|&c| c == 0)
                .any(|kv| markers.iter().any(|m| m.as_bytes() == kv));
            if hit {
                found.push((pid, format!("carries the bundle marker: {}", cmdline(&dir))));
            }
        }
        if let Ok(cmd) = fs::read(dir.join("cmdline")) {
            let args: Vec<&[u8]> = cmd.split(|&c| c == 0).skip(1).collect();
            let hit = args.contains(&root)
                && args
                    .iter()
                    .any(|arg| ids.iter().any(|id| !id.is_empty() && id.as_bytes() == *arg));
            if hit {
                found.push((
                    pid,
                    format!("command line names the container: {}", cmdline(&dir)),
                ));
            }
        }
    }
    found.sort();
    found.dedup_by_key(|(pid, _)| *pid);
    found
}

/// Processes (not this one) whose root or cwd is under one of `dirs`, or with an argument
/// under one of them: what is left of an installation whose store no longer opens (a test
/// that failed with its disk full), so that it can be killed without the store's help.
pub fn processes_under(dirs: &[&Path]) -> Vec<i32> {
    let me = std::process::id();
    let under = |p: &Path| dirs.iter().any(|d| p.starts_with(d));
    let mut found = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = entry.path();
        let placed = ["root", "cwd"]
            .iter()
            .any(|l| fs::read_link(dir.join(l)).is_ok_and(|t| under(&t)));
        let named = fs::read(dir.join("cmdline")).is_ok_and(|c| {
            c.split(|&b| b == 0)
                .skip(1)
                .any(|a| under(Path::new(std::ffi::OsStr::from_bytes(a))))
        });
        if placed || named {
            found.push(pid as i32);
        }
    }
    found
}

fn cmdline(dir: &Path) -> String {
    fs::read(dir.join("cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Best-effort cleanup after a failed test: kill leftover processes, detach mounts, remove
/// cgroups named after the ids.
pub(crate) fn clean_up(root: &Path, ids: &[&str], bundles: &[&Path]) {
    for (pid, _) in processes_of(root, ids, bundles) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    for b in bundles {
        detach_mounts_under(b);
    }
    for _ in 0..20 {
        let cgroups = cgroups_named(ids);
        if cgroups.is_empty() {
            break;
        }
        let mut all_gone = true;
        for cg in cgroups {
            // Children first: remove_dir fails on a cgroup with sub-cgroups.
            let mut dirs = Vec::new();
            collect_dirs(&cg, &mut dirs);
            dirs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
            for d in dirs {
                if fs::remove_dir(&d).is_err() {
                    all_gone = false;
                }
            }
        }
        if all_gone {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_mountinfo() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/end\"), r"/end\");
    }

    #[test]
    fn nothing_leaks_for_unknown_ids() {
        let dir = tempfile::tempdir().unwrap();
        let report = find_leaks(
            &dir.path().join("none"),
            &["no-such-container"],
            &[dir.path()],
        );
        assert!(report.is_empty(), "{report}");
    }
}
