//! `--device HOST[:CONTAINER[:PERMISSIONS]]` and `--device-cgroup-rule 'c 1:3 rwm'`: the
//! spec's `linux.devices` (the node made in the container; every node under a directory)
//! and the cgroup's allow rules.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use bollard_stubs::models::HostConfig;
use serde_json::{Value, json};

use crate::error::{Error, Result};

fn access_ok(a: &str) -> bool {
    !a.is_empty() && a.chars().all(|c| "rwm".contains(c))
}

/// The device nodes to make and the cgroup rules that allow them (and the rules asked for).
pub(crate) fn from_host(host: &HostConfig) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut devs = Vec::new();
    let mut rules = Vec::new();
    for d in host.devices.iter().flatten() {
        let src = d.path_on_host.as_deref().unwrap_or_default();
        let dst = d
            .path_in_container
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(src);
        let perms = d
            .cgroup_permissions
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("rwm");
        let bad = |why: String| {
            Error::InvalidArgument(format!(
                "error gathering device information while adding custom device \"{src}\": {why}"
            ))
        };
        if !access_ok(perms) {
            return Err(bad(format!("invalid permissions {perms:?} (r, w, m)")));
        }
        if !dst.starts_with('/') {
            return Err(bad(format!("{dst} is not an absolute path")));
        }
        let md = std::fs::metadata(src).map_err(|e| bad(e.to_string()))?;
        if md.is_dir() {
            // A directory: every device node under it, at the same place under `dst`
            // (Docker's walk; symlinks and other files are skipped).
            for e in walkdir::WalkDir::new(src).follow_links(false).min_depth(1) {
                let e = e.map_err(|e| bad(e.to_string()))?;
                let md = e
                    .path()
                    .symlink_metadata()
                    .map_err(|e| bad(e.to_string()))?;
                let rel = e.path().strip_prefix(src).unwrap_or(e.path());
                let path = std::path::Path::new(dst).join(rel);
                if let Some((dev, rule)) = node(&md, &path.to_string_lossy(), perms) {
                    devs.push(dev);
                    rules.push(rule);
                }
            }
            continue;
        }
        let (dev, rule) = node(&md, dst, perms).ok_or_else(|| bad("not a device node".into()))?;
        devs.push(dev);
        rules.push(rule);
    }
    for r in host.device_cgroup_rules.iter().flatten() {
        rules.push(cgroup_rule(r)?);
    }
    Ok((devs, rules))
}

/// The spec's device entry for the node `md` describes (made at `dst`) and the cgroup
/// rule that allows it; `None` when it is not a character or block device.
fn node(md: &std::fs::Metadata, dst: &str, perms: &str) -> Option<(Value, Value)> {
    let typ = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return None;
    };
    let (major, minor) = (
        nix::sys::stat::major(md.rdev()),
        nix::sys::stat::minor(md.rdev()),
    );
    Some((
        json!({
            "path": dst, "type": typ, "major": major, "minor": minor,
            "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid(),
        }),
        json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": perms}),
    ))
}

/// A block device's numbers, for the blkio weight and throttle options (Docker's
/// message when the path is something else).
pub(crate) fn block_numbers(path: &str) -> Result<(u64, u64)> {
    let md = std::fs::metadata(path).map_err(|e| Error::InvalidArgument(format!("{path}: {e}")))?;
    if !md.file_type().is_block_device() {
        return Err(Error::InvalidArgument(format!(
            "{path} is not a block device"
        )));
    }
    Ok((
        nix::sys::stat::major(md.rdev()),
        nix::sys::stat::minor(md.rdev()),
    ))
}

/// The spec's `blockIO` per-device entries of the host config (`--blkio-weight-device`,
/// `--device-{read,write}-{bps,iops}`); a path that is not a block device is an error.
pub(crate) fn block_io(host: &HostConfig) -> Result<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    let mut weights = Vec::new();
    for d in host.blkio_weight_device.iter().flatten() {
        let (major, minor) = block_numbers(d.path.as_deref().unwrap_or_default())?;
        weights.push(json!({"major": major, "minor": minor, "weight": d.weight.unwrap_or(0)}));
    }
    if !weights.is_empty() {
        out.insert("weightDevice".into(), Value::Array(weights));
    }
    for (key, list) in [
        ("throttleReadBpsDevice", &host.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &host.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &host.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &host.blkio_device_write_iops),
    ] {
        let mut rates = Vec::new();
        for d in list.iter().flatten() {
            let (major, minor) = block_numbers(d.path.as_deref().unwrap_or_default())?;
            rates.push(json!({"major": major, "minor": minor, "rate": d.rate.unwrap_or(0).max(0)}));
        }
        if !rates.is_empty() {
            out.insert(key.into(), Value::Array(rates));
        }
    }
    Ok(out)
}

/// `TYPE MAJOR:MINOR ACCESS` (`c 1:3 rwm`, `b 8:* r`, `a *:* m`).
fn cgroup_rule(r: &str) -> Result<Value> {
    let bad = || {
        Error::InvalidArgument(format!(
            "invalid device cgroup rule {r:?}: want TYPE MAJOR:MINOR ACCESS, such as 'c 1:3 rwm'"
        ))
    };
    let parts: Vec<&str> = r.split_whitespace().collect();
    let [t, nums, access] = parts[..] else {
        return Err(bad());
    };
    if !matches!(t, "a" | "b" | "c") || !access_ok(access) {
        return Err(bad());
    }
    let (ma, mi) = nums.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i64>> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse::<i64>().map(Some).map_err(|_| bad())
        }
    };
    let mut v = json!({"allow": true, "type": t, "access": access});
    if let Some(m) = num(ma)? {
        v["major"] = json!(m);
    }
    if let Some(m) = num(mi)? {
        v["minor"] = json!(m);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_rules_parse_like_dockers() {
        assert_eq!(
            cgroup_rule("c 1:3 rwm").unwrap(),
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
        );
        assert_eq!(
            cgroup_rule("a *:* m").unwrap(),
            json!({"allow": true, "type": "a", "access": "m"})
        );
        for bad in ["c 1:3", "x 1:3 r", "c 1:3 rx", "c 1 r", "c a:3 r"] {
            assert!(cgroup_rule(bad).is_err(), "{bad}");
        }
    }
}
