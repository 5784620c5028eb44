//! The request log: one span per request with its method and URI, sensitive query values
//! redacted, so that no secret reaches a log line at any level.
//!
//! Query parameters can carry credentials: a presigned S3 URL's `X-Amz-Credential` (a token as
//! access key) and signature, an OAuth `code`, `state` or `id_token_hint`, a device `user_code`.
//! Their values are replaced by `REDACTED`; headers are never logged (`Authorization` and
//! `Cookie` are also marked sensitive for any layer that would).

use axum::body::Body;
use axum::http::{Request, Response, Uri};
use std::time::Duration;
use tracing::Span;

/// Query parameter names whose values are secrets or one-time codes (compared without case).
const SENSITIVE: &[&str] = &[
    "x-amz-credential",
    "x-amz-signature",
    "x-amz-security-token",
    "signature",
    "awsaccesskeyid",
    "code",
    "token",
    "state",
    "access_token",
    "refresh_token",
    "id_token",
    "id_token_hint",
    "client_secret",
    "cells_secret",
    "password",
    "user_code",
    "device_code",
    "code_verifier",
    "logout_challenge",
];

const REDACTED: &str = "REDACTED";

/// `uri` with the value of every sensitive query parameter replaced.
pub fn redacted(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_sensitive(name) => format!("{name}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

fn is_sensitive(name: &str) -> bool {
    let decoded = cells_core::files::path::percent_decode(name);
    let decoded = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
    SENSITIVE.contains(&decoded.as_str())
}

/// The span of one request.
pub fn span(request: &Request<Body>) -> Span {
    tracing::debug_span!("request", method = %request.method(), uri = %redacted(request.uri()))
}

/// The line that ends a request, at debug level.
pub fn on_response(response: &Response<Body>, latency: Duration, _span: &Span) {
    tracing::debug!(
        status = response.status().as_u16(),
        latency_ms = latency.as_millis() as u64,
        "answered"
    );
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn secrets_in_queries_are_redacted() {
        let uri = "/io/personal-files/a.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=cpat_secret%2F20261206%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=abcdef&x-id=GetObject"
            .parse()
            .unwrap();
        let line = redacted(&uri);
        assert!(
            !line.contains("cpat_secret") && !line.contains("abcdef"),
            "{line}"
        );
        assert!(line.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256") && line.contains("x-id=GetObject"));
        let uri = "/oauth2/oob?code=ory_ac_secret&state=s3cret&scope=openid"
            .parse()
            .unwrap();
        assert_eq!(
            redacted(&uri),
            "/oauth2/oob?code=REDACTED&state=REDACTED&scope=openid"
        );
        let uri = "/x?%63ode=hidden".parse().unwrap();
        assert_eq!(redacted(&uri), "/x?%63ode=REDACTED");
        assert_eq!(redacted(&"/a/b".parse().unwrap()), "/a/b");
    }
}
