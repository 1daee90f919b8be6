//! `-v`, `--mount` and `--tmpfs` parsed into mounts, with Docker's rules: `-v /abs:/dst` is a
//! bind mount, `-v name:/dst` a named volume, `-v /dst` an anonymous one; options `ro`,
//! `rw`, propagation, `nocopy`; `--mount type=bind|volume|tmpfs,source=,target=,readonly`.

use bollard_stubs::models::{HostConfig, MountType};

use crate::error::{Error, Result};

/// What backs a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A host path.
    Bind,
    /// A volume (named, or anonymous with a generated name).
    Volume {
        /// The volume's name; `None` until an anonymous volume is created.
        name: Option<String>,
        /// Copy the image's files at the destination into a new volume (Docker's default).
        copy: bool,
    },
    /// A tmpfs.
    Tmpfs,
    /// hako-init for `--init`.
    Init,
}

/// One mount, as resolved for the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    /// What backs it.
    pub kind: MountKind,
    /// Host path (bind: the path; volume: its `_data` dir once known).
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Writable.
    pub rw: bool,
    /// Extra mount options (propagation; tmpfs options).
    pub options: Vec<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

fn check_destination(dest: &str, spec: &str) -> Result<()> {
    if !dest.starts_with('/') {
        return Err(bad(format!(
            "invalid mount config: invalid mount path: '{dest}' mount path must be absolute (in {spec:?})"
        )));
    }
    if dest == "/" {
        return Err(bad(format!(
            "invalid mount config: destination can't be '/' (in {spec:?})"
        )));
    }
    Ok(())
}

/// Parses one `-v` value.
pub fn parse_bind(spec: &str) -> Result<ResolvedMount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, dest, opts) = match parts.as_slice() {
        [dest] => (None, *dest, ""),
        [src, dest] => (Some(*src), *dest, ""),
        [src, dest, opts] => (Some(*src), *dest, *opts),
        _ => return Err(bad(format!("invalid volume specification: '{spec}'"))),
    };
    if source == Some("") || dest.is_empty() {
        return Err(bad(format!("invalid volume specification: '{spec}'")));
    }
    check_destination(dest, spec)?;
    let mut rw = true;
    let mut copy = true;
    let mut options = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => rw = false,
            "rw" => rw = true,
            "nocopy" => copy = false,
            "z" | "Z" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                options.push(o.to_string())
            }
            _ => {
                return Err(bad(format!(
                    "invalid mode: {o} (in volume specification '{spec}')"
                )));
            }
        }
    }
    let kind = match source {
        Some(s) if s.starts_with('/') => MountKind::Bind,
        Some(s) => {
            check_volume_name(s)?;
            MountKind::Volume {
                name: Some(s.to_string()),
                copy,
            }
        }
        None => MountKind::Volume { name: None, copy },
    };
    Ok(ResolvedMount {
        kind,
        source: source.unwrap_or("").to_string(),
        destination: dest.to_string(),
        rw,
        options,
    })
}

/// Docker's volume name rule.
pub fn check_volume_name(name: &str) -> Result<()> {
    let ok = name.len() >= 2
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }
}

fn tmpfs_options(extra: &str) -> Vec<String> {
    let mut options: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
    for o in extra.split(',').filter(|o| !o.is_empty()) {
        match o {
            "exec" => options.retain(|x| x != "noexec"),
            "suid" => options.retain(|x| x != "nosuid"),
            "dev" => options.retain(|x| x != "nodev"),
            _ => options.push(o.to_string()),
        }
    }
    options
}

