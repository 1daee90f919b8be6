//! `hako serve`: the Docker Engine API over the same engine the `hako` CLI links, so the
//! stock `docker` CLI, docker-py and compose drive hako unchanged.
//!
//! ```text
//!   client ── unix socket ── hyper (HTTP/1, upgrades) ── version layer: /v1.xx prefix,
//!            Api-Version/Ostype/Server headers, 400 for versions out of range
//!          ── axum router ── handler: query/body → typed engine call in a blocking
//!             thread (the engine is synchronous) → Docker's JSON, a stream, or a
//!             hijacked connection (attach, exec start: 101, then raw stdio)
//! ```
//!
//! The server holds no container logic: every handler maps HTTP to an engine call and
//! back. Containers never depend on the server: it can be killed and restarted at any
//! time and finds them through the engine's store.

mod archive;
mod body;
mod build;
mod commit;
mod containers;
mod error;
mod exec;
mod hijack;
mod images;
mod networks;
mod query;
mod serve;
mod system;
mod tls;
mod version;
mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, head, post};
use hako_engine::Engine;

pub use error::ApiError;
pub use serve::{Listen, ServeOptions, serve};
pub use tls::TlsFiles;

pub use hako_engine::version::{API_VERSION, MIN_API_VERSION};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The engine (blocking; handlers call it through `spawn_blocking`).
    pub engine: Arc<Engine>,
}

/// Shared state handle.
pub type State = Arc<AppState>;

/// The routes, unversioned (the version layer strips `/v1.xx`).
pub fn router(state: State) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/system/df", get(system::df))
        .route("/events", get(system::events))
        .route("/auth", post(system::auth))
        .route("/commit", post(commit::commit))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}", delete(containers::remove))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/update", post(commit::update))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/changes", get(containers::changes))
        .route("/containers/{id}/export", get(containers::export))
        .route(
            "/containers/{id}/archive",
            head(archive::head).get(archive::get).put(archive::put),
        )
        .route("/containers/{id}/attach", post(hijack::attach))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(hijack::exec_start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::save_many))
        .route("/images/prune", post(images::prune))
        .route(
            "/images/{*name}",
            get(images::by_name)
                .post(images::by_name_post)
                .delete(images::remove),
        )
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/build", post(build::build))
        .route("/session", post(build::session))
        .route("/grpc", post(build::session))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .with_state(state)
}
