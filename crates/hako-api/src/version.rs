//! API versions: the optional `/v1.xx` path prefix (both forms are served: the docker CLI
//! pings unversioned, docker-py versioned), Docker's 400 for versions out of range, and the
//! headers every answer carries (`Api-Version`, `Ostype`, `Server`).

use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::{API_VERSION, MIN_API_VERSION};

/// The version a request asked for (the prefix), or ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    /// `1.44` → (1, 44).
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }

    /// Whether this is at least `major.minor`.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= ApiVersion(major, minor)
    }
}

/// Splits `/v1.44/containers/json` into ("1.44", "/containers/json").
fn split(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (v, tail) = rest.split_at(end);
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .then_some((v, if tail.is_empty() { "/" } else { tail }))
}

/// The middleware: strips the prefix, checks the version, adds the headers.
pub async fn layer(mut req: Request, next: Next) -> Response {
    let ours = ApiVersion::parse(API_VERSION).unwrap_or(ApiVersion(1, 50));
    let min = ApiVersion::parse(MIN_API_VERSION).unwrap_or(ApiVersion(1, 24));
    let mut version = ours;
    let path = req.uri().path().to_string();
    if let Some((v, tail)) = split(&path) {
        let Some(asked) = ApiVersion::parse(v) else {
            return with_headers(
                ApiError::bad(format!("invalid API version {v:?}")).into_response(),
            );
        };
        if asked < min {
            return with_headers(
                ApiError::bad(format!(
                    "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
                .into_response(),
            );
        }
        if asked > ours {
            return with_headers(
                ApiError::bad(format!(
                    "client version {v} is too new. Maximum supported API version is {API_VERSION}"
                ))
                .into_response(),
            );
        }
        version = asked;
        let pq = match req.uri().query() {
            Some(q) => format!("{tail}?{q}"),
            None => tail.to_string(),
        };
        if let Ok(uri) = pq.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req.extensions_mut().insert(version);
    with_headers(next.run(req).await)
}

fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    if let Ok(v) = HeaderValue::from_str(&format!("hako/{} (linux)", env!("CARGO_PKG_VERSION"))) {
        h.insert("server", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            split("/v1.44/containers/json"),
            Some(("1.44", "/containers/json"))
        );
        assert_eq!(split("/v1.41/_ping"), Some(("1.41", "/_ping")));
        assert_eq!(split("/volumes"), None);
        assert_eq!(split("/version"), None);
        assert!(ApiVersion(1, 44).at_least(1, 42));
        assert!(ApiVersion::parse("1.9") < ApiVersion::parse("1.24"));
    }
}
