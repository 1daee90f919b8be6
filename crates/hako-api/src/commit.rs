//! `POST /commit`: a container's changes as a new image (`docker commit`); `POST
//! /containers/{id}/update` (`docker update`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State as St};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hako_image::CommitOptions;
use serde_json::{Value, json};

use crate::State;
use crate::body::{MAX_JSON, blocking};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`: 201 with the
/// new image's id. The body, a container config, is merged with the container's own as
/// dockerd does (its fields win); `changes` (Dockerfile instructions) apply last.
pub async fn commit(
    St(state): St<State>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let Some(container) = q.get("container").filter(|c| !c.is_empty()) else {
        return Err(ApiError::bad("bad parameter: container is required"));
    };
    if body.len() > MAX_JSON {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_JSON} bytes"),
        ));
    }
    // The container config to merge (docker-py's `conf`, bollard's config): typed first,
    // so a wrong type is a 400; the docker CLI sends `null`.
    let config = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let c: Option<hako_engine::models::ContainerConfig> = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?;
        match c.map(serde_json::to_value) {
            Some(Ok(Value::Object(m))) if !m.is_empty() => Some(m),
            _ => None,
        }
    };
    let reference = match (q.get("repo").filter(|r| !r.is_empty()), q.get("tag")) {
        (None, Some(t)) if !t.is_empty() => {
            return Err(ApiError::bad("a tag needs a repository (repo)"));
        }
        (None, _) => None,
        (Some(r), Some(t)) if !t.is_empty() => Some(format!("{r}:{t}")),
        (Some(r), _) => Some(r.to_string()),
    };
    let opts = CommitOptions {
        reference,
        changes: q
            .all("changes")
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect(),
        message: q
            .get("comment")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        author: q
            .get("author")
            .filter(|a| !a.is_empty())
            .map(str::to_string),
        // Docker's default since API 1.13: pause.
        pause: q.bool("pause", true),
        config,
        created_by: None,
    };
    let container = container.to_string();
    let id = blocking(&state, move |e| Ok(e.commit(&container, &opts)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id.to_string()}))).into_response())
}

/// `POST /containers/{id}/update`: new resource limits (and restart policy).
pub async fn update(
    St(state): St<State>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let u: hako_engine::models::ContainerUpdateBody = crate::body::json(&body)?;
    let warnings = blocking(&state, move |e| Ok(e.update(&id, &u)?)).await?;
    Ok(Json(json!({"Warnings": warnings})).into_response())
}
