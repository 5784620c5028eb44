//! `/a/content/<workspace>/<path>`: file content over plain HTTP, streamed both ways.
//!
//! `PUT` writes the body (any size, never held in memory) and commits atomically: 201 for a new
//! file, 200 for an overwrite. `GET`/`HEAD` return the content with `ETag`, `Last-Modified`,
//! single byte ranges (RFC 9110 §14) and `If-None-Match` (§13.1.2).

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::TryStreamExt;

use super::node_json;
use cells_core::SharedApp;
use cells_core::error::Error;
use cells_core::files::path::TreePath;
use cells_http::encoding::http_date;
use cells_http::error::Result;
use cells_http::error::rest_error;
use cells_http::extract::{Caller, LockTokens};
use cells_http::precondition;

pub fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/a/content/{*path}", get(download).put(upload))
        .layer(axum::middleware::from_fn(cells_http::user_content::layer))
}

async fn upload(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    LockTokens(proof): LockTokens,
    Path(path): Path<String>,
    request: Request,
) -> Result<Response> {
    let path = TreePath::parse(&path)?;
    let tree = app.tree.proving(proof);
    let existed = tree.stat(&principal, &path).await.is_ok();
    // A declared length is held in the quota before the first byte arrives.
    let size = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = request
        .into_body()
        .into_data_stream()
        .map_err(cells_core::files::body_error);
    let options = cells_core::files::Write {
        size,
        ..Default::default()
    };
    let entry = tree.write(&principal, &path, Box::pin(body), &options).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(node_json(&entry))).into_response())
}

async fn download(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let path = TreePath::parse(&path)?;
    let entry = app.tree.stat(&principal, &path).await?;
    if entry.node().is_collection() {
        return Err(Error::Conflict(format!("{path} is a folder; list it with /a/tree/stats")).into());
    }
    let etag = format!("\"{}\"", entry.node().etag);
    let size = entry.node().size as u64;
    let current = precondition::Current {
        etag: Some(entry.node().etag.as_str()).filter(|e| !e.is_empty()),
        mtime: entry.node().mtime,
    };
    match precondition::evaluate(&headers, Some(current), true) {
        Some(StatusCode::NOT_MODIFIED) => {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
        Some(status) => {
            let detail = format!("{path} does not meet the request's preconditions");
            return Ok(rest_error(status, "Precondition Failed", &detail));
        }
        None => {}
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(text) => parse_range(text, size)?,
        None => None,
    };
    let (entry, body) = app.tree.open(&principal, &path, range).await?;
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    let length = range.map_or(size, |(_, length)| length);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(Error::internal)?,
    );
    headers.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&http_date(entry.node().mtime)).map_err(Error::internal)?,
    );
    if let Some((offset, length)) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {}-{}/{size}", offset, offset + length - 1);
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).map_err(Error::internal)?,
        );
    }
    Ok(response)
}

/// One `bytes=` range as (offset, length). Several ranges, or a syntax we do not know, are
/// ignored (the whole content is sent, as RFC 9110 §14.2 allows); a range outside the file
/// is 416.
pub fn parse_range(text: &str, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let parsed = match (start.is_empty(), end.is_empty()) {
        (true, true) => return Ok(None),
        (true, false) => {
            let Ok(suffix) = end.parse::<u64>() else {
                return Ok(None);
            };
            if suffix == 0 || size == 0 {
                return Err(Error::RangeNotSatisfiable(size).into());
            }
            let length = suffix.min(size);
            (size - length, length)
        }
        (false, _) => {
            let Ok(first) = start.parse::<u64>() else {
                return Ok(None);
            };
            let last = if end.is_empty() {
                size.saturating_sub(1)
            } else {
                let Ok(last) = end.parse::<u64>() else {
                    return Ok(None);
                };
                if last < first {
                    return Ok(None);
                }
                last.min(size.saturating_sub(1))
            };
            if first >= size {
                return Err(Error::RangeNotSatisfiable(size).into());
            }
            (first, last - first + 1)
        }
    };
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 10)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 10)));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), Some((0, 100)));
        assert_eq!(parse_range("bytes=95-200", 100).unwrap(), Some((95, 5)));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=x-y", 100).unwrap(), None);
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
    }
}
