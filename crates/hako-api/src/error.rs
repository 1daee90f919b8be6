//! Docker's error responses: `{"message": "..."}` with the status code clients act on
//! (404 "No such container/image" triggers the CLI's pull, 409 conflicts, 400 bad input).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hako_engine::Error;

/// An error answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// Docker's message.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::NoSuchContainer(_)
            | Error::NoSuchImage(_)
            | Error::NoSuchVolume(_)
            | Error::NoSuchExec(_)
            | Error::NoSuchNetwork(_)
            | Error::Image(hako_image::Error::NoSuchImage(_)) => StatusCode::NOT_FOUND,
            Error::NameInUse { .. }
            | Error::IllegalTransition { .. }
            | Error::Conflict(_)
            | Error::VolumeInUse { .. }
            | Error::Image(hako_image::Error::ImageInUse { .. }) => StatusCode::CONFLICT,
            Error::InvalidArgument(_) | Error::Ambiguous(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &e {
            Error::NoSuchImage(name) => format!("No such image: {name}"),
            other => other.to_string(),
        };
        ApiError { status, message }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The client shows the message; the server's log keeps what went wrong on its side
        // (as dockerd logs its 500s).
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, "{}", self.message);
        }
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;
