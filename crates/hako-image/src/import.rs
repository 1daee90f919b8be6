//! `docker import`: a root filesystem tar becomes a one-layer image.

use std::io::Read;

use serde_json::{Map, Value, json};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::spec::{ImageConfig, RootFs};
use crate::store::{ImageStore, LayerSource};

/// Options of [`ImageStore::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `repo[:tag]` to tag the image with.
    pub reference: Option<String>,
    /// Dockerfile instructions applied to the config (`--change 'ENV A=1'`): ENV, CMD,
    /// ENTRYPOINT, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL.
    pub changes: Vec<String>,
    /// The history comment (`--message`).
    pub message: Option<String>,
    /// Where the tar came from, for the history comment (`-` for stdin).
    pub source: Option<String>,
}

impl ImageStore {
    /// Imports a root filesystem tar (plain, gzip or zstd) as a one-layer image and
    /// returns its id. Everything is validated before anything is written.
    pub fn import(&self, tar: &mut dyn Read, opts: &ImportOptions) -> Result<Digest> {
        let tag = opts.reference.as_deref().map(parse_tag).transpose()?;
        let mut container_config = Map::new();
        for c in &opts.changes {
            apply_change(&mut container_config, c)?;
        }
        let flight = self.in_flight()?;
        let r = (|| -> Result<Digest> {
            let (blob, _) = self.blobs.write(tar, None)?;
            let media_type = {
                let mut head = [0u8; 4];
                let n = self.blobs.open_blob(&blob)?.read(&mut head).unwrap_or(0);
                match &head[..n] {
                    [0x1f, 0x8b, ..] => crate::spec::OCI_LAYER_GZIP,
                    [0x28, 0xb5, 0x2f, 0xfd] => crate::spec::OCI_LAYER_ZSTD,
                    _ => crate::spec::OCI_LAYER,
                }
            };
            let _layers = self.lock_layers()?;
            let sources = [LayerSource {
                diff_id: None,
                blob: blob.clone(),
                media_type: media_type.into(),
            }];
            let (pending, top) = self.unpack_layers(&flight, &sources)?;
            let diff_id = match (&top, pending.first()) {
                (_, Some(p)) => p.diff_id.clone(),
                (Some(t), None) => t.clone(), // a one-layer chain id is its diff id
                (None, None) => return Err(Error::bad("import produced no layer")),
            };
            let now = now_rfc3339_nanos();
            let comment = opts.message.clone().unwrap_or_else(|| {
                format!("Imported from {}", opts.source.as_deref().unwrap_or("-"))
            });
            let platform = crate::spec::Platform::host();
            let config = ImageConfig {
                architecture: platform.architecture,
                os: platform.os,
                created: Some(now.clone()),
                author: None,
                config: Some(container_config),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![diff_id.to_string()],
                },
                history: vec![json!({ "created": now, "comment": comment })],
                extra: Map::new(),
            };
            let bytes = serde_json::to_vec(&config)
                .map_err(|e| Error::bad(format!("encode config: {e}")))?;
            let id = self.blobs.write_bytes(&bytes)?;
            let result = self.commit_image(
                &id,
                Some(&now),
                &pending,
                top.as_ref(),
                None,
                tag.as_slice(),
                None,
            );
            if result.is_err() {
                for p in &pending {
                    let _ = self.driver.remove(&p.cache_id);
                }
            }
            result.map(|()| id)
        })();
        flight.finish(r)
    }
}

/// Parses a `repo[:tag]` to tag with (digests are not allowed).
pub(crate) fn parse_tag(s: &str) -> Result<Reference> {
    let r = Reference::parse(s)?.with_default_tag();
    if r.digest().is_some() {
        return Err(Error::InvalidReference {
            reference: s.to_string(),
            reason: "cannot tag with a digest",
        });
    }
    Ok(r)
}

