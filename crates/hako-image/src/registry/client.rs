//! The HTTP side of the distribution API: which scheme a registry speaks, authentication
//! (anonymous, Basic, Bearer tokens) and turning error answers into [`Error`]s.
//!
//! ```text
//! client                                  registry                 token server
//!   │ GET https://host/v2/... ──────────────►│
//!   │   (transport error and host is local or --insecure: retry with http://)
//!   │◄──── 401 WWW-Authenticate: Basic realm=...
//!   │ same request + Authorization: Basic ──►│        (credentials given)
//!   │◄──── 401 WWW-Authenticate: Bearer realm=R,service=S,scope=...
//!   │ GET R?service=S&scope=repository:NAME:pull,push  (+ Basic) ─────────────►│
//!   │◄──────────────────────────────────────────────── {"token": T} ──────────│
//!   │ same request + Authorization: Bearer T ►│   (and every request after it)
//! ```
//!
//! The scheme is decided once per client by the first request; an `Authorization` header
//! that worked is kept for the client's life, and a 401 later (an expired token) triggers
//! one new round of authentication and one retry.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;

use super::auth::{Challenge, Credentials};
use crate::error::{Error, Result};

/// Docker Hub's registry endpoint (references say `docker.io`).
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

/// A request body that can be sent again after a 401.
pub(crate) enum Body<'a> {
    /// No body (`Content-Length: 0` for methods that carry one).
    Empty,
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`; `progress` sees the bytes sent so far.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
        progress: &'a (dyn Fn(u64) + Sync),
    },
}

/// A client for one repository of one registry.
pub(crate) struct Client {
    agent: ureq::Agent,
    /// `host[:port]` as references name it.
    pub(crate) registry: String,
    endpoint: String,
    allow_http: bool,
    base: Mutex<Option<String>>,
    credentials: Option<Credentials>,
    /// `repository:NAME:pull,push`, or empty (login).
    scope: String,
    authorization: Mutex<Option<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("registry", &self.registry)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Whether plain http is tried for `host[:port]` without `--insecure`: loopback, as
/// Docker treats `127.0.0.0/8` as an insecure registry.
fn is_local(endpoint: &str) -> bool {
    let host = match endpoint.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => endpoint,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

impl Client {
    /// A client for `registry` (`host[:port]`, `docker.io`), asking for `scope`.
    pub(crate) fn new(
        registry: &str,
        insecure: bool,
        credentials: Option<Credentials>,
        scope: String,
    ) -> Client {
        let endpoint = if registry == crate::reference::DEFAULT_DOMAIN {
            DOCKER_HUB_ENDPOINT.to_string()
        } else {
            registry.to_string()
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .user_agent(concat!("hako/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent,
            registry: registry.to_string(),
            allow_http: insecure || is_local(&endpoint),
            endpoint,
            base: Mutex::new(None),
            credentials,
            scope,
            authorization: Mutex::new(None),
        }
    }

    /// `scheme://endpoint`, decided by the first call: https, or http when https fails
    /// at the transport level and http is allowed.
    fn base(&self) -> Result<String> {
        let mut base = self.base.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &*base {
            return Ok(b.clone());
        }
        let https = format!("https://{}", self.endpoint);
        let chosen = match self.agent.get(&format!("{https}/v2/")).call() {
            Ok(_) | Err(ureq::Error::Status(..)) => https,
            Err(ureq::Error::Transport(t)) if !self.allow_http => {
                return Err(self.unreachable(&t));
            }
            Err(_) => {
                let http = format!("http://{}", self.endpoint);
                match self.agent.get(&format!("{http}/v2/")).call() {
                    Ok(_) | Err(ureq::Error::Status(..)) => http,
                    Err(ureq::Error::Transport(t)) => return Err(self.unreachable(&t)),
                }
            }
        };
        tracing::debug!(registry = %self.registry, base = %chosen, "registry endpoint");
        *base = Some(chosen.clone());
        Ok(chosen)
    }

    fn unreachable(&self, t: &ureq::Transport) -> Error {
        let reason = match (t.message(), std::error::Error::source(t)) {
            (_, Some(src)) => src.to_string(),
            (Some(m), None) => m.to_string(),
            (None, None) => t.kind().to_string(),
        };
        Error::Unreachable {
            registry: self.registry.clone(),
            reason,
        }
    }

    /// The absolute URL of `path_or_url` (`/v2/...`, or a `Location` header, which may
    /// be absolute).
    pub(crate) fn url(&self, path_or_url: &str) -> Result<String> {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            return Ok(path_or_url.to_string());
        }
        Ok(format!("{}{}", self.base()?, path_or_url))
    }

    /// Sends a request, authenticating on a 401 challenge and retrying once. Any HTTP
    /// answer is returned (check it with [`expect`]); transport errors are errors.
    pub(crate) fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
    ) -> Result<ureq::Response> {
        let mut retried = false;
        loop {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let auth = self
                .authorization
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(a) = &auth {
                req = req.set("Authorization", a);
            }
            let result = match body {
                Body::Empty if matches!(method, "POST" | "PUT" | "PATCH") => req.send_bytes(&[]),
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File {
                    path,
                    offset,
                    len,
                    progress,
                } => {
                    let mut f = std::fs::File::open(path)
                        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
                    f.seek(SeekFrom::Start(*offset))
                        .map_err(|e| Error::io(format!("seek {}", path.display()), e))?;
                    let reader = Counting {
                        inner: f.take(*len),
                        sent: 0,
                        progress: *progress,
                    };
                    req.set("Content-Length", &len.to_string()).send(reader)
                }
            };
            let resp = match result {
                Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => return Err(self.unreachable(&t)),
            };
            if resp.status() == 401 && !retried {
                retried = true;
                if let Some(c) = resp.header("www-authenticate").and_then(Challenge::parse)
                    && self.authenticate(&c, auth.as_deref())?
                {
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// Answers a challenge: sets the `Authorization` header to send. `false` when there
    /// is nothing new to try (no credentials for Basic, or they were just refused).
    fn authenticate(&self, c: &Challenge, tried: Option<&str>) -> Result<bool> {
        let header = match c.scheme.as_str() {
            "basic" => match &self.credentials {
                Some(cr) => basic(cr),
                None => return Ok(false),
            },
            "bearer" => self.token(c)?,
            _ => return Ok(false),
        };
        if tried == Some(header.as_str()) {
            return Ok(false);
        }
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(header);
        Ok(true)
    }

    /// Fetches a bearer token from the challenge's realm.
    fn token(&self, c: &Challenge) -> Result<String> {
        let realm = c.params.get("realm").ok_or_else(|| Error::Registry {
            status: 401,
            code: "unauthorized".into(),
            detail: format!("{}: bearer challenge without realm", self.registry),
        })?;
        let mut req = self.agent.get(realm);
        if let Some(s) = c.params.get("service") {
            req = req.query("service", s);
        }
        if !self.scope.is_empty() {
            req = req.query("scope", &self.scope);
        }
        if let Some(cr) = &self.credentials {
            req = req.set("Authorization", &basic(cr));
        }
        let resp = match req.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(self.unreachable(&t)),
        };
        let what = format!("token for {} from {realm}", self.registry);
        let resp = expect(resp, &[], || what.clone())?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = read_json(resp, &what)?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::bad(format!("{what}: answer has no token")))?;
        Ok(format!("Bearer {token}"))
    }
}

fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Counts the bytes of an upload.
struct Counting<'a, R> {
    inner: R,
    sent: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        (self.progress)(self.sent);
        Ok(n)
    }
}

