//! How an OCI `cgroupsPath` becomes the one path this crate works with.
//!
//! The rules follow runc's cgroupfs driver (libcontainer/specconv and cgroups/fs*):
//!
//! * An absolute path is taken relative to the root of every hierarchy (after lexical
//!   cleaning, so `..` cannot climb above the root).
//! * A relative path is taken relative to the calling process's own cgroup, read from
//!   /proc/self/cgroup. On pure v2 runc uses the *parent* of its own cgroup, because
//!   the own cgroup already holds processes and v2 forbids enabling controllers for the
//!   children of a cgroup with processes; we do the same. Cleaning keeps a relative
//!   path below that base.
//! * A missing or empty cgroupsPath means the container id as a relative path (runc
//!   sets `Name = id` and resolves it relative to its own cgroup).
//! * `slice:prefix:name` is the systemd driver's form, which hako does not have.
//!
//! One difference from runc: runc keeps a separate path per v1 hierarchy, because the
//! caller may sit in different cgroups in each. We resolve to a single absolute path
//! (so a later process, e.g. `delete`, can rebuild the manager from it) using one
//! reference hierarchy: `name=systemd` if mounted, else `cpu`, else the first listed.

use crate::Layout;
use crate::error::Error;
use crate::mounts::{Mounts, host_mounts};

/// Resolves an OCI `cgroupsPath` to an absolute path below each hierarchy's mount.
/// See the module docs for the rules; the result never is "/".
pub fn resolve_path(cgroups_path: Option<&str>, container_id: &str) -> Result<String, Error> {
    resolve_with(cgroups_path, container_id, || {
        let mounts = host_mounts()?;
        let layout = mounts.layout()?;
        let own = crate::fs::read(std::path::Path::new("/proc/self"), "cgroup")?;
        own_base(&own, &mounts, layout).ok_or_else(|| Error::OwnCgroupNotFound {
            path: cgroups_path.unwrap_or(container_id).to_owned(),
            hierarchy: if layout == Layout::V2 {
                "the unified hierarchy (0::)".into()
            } else {
                "any v1 hierarchy".into()
            },
        })
    })
}

/// The pure part of [`resolve_path`]: `own_base` is asked for only when the path is
/// relative.
pub(crate) fn resolve_with(
    cgroups_path: Option<&str>,
    container_id: &str,
    own_base: impl FnOnce() -> Result<String, Error>,
) -> Result<String, Error> {
    let given = cgroups_path.filter(|p| !p.is_empty());
    if let Some(p) = given
        && is_systemd_form(p)
    {
        return Err(Error::SystemdUnsupported { path: p.to_owned() });
    }
    let path = given.unwrap_or(container_id);
    let resolved = if path.starts_with('/') {
        clean(path)
    } else {
        let relative = clean(path);
        if relative == "/" {
            return Err(Error::InvalidPath {
                path: path.to_owned(),
                reason: "a relative cgroupsPath must name a cgroup below the caller's own",
            });
        }
        clean(&format!("{}/{relative}", own_base()?))
    };
    if resolved == "/" {
        return Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "it resolves to the root cgroup, which a container must not own",
        });
    }
    Ok(resolved)
}

/// `slice:prefix:name` with no slash: what Docker/Kubernetes pass with the systemd driver.
pub(crate) fn is_systemd_form(p: &str) -> bool {
    !p.contains('/') && p.split(':').count() == 3
}

/// Lexically cleans a path to an absolute one: drops "." and empty parts, applies ".."
/// without ever climbing above "/".
pub(crate) fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Checks a path from an earlier [`resolve_path`] before trusting it.
pub(crate) fn validate_resolved(resolved: &str) -> Result<(), Error> {
    let reason = if !resolved.starts_with('/') {
        "it must be absolute"
    } else if clean(resolved) != resolved {
        "it must be clean (no '.', '..' or '//')"
    } else if resolved == "/" {
        "it must not be the root cgroup"
    } else {
        return Ok(());
    };
    Err(Error::InvalidPath {
        path: resolved.to_owned(),
        reason,
    })
}