/// Applies one Dockerfile instruction to a Docker-shaped container config.
pub(crate) fn apply_change(cfg: &mut Map<String, Value>, change: &str) -> Result<()> {
    let bad = || Error::BadChange(change.to_string());
    let (instr, rest) = change
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(bad)?;
    let rest = rest.trim();
    match instr.to_ascii_uppercase().as_str() {
        "ENV" => {
            let env = cfg.entry("Env").or_insert_with(|| json!([]));
            let list = env.as_array_mut().ok_or_else(bad)?;
            for (k, v) in key_values(rest).ok_or_else(bad)? {
                list.retain(|e| {
                    e.as_str().and_then(|s| s.split_once('=')).map(|(ek, _)| ek) != Some(k.as_str())
                });
                list.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
            let map = labels.as_object_mut().ok_or_else(bad)?;
            for (k, v) in key_values(rest).ok_or_else(bad)? {
                map.insert(k, json!(v));
            }
        }
        "CMD" | "ENTRYPOINT" => {
            let key = if instr.eq_ignore_ascii_case("CMD") {
                "Cmd"
            } else {
                "Entrypoint"
            };
            cfg.insert(key.into(), json!(exec_form(rest)));
        }
        "WORKDIR" => {
            cfg.insert("WorkingDir".into(), json!(rest));
        }
        "USER" => {
            cfg.insert("User".into(), json!(rest));
        }
        "STOPSIGNAL" => {
            cfg.insert("StopSignal".into(), json!(rest));
        }
        "EXPOSE" => {
            let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
            let map = ports.as_object_mut().ok_or_else(bad)?;
            for p in rest.split_whitespace() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let ok = !num.is_empty()
                    && num.split('-').all(|n| n.parse::<u16>().is_ok())
                    && matches!(proto, "tcp" | "udp" | "sctp");
                if !ok {
                    return Err(bad());
                }
                map.insert(format!("{num}/{proto}"), json!({}));
            }
        }
        "VOLUME" => {
            let vols = cfg.entry("Volumes").or_insert_with(|| json!({}));
            let map = vols.as_object_mut().ok_or_else(bad)?;
            let list: Vec<String> = serde_json::from_str(rest)
                .unwrap_or_else(|_| rest.split_whitespace().map(String::from).collect());
            for v in list {
                map.insert(v, json!({}));
            }
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// `["a","b"]` as is; anything else as `/bin/sh -c "..."` (Dockerfile shell form).
fn exec_form(s: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(s)
        .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), s.to_string()])
}

/// `k=v k2="v 2"` or the legacy `k v with spaces`.
fn key_values(s: &str) -> Option<Vec<(String, String)>> {
    let first = s.split_whitespace().next()?;
    if !first.contains('=') {
        let (k, v) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
        return Some(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        let mut val = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => break,
                (_, '\\') => {
                    chars.next();
                    if let Some(n) = chars.peek() {
                        val.push(*n);
                    }
                }
                (_, c) => val.push(c),
            }
            chars.next();
        }
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        out.push((key, val));
    }
}

/// Now, RFC 3339 with nanoseconds as Docker writes `created`.
pub(crate) fn now_rfc3339_nanos() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_build_a_docker_config() {
        let mut c = Map::new();
        for ch in [
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "CMD [\"sh\", \"-c\", \"echo hi\"]",
            "ENTRYPOINT /bin/init --flag",
            "WORKDIR /srv",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "LABEL org.x=y z=\"w v\"",
            "VOLUME [\"/data\"]",
        ] {
            apply_change(&mut c, ch).unwrap();
        }
        let v = Value::Object(c);
        assert_eq!(v["Env"], json!(["B=two words", "A=3"]));
        assert_eq!(v["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(
            v["Entrypoint"],
            json!(["/bin/sh", "-c", "/bin/init --flag"])
        );
        assert_eq!(v["WorkingDir"], "/srv");
        assert_eq!(v["User"], "1000:1000");
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(v["Labels"], json!({"org.x": "y", "z": "w v"}));
        assert_eq!(v["Volumes"], json!({"/data": {}}));
        for bad in ["RUN rm -rf /", "EXPOSE http", "CMD", "FROM x"] {
            assert!(apply_change(&mut Map::new(), bad).is_err(), "{bad}");
        }
    }
}
