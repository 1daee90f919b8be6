//! `POST /build`: Docker's classic builder API (`DOCKER_BUILDKIT=0 docker build`,
//! docker-py's `images.build`, compose's classic `build:`) over `Engine::build`.
//!
//! ```text
//!   query + X-Registry-Config ──► BuildRequest (bad or unsupported options: 400 before
//!                                 anything is read)
//!   body (the context tar, maybe compressed) ──► unpacked on disk as it arrives
//!   Engine::build in a blocking thread ──► ClassicStream ──► {"stream":"Step 1/4 : ..."}
//!                                        ...  {"aux":{"ID":"sha256:..."}}
//! ```
//!
//! As dockerd: the answer starts with the first progress line, so a build that fails
//! before printing anything (no Dockerfile, a syntax error) is an HTTP error; later
//! failures end the stream with `errorDetail`. `q=1` holds the progress back and sends
//! only the image id (or, on failure, the held progress and the error). When the client
//! goes away the build is cancelled: its RUN is killed and nothing is cached or tagged.
//! BuildKit's `/session` and `/grpc` are not served (clients fall back with
//! `DOCKER_BUILDKIT=0`).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{RawQuery, State as St};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use hako_build::build::BuildError;
use hako_build::classic::ClassicStream;
use hako_build::progress::{Cancel, Progress};
use hako_engine::{BuildContext, BuildRequest, Dockerfile};
use hako_image::Credentials;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::State;
use crate::body::{ChannelWriter, reader, stream};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::version::ApiVersion;

/// Most progress kept back for `q=1` (shown only when the build fails): the tail.
const QUIET_KEEP: usize = 1 << 20;

/// The options of one `POST /build`, checked.
#[derive(Debug, Default)]
struct Params {
    dockerfile: String,
    tags: Vec<String>,
    build_args: Vec<(String, String)>,
    labels: Vec<(String, String)>,
    target: Option<String>,
    no_cache: bool,
    pull: bool,
    quiet: bool,
    network: Option<String>,
    /// Options hako accepts and does not act on, said in the stream.
    ignored: Vec<String>,
}

fn json_param<T>(q: &Query, key: &str, what: &str) -> ApiResult<T>
where
    T: serde::de::DeserializeOwned + Default,
{
    match q.get(key).map(str::trim) {
        None | Some("" | "null") => Ok(T::default()),
        Some(v) => serde_json::from_str::<Option<T>>(v)
            .map(Option::unwrap_or_default)
            .map_err(|e| ApiError::bad(format!("error reading {what}: {e}"))),
    }
}

