//! `/_ping`, `/version`, `/info`, `/system/df`, `/events`, `/auth`, and the answers for
//! what hako does not serve.

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, RawQuery, State as St};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hako_engine::events::{EventQuery, FILTER_KEYS, parse_time};
use serde_json::{Value, json};

use crate::State;
use crate::body::{blocking, json as json_body, stream};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::version::ApiVersion;

/// `HEAD|GET /_ping`: `OK` and the headers clients negotiate with.
pub async fn ping(method: Method) -> Response {
    let mut r = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from("OK"))
    };
    let h = r.headers_mut();
    h.insert(
        "content-type",
        "text/plain; charset=utf-8".parse().expect("header"),
    );
    h.insert("builder-version", "1".parse().expect("header"));
    h.insert(
        "cache-control",
        "no-cache, no-store, must-revalidate"
            .parse()
            .expect("header"),
    );
    h.insert("pragma", "no-cache".parse().expect("header"));
    r
}

/// `GET /version`.
pub async fn version() -> Json<Value> {
    Json(hako_engine::version::server_version())
}

/// `GET /info`.
pub async fn info(St(state): St<State>) -> ApiResult<Response> {
    let info = blocking(&state, |e| Ok(e.info()?)).await?;
    Ok(Json(info).into_response())
}

/// `GET /system/df`.
pub async fn df(St(state): St<State>) -> ApiResult<Response> {
    let du = blocking(&state, |e| Ok(e.disk_usage()?)).await?;
    Ok(Json(du).into_response())
}

/// `POST /auth`: checks credentials against the registry; stores nothing.
pub async fn auth(St(state): St<State>, body: Bytes) -> ApiResult<Json<Value>> {
    let v: Value = json_body(&body)?;
    let user = v["username"].as_str().unwrap_or("").to_string();
    let pass = v["password"].as_str().unwrap_or("").to_string();
    let server = v["serveraddress"]
        .as_str()
        .unwrap_or("docker.io")
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches("/v1/")
        .trim_end_matches('/')
        .to_string();
    blocking(&state, move |e| {
        e.registry_check_login(
            &server,
            &hako_image::registry::Credentials {
                username: user,
                password: pass,
            },
            false,
        )
        .map_err(|err| ApiError::new(StatusCode::UNAUTHORIZED, err.to_string()))
    })
    .await?;
    Ok(Json(
        json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}

/// `GET /events`: past events with `since`, then new ones until `until` or the client
/// leaves; one JSON object per line, flushed as it comes.
pub async fn events(
    St(state): St<State>,
    Extension(version): Extension<ApiVersion>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let filters = q.filters()?;
    filters.validate(FILTER_KEYS)?;
    let since = q
        .get("since")
        .filter(|s| !s.is_empty())
        .map(parse_time)
        .transpose()?;
    let until = q
        .get("until")
        .filter(|s| !s.is_empty())
        .map(parse_time)
        .transpose()?;
    let (mut w, body) = stream();
    let legacy = !version.at_least(1, 52);
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = engine.events(EventQuery {
            since,
            until,
            filters,
        });
        let send = |w: &mut crate::body::ChannelWriter, evs: Vec<hako_engine::events::Event>| {
            for ev in evs {
                let mut v = serde_json::to_value(&ev).unwrap_or(Value::Null);
                if legacy && matches!(ev.typ.as_str(), "container" | "image") {
                    v["status"] = Value::String(ev.action.clone());
                    v["id"] = Value::String(ev.actor.id.clone());
                    if let Some(from) = ev.actor.attributes.get("image") {
                        v["from"] = Value::String(from.clone());
                    }
                }
                if crate::body::line(w, &v).is_err() {
                    return false;
                }
            }
            true
        };
        let Ok(past) = reader.past() else { return };
        if !send(&mut w, past) {
            return;
        }
        while !reader.done() && !w.closed() {
            match reader.next_batch(Duration::from_millis(250)) {
                Ok(evs) => {
                    if !send(&mut w, evs) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    Ok(r)
}

/// Unknown paths: Docker's 404.
pub async fn not_found(uri: Uri, _h: HeaderMap) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "page not found: {} is not an endpoint of the Docker API that hako serves",
            uri.path()
        ),
    )
}

/// A known path with a method it does not take.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
