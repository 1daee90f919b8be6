//! The systemd driver's cgroupsPath, `slice:prefix:name`, and what it means (runc's rules):
//! the container runs in the transient scope `prefix-name.scope` inside `slice` (default
//! `system.slice`; `user.slice` for a user manager), whose cgroup is the slice's path
//! (`a-b.slice` lives at `/a.slice/a-b.slice`) plus the scope's name.

use crate::error::Error;

/// A container's unit as the cgroupsPath names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPath {
    /// The slice the scope goes into, e.g. `system.slice`.
    pub slice: String,
    /// The scope unit, e.g. `hako-0123abcd.scope`.
    pub unit: String,
}

impl UnitPath {
    /// Parses `slice:prefix:name`; an empty slice means `default_slice`. A path that is
    /// not in this form (a cgroupfs path) is refused: the driver and the path must agree.
    pub fn parse(cgroups_path: &str, default_slice: &str) -> Result<UnitPath, Error> {
        let invalid = |reason: &'static str| Error::InvalidSystemdPath {
            path: cgroups_path.to_owned(),
            reason,
        };
        let parts: Vec<&str> = cgroups_path.split(':').collect();
        if cgroups_path.contains('/') || parts.len() != 3 {
            return Err(invalid(
                "the systemd driver takes slice:prefix:name (e.g. system.slice:hako:ID), not a cgroupfs path",
            ));
        }
        let (slice, prefix, name) = (parts[0], parts[1], parts[2]);
        let slice = if slice.is_empty() {
            default_slice
        } else {
            slice
        };
        expand_slice(slice).ok_or_else(|| {
            invalid("the slice must be a valid slice unit name such as system.slice or machine-hako.slice")
        })?;
        if name.is_empty() {
            return Err(invalid("the name part is empty"));
        }
        if name.ends_with(".slice") {
            return Err(invalid(
                "the name must not be a slice: containers run in scopes",
            ));
        }
        let unit = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        if !unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
            || unit.len() > 255
        {
            return Err(invalid(
                "prefix and name may hold only letters, digits and :-_.\\@ (255 bytes at most)",
            ));
        }
        Ok(UnitPath {
            slice: slice.to_owned(),
            unit,
        })
    }

    /// The scope's cgroup below the manager's root cgroup (`/` for the system manager).
    pub fn cgroup(&self) -> String {
        let slice = expand_slice(&self.slice).unwrap_or_default();
        format!("{}/{}", slice.trim_end_matches('/'), self.unit)
    }
}

/// systemd's slice nesting: `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`, `-.slice`
/// is the root. `None` for a name that is not a valid slice.
pub fn expand_slice(slice: &str) -> Option<String> {
    let name = slice.strip_suffix(".slice")?;
    if name == "-" {
        return Some("/".into());
    }
    if name.is_empty()
        || name.contains('/')
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
    {
        return None;
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        path.push('/');
        path.push_str(&prefix);
        path.push_str(part);
        path.push_str(".slice");
        prefix.push_str(part);
        prefix.push('-');
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_forms() {
        let u = UnitPath::parse("system.slice:docker:abc", "system.slice").unwrap();
        assert_eq!(u.unit, "docker-abc.scope");
        assert_eq!(u.cgroup(), "/system.slice/docker-abc.scope");
        let u = UnitPath::parse(":hako:x", "user.slice").unwrap();
        assert_eq!(u.slice, "user.slice");
        assert_eq!(u.cgroup(), "/user.slice/hako-x.scope");
        let u = UnitPath::parse("kubepods-besteffort-pod1.slice:cri-containerd:c1", "").unwrap();
        assert_eq!(
            u.cgroup(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-c1.scope"
        );
        assert_eq!(
            UnitPath::parse("-.slice::c", "").unwrap().cgroup(),
            "/c.scope"
        );
    }

    #[test]
    fn paths_that_do_not_fit_the_driver() {
        for bad in [
            "/hako/x",
            "hako",
            "a:b",
            "a:b:c:d",
            "system:hako:x",
            "a--b.slice:p:x",
            "system.slice:p:",
            "system.slice:p:x.slice",
            "system.slice:p:x y",
        ] {
            let e = UnitPath::parse(bad, "system.slice").unwrap_err();
            assert!(matches!(e, Error::InvalidSystemdPath { .. }), "{bad}: {e}");
        }
    }
}
