//! Reading `/proc/self/mountinfo` (no `unsafe` here; it lives in hako-sys so the runtime
//! and storage share one reader).

use std::path::{Path, PathBuf};

/// Mount points of the calling process's mount namespace, in mount order.
pub fn mount_points() -> std::io::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect())
}

/// One mount: its id (unique while it is mounted) and mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    pub point: PathBuf,
}

/// Mounts at or below `dir`, with their ids, in mount order.
pub fn mounts_with_ids_under(dir: &Path) -> std::io::Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let id = f.next()?.parse().ok()?;
            let point = PathBuf::from(unescape(f.nth(3)?));
            Some(Mount { id, point })
        })
        .filter(|m| m.point.starts_with(dir))
        .collect())
}

/// Whether something is mounted exactly at `path`: one `statx` where the kernel tells
/// (reading mountinfo lists every mount of the namespace: ~0.1 ms with a few dozen
/// containers running, on every start and removal), else mountinfo.
pub fn is_mounted(path: &Path) -> bool {
    if let Some(root) = crate::mount::is_mount_root(path) {
        return root;
    }
    mount_points()
        .map(|m| m.iter().any(|p| p == path))
        .unwrap_or(false)
}

/// Mount points at or below `dir`, deepest last.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    mount_points()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// The mount point of the mount that holds `path` (the deepest mount point at or above
/// it); `path` should be canonical.
pub fn containing(path: &Path) -> std::io::Result<Option<PathBuf>> {
    Ok(mount_points()?
        .into_iter()
        .filter(|p| path.starts_with(p))
        .max_by_key(|p| p.components().count()))
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    /// The statx answer agrees with mountinfo for every mount point and for directories
    /// that are not one (this kernel reports the attribute: CI runs 6.x).
    #[test]
    fn statx_and_mountinfo_agree() {
        use std::path::Path;
        let points = super::mount_points().unwrap();
        let mut checked = 0;
        for (i, p) in points.iter().enumerate() {
            // A point that a later mount covers (at or above it) is not reachable by path.
            if points[i + 1..].iter().any(|later| p.starts_with(later)) {
                continue;
            }
            if let Some(root) = crate::mount::is_mount_root(p) {
                assert!(
                    root,
                    "{} is in mountinfo but statx says no mount root",
                    p.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 0, "statx reported nothing");
        for p in ["/proc/self", "/usr/bin", "/etc"] {
            let p = Path::new(p);
            let listed = points.iter().any(|m| m == p);
            assert_eq!(
                crate::mount::is_mount_root(p),
                Some(listed),
                "{}",
                p.display()
            );
        }
        assert_eq!(
            crate::mount::is_mount_root(Path::new("/no/such/dir")),
            Some(false)
        );
    }

    #[test]
    fn root_contains_everything() {
        let m = super::containing(std::path::Path::new("/proc/self")).unwrap();
        assert_eq!(m.as_deref(), Some(std::path::Path::new("/proc")));
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(super::unescape(r"/a\040b"), "/a b");
        assert_eq!(super::unescape(r"/plain"), "/plain");
    }
}