/// The query as dockerd's `newImageBuildOptions` reads it (version 1.24 and later).
fn params(q: &Query) -> ApiResult<Params> {
    let unsupported = |what: &str| {
        ApiError::bad(format!(
            "{what} is not supported by hako's builder; remove it from the build options"
        ))
    };
    match q.get("version").unwrap_or("") {
        "" | "1" => {}
        "2" => {
            return Err(ApiError::bad(
                "BuildKit builds (version=2) need /session, which hako serve does not serve; build with DOCKER_BUILDKIT=0",
            ));
        }
        v => return Err(ApiError::bad(format!("invalid version {v}"))),
    }
    if let Some(r) = q.get("remote").filter(|r| !r.is_empty()) {
        return Err(ApiError::bad(format!(
            "remote build contexts are not supported by hako serve (remote={r}): send the context as a tar in the request body"
        )));
    }
    if q.bool("squash", false) {
        return Err(ApiError::bad(
            "squash is only supported with experimental mode",
        ));
    }
    if !q.all("securityopt").is_empty() {
        return Err(ApiError::bad(
            "The daemon on this platform does not support setting security options on build",
        ));
    }
    match q.get("isolation").unwrap_or("") {
        "" | "default" => {}
        i => return Err(ApiError::bad(format!("Unsupported isolation: {i:?}"))),
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let host = hako_image::Platform::host().to_string();
        if p != host {
            return Err(ApiError::bad(format!(
                "platform {p}: hako builds for the host platform only ({host})"
            )));
        }
    }
    for key in [
        "memory",
        "memswap",
        "cpushares",
        "cpuperiod",
        "cpuquota",
        "shmsize",
    ] {
        if q.int(key)?.unwrap_or(0) != 0 {
            return Err(unsupported(&format!("{key} (a resource limit for RUN)")));
        }
    }
    for key in ["cpusetcpus", "cpusetmems", "cgroupparent"] {
        if q.get(key).is_some_and(|v| !v.is_empty()) {
            return Err(unsupported(&format!("{key} (a resource limit for RUN)")));
        }
    }
    if q.all("extrahosts").iter().any(|h| !h.is_empty()) {
        return Err(unsupported("extrahosts (--add-host)"));
    }
    let ulimits: Vec<Value> = json_param(q, "ulimits", "ulimit settings")?;
    if !ulimits.is_empty() {
        return Err(unsupported("ulimits (--ulimit)"));
    }
    let mut ignored = Vec::new();
    let cache_from: Vec<String> = json_param(q, "cachefrom", "cache-from")?;
    if !cache_from.is_empty() {
        ignored.push(format!(
            "--cache-from {}: hako's build cache is local; images are not used as cache sources",
            cache_from.join(",")
        ));
    }
    let mut tags = Vec::new();
    for t in q.all("t") {
        if t.is_empty() {
            continue;
        }
        hako_image::Reference::parse(&t)
            .map_err(|e| ApiError::bad(format!("invalid reference format: {t:?}: {e}")))?;
        tags.push(t);
    }
    // `"name": null` is `--build-arg name` with `name` unset on the client: not passed.
    let build_args: BTreeMap<String, Option<String>> = json_param(q, "buildargs", "build args")?;
    let labels: BTreeMap<String, String> = json_param(q, "labels", "labels")?;
    let network = match q.get("networkmode").unwrap_or("") {
        "" | "default" => None,
        m @ ("bridge" | "none" | "host") => Some(m.to_string()),
        m => {
            return Err(ApiError::bad(format!(
                "network mode {m:?} is not supported for builds (default, bridge, none, host)"
            )));
        }
    };
    Ok(Params {
        dockerfile: q
            .get("dockerfile")
            .filter(|d| !d.is_empty())
            .unwrap_or("Dockerfile")
            .to_string(),
        tags,
        build_args: build_args
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        labels: labels.into_iter().collect(),
        target: q
            .get("target")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        no_cache: q.bool("nocache", false),
        pull: q.bool("pull", false),
        quiet: q.bool("q", false),
        network,
        ignored,
    })
}

/// `X-Registry-Config`: base64url JSON, registry → auth config. Unreadable means none
/// (dockerd ignores decode errors too).
fn registry_config(headers: &HeaderMap) -> Vec<(String, Credentials)> {
    let Some(raw) = headers
        .get("x-registry-config")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        return Vec::new();
    };
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
    ];
    let Some(bytes) = engines.iter().find_map(|e| e.decode(raw).ok()) else {
        return Vec::new();
    };
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, entry) in map {
        let from_auth = entry["auth"]
            .as_str()
            .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            });
        let pair = match (entry["username"].as_str(), entry["password"].as_str()) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u.to_string(), p.to_string())),
            _ => from_auth,
        };
        if let Some((username, password)) = pair {
            out.push((registry_host(&key), Credentials { username, password }));
        }
    }
    out
}

/// `https://index.docker.io/v1/` → `docker.io`; `registry:5000` stays.
fn registry_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// The response writer of a build: tells the handler when the first byte goes out (the
/// answer starts then), or keeps everything back for `q=1`.
struct Out {
    w: ChannelWriter,
    started: Option<oneshot::Sender<()>>,
    /// `q=1`: the progress so far (its tail).
    held: Option<Vec<u8>>,
}

