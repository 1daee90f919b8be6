//! Credentials: `WWW-Authenticate` challenges, Docker's `config.json` (`{"auths": {HOST:
//! {"auth": base64(user:password)}}}`), and `login` / `logout`.
//!
//! The file is Docker's, so `docker login` and `hako login` can share one; fields hako
//! does not know (`credsStore`, `HttpHeaders`, ...) are kept as they are. It is replaced
//! atomically (temp file, fsync, rename) with mode 0600.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::client::{Body, Client, expect};
use crate::error::{Error, Result};

/// A user name and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A parsed `WWW-Authenticate` header: `Bearer realm="...",service="...",scope="..."`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lowercase: `basic`, `bearer`.
    pub(crate) scheme: String,
    pub(crate) params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses the first challenge of a header (quoted values may hold commas).
    pub(crate) fn parse(h: &str) -> Option<Challenge> {
        let h = h.trim();
        let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
        if scheme.is_empty() {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars
                .by_ref()
                .take_while(|c| *c != '=')
                .collect::<String>()
                .trim()
                .to_ascii_lowercase();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                value = chars.by_ref().take_while(|c| *c != ',').collect();
            }
            params.insert(key, value.trim().to_string());
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }
}

/// The key of `registry` (`host[:port]`, `docker.io`) in `config.json`'s `auths`.
pub fn config_key(registry: &str) -> String {
    if registry == crate::reference::DEFAULT_DOMAIN || registry == "index.docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// The host part of an `auths` key (`https://host/v1/` → `host`).
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn cred_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Credentials {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn read_config(path: &Path) -> Result<Map<String, Value>> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(cred_err(path, "not a JSON object")),
            Err(e) => Err(cred_err(path, e.to_string())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

fn write_config(path: &Path, config: &Map<String, Value>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let tmp = dir.join(format!(".config.json.{}", crate::random_hex(8)));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut text = serde_json::to_vec_pretty(config).map_err(std::io::Error::other)?;
        text.push(b'\n');
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("write {}", path.display()), e)
    })
}

/// The credentials stored for `registry` in the Docker `config.json` at `config`, if any.
pub fn load_credentials(config: &Path, registry: &str) -> Result<Option<Credentials>> {
    let cfg = read_config(config)?;
    let Some(Value::Object(auths)) = cfg.get("auths") else {
        return Ok(None);
    };
    let want = key_host(&config_key(registry)).to_string();
    for (key, entry) in auths {
        if key_host(key) != want {
            continue;
        }
        if let Some(a) = entry.get("auth").and_then(Value::as_str) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|e| cred_err(config, format!("auth of {key}: {e}")))?;
            let raw = String::from_utf8(raw)
                .map_err(|_| cred_err(config, format!("auth of {key} is not UTF-8")))?;
            let (u, p) = raw
                .split_once(':')
                .ok_or_else(|| cred_err(config, format!("auth of {key} is not user:password")))?;
            return Ok(Some(Credentials {
                username: u.into(),
                password: p.into(),
            }));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            return Ok(Some(Credentials {
                username: u.into(),
                password: p.into(),
            }));
        }
    }
    Ok(None)
}

/// `docker login`: checks `credentials` against `registry` (`host[:port]`, `docker.io`)
/// and, if they work, stores them in the Docker `config.json` at `config`. Wrong
/// credentials are an `unauthorized` error and leave the file as it was.
pub fn login(
    registry: &str,
    credentials: &Credentials,
    config: &Path,
    insecure: bool,
) -> Result<()> {
    let mut cfg = read_config(config)?;
    check_login(registry, credentials, insecure)?;
    let auths = cfg
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let raw = format!("{}:{}", credentials.username, credentials.password);
    if let Value::Object(a) = auths {
        a.insert(
            config_key(registry),
            json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) }),
        );
    }
    write_config(config, &cfg)
}

/// Checks `credentials` against `registry` (the daemon side of `docker login`: nothing
/// is stored). Wrong credentials are an `unauthorized` error.
pub fn check_login(registry: &str, credentials: &Credentials, insecure: bool) -> Result<()> {
    let client = Client::new(registry, insecure, Some(credentials.clone()), String::new());
    let url = client.url("/v2/")?;
    let resp = client.call("GET", &url, &[], &Body::Empty)?;
    expect(resp, &[], || format!("login to {registry}"))?;
    Ok(())
}

/// `docker logout`: forgets the credentials of `registry`. `false` if there were none.
pub fn logout(registry: &str, config: &Path) -> Result<bool> {
    let mut cfg = read_config(config)?;
    let want = key_host(&config_key(registry)).to_string();
    let removed = match cfg.get_mut("auths") {
        Some(Value::Object(a)) => {
            let before = a.len();
            a.retain(|k, _| key_host(k) != want);
            a.len() != before
        }
        _ => false,
    };
    if removed {
        write_config(config, &cfg)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull,push");
        let b = Challenge::parse(r#"Basic realm="hako test""#).unwrap();
        assert_eq!(b.scheme, "basic");
        assert_eq!(b.params["realm"], "hako test");
        let u = Challenge::parse("Bearer realm=http://x/token, service=reg").unwrap();
        assert_eq!(u.params["realm"], "http://x/token");
        assert_eq!(u.params["service"], "reg");
    }

    #[test]
    fn config_round_trip_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"credsStore":"x"}"#,
        )
        .unwrap();
        let hub = load_credentials(&path, "docker.io").unwrap().unwrap();
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("u", "p"));
        assert_eq!(load_credentials(&path, "127.0.0.1:5000").unwrap(), None);
        let mut cfg = read_config(&path).unwrap();
        cfg["auths"]
            .as_object_mut()
            .unwrap()
            .insert("127.0.0.1:5000".into(), json!({"auth": "YTpiOmM="}));
        write_config(&path, &cfg).unwrap();
        let local = load_credentials(&path, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("a", "b:c")
        );
        assert!(logout("127.0.0.1:5000", &path).unwrap());
        assert!(!logout("127.0.0.1:5000", &path).unwrap());
        let back = read_config(&path).unwrap();
        assert_eq!(back["credsStore"], "x");
        assert!(back["auths"].get("https://index.docker.io/v1/").is_some());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
