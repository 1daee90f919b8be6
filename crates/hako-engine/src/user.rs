//! `-u user[:group]` resolved against the container's `/etc/passwd` and `/etc/group`, as
//! Docker does: names and numbers both work, a numeric id need not exist, supplementary
//! groups come from `/etc/group`, and `HOME` from the passwd entry.

use std::path::Path;

use crate::archive::Root;
use crate::error::{Error, Result};

/// The resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids.
    pub additional_gids: Vec<u32>,
    /// Home directory (`/` if unknown).
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The most of `/etc/passwd` or `/etc/group` that is read.
const MAX_FILE: u64 = 8 << 20;

/// The lines of `path` in the image, read inside the rootfs (a symlink there cannot reach
/// the host's file), a regular file of at most [`MAX_FILE`] bytes; none if it is missing.
fn read_lines(rootfs: &Root, path: &str) -> Result<Vec<String>> {
    let data = rootfs.read_file(path, MAX_FILE).map_err(|e| {
        Error::InvalidArgument(format!("unable to read the container's {path}: {e}"))
    })?;
    Ok(String::from_utf8_lossy(&data.unwrap_or_default())
        .lines()
        .map(str::to_string)
        .collect())
}

fn passwd(rootfs: &Root) -> Result<Vec<PasswdEntry>> {
    Ok(read_lines(rootfs, "/etc/passwd")?
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect())
}

fn groups(rootfs: &Root) -> Result<Vec<GroupEntry>> {
    Ok(read_lines(rootfs, "/etc/group")?
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect())
}

/// `--group-add` values as gids: numbers as they are, names from the image's `/etc/group`.
pub fn group_ids(rootfs: &Path, names: &[String]) -> Result<Vec<u32>> {
    let root = Root::open(rootfs).map_err(|e| {
        Error::InvalidArgument(format!(
            "open the container's root {}: {e}",
            rootfs.display()
        ))
    })?;
    let all = groups(&root)?;
    names
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => all
                .iter()
                .find(|e| e.name == *g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "Unable to find group {g}: no matching entries in group file"
                    ))
                }),
        })
        .collect()
}

/// Resolves `spec` (`""` means root) inside `rootfs`.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let root = Root::open(rootfs).map_err(|e| {
        Error::InvalidArgument(format!(
            "open the container's root {}: {e}",
            rootfs.display()
        ))
    })?;
    let users = passwd(&root)?;
    let (uid, mut gid, name, home) = if user.is_empty() {
        (0, 0, Some("root".to_string()), "/root".to_string())
    } else if let Some(e) = users.iter().find(|e| e.name == user) {
        (e.uid, e.gid, Some(e.name.clone()), e.home.clone())
    } else if let Ok(uid) = user.parse::<u32>() {
        match users.iter().find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, Some(e.name.clone()), e.home.clone()),
            None => (uid, 0, None, "/".to_string()),
        }
    } else {
        return Err(Error::InvalidArgument(format!(
            "unable to find user {user}: no matching entries in passwd file"
        )));
    };
    let all_groups = groups(&root)?;
    if let Some(g) = group {
        gid = if let Some(e) = all_groups.iter().find(|e| e.name == g) {
            e.gid
        } else if let Ok(n) = g.parse::<u32>() {
            n
        } else {
            return Err(Error::InvalidArgument(format!(
                "unable to find group {g}: no matching entries in group file"
            )));
        };
    }
    // The primary group is a supplementary one too, as Docker has it since CVE-2022-36109
    // (a process that dropped it with setgroups could pass a file's "group may not"
    // permissions); then the groups that list the user, when no group was named.
    let mut additional_gids = vec![gid];
    if let Some(n) = name.as_ref().filter(|_| group.is_none()) {
        for g in all_groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == n))
        {
            if !additional_gids.contains(&g.gid) {
                additional_gids.push(g.gid);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:alice\nalice:x:1000:\nnogroup:x:65534:\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn names_numbers_and_groups() {
        let d = rootfs();
        let r = resolve(d.path(), "").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let a = resolve(d.path(), "alice").unwrap();
        assert_eq!(
            (a.uid, a.gid, a.additional_gids.clone()),
            (1000, 1000, vec![1000, 10])
        );
        assert_eq!(a.home, "/home/alice");
        let n = resolve(d.path(), "1234:5").unwrap();
        assert_eq!((n.uid, n.gid, n.home.as_str()), (1234, 5, "/"));
        assert_eq!(n.additional_gids, [5]);
        let g = resolve(d.path(), "nobody:wheel").unwrap();
        assert_eq!((g.uid, g.gid, g.additional_gids), (65534, 10, vec![10]));
        assert!(
            resolve(d.path(), "mallory")
                .unwrap_err()
                .to_string()
                .contains("unable to find user mallory")
        );
        assert!(resolve(d.path(), "alice:staff").is_err());
    }
}