/// The base for relative paths, from the text of /proc/self/cgroup.
pub(crate) fn own_base(proc_cgroup: &str, mounts: &Mounts, layout: Layout) -> Option<String> {
    let lines: Vec<(&str, &str)> = proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?, it.next()?))
        })
        .collect();
    if layout == Layout::V2 {
        let (_, path) = lines.iter().find(|(c, _)| c.is_empty())?;
        let root = mounts.unified.as_ref().map_or("/", |(_, r)| r.as_str());
        let own = strip_root(path, root);
        // The parent: the own cgroup has processes, so it cannot delegate controllers.
        let parent = match own.rfind('/') {
            Some(0) | None => "/".to_owned(),
            Some(i) => own[..i].to_owned(),
        };
        return Some(parent);
    }
    let has = |ctrls: &str, want: &str| ctrls.split(',').any(|c| c == want);
    let (ctrls, path) = lines
        .iter()
        .find(|(c, _)| has(c, "name=systemd"))
        .or_else(|| lines.iter().find(|(c, _)| has(c, "cpu")))
        .or_else(|| lines.iter().find(|(c, _)| !c.is_empty()))?;
    let first = ctrls.split(',').next().unwrap_or_default();
    let root = mounts
        .v1
        .iter()
        .find(|h| h.has(first))
        .map_or("/", |h| h.root.as_str());
    Some(strip_root(path, root))
}

/// A path in /proc/self/cgroup is relative to the hierarchy root; the mount may show only
/// a subtree (e.g. inside a container without cgroupns), so make it relative to the mount.
fn strip_root(path: &str, root: &str) -> String {
    if root == "/" {
        return clean(path);
    }
    match path.strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => clean(rest),
        _ => clean(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::parse_mountinfo;

    fn own(base: &str) -> impl FnOnce() -> Result<String, Error> + '_ {
        move || Ok(base.to_owned())
    }

    #[test]
    fn absolute_is_cleaned_and_kept() {
        let r = resolve_with(Some("/hako/../hako//x/."), "id", own("/ignored")).unwrap();
        assert_eq!(r, "/hako/x");
        let r = resolve_with(Some("/../../etc"), "id", own("/")).unwrap();
        assert_eq!(r, "/etc");
    }

    #[test]
    fn relative_joins_own_cgroup_and_cannot_escape() {
        let r = resolve_with(Some("ctr/a"), "id", own("/user.slice/me")).unwrap();
        assert_eq!(r, "/user.slice/me/ctr/a");
        let r = resolve_with(Some("../../../x"), "id", own("/user.slice/me")).unwrap();
        assert_eq!(r, "/user.slice/me/x");
    }

    #[test]
    fn empty_means_container_id_relative_like_runc() {
        for p in [None, Some("")] {
            let r = resolve_with(p, "abc", own("/shim")).unwrap();
            assert_eq!(r, "/shim/abc");
        }
    }

    #[test]
    fn root_and_own_cgroup_are_refused() {
        assert!(matches!(
            resolve_with(Some("/"), "id", own("/")),
            Err(Error::InvalidPath { .. })
        ));
        assert!(matches!(
            resolve_with(Some(".."), "id", own("/a")),
            Err(Error::InvalidPath { .. })
        ));
        assert!(matches!(
            resolve_with(None, "", own("/a")),
            Err(Error::InvalidPath { .. })
        ));
    }

    #[test]
    fn systemd_form_is_a_clear_error() {
        let e = resolve_with(Some("system.slice:docker:abc"), "abc", own("/")).unwrap_err();
        assert!(matches!(e, Error::SystemdUnsupported { .. }));
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
        // A path with a colon but a slash is a plain cgroupfs path.
        assert_eq!(
            resolve_with(Some("/a:b:c/d"), "id", own("/")).unwrap(),
            "/a:b:c/d"
        );
    }

    #[test]
    fn own_base_per_layout() {
        let known: Vec<String> = ["cpu", "cpuacct", "memory"].map(String::from).to_vec();
        let v2 = parse_mountinfo(
            "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            &known,
        );
        assert_eq!(
            own_base("0::/user.slice/session-1.scope\n", &v2, Layout::V2).unwrap(),
            "/user.slice"
        );
        assert_eq!(own_base("0::/\n", &v2, Layout::V2).unwrap(), "/");
        let v1 = parse_mountinfo(
            "32 31 0:29 /docker/c1 /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            &known,
        );
        let proc = "4:memory:/m\n2:cpu,cpuacct:/docker/c1/sub\n0::/\n";
        assert_eq!(own_base(proc, &v1, Layout::V1).unwrap(), "/sub");
    }

    #[test]
    fn validate_resolved_paths() {
        assert!(validate_resolved("/hako/x").is_ok());
        for bad in ["hako/x", "/hako/../x", "/", "/a//b"] {
            assert!(validate_resolved(bad).is_err(), "{bad}");
        }
    }
}