/// `resp` if its status is 2xx or in `ok`, else the registry's error: the first entry of
/// its `{"errors": [{"code", "message"}]}` body, with `what` was asked for.
pub(crate) fn expect(
    resp: ureq::Response,
    ok: &[u16],
    what: impl FnOnce() -> String,
) -> Result<ureq::Response> {
    let status = resp.status();
    if (200..300).contains(&status) || ok.contains(&status) {
        return Ok(resp);
    }
    #[derive(serde::Deserialize, Default)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let mut body = Vec::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut body);
    let parsed: Errors = serde_json::from_slice(&body).unwrap_or_default();
    let (code, message) = match parsed.errors.into_iter().next() {
        Some(e) if !e.code.is_empty() => (e.code.to_ascii_lowercase().replace('_', " "), e.message),
        _ => (
            match status {
                401 => "unauthorized".to_string(),
                403 => "denied".to_string(),
                404 => "not found".to_string(),
                s => format!("HTTP status {s}"),
            },
            String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(200)
                .collect(),
        ),
    };
    let mut detail = what();
    if !message.is_empty() && !message.eq_ignore_ascii_case(&code) {
        detail = format!("{detail}: {message}");
    }
    Err(Error::Registry {
        status,
        code,
        detail,
    })
}

/// Reads a (small) JSON answer.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    resp: ureq::Response,
    what: &str,
) -> Result<T> {
    let bytes = read_limited(resp, 4 << 20, what)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::bad(format!("{what}: {e}")))
}

/// Reads an answer of at most `limit` bytes.
pub(crate) fn read_limited(resp: ureq::Response, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    resp.into_reader()
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("read {what}"), e))?;
    if buf.len() as u64 > limit {
        return Err(Error::bad(format!("{what}: larger than {limit} bytes")));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_local() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:80",
            "127.3.4.5",
            "[::1]:5000",
        ] {
            assert!(super::is_local(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "registry-1.docker.io"] {
            assert!(!super::is_local(h), "{h}");
        }
    }
}
