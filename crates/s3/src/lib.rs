//! S3 gateway: one bucket, `io` (also named `cells`, `s3-bucket-alias`), whose keys are
//! `<workspace>/<path>` in the shared file tree.
//!
//! s3s parses the protocol and verifies Signature V4 (header, presigned URL and
//! `aws-chunked` streaming forms) and V2. Our part: which secret goes with an access key
//! (`auth`), turning the access key into the same `Principal` every protocol uses, and the
//! operations themselves (`gateway`, `list`, `multipart`) on `files::Tree`, which decides
//! every permission. Path style only: the bucket is the first segment of the URL path, and
//! ListBuckets is a signed `GET /` (routed here by `is_s3_request`, so `/` stays free for
//! the web pages).

pub mod auth;
pub mod copy;
pub mod gateway;
pub mod list;
pub mod multipart;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use bytes::Bytes;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Error, S3ErrorCode};

use cells_core::SharedApp;
use cells_core::auth::Client;
use cells_core::error::Error;
use cells_http::extract::client_address;

/// The one bucket (SPEC §4).
pub const BUCKET: &str = "io";
/// The region clients must sign for.
pub const REGION: &str = "us-east-1";

/// What the S3 hooks that s3s calls without the request (`S3Auth`) need to know about it.
pub(crate) struct RequestScope {
    pub client: Client,
    /// Set once the access key became a `Principal` (the signature was good).
    pub authenticated: AtomicBool,
}

tokio::task_local! {
    pub(crate) static REQUEST: Arc<RequestScope>;
}

/// Routes `/io`, `/<alias>` and everything below them.
pub fn routes(app: SharedApp) -> Router<SharedApp> {
    let alias = app.config.s3_bucket_alias.clone();
    let service = build(app.clone());
    let handler = tower::service_fn(move |request: Request<Body>| {
        let app = app.clone();
        let service = service.clone();
        async move { Ok::<_, std::convert::Infallible>(serve(app, service, request).await) }
    });
    let mut router = Router::new();
    for bucket in [BUCKET, &alias] {
        router = router
            .route_service(&format!("/{bucket}"), handler.clone())
            .route_service(&format!("/{bucket}/"), handler.clone())
            .route_service(&format!("/{bucket}/{{*key}}"), handler.clone());
    }
    router
}

/// Whether `name` is one of the bucket's two names.
pub fn is_bucket(app: &SharedApp, name: &str) -> bool {
    name == BUCKET || name == app.config.s3_bucket_alias
}

/// The service for requests that reach S3 outside `/io` (a signed `GET /`).
pub fn service(app: SharedApp) -> S3Service {
    build(app)
}

fn build(app: SharedApp) -> S3Service {
    let mut builder = S3ServiceBuilder::new(gateway::Gateway::new(app.clone()));
    builder.set_auth(auth::Keys::new(app.clone()));
    builder.set_access(auth::Access::new(app.clone()));
    builder.set_route(copy::CopyRoute::new(app));
    // Any bucket name parses, so that a wrong one is answered with NoSuchBucket (AWS names
    // must be 3 characters long; ours is `io`).
    builder.set_validation(AnyBucketName);
    builder.build()
}

struct AnyBucketName;

impl s3s::validation::NameValidation for AnyBucketName {
    fn validate_bucket_name(&self, name: &str) -> bool {
        !name.is_empty()
    }
}

/// Whether a request outside `/io` is meant for S3: it carries an AWS signature, in the
/// `Authorization` header or in the query (presigned).
pub fn is_s3_request<B>(request: &Request<B>) -> bool {
    let signed_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 ") || v.starts_with("AWS "));
    let signed_query = request
        .uri()
        .query()
        .is_some_and(|q| q.contains("X-Amz-Signature=") || q.contains("Signature="));
    signed_header || signed_query
}

/// Serve one S3 request, with the user-content headers (`http::user_content`) whatever the
/// stored type or a presigned URL's `response-content-type` asks for.
pub async fn serve(app: SharedApp, service: S3Service, request: Request<Body>) -> Response<Body> {
    let method = request.method().clone();
    let mut response = answer(app, service, request).await;
    let status = response.status();
    cells_http::user_content::harden(&method, status, response.headers_mut());
    response
}