impl Out {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(s) = self.started.take() {
            let _ = s.send(());
        }
        self.w.write_all(buf)
    }

    fn wrote(&self) -> bool {
        self.started.is_none()
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.held {
            Some(h) => {
                h.extend_from_slice(buf);
                if h.len() > QUIET_KEEP {
                    let cut = h.len() - QUIET_KEEP;
                    h.drain(..cut);
                }
            }
            None => self.send(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Cancels the build when dropped armed: the handler's future dropped (the client left
/// before the answer started) or the watcher seeing the response body gone.
struct CancelOnDrop(Option<Cancel>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.cancel();
        }
    }
}

/// A failure before any output: an HTTP error, as dockerd answers then.
fn early_error(e: &BuildError) -> ApiError {
    // Dockerfile errors (they point at lines) are the client's; the rest is ours.
    let status = if e.lines.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    ApiError::new(status, e.message.clone())
}

/// Runs the build; `Err` only when nothing was written yet.
fn run_build(
    engine: &hako_engine::Engine,
    req: BuildRequest,
    quiet: bool,
    aux: bool,
    ignored: &[String],
    out: Out,
    cancel: &Cancel,
) -> Result<(), ApiError> {
    let mut s = ClassicStream::new(out);
    if !aux {
        s = s.without_aux();
    }
    for i in ignored {
        s.event(hako_build::progress::Event::Warning {
            message: format!("[Warning] ignored: {i}"),
        });
    }
    let result = engine.build(req, &s, cancel);
    let mut out = s.into_inner();
    let held = out.held.take();
    match result {
        Ok(o) => {
            if quiet {
                let line = serde_json::json!({ "stream": format!("{}\n", o.id) });
                let _ = out.send(format!("{line}\r\n").as_bytes());
            }
            Ok(())
        }
        Err(e) if e.cancelled => Ok(()),
        Err(e) => {
            if let Some(h) = held.filter(|h| !h.is_empty()) {
                let _ = out.send(&h);
            }
            if !out.wrote() {
                return Err(early_error(&e));
            }
            ClassicStream::new(out).error(&e);
            Ok(())
        }
    }
}

/// `POST /build`.
pub async fn build(
    St(state): St<State>,
    Extension(version): Extension<ApiVersion>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let p = params(&Query::parse(q.as_deref()))?;
    let creds = registry_config(&headers);
    let lookup: hako_engine::CredentialLookup = Arc::new(move |domain: &str| {
        creds
            .iter()
            .find(|(host, _)| host == domain)
            .map(|(_, c)| c.clone())
    });
    let req = BuildRequest {
        context: BuildContext::Tar(Box::new(reader(body))),
        dockerfile: Dockerfile::InContext(p.dockerfile.clone()),
        build_args: p.build_args,
        target: p.target,
        tags: p.tags,
        labels: p.labels,
        no_cache: p.no_cache,
        pull: p.pull,
        network: p.network,
        secrets: BTreeMap::new(),
        credentials: Some(lookup),
    };
    let cancel = Cancel::new();
    let guard = CancelOnDrop(Some(cancel.clone()));
    let (w, response) = stream();
    let (started_tx, started_rx) = oneshot::channel();
    let out = Out {
        w: w.clone(),
        started: Some(started_tx),
        held: p.quiet.then(Vec::new),
    };
    let engine = state.engine.clone();
    let quiet = p.quiet;
    let aux = version.at_least(1, 30);
    let ignored = p.ignored;
    let task_cancel = cancel.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        run_build(&engine, req, quiet, aux, &ignored, out, &task_cancel)
    });
    // Until the first byte the handler waits here; if the client leaves meanwhile, the
    // future is dropped and `guard` cancels the build.
    // (The sender is dropped unsent when the build ends without output: that branch is
    // then disabled and the task's result decides.)
    let finished = tokio::select! {
        r = &mut task => Some(r),
        Ok(()) = started_rx => None,
    };
    if let Some(r) = finished {
        guard.disarm();
        r??;
        return Ok(json_stream(response));
    }
    // Streaming: the build ends on its own, or the client leaves (the body is dropped).
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut task => break,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if w.closed() {
                        cancel.cancel();
                        let _ = task.await;
                        break;
                    }
                }
            }
        }
        guard.disarm();
        drop(w);
    });
    Ok(json_stream(response))
}

fn json_stream(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    r
}

