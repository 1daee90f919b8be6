//! `/containers/{id}/exec`, `/exec/{id}/json`, `/exec/{id}/resize` (start is hijacked:
//! `hijack.rs`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as St};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hako_engine::ExecOptions;
use serde::Deserialize;
use serde_json::json;

use crate::State;
use crate::body::{blocking, json as json_body};
use crate::error::ApiResult;
use crate::query::Query;

/// Docker's `ExecConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExecBody {
    #[serde(default)]
    attach_stdin: bool,
    #[serde(default)]
    attach_stdout: bool,
    #[serde(default)]
    attach_stderr: bool,
    #[serde(default)]
    console_size: Option<Vec<u16>>,
    #[serde(default)]
    detach_keys: Option<String>,
    #[serde(default)]
    tty: bool,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    privileged: bool,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    working_dir: Option<String>,
}

/// `POST /containers/{id}/exec`: 201 `{"Id": ...}`.
pub async fn create(
    St(state): St<State>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let b: ExecBody = json_body(&body)?;
    let o = ExecOptions {
        cmd: b.cmd.unwrap_or_default(),
        tty: b.tty,
        interactive: b.attach_stdin,
        detach: false,
        env: b.env.unwrap_or_default(),
        user: b.user.filter(|u| !u.is_empty()),
        workdir: b.working_dir.filter(|w| !w.is_empty()),
        privileged: b.privileged,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        detach_keys: b.detach_keys.filter(|k| !k.is_empty()),
        console_size: b
            .console_size
            .filter(|s| s.len() == 2 && s[0] > 0 && s[1] > 0)
            .map(|s| (s[0], s[1])),
    };
    let exec_id = blocking(&state, move |e| Ok(e.exec_create(&id, &o)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

/// `GET /exec/{id}/json`.
pub async fn inspect(St(state): St<State>, Path(id): Path<String>) -> ApiResult<Response> {
    let v = blocking(&state, move |e| Ok(e.exec_inspect(&id)?)).await?;
    Ok(Json(v).into_response())
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (rows, cols) = crate::containers::size(&Query::parse(q.as_deref()))?;
    blocking(&state, move |e| Ok(e.exec_resize(&id, rows, cols)?)).await?;
    Ok(StatusCode::OK.into_response())
}
