//! `RUN --mount=...` values (BuildKit's `commands_runmount.go`): CSV `key=value` fields,
//! with the defaults and checks of the Dockerfile frontend.

/// How a cache mount is shared between builds running at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Everyone uses the same directory at once (default).
    Shared,
    /// A busy directory makes another one.
    Private,
    /// One user at a time; others wait.
    Locked,
}

/// One `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A directory of the context or of a stage/image, read-only unless `rw`.
    Bind {
        /// Where in the container.
        target: String,
        /// Path in the source (default: its root).
        source: String,
        /// A stage or image (default: the build context).
        from: Option<String>,
        /// Read-only (default true; writes to `rw` mounts are thrown away).
        readonly: bool,
    },
    /// A directory kept between builds (package caches).
    Cache {
        /// Where in the container.
        target: String,
        /// Which cache (default: the target).
        id: String,
        /// How concurrent builds share it.
        sharing: Sharing,
        /// Mode of a new cache directory (default 0755).
        mode: u32,
        /// Owner of a new cache directory.
        uid: u32,
        /// Group of a new cache directory.
        gid: u32,
        /// Read-only.
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Where in the container.
        target: String,
        /// Size limit in bytes.
        size: Option<u64>,
    },
    /// A secret given with `--secret`, never stored in the image or the cache.
    Secret {
        /// The secret's id.
        id: String,
        /// File path in the container (default `/run/secrets/<id>`), unless only `env`.
        target: Option<String>,
        /// Also (or only) as this environment variable.
        env: Option<String>,
        /// Fail when the secret was not given (default: skip the mount).
        required: bool,
        /// File mode (default 0400).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// Splits one CSV record (`"a,b",c` → `a,b` and `c`).
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            }
            '"' if at_start => quoted = true,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            c => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err(format!(
            "failed to parse csv mounts: unterminated quote in {s:?}"
        ));
    }
    out.push(cur);
    Ok(out)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid value for {key}: {v}")),
    }
}

/// Parses one expanded `--mount` value.
pub fn parse(spec: &str) -> Result<MountSpec, String> {
    let mut typ = "bind".to_string();
    let mut kv: Vec<(String, Option<String>)> = Vec::new();
    for f in csv_fields(spec)? {
        let (k, v) = match f.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (f.to_ascii_lowercase(), None),
        };
        if k == "type" {
            typ = v.unwrap_or_default().to_ascii_lowercase();
        } else {
            kv.push((k, v));
        }
    }
    let mut target = None;
    let mut source = None;
    let mut from = None;
    let mut readonly: Option<bool> = None;
    let mut id = None;
    let mut sharing = None;
    let mut mode = None;
    let mut uid = None;
    let mut gid = None;
    let mut required = false;
    let mut size = None;
    let mut env = None;
    for (k, v) in kv {
        let need = |v: Option<String>| {
            v.ok_or_else(|| format!("invalid field '{k}' must be a key=value pair"))
        };
        match k.as_str() {
            "target" | "dst" | "destination" => target = Some(need(v)?),
            "source" | "src" => source = Some(need(v)?),
            "from" => from = Some(need(v)?),
            "readonly" | "ro" => {
                readonly = Some(match v {
                    Some(v) => parse_bool(&k, &v)?,
                    None => true,
                })
            }
            "readwrite" | "rw" => {
                readonly = Some(match v {
                    Some(v) => !parse_bool(&k, &v)?,
                    None => false,
                })
            }
            "id" => id = Some(need(v)?),
            "sharing" => {
                sharing = Some(match need(v)?.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => return Err(format!("unsupported sharing value {other:?}")),
                })
            }
            "mode" => {
                let s = need(v)?;
                mode = Some(
                    u32::from_str_radix(&s, 8)
                        .map_err(|_| format!("invalid value {s} for mode"))?,
                );
            }
            "uid" => {
                let s = need(v)?;
                uid = Some(
                    s.parse::<u32>()
                        .map_err(|_| format!("invalid value {s} for uid"))?,
                );
            }
            "gid" => {
                let s = need(v)?;
                gid = Some(
                    s.parse::<u32>()
                        .map_err(|_| format!("invalid value {s} for gid"))?,
                );
            }
            "required" => {
                required = match v {
                    Some(v) => parse_bool(&k, &v)?,
                    None => true,
                };
                if typ != "secret" && typ != "ssh" {
                    return Err(format!("unexpected key 'required' for mount type '{typ}'"));
                }
            }
            "size" => {
                if typ != "tmpfs" {
                    return Err(format!("unexpected key 'size' for mount type '{typ}'"));
                }
                let s = need(v)?;
                size = Some(parse_ram(&s).ok_or_else(|| format!("invalid value for size: {s}"))?);
            }
            "env" => env = Some(need(v)?),
            _ => return Err(format!("unexpected key '{k}' in '{spec}'")),
        }
    }
    if !matches!(typ.as_str(), "secret" | "ssh" | "cache")
        && (mode.is_some() || uid.is_some() || gid.is_some())
    {
        return Err(format!(
            "mode, uid and gid are not allowed for {typ:?} type mounts"
        ));
    }
    if sharing.is_some() && typ != "cache" {
        return Err(format!("invalid cache sharing set for {typ} mount"));
    }
    let need_target =
        |t: Option<String>| t.ok_or_else(|| "mount target must be specified".to_string());
    match typ.as_str() {
        "bind" => Ok(MountSpec::Bind {
            target: need_target(target)?,
            source: source.unwrap_or_default(),
            from,
            readonly: readonly.unwrap_or(true),
        }),
        "cache" => {
            let target = need_target(target)?;
            if from.is_some() || source.is_some() {
                return Err(
                    "RUN --mount=type=cache with from= or source= is not supported by hako".into(),
                );
            }
            Ok(MountSpec::Cache {
                id: id.unwrap_or_else(|| target.clone()),
                target,
                sharing: sharing.unwrap_or(Sharing::Shared),
                mode: mode.unwrap_or(0o755),
                uid: uid.unwrap_or(0),
                gid: gid.unwrap_or(0),
                readonly: readonly.unwrap_or(false),
            })
        }
        "tmpfs" => Ok(MountSpec::Tmpfs {
            target: need_target(target)?,
            size,
        }),
        "secret" => {
            if from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if source.is_some() && id.is_some() {
                return Err("both source and id can't be set".into());
            }
            let id = match id.or(source) {
                Some(i) => i,
                None => match (&target, &env) {
                    (Some(t), _) => t.rsplit('/').next().unwrap_or_default().to_string(),
                    (None, Some(e)) => e.clone(),
                    (None, None) => {
                        return Err("invalid secret mount. one of source, target required".into());
                    }
                },
            };
            let target = match (target, &env) {
                (Some(t), _) => Some(t),
                (None, Some(_)) => None,
                (None, None) => Some(format!("/run/secrets/{id}")),
            };
            Ok(MountSpec::Secret {
                id,
                target,
                env,
                required,
                mode: mode.unwrap_or(0o400),
                uid: uid.unwrap_or(0),
                gid: gid.unwrap_or(0),
            })
        }
        "ssh" => {
            Err("RUN --mount=type=ssh is not supported by hako (no SSH agent forwarding)".into())
        }
        other => Err(format!(
            "unsupported mount type {other:?} (bind, cache, tmpfs, secret)"
        )),
    }
}