/// `POST /session`, `POST /grpc` (BuildKit).
pub async fn session() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "BuildKit sessions are not supported by hako serve; set DOCKER_BUILDKIT=0",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> ApiResult<Params> {
        params(&Query::parse(Some(s)))
    }

    #[test]
    fn the_classic_clis_query() {
        // What `DOCKER_BUILDKIT=0 docker build -t a -t b:1 --build-arg X=1 --build-arg Y
        // --label l=v .` sends (Y unset on the client).
        let p = q("buildargs=%7B%22X%22%3A%221%22%2C%22Y%22%3Anull%7D&cachefrom=%5B%5D&cgroupparent=&cpuperiod=0&cpuquota=0&cpusetcpus=&cpusetmems=&cpushares=0&dockerfile=Dockerfile&labels=%7B%22l%22%3A%22v%22%7D&memory=0&memswap=0&networkmode=default&rm=1&shmsize=0&t=a&t=b%3A1&target=&ulimits=null&version=1").unwrap();
        assert_eq!(p.tags, ["a", "b:1"]);
        assert_eq!(p.build_args, [("X".to_string(), "1".to_string())]);
        assert_eq!(p.labels, [("l".to_string(), "v".to_string())]);
        assert_eq!(p.dockerfile, "Dockerfile");
        assert_eq!(p.target, None);
        assert_eq!(p.network, None);
        assert!(!p.quiet && !p.no_cache && !p.pull);
        assert!(p.ignored.is_empty());
        let p = q("q=1&nocache=1&pull=true&target=build&networkmode=none&dockerfile=.dockerfile.x&ulimits=%5B%5D&cachefrom=%5B%22img%22%5D").unwrap();
        assert!(p.quiet && p.no_cache && p.pull);
        assert_eq!(p.target.as_deref(), Some("build"));
        assert_eq!(p.network.as_deref(), Some("none"));
        assert_eq!(p.dockerfile, ".dockerfile.x");
        assert_eq!(p.ignored.len(), 1);
        // docker-py's defaults.
        let p =
            q("t=x&q=False&nocache=False&rm=False&forcerm=False&pull=False&dockerfile=Dockerfile")
                .unwrap();
        assert!(!p.quiet);
    }

    #[test]
    fn what_hako_cannot_do_is_refused_by_name() {
        for (query, says) in [
            ("version=2", "DOCKER_BUILDKIT=0"),
            ("version=3", "invalid version"),
            ("remote=https%3A%2F%2Fx%2Fy.tar", "remote build contexts"),
            ("squash=1", "experimental"),
            ("securityopt=seccomp%3Dunconfined", "security options"),
            ("memory=1000000", "memory"),
            ("cpusetcpus=0", "cpusetcpus"),
            ("ulimits=%5B%7B%22Name%22%3A%22nofile%22%7D%5D", "ulimits"),
            ("extrahosts=a%3A1.2.3.4", "extrahosts"),
            ("networkmode=container%3Ax", "network mode"),
            ("t=Bad%20Name", "invalid reference format"),
            ("buildargs=%5B1%5D", "error reading build args"),
            ("labels=x", "error reading labels"),
            ("cachefrom=%7B", "cache-from"),
            ("memory=lots", "memory"),
            ("platform=linux%2Fs390x", "host platform only"),
            ("isolation=hyperv", "Unsupported isolation"),
        ] {
            let e = q(query).expect_err(query);
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{query}");
            assert!(e.message.contains(says), "{query}: {}", e.message);
        }
    }

    #[test]
    fn registry_config_header() {
        let cfg = serde_json::json!({
            "https://index.docker.io/v1/": {"username": "u", "password": "p"},
            "registry.local:5000": {"auth": base64::engine::general_purpose::STANDARD.encode("a:b")},
            "other": {"identitytoken": "t"},
        });
        let mut h = HeaderMap::new();
        h.insert(
            "x-registry-config",
            base64::engine::general_purpose::URL_SAFE
                .encode(cfg.to_string())
                .parse()
                .unwrap(),
        );
        let mut got = registry_config(&h);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "docker.io");
        assert_eq!(got[0].1.username, "u");
        assert_eq!(got[1].0, "registry.local:5000");
        assert_eq!(got[1].1.password, "b");
        h.insert("x-registry-config", "!!!".parse().unwrap());
        assert!(registry_config(&h).is_empty());
    }
}
