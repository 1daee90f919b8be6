//! `POST /build` (and BuildKit's `/session`, `/grpc`): the place for helper "build"'s
//! engine call. Until it lands the answer is Docker's "not implemented" error, so clients
//! fail at once with a message instead of hanging.

use axum::http::StatusCode;

use crate::error::ApiError;

/// `POST /build`.
pub async fn build() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "hako serve does not build images yet (POST /build); build with `hako build` once it exists",
    )
}

/// `POST /session`, `POST /grpc` (BuildKit).
pub async fn session() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "BuildKit sessions are not supported by hako serve; set DOCKER_BUILDKIT=0",
    )
}
