//! REST rendering of `Error`: Cells' `{"Code","Title","Detail"}` JSON with the right status,
//! `WWW-Authenticate` on 401 and `Retry-After` on 429. Internal causes are logged, not sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthenticated(_) | Error::Locked => StatusCode::UNAUTHORIZED,
            Error::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::TooLarge(_) | Error::FileTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub fn rest_error(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({ "Code": status.as_u16(), "Title": title, "Detail": detail });
    (status, Json(body)).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(cause) = &self {
            tracing::error!(error = ?cause, "internal error");
        }
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let mut response = rest_error(status, title, &self.to_string());
        let headers = response.headers_mut();
        match &self {
            Error::Unauthenticated(_) | Error::Locked => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"Cells\", Bearer"),
                );
            }
            Error::Throttled(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
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
