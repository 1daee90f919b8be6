//! Where a container's cgroup files are on this host, whatever its layout: tests read the
//! same setting as `memory.limit_in_bytes` on cgroup v1 and `memory.max` on v2, so one
//! scenario runs on the hybrid CI host and in the pure-v2 test VM (`scripts/vm`).

use std::path::{Path, PathBuf};

/// True when /sys/fs/cgroup is the cgroup2 filesystem itself (pure v2, as in the VM).
pub fn host_is_v2() -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|st| st.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
}

/// A v1 file name and its v2 counterpart, for the settings tests read back.
const V2_NAMES: &[(&str, &str)] = &[
    ("memory.limit_in_bytes", "memory.max"),
    ("memory.soft_limit_in_bytes", "memory.low"),
    ("memory.usage_in_bytes", "memory.current"),
    ("memory.max_usage_in_bytes", "memory.peak"),
    ("cpu.shares", "cpu.weight"),
    ("blkio.weight", "io.weight"),
];

/// The directory of `pid`'s cgroup in the hierarchy holding `controller` (v1), or its one
/// cgroup (v2), from /proc/<pid>/cgroup. `None` if the process is gone or has no such
/// hierarchy.
pub fn cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let v2 = host_is_v2();
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        let base = if v2 {
            list.is_empty().then(|| PathBuf::from("/sys/fs/cgroup"))?
        } else {
            list.split(',')
                .any(|c| c == controller)
                .then(|| Path::new("/sys/fs/cgroup").join(list))?
        };
        Some(base.join(path.trim_start_matches('/')))
    })
}

/// The file of `pid`'s cgroup that holds what `v1_file` holds on v1 (`memory.max` for
/// `memory.limit_in_bytes` on v2; names that are the same on both stay as they are).
pub fn cgroup_file(pid: i32, controller: &str, v1_file: &str) -> Option<PathBuf> {
    let name = if host_is_v2() {
        V2_NAMES
            .iter()
            .find(|(v1, _)| *v1 == v1_file)
            .map_or(v1_file, |(_, v2)| v2)
    } else {
        v1_file
    };
    cgroup_dir(pid, controller).map(|d| d.join(name))
}

/// A memory limit as the kernel prints it on this host's layout: bytes, or for "no
/// limit" v2's `max` and v1's page-rounded `i64::MAX`.
pub fn memory_limit_text(bytes: Option<u64>) -> String {
    match (bytes, host_is_v2()) {
        (Some(b), _) => b.to_string(),
        (None, true) => "max".into(),
        (None, false) => "9223372036854771712".into(),
    }
}
