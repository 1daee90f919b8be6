//! `/images/...`: list, inspect, history, tag, remove, prune, pull and import
//! (`/images/create`), push, load, save.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State as St};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hako_engine::ImageListOptions;
use hako_image::registry::{Credentials, ProgressEvent, PullOptions, PushOptions};
use hako_image::{ImportOptions, Platform};
use serde_json::{Value, json};

use crate::State;
use crate::body::{ChannelWriter, blocking, line, reader, stream};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;

fn json_stream(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    r
}

/// `GET /images/json?all=&filters=`.
pub async fn list(St(state): St<State>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let o = ImageListOptions {
        all: q.bool("all", false),
        filters: q.filters()?,
    };
    let list = blocking(&state, move |e| Ok(e.image_list(&o)?)).await?;
    Ok(Json(list).into_response())
}

/// `GET /images/{name}/json|history|get`.
pub async fn by_name(St(state): St<State>, Path(path): Path<String>) -> ApiResult<Response> {
    if let Some(name) = path.strip_suffix("/json") {
        let name = name.to_string();
        let v = blocking(&state, move |e| Ok(e.image_inspect(&name)?)).await?;
        return Ok(Json(v).into_response());
    }
    if let Some(name) = path.strip_suffix("/history") {
        let name = name.to_string();
        let v = blocking(&state, move |e| Ok(e.image_history(&name)?)).await?;
        return Ok(Json(v).into_response());
    }
    if let Some(name) = path.strip_suffix("/get") {
        return save(&state, vec![name.to_string()]).await;
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("page not found: /images/{path}"),
    ))
}

/// `POST /images/{name}/tag|push`.
pub async fn by_name_post(
    St(state): St<State>,
    Path(path): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    if let Some(name) = path.strip_suffix("/tag") {
        let repo = q
            .get("repo")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ApiError::bad("repository name must have at least one component"))?;
        let target = match q.get("tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_string(),
        };
        let source = name.to_string();
        blocking(&state, move |e| Ok(e.image_tag(&source, &target)?)).await?;
        return Ok(StatusCode::CREATED.into_response());
    }
    if let Some(name) = path.strip_suffix("/push") {
        let reference = match q.get("tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{name}:{t}"),
            None => name.to_string(),
        };
        let creds = credentials(&headers)?;
        return push(&state, reference, creds).await;
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("page not found: /images/{path}"),
    ))
}

/// `DELETE /images/{name}?force=&noprune=`.
pub async fn remove(
    St(state): St<State>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let force = Query::parse(q.as_deref()).bool("force", false);
    let items = blocking(&state, move |e| Ok(e.image_remove(&name, force)?)).await?;
    Ok(Json(items).into_response())
}

/// `POST /images/prune?filters=`.
pub async fn prune(St(state): St<State>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let f = Query::parse(q.as_deref()).filters()?;
    let r = blocking(&state, move |e| Ok(e.image_prune(&f)?)).await?;
    Ok(Json(r).into_response())
}

/// `X-Registry-Auth`: base64url JSON with `username`, `password` (none when absent or
/// empty).
fn credentials(headers: &HeaderMap) -> ApiResult<Option<Credentials>> {
    let Some(raw) = headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim()))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw.trim()))
        .map_err(|_| ApiError::bad("invalid X-Registry-Auth header"))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match (v["username"].as_str(), v["password"].as_str()) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials {
            username: u.into(),
            password: p.into(),
        })),
        _ => Ok(None),
    }
}

/// Docker's progress line for one layer step.
fn progress_line(e: &ProgressEvent) -> Value {
    let detail = if e.total > 0 || e.current > 0 {
        json!({"current": e.current, "total": e.total})
    } else {
        json!({})
    };
    json!({"status": e.status.as_str(), "progressDetail": detail, "id": e.id})
}

fn error_line(w: &mut ChannelWriter, message: &str) {
    let _ = line(
        w,
        &json!({"errorDetail": {"message": message}, "error": message}),
    );
}