/// Throttle, run s3s with the client in scope, then add the request id and count a refused
/// signature as a failed attempt of that address.
async fn answer(app: SharedApp, service: S3Service, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let client = Client {
        protocol: "s3",
        address: client_address(&parts),
    };
    let request_id = uuid::Uuid::new_v4().simple().to_string().to_uppercase()[..16].to_string();
    if let Err(retry) = app.auth.throttle().check(client.address) {
        let mut error = S3Error::with_message(S3ErrorCode::SlowDown, Error::Throttled(retry).to_string());
        error.set_status_code(StatusCode::SERVICE_UNAVAILABLE);
        return error_response(error, &request_id);
    }
    if let Some(seconds) = presigned_expiry(&parts)
        && !(1..=MAX_PRESIGNED_SECONDS).contains(&seconds)
    {
        let mut error = S3Error::with_message(
            S3ErrorCode::Custom("AuthorizationQueryParametersError".into()),
            "X-Amz-Expires must be between 1 and 604800 seconds (7 days)",
        );
        error.set_status_code(StatusCode::BAD_REQUEST);
        return error_response(error, &request_id);
    }
    if let Some(region) = signed_region(&parts)
        && region != REGION
    {
        return wrong_region(&region, &request_id);
    }
    let scope = Arc::new(RequestScope {
        client,
        authenticated: AtomicBool::new(false),
    });
    let request = Request::from_parts(parts, s3s::Body::http_body_unsync(body));
    let outcome = REQUEST.scope(scope.clone(), service.call(request)).await;
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(error = ?error, "the S3 service failed");
            return error_response(S3Error::new(S3ErrorCode::InternalError), &request_id);
        }
    };
    if response.status() == StatusCode::FORBIDDEN && !scope.authenticated.load(Ordering::Relaxed) {
        app.auth.throttle().failed(client.address);
    }
    finish(response, &request_id)
}

/// The longest a presigned URL may live, as AWS allows (Signature V4 query authentication).
const MAX_PRESIGNED_SECONDS: i64 = 7 * 24 * 3600;

/// How long a presigned URL lives, in seconds from now (`Some(-1)` when unreadable):
/// Signature V4's `X-Amz-Expires`, or Signature V2's absolute `Expires`. Every occurrence of
/// either name counts, compared decoded and without case, and the longest wins: s3s reads
/// names exactly and prefers V2, so a decoy spelled otherwise must not hide the one it checks.
pub fn presigned_expiry(parts: &axum::http::request::Parts) -> Option<i64> {
    let query = parts.uri.query()?;
    let decode =
        |text: &str| String::from_utf8_lossy(&cells_core::files::path::percent_decode(text)).into_owned();
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (decode(name).to_ascii_lowercase(), decode(value)))
        .collect();
    let has = |wanted: &str| pairs.iter().any(|(name, _)| name == wanted);
    let signed_v2 = has("signature") && has("awsaccesskeyid");
    let lifetimes: Vec<i64> = pairs
        .iter()
        .filter_map(|(name, value)| match name.as_str() {
            "x-amz-expires" => Some(value.trim().parse::<i64>().unwrap_or(-1)),
            // Already expired: s3s refuses it; any positive lifetime here passes on to it.
            "expires" if signed_v2 => Some(match value.trim().parse::<i64>() {
                Ok(at) => (at - cells_core::records::now()).max(1),
                Err(_) => -1,
            }),
            _ => None,
        })
        .collect();
    if lifetimes.contains(&-1) {
        return Some(-1);
    }
    lifetimes.into_iter().max()
}

/// The region a request is signed for (`Credential=KEY/DATE/REGION/s3/aws4_request`, in the
/// header or the presigned query).
pub fn signed_region(parts: &axum::http::request::Parts) -> Option<String> {
    let from_header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .map(|c| c.split([',', ' ']).next().unwrap_or_default().to_string());
    let from_query = || {
        parts.uri.query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("X-Amz-Credential="))
                .map(|c| c.replace("%2F", "/").replace("%2f", "/"))
        })
    };
    let credential = from_header.or_else(from_query)?;
    let mut fields = credential.rsplitn(4, '/');
    let (_request, _service, region) = (fields.next()?, fields.next()?, fields.next()?);
    Some(region.to_string())
}

/// AWS's answer to a request signed for another region: clients such as s3cmd (whose default
/// region is `US`) read `<Region>` and sign again.
fn wrong_region(region: &str, request_id: &str) -> Response<Body> {
    let escaped: String = region
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AuthorizationHeaderMalformed</Code>\
         <Message>the region '{escaped}' is wrong; expecting '{REGION}'</Message><Region>{REGION}</Region>\
         <RequestId>{request_id}</RequestId></Error>"
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amz-request-id", value);
    }
    response
}

/// Add `x-amz-request-id`, and the request id into an error document (s3s leaves it out).
fn finish(response: Response<s3s::Body>, request_id: &str) -> Response<Body> {
    let (mut parts, mut body) = response.into_parts();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        parts.headers.insert("x-amz-request-id", value);
    }
    if parts.status.is_client_error() || parts.status.is_server_error() {
        if let Some(bytes) = body.bytes()
            && let Some(with_id) = with_request_id(&bytes, request_id)
        {
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, Body::from(with_id));
        }
        let _ = body.take_bytes();
    }
    Response::from_parts(parts, Body::new(body))
}

