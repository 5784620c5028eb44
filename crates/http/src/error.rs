//! REST rendering of `Error`: Cells' `{"Code","Title","Detail"}` JSON with the right status,
//! `WWW-Authenticate` on 401 and `Retry-After` on 429 and 503. Internal causes are logged, not sent.
//!
//! `Failure` carries the core's `Error` to axum (which cannot render a type of another crate);
//! handlers return `Result<T>` of this module and `?` converts.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use cells_core::error::Error;

/// The core's error on its way to becoming an HTTP answer.
#[derive(Debug)]
pub struct Failure(pub Error);

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure(error)
    }
}

/// What a REST handler returns.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// What a 503 asks the client to wait (RFC 9110 §10.2.3): the database or the blob store is
/// checked again about this often while it is down.
pub const RETRY_AFTER_UNAVAILABLE: u64 = 2;

/// The HTTP status of each kind of error.
pub fn status(error: &Error) -> StatusCode {
    match error {
        Error::Unauthenticated(_) | Error::AccountLocked => StatusCode::UNAUTHORIZED,
        Error::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) | Error::ParentMissing(_) | Error::AlreadyExists(_) | Error::IsFolder(_) => {
            StatusCode::CONFLICT
        }
        Error::Locked(_) => StatusCode::LOCKED,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::TooLarge(_) | Error::FileTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn rest_error(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({ "Code": status.as_u16(), "Title": title, "Detail": detail });
    (status, Json(body)).into_response()
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(error) = self;
        if let Error::Internal(cause) = &error {
            tracing::error!(error = ?cause, "internal error");
        }
        let status = status(&error);
        let title = status.canonical_reason().unwrap_or("Error");
        let mut response = rest_error(status, title, &error.to_string());
        let headers = response.headers_mut();
        match &error {
            Error::Unauthenticated(_) | Error::AccountLocked => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"Cells\", Bearer"),
                );
            }
            Error::Throttled(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
            }
            Error::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_UNAVAILABLE));
            }
            Error::RangeNotSatisfiable(size) => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}