/// All user mounts of a host config, in order: `Binds`, `Mounts`, `Tmpfs`. Duplicate
/// destinations are an error, as in Docker.
pub fn from_host_config(host: &HostConfig) -> Result<Vec<ResolvedMount>> {
    let mut out = Vec::new();
    for b in host.binds.iter().flatten() {
        out.push(parse_bind(b)?);
    }
    for m in host.mounts.iter().flatten() {
        let target = m.target.clone().unwrap_or_default();
        check_destination(&target, &target)?;
        let rw = !m.read_only.unwrap_or(false);
        let source = m.source.clone().unwrap_or_default();
        let r = match m.typ {
            Some(MountType::BIND) => {
                if !source.starts_with('/') {
                    return Err(bad(format!(
                        "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                    )));
                }
                let mut options = Vec::new();
                if let Some(p) = m.bind_options.as_ref().and_then(|b| b.propagation) {
                    options.push(p.to_string());
                }
                ResolvedMount {
                    kind: MountKind::Bind,
                    source,
                    destination: target,
                    rw,
                    options,
                }
            }
            Some(MountType::VOLUME) | None => {
                let name = if source.is_empty() {
                    None
                } else {
                    check_volume_name(&source)?;
                    Some(source.clone())
                };
                let copy = !m
                    .volume_options
                    .as_ref()
                    .and_then(|v| v.no_copy)
                    .unwrap_or(false);
                ResolvedMount {
                    kind: MountKind::Volume { name, copy },
                    source,
                    destination: target,
                    rw,
                    options: Vec::new(),
                }
            }
            Some(MountType::TMPFS) => {
                let mut extra = Vec::new();
                if let Some(t) = &m.tmpfs_options {
                    if let Some(s) = t.size_bytes {
                        extra.push(format!("size={s}"));
                    }
                    if let Some(mode) = t.mode {
                        extra.push(format!("mode={mode:o}"));
                    }
                }
                let mut options = tmpfs_options(&extra.join(","));
                if !rw {
                    options.push("ro".into());
                }
                ResolvedMount {
                    kind: MountKind::Tmpfs,
                    source: "tmpfs".into(),
                    destination: target,
                    rw,
                    options,
                }
            }
            Some(other) => {
                return Err(bad(format!("mount type {other} is not supported by hako")));
            }
        };
        out.push(r);
    }
    if let Some(t) = &host.tmpfs {
        let mut dests: Vec<_> = t.iter().collect();
        dests.sort();
        for (dest, opts) in dests {
            check_destination(dest, dest)?;
            out.push(ResolvedMount {
                kind: MountKind::Tmpfs,
                source: "tmpfs".into(),
                destination: dest.clone(),
                rw: true,
                options: tmpfs_options(opts),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    for m in &out {
        if !seen.insert(m.destination.trim_end_matches('/').to_string()) {
            return Err(bad(format!("Duplicate mount point: {}", m.destination)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_volumes_and_anonymous() {
        let b = parse_bind("/srv:/data:ro").unwrap();
        assert_eq!(
            (b.kind.clone(), b.rw, b.destination.as_str()),
            (MountKind::Bind, false, "/data")
        );
        let v = parse_bind("cache:/var/cache").unwrap();
        assert_eq!(
            v.kind,
            MountKind::Volume {
                name: Some("cache".into()),
                copy: true
            }
        );
        let a = parse_bind("/scratch").unwrap();
        assert_eq!(
            a.kind,
            MountKind::Volume {
                name: None,
                copy: true
            }
        );
        assert!(parse_bind("/a:relative").is_err());
        assert!(parse_bind("/a:/b:bogus").is_err());
        assert!(parse_bind("a b:/x").is_err());
        assert!(parse_bind("/a:/b:ro:x").is_err());
    }

    #[test]
    fn duplicate_destinations_are_refused() {
        let h = HostConfig {
            binds: Some(vec!["/a:/x".into()]),
            tmpfs: Some([("/x".to_string(), String::new())].into()),
            ..Default::default()
        };
        assert!(
            from_host_config(&h)
                .unwrap_err()
                .to_string()
                .contains("Duplicate mount point")
        );
    }

    #[test]
    fn tmpfs_defaults_like_docker() {
        assert_eq!(
            tmpfs_options("size=1m,exec"),
            vec!["nosuid", "nodev", "size=1m"]
        );
    }
}
