//! `/volumes`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as St};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::State;
use crate::body::{blocking, json_or_default};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;

/// `GET /volumes?filters=`.
pub async fn list(St(state): St<State>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let f = Query::parse(q.as_deref()).filters()?;
    let vols = blocking(&state, move |e| Ok(e.volumes(&f)?)).await?;
    let list: Vec<_> = vols.into_iter().map(|(v, _)| v).collect();
    Ok(Json(json!({"Volumes": list, "Warnings": []})).into_response())
}

/// Docker's volume create body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    labels: Option<HashMap<String, String>>,
    #[serde(default)]
    driver_opts: Option<HashMap<String, String>>,
}

/// `POST /volumes/create`: 201 with the volume.
pub async fn create(St(state): St<State>, body: Bytes) -> ApiResult<Response> {
    let b: CreateBody = json_or_default(&body)?;
    if let Some(d) = b
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "local")
    {
        return Err(ApiError::bad(format!(
            "volume driver {d:?} is not supported (hako has the local driver)"
        )));
    }
    if b.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::bad(
            "driver options are not supported by hako's local volumes",
        ));
    }
    let v = blocking(&state, move |e| {
        Ok(e.volume_create(
            b.name.as_deref().filter(|n| !n.is_empty()),
            &b.labels.unwrap_or_default(),
        )?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `GET /volumes/{name}`.
pub async fn inspect(St(state): St<State>, Path(name): Path<String>) -> ApiResult<Response> {
    let v = blocking(&state, move |e| Ok(e.volume_inspect(&name)?)).await?;
    Ok(Json(v).into_response())
}

/// `DELETE /volumes/{name}`.
pub async fn remove(St(state): St<State>, Path(name): Path<String>) -> ApiResult<Response> {
    blocking(&state, move |e| Ok(e.volume_remove(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /volumes/prune?filters=`.
pub async fn prune(St(state): St<State>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let f = Query::parse(q.as_deref()).filters()?;
    let r = blocking(&state, move |e| Ok(e.volume_prune(&f)?)).await?;
    Ok(Json(r).into_response())
}
