//! Docker's checks of host options, with its messages, and the option parsers they use.

use bollard_stubs::models::{HostConfig, RestartPolicyNameEnum};

use crate::error::{Error, Result};

/// The CPUs this process may use, read once (as Go's `runtime.NumCPU`, which dockerd
/// checks `--cpus` against): std reads /proc/self/cgroup and the cgroup's quota files at
/// every call (~0.1 ms of each `docker create`).
fn ncpus() -> i64 {
    static N: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| i64::try_from(n.get()).unwrap_or(1))
            .unwrap_or(1)
    })
}

/// Docker's checks of resource options, with its messages.
pub(super) fn validate_host_config(h: &HostConfig) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    if let Some(m) = h.memory
        && m != 0
        && m < 6 * 1024 * 1024
    {
        return bad("Minimum memory limit allowed is 6MB".into());
    }
    if let (Some(m), Some(s)) = (h.memory, h.memory_swap)
        && m > 0
        && s > 0
        && s < m
    {
        return bad(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if h.memory_swap.is_some_and(|s| s > 0) && h.memory.unwrap_or(0) == 0 {
        return bad(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        );
    }
    if let Some(n) = h.nano_cpus {
        let max = ncpus() * 1_000_000_000;
        if n < 0 || n > max {
            return bad(format!(
                "Range of CPUs is from 0.01 to {}.00, as there are only {} CPUs available",
                ncpus(),
                ncpus()
            ));
        }
    }
    if let Some(s) = h.memory_swappiness
        && s != -1
        && !(0..=100).contains(&s)
    {
        return bad(format!(
            "invalid value: {s}, valid memory swappiness range is 0-100"
        ));
    }
    if let Some(adj) = h.oom_score_adj
        && !(-1000..=1000).contains(&adj)
    {
        return bad(format!(
            "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
        ));
    }
    // The log driver and its options, as dockerd checks them at create: a bad one found
    // only at start left a created container behind.
    log_opts(h, 0, 1)?;
    crate::devices::block_io(h)?;
    if h.annotations.iter().flatten().any(|(k, _)| k.is_empty()) {
        return bad(
            "invalid Annotations: the empty string is not permitted as an annotation key".into(),
        );
    }
    if h.cpu_shares.is_some_and(|s| s < 0) {
        return bad("invalid CPU shares: must not be negative".into());
    }
    if h.auto_remove == Some(true)
        && h.restart_policy
            .as_ref()
            .and_then(|r| r.name)
            .is_some_and(|n| !matches!(n, RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY))
    {
        return bad("Conflicting options: --restart and --rm".into());
    }
    if let Some(r) = &h.restart_policy
        && r.maximum_retry_count.is_some_and(|n| n > 0)
        && r.name != Some(RestartPolicyNameEnum::ON_FAILURE)
    {
        return bad(
            "maximum retry count cannot be used with restart policy other than on-failure".into(),
        );
    }
    for (flag, mode, allowed) in [
        ("--pid", h.pid_mode.as_deref(), &["", "host"][..]),
        (
            "--ipc",
            h.ipc_mode.as_deref(),
            &["", "host", "private", "shareable"][..],
        ),
        ("--uts", h.uts_mode.as_deref(), &["", "host"][..]),
        // hako has no user namespace remapping: the host's is the only one.
        ("--userns", h.userns_mode.as_deref(), &["", "host"][..]),
    ] {
        // `container:NAME` for --pid and --ipc: checked against the store (joins.rs).
        let joins = matches!(flag, "--pid" | "--ipc");
        if let Some(m) = mode
            && !allowed.contains(&m)
            && !(joins && m.starts_with("container:"))
        {
            return bad(format!(
                "{flag} {m}: not supported by hako (use {}{})",
                allowed[1..].join(" or "),
                if joins { " or container:NAME" } else { "" }
            ));
        }
    }
    Ok(())
}

pub(super) fn restart_arg(h: &HostConfig) -> String {
    let Some(r) = &h.restart_policy else {
        return "no".into();
    };
    match r.name {
        Some(RestartPolicyNameEnum::ALWAYS) => "always".into(),
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => "unless-stopped".into(),
        Some(RestartPolicyNameEnum::ON_FAILURE) => match r.maximum_retry_count.filter(|n| *n > 0) {
            Some(n) => format!("on-failure:{n}"),
            None => "on-failure".into(),
        },
        _ => "no".into(),
    }
}

/// No restart policy: the container's shim never starts it again after an exit.
pub(super) fn never_restarts(h: &HostConfig) -> bool {
    restart_arg(h) == "no"
}

pub(super) fn validate_signal(sig: &str) -> Result<()> {
    let s = sig.trim_start_matches("SIG").trim_start_matches("sig");
    if s.parse::<i32>().is_ok_and(|n| (1..=64).contains(&n)) {
        return Ok(());
    }
    let name = format!("SIG{}", s.to_ascii_uppercase());
    if name.parse::<nix::sys::signal::Signal>().is_ok() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("Invalid signal: {sig}")))
    }
}