/// `64m`, `1g`, `100000` (bytes) as Docker's RAMInBytes.
pub(crate) fn parse_ram(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..digits].parse().ok()?;
    let mult: f64 = match s[digits..].trim_end_matches(['b', 'i']) {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        _ => return None,
    };
    let v = n * mult;
    if !(0.0..1.8e19).contains(&v) {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "range checked"
    )]
    Some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(
            parse("target=/src").unwrap(),
            MountSpec::Bind {
                target: "/src".into(),
                source: String::new(),
                from: None,
                readonly: true
            }
        );
        assert_eq!(
            parse("type=cache,target=/root/.cache").unwrap(),
            MountSpec::Cache {
                target: "/root/.cache".into(),
                id: "/root/.cache".into(),
                sharing: Sharing::Shared,
                mode: 0o755,
                uid: 0,
                gid: 0,
                readonly: false
            }
        );
        assert_eq!(
            parse("type=secret,id=tok").unwrap(),
            MountSpec::Secret {
                id: "tok".into(),
                target: Some("/run/secrets/tok".into()),
                env: None,
                required: false,
                mode: 0o400,
                uid: 0,
                gid: 0
            }
        );
        let MountSpec::Secret {
            id, target, env, ..
        } = parse("type=secret,id=t,env=TOKEN").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (id.as_str(), target, env.as_deref()),
            ("t", None, Some("TOKEN"))
        );
        let MountSpec::Secret { id, .. } = parse("type=secret,target=/x/key").unwrap() else {
            panic!()
        };
        assert_eq!(id, "key");
        assert_eq!(
            parse("type=tmpfs,target=/t,size=64m").unwrap(),
            MountSpec::Tmpfs {
                target: "/t".into(),
                size: Some(64 << 20)
            }
        );
    }

    #[test]
    fn flags_and_errors() {
        let MountSpec::Bind {
            readonly,
            from,
            source,
            ..
        } = parse("type=bind,from=build,source=/out,target=/in,rw").unwrap()
        else {
            panic!()
        };
        assert!(!readonly);
        assert_eq!((from.as_deref(), source.as_str()), (Some("build"), "/out"));
        let MountSpec::Cache {
            sharing, mode, uid, ..
        } = parse("type=cache,target=/c,sharing=locked,mode=0700,uid=1000").unwrap()
        else {
            panic!()
        };
        assert_eq!((sharing, mode, uid), (Sharing::Locked, 0o700, 1000));
        for (spec, msg) in [
            ("type=nope,target=/x", "unsupported mount type"),
            ("type=bind", "target must be specified"),
            ("type=bind,target=/x,mode=0700", "not allowed"),
            (
                "type=bind,target=/x,sharing=locked",
                "invalid cache sharing",
            ),
            (
                "type=cache,target=/x,sharing=odd",
                "unsupported sharing value",
            ),
            ("type=bind,target=/x,required", "unexpected key 'required'"),
            ("type=ssh", "not supported"),
            ("type=secret,id=a,source=b", "both source and id"),
            ("type=bind,target=/x,wat=1", "unexpected key 'wat'"),
            ("type=bind,target=/x,ro=maybe", "invalid value for ro"),
            ("type=tmpfs,target=/x,size=lots", "invalid value for size"),
            ("type=bind,\"target=/x", "unterminated quote"),
        ] {
            let e = parse(spec).unwrap_err();
            assert!(e.contains(msg), "{spec}: {e}");
        }
        assert_eq!(csv_fields("\"a,b\",c").unwrap(), ["a,b", "c"]);
    }
}