fn with_request_id(document: &[u8], request_id: &str) -> Option<Bytes> {
    let text = std::str::from_utf8(document).ok()?;
    if text.contains("<RequestId>") {
        return None;
    }
    let at = text.rfind("</Error>")?;
    Some(Bytes::from(format!(
        "{}<RequestId>{request_id}</RequestId>{}",
        &text[..at],
        &text[at..]
    )))
}

fn error_response(error: S3Error, request_id: &str) -> Response<Body> {
    match error.to_http_response() {
        Ok(response) => finish(response, request_id),
        Err(_) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// Our error as S3 speaks it (each code with the status AWS gives it).
pub fn s3_error(error: Error) -> S3Error {
    let (code, message) = match error {
        Error::Unauthenticated(message) => (S3ErrorCode::InvalidAccessKeyId, message),
        Error::AccountLocked => (S3ErrorCode::AccessDenied, Error::AccountLocked.to_string()),
        Error::Throttled(seconds) => (S3ErrorCode::SlowDown, Error::Throttled(seconds).to_string()),
        Error::Forbidden(message) => (S3ErrorCode::AccessDenied, message),
        Error::NotFound(message) => (S3ErrorCode::NoSuchKey, message),
        error @ (Error::Conflict(_)
        | Error::ParentMissing(_)
        | Error::AlreadyExists(_)
        | Error::IsFolder(_)) => (S3ErrorCode::InvalidRequest, error.to_string()),
        // S3 has no locks: its code for an operation that conflicts with another one in
        // progress, 409.
        Error::Locked(message) => (S3ErrorCode::OperationAborted, message),
        error @ Error::Unavailable(_) => (S3ErrorCode::ServiceUnavailable, error.to_string()),
        error @ Error::InsufficientStorage(_) => {
            let mut full = S3Error::with_message(
                S3ErrorCode::Custom("InsufficientStorage".into()),
                error.to_string(),
            );
            full.set_status_code(StatusCode::INSUFFICIENT_STORAGE);
            return full;
        }
        error @ Error::Invalid { .. } => (S3ErrorCode::InvalidArgument, error.to_string()),
        error @ (Error::TooLarge(_) | Error::FileTooLarge(_)) => {
            (S3ErrorCode::EntityTooLarge, error.to_string())
        }
        error @ Error::RangeNotSatisfiable(_) => (S3ErrorCode::InvalidRange, error.to_string()),
        Error::Internal(cause) => return internal(cause),
    };
    S3Error::with_message(code, message)
}

/// An internal failure, or a request body that broke off or failed its checksum (s3s
/// reports those as errors of the body stream, which reach us as `InvalidData`).
fn internal(cause: anyhow::Error) -> S3Error {
    if let Some(io) = cause.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::InvalidData
    {
        // s3s's stream error types are private; their messages name the failure.
        let text = io.to_string();
        let (code, message) = if text.contains("Sha256Mismatch") {
            (
                S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                "the content does not match x-amz-content-sha256",
            )
        } else if text.contains("SignatureMismatch") {
            (
                S3ErrorCode::SignatureDoesNotMatch,
                "a chunk signature of the body does not match",
            )
        } else {
            (
                S3ErrorCode::IncompleteBody,
                "the request body ended early or is malformed; nothing was stored",
            )
        };
        let mut error = S3Error::with_message(code, message);
        error.set_status_code(if text.contains("SignatureMismatch") {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        });
        return error;
    }
    tracing::error!(error = %cause, "S3 request failed");
    S3Error::new(S3ErrorCode::InternalError)
}

#[cfg(test)]
mod tests {
    use super::presigned_expiry;

    fn expiry(query: &str) -> Option<i64> {
        let request = axum::http::Request::builder()
            .uri(format!("/io/a?{query}"))
            .body(())
            .unwrap();
        presigned_expiry(&request.into_parts().0)
    }

    #[test]
    fn presigned_lifetimes_are_read_however_written() {
        assert_eq!(expiry("X-Amz-Expires=300&X-Amz-Signature=x"), Some(300));
        // An encoded name is the same parameter to s3s, so it is to us.
        assert_eq!(expiry("X-Amz-%45xpires=999999999"), Some(999_999_999));
        assert_eq!(expiry("x-amz-expires=abc"), Some(-1));
        // Signature V2: an absolute time, read as a lifetime from now.
        let far = cells_core::records::now() + 10 * 365 * 86_400;
        let lifetime = expiry(&format!("AWSAccessKeyId=k&Expires={far}&Signature=s")).unwrap();
        assert!(lifetime > 7 * 86_400, "{lifetime}");
        assert_eq!(
            expiry("Expires=123"),
            None,
            "not a presigned V2 URL without its signature"
        );
        assert_eq!(expiry("list-type=2"), None);
    }
}
