//! `/networks`: Docker's network endpoints over the engine's network calls.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as St};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hako_engine::models::{
    NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest,
    NetworkPruneResponse,
};

use crate::State;
use crate::body::{blocking, json};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;

/// `GET /networks?filters=`: Docker's list (no `Containers`).
pub async fn list(St(state): St<State>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let f = Query::parse(q.as_deref()).filters()?;
    let nets = blocking(&state, move |e| Ok(e.networks(&f)?)).await?;
    Ok(Json(nets).into_response())
}

/// `GET /networks/{id}` (`verbose` and `scope` change nothing for local networks).
pub async fn inspect(
    St(state): St<State>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    if let Some(s) = q.get("scope").filter(|s| !s.is_empty() && *s != "local") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("network {id} not found (hako has no {s}-scoped networks)"),
        ));
    }
    let n = blocking(&state, move |e| Ok(e.network_inspect(&id)?)).await?;
    Ok(Json(n).into_response())
}

/// `POST /networks/create`: 201 with the id. Swarm's kinds of network are refused.
pub async fn create(St(state): St<State>, body: Bytes) -> ApiResult<Response> {
    let req: NetworkCreateRequest = json(&body)?;
    if req.name.is_empty() {
        return Err(ApiError::bad("network name is required"));
    }
    if req.ingress == Some(true) || req.config_only == Some(true) {
        return Err(ApiError::bad(
            "ingress and config-only networks are swarm features; hako has local networks only",
        ));
    }
    if req
        .config_from
        .as_ref()
        .and_then(|c| c.network.as_deref())
        .is_some_and(|n| !n.is_empty())
    {
        return Err(ApiError::bad(
            "--config-from needs config-only networks, which hako does not have",
        ));
    }
    if let Some(s) = req
        .scope
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "local")
    {
        return Err(ApiError::bad(format!(
            "scope {s:?} is not supported (hako's networks are local)"
        )));
    }
    if req.enable_ipv4 == Some(false) {
        return Err(ApiError::bad(
            "IPv4 cannot be disabled on hako's networks (EnableIPv4 false)",
        ));
    }
    let n = blocking(&state, move |e| Ok(e.network_create(&req)?)).await?;
    let r = NetworkCreateResponse {
        id: n.id.unwrap_or_default(),
        warning: String::new(),
    };
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

/// `DELETE /networks/{id}`: 204.
pub async fn remove(St(state): St<State>, Path(id): Path<String>) -> ApiResult<Response> {
    blocking(&state, move |e| Ok(e.network_remove(&id)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /networks/{id}/connect`.
pub async fn connect(
    St(state): St<State>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: NetworkConnectRequest = json(&body)?;
    if req.container.is_empty() {
        return Err(ApiError::bad("a container is required (Container)"));
    }
    blocking(&state, move |e| {
        Ok(e.network_connect(&id, &req.container, req.endpoint_config.as_ref())?)
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(
    St(state): St<State>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: NetworkDisconnectRequest = json(&body)?;
    if req.container.is_empty() {
        return Err(ApiError::bad("a container is required (Container)"));
    }
    blocking(&state, move |e| {
        Ok(e.network_disconnect(&id, &req.container, req.force == Some(true))?)
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /networks/prune?filters=`.
pub async fn prune(St(state): St<State>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let f = Query::parse(q.as_deref()).filters()?;
    let names = blocking(&state, move |e| Ok(e.networks_prune(&f)?)).await?;
    Ok(Json(NetworkPruneResponse {
        networks_deleted: Some(names),
    })
    .into_response())
}