/// `POST /images/create`: `fromImage` pulls, `fromSrc=-` imports the body.
pub async fn create(
    St(state): St<State>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    if let Some(src) = q.get("fromSrc").filter(|s| !s.is_empty()) {
        if src != "-" {
            return Err(ApiError::bad(format!(
                "importing from {src} is not supported: send the tar as the body (fromSrc=-)"
            )));
        }
        let reference = match (q.get("repo").filter(|r| !r.is_empty()), q.get("tag")) {
            (Some(r), Some(t)) if !t.is_empty() => Some(format!("{r}:{t}")),
            (Some(r), _) => Some(r.to_string()),
            _ => None,
        };
        let opts = ImportOptions {
            reference,
            changes: q.all("changes"),
            message: q
                .get("message")
                .filter(|m| !m.is_empty())
                .map(str::to_string),
            source: Some("-".into()),
        };
        let mut input = reader(body);
        let id = blocking(&state, move |e| Ok(e.image_import(&mut input, &opts)?)).await?;
        let (mut w, out) = stream();
        tokio::task::spawn_blocking(move || {
            let _ = line(&mut w, &json!({"status": id.to_string()}));
        });
        return Ok(json_stream(out));
    }
    let Some(image) = q.get("fromImage").filter(|i| !i.is_empty()) else {
        return Err(ApiError::bad("fromImage or fromSrc is required"));
    };
    let reference = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) if !image.contains('@') => format!("{image}:{t}"),
        _ => image.to_string(),
    };
    let parsed = hako_image::Reference::parse(&reference)
        .map_err(|e| ApiError::bad(format!("invalid reference format: {e}")))?;
    let platform = q
        .get("platform")
        .filter(|p| !p.is_empty())
        .map(Platform::parse)
        .transpose()
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let creds = credentials(&headers)?;
    // Docker's API: no tag (and none in the name) pulls every tag the registry lists (the
    // docker CLI sends tag=latest unless `pull --all-tags`).
    let all_tags = q.get("tag").is_none_or(str::is_empty)
        && parsed.tag().is_none()
        && parsed.digest().is_none();
    let (mut w, out) = stream();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let base = PullOptions {
            credentials: creds.clone(),
            ..PullOptions::default()
        };
        let names = if all_tags {
            match engine.registry_tags(&reference, &base) {
                Ok(tags) => tags.iter().map(|t| format!("{reference}:{t}")).collect(),
                Err(e) => return error_line(&mut w, &e.to_string()),
            }
        } else {
            vec![reference.clone()]
        };
        let mut last = None;
        for name in &names {
            let Ok(one) = hako_image::Reference::parse(name) else {
                continue;
            };
            let what = one.digest().map_or_else(
                || one.tag().unwrap_or("latest").to_string(),
                ToString::to_string,
            );
            let _ = line(
                &mut w,
                &json!({"status": format!("Pulling from {}", one.familiar_repository()), "id": what}),
            );
            let progress_w = std::sync::Mutex::new(w.clone());
            let show = |e: ProgressEvent| {
                if let Ok(mut w) = progress_w.lock() {
                    let _ = line(&mut w, &progress_line(&e));
                }
            };
            let opts = PullOptions {
                platform: platform.clone(),
                credentials: creds.clone(),
                progress: Some(&show),
                ..PullOptions::default()
            };
            match engine.image_pull(name, &opts) {
                Ok(report) => {
                    let _ = line(
                        &mut w,
                        &json!({"status": format!("Digest: {}", report.digest)}),
                    );
                    let new = report.new || last.as_ref().is_some_and(|(n, _)| *n);
                    last = Some((new, report.reference));
                }
                Err(e) => return error_line(&mut w, &e.to_string()),
            }
        }
        if let Some((new, reference)) = last {
            // One status at the end; for all tags it names the repository, as dockerd's.
            let what = if all_tags {
                parsed.familiar_repository()
            } else {
                reference
            };
            let status = if new {
                format!("Status: Downloaded newer image for {what}")
            } else {
                format!("Status: Image is up to date for {what}")
            };
            let _ = line(&mut w, &json!({ "status": status }));
        }
    });
    Ok(json_stream(out))
}

async fn push(state: &State, reference: String, creds: Option<Credentials>) -> ApiResult<Response> {
    blocking(state, {
        let r = reference.clone();
        move |e| {
            Ok(e.images()
                .resolve(&r)
                .map(|_| ())
                .map_err(hako_engine::Error::from)?)
        }
    })
    .await?;
    let (mut w, out) = stream();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let repo = hako_image::Reference::parse(&reference)
            .map(|r| r.familiar_repository())
            .unwrap_or_else(|_| reference.clone());
        let _ = line(
            &mut w,
            &json!({"status": format!("The push refers to repository [{repo}]")}),
        );
        let progress_w = std::sync::Mutex::new(w.clone());
        let show = |e: ProgressEvent| {
            if let Ok(mut w) = progress_w.lock() {
                let _ = line(&mut w, &progress_line(&e));
            }
        };
        let opts = PushOptions {
            credentials: creds,
            progress: Some(&show),
            ..PushOptions::default()
        };
        match engine.image_push(&reference, &opts) {
            Ok(r) => {
                let _ = line(
                    &mut w,
                    &json!({"status": format!("{}: digest: {} size: {}", r.tag, r.digest, r.size)}),
                );
                let _ = line(
                    &mut w,
                    &json!({"progressDetail": {}, "aux": {"Tag": r.tag, "Digest": r.digest.to_string(), "Size": r.size}}),
                );
            }
            Err(e) => error_line(&mut w, &e.to_string()),
        }
    });
    Ok(json_stream(out))
}

/// `POST /images/load?quiet=`: a `docker save` or OCI tar in the body.
pub async fn load(St(state): St<State>, RawQuery(q): RawQuery, body: Body) -> ApiResult<Response> {
    let _quiet = Query::parse(q.as_deref()).bool("quiet", false);
    let mut input = reader(body);
    let loaded = blocking(&state, move |e| Ok(e.image_load(&mut input)?)).await?;
    let (mut w, out) = stream();
    tokio::task::spawn_blocking(move || {
        for img in loaded {
            if img.tags.is_empty() {
                let _ = line(
                    &mut w,
                    &json!({"stream": format!("Loaded image ID: {}\n", img.id)}),
                );
            }
            for t in img.tags {
                let _ = line(&mut w, &json!({"stream": format!("Loaded image: {t}\n")}));
            }
        }
    });
    Ok(json_stream(out))
}

/// `GET /images/get?names=a&names=b`.
pub async fn save_many(St(state): St<State>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let names = Query::parse(q.as_deref()).all("names");
    if names.is_empty() {
        return Err(ApiError::bad("names is required"));
    }
    save(&state, names).await
}

async fn save(state: &State, names: Vec<String>) -> ApiResult<Response> {
    blocking(state, {
        let names = names.clone();
        move |e| {
            for n in &names {
                e.image_inspect(n)?;
            }
            Ok(())
        }
    })
    .await?;
    let (mut w, out) = stream();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = engine.image_save(&refs, &mut w);
    });
    let mut r = Response::new(out);
    r.headers_mut()
        .insert("content-type", "application/x-tar".parse().expect("header"));
    Ok(r)
}