/// `--log-opt max-size=10m --log-opt max-file=3` (json-file), with hako's defaults.
/// `--log-driver none`: the shim keeps no log, and `logs` has nothing to read.
pub(super) fn logs_off(h: &HostConfig) -> bool {
    h.log_config.as_ref().and_then(|l| l.typ.as_deref()) == Some("none")
}

/// `--log-driver` json-file (the default) or `local` (kept in the json-file format:
/// `logs` reads both alike), or none; the rotation options.
pub(super) fn log_opts(
    h: &HostConfig,
    default_size: u64,
    default_files: u32,
) -> Result<(u64, u32)> {
    let mut size = default_size;
    let mut files = default_files;
    if let Some(lc) = &h.log_config {
        let driver = lc.typ.as_deref().unwrap_or("");
        if !matches!(driver, "" | "json-file" | "local" | "none") {
            return Err(Error::InvalidArgument(format!(
                "log driver {driver:?} is not supported by hako (json-file, local or none)"
            )));
        }
        for (k, v) in lc.config.iter().flatten() {
            match k.as_str() {
                _ if driver == "none" => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown log opt '{k}' for none log driver"
                    )));
                }
                // Docker's `local` compresses rotated files; hako keeps them as they are.
                "compress" if driver == "local" => {}
                // json-file's extra attributes of every entry (see `log_attrs`).
                "labels" | "env" if driver != "local" => {}
                "labels-regex" | "env-regex" if driver != "local" => {
                    log_regex(k, v)?;
                }
                "tag" if driver != "local" => {
                    hako_format::Template::parse(v)
                        .map_err(|e| Error::InvalidArgument(format!("invalid tag {v:?}: {e}")))?;
                }
                "max-size" => {
                    size = parse_size(v)
                        .ok_or_else(|| Error::InvalidArgument(format!("invalid max-size {v:?}")))?
                }
                "max-file" => {
                    files = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "invalid max-file {v:?}: must be a number >= 1"
                        ))
                    })?
                }
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown log opt '{other}' for {}",
                        if driver == "local" {
                            "log driver local"
                        } else {
                            "json-file log driver"
                        }
                    )));
                }
            }
        }
    }
    Ok((size, files))
}

/// A `labels-regex` / `env-regex` value; its error in one line (the regex crate's spans
/// several, pointing at the spot).
fn log_regex(key: &str, v: &str) -> Result<regex::Regex> {
    regex::Regex::new(v).map_err(|e| {
        let text = e.to_string();
        let why = text.lines().last().unwrap_or_default().trim();
        let why = why.strip_prefix("error: ").unwrap_or(why);
        Error::InvalidArgument(format!("invalid {key} {v:?}: {why}"))
    })
}

/// The `attrs` every json-file entry of `rec` carries, as Docker's json-file driver makes
/// them: the labels named by `labels` (or matching `labels-regex`), the env variables
/// named by `env` (or matching `env-regex`), and `tag` rendered on the container's
/// `{{.ID}}`, `{{.FullID}}`, `{{.Name}}`, `{{.ImageID}}`, `{{.ImageFullID}}`,
/// `{{.ImageName}}`, `{{.DaemonName}}`.
pub(super) fn log_attrs(
    rec: &crate::records::Record,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut attrs = std::collections::BTreeMap::new();
    let Some(opts) = rec
        .host_config
        .log_config
        .as_ref()
        .and_then(|l| l.config.as_ref())
    else {
        return Ok(attrs);
    };
    let opt = |k: &str| opts.get(k).filter(|v| !v.is_empty());
    let list = |k: &str| -> Vec<String> {
        opt(k)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let regex =
        |k: &str| -> Result<Option<regex::Regex>> { opt(k).map(|v| log_regex(k, v)).transpose() };
    let labels = rec.config.labels.clone().unwrap_or_default();
    let (names, re) = (list("labels"), regex("labels-regex")?);
    for (k, v) in &labels {
        if names.contains(k) || re.as_ref().is_some_and(|r| r.is_match(k)) {
            attrs.insert(k.clone(), v.clone());
        }
    }
    let (names, re) = (list("env"), regex("env-regex")?);
    for e in rec.config.env.iter().flatten() {
        if let Some((k, v)) = e.split_once('=')
            && (names.iter().any(|n| n == k) || re.as_ref().is_some_and(|r| r.is_match(k)))
        {
            attrs.insert(k.to_string(), v.to_string());
        }
    }
    if let Some(tag) = opt("tag") {
        let t = hako_format::Template::parse(tag)
            .map_err(|e| Error::InvalidArgument(format!("invalid tag {tag:?}: {e}")))?;
        let hex = rec.image_id.trim_start_matches("sha256:");
        let info = serde_json::json!({
            "ID": &rec.id[..12.min(rec.id.len())],
            "FullID": rec.id,
            "Name": rec.name.trim_start_matches('/'),
            "ImageID": &hex[..12.min(hex.len())],
            "ImageFullID": rec.image_id,
            "ImageName": rec.image,
            "DaemonName": "docker",
        });
        let rendered = t
            .execute(&info)
            .map_err(|e| Error::InvalidArgument(format!("tag {tag:?}: {e}")))?;
        attrs.insert("tag".into(), rendered);
    }
    Ok(attrs)
}

/// `10m`, `1g`, `512k`, `100` (bytes), `-1` (unbounded).
pub fn parse_size(s: &str) -> Option<u64> {
    if s == "-1" {
        return Some(0);
    }
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b');
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    if n < 0.0 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_resource_checks() {
        let h = HostConfig {
            memory: Some(1024),
            ..Default::default()
        };
        assert!(
            validate_host_config(&h)
                .unwrap_err()
                .to_string()
                .contains("Minimum memory limit")
        );
        let h = HostConfig {
            nano_cpus: Some(-1),
            ..Default::default()
        };
        assert!(
            validate_host_config(&h)
                .unwrap_err()
                .to_string()
                .contains("Range of CPUs")
        );
        let h = HostConfig {
            auto_remove: Some(true),
            restart_policy: Some(bollard_stubs::models::RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        assert!(
            validate_host_config(&h)
                .unwrap_err()
                .to_string()
                .contains("--restart and --rm")
        );
        assert!(validate_host_config(&HostConfig::default()).is_ok());
    }

    #[test]
    fn sizes_and_signals() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("abc"), None);
        assert!(validate_signal("TERM").is_ok());
        assert!(validate_signal("SIGKILL").is_ok());
        assert!(validate_signal("9").is_ok());
        assert!(validate_signal("NOPE").is_err());
    }
}
