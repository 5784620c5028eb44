//! Request extractors: `Caller` (a `Principal`) from `Authorization`, `Admin`, and `ApiJson` whose
//! rejections are rendered as our JSON errors.
//!
//! A request with no credential is refused (401); an invalid credential is never treated as
//! anonymous.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;

use cells_core::SharedApp;
use cells_core::auth::Client;
use cells_core::auth::principal::Principal;
use cells_core::error::Error;
use cells_core::locks::LockProof;

use crate::error::Failure;

/// Largest JSON body the REST API reads.
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// The address of the peer, for throttling and token last-use records.
pub fn client_address(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Split `Authorization: Basic …` into login and secret.
pub fn parse_basic(value: &str) -> Result<(String, String), Error> {
    let bad = || Error::Unauthenticated("malformed Basic credentials".into());
    let encoded = value
        .get(6..)
        .filter(|_| value[..6].eq_ignore_ascii_case("basic "))
        .ok_or_else(bad)?;
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (login, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok((login.to_string(), secret.to_string()))
}

/// Resolve the `Authorization` header of a request made over `protocol`.
pub async fn authenticate(
    app: &SharedApp,
    parts: &Parts,
    protocol: &'static str,
) -> Result<Principal, Error> {
    let client = Client {
        protocol,
        address: client_address(parts),
    };
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(Error::Unauthenticated("credentials required".into()));
    };
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthenticated("malformed Authorization header".into()))?;
    if value.len() > 8192 {
        return Err(Error::Unauthenticated("Authorization header too long".into()));
    }
    if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
        return app.auth.authenticate_bearer(value[7..].trim(), client).await;
    }
    if value.len() > 6 && value[..6].eq_ignore_ascii_case("basic ") {
        let (login, secret) = parse_basic(value)?;
        return app.auth.authenticate_password(&login, &secret, client).await;
    }
    Err(Error::Unauthenticated(
        "unsupported authorization scheme; use Basic or Bearer".into(),
    ))
}

/// The caller of a REST endpoint: the `Principal` of its `Authorization` header.
pub struct Caller(pub Principal);

impl FromRequestParts<SharedApp> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, app: &SharedApp) -> Result<Self, Self::Rejection> {
        Ok(Caller(authenticate(app, parts, "rest").await?))
    }
}

/// The lock tokens a REST request names in its `If` headers (RFC 4918 §10.4), as the proof
/// that the owner of a WebDAV lock writes through it: `app.tree.proving(proof)`.
pub struct LockTokens(pub LockProof);

/// Most tokens read from one request's `If` headers.
const MAX_LOCK_TOKENS: usize = 64;

/// The state tokens (`<…>` inside a parenthesised list) of `If` header values; resource tags
/// (`<…>` outside parentheses) and entity tags (`[…]`) are not tokens.
pub fn if_header_tokens<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut tokens = Vec::new();
    for value in values {
        let mut depth = 0usize;
        let mut rest = value;
        while let Some(c) = rest.chars().next() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                '<' => {
                    let Some(end) = rest.find('>') else { break };
                    if depth > 0 && tokens.len() < MAX_LOCK_TOKENS {
                        tokens.push(rest[1..end].to_string());
                    }
                    rest = &rest[end + 1..];
                    continue;
                }
                _ => {}
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    tokens
}

impl FromRequestParts<SharedApp> for LockTokens {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _app: &SharedApp) -> Result<Self, Self::Rejection> {
        let values = parts.headers.get_all("if").iter().filter_map(|v| v.to_str().ok());
        Ok(LockTokens(LockProof::Tokens(if_header_tokens(values).into())))
    }
}

/// An administrator with an unrestricted credential.
pub struct Admin(pub Principal);

impl FromRequestParts<SharedApp> for Admin {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, app: &SharedApp) -> Result<Self, Self::Rejection> {
        let Caller(principal) = Caller::from_request_parts(parts, app).await?;
        if !principal.is_admin() {
            return Err(Error::Forbidden("this endpoint is for administrators".into()).into());
        }
        Ok(Admin(principal))
    }
}

/// JSON body with our error rendering and a 1 MiB limit. The content type is not checked:
/// Cells' own examples post JSON with `curl -d`, which labels it as a form.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<SharedApp> for ApiJson<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, _app: &SharedApp) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(request.into_body()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid("body", "a JSON body is required").into());
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| Error::invalid("body", format!("not valid JSON for this endpoint: {e}")).into())
    }
}

/// Oversized bodies are read and dropped up to this size before the 413 is sent, so that a
/// client still writing its body reads our answer instead of a reset connection.
const DRAIN_LIMIT: usize = 64 << 20;

/// The whole body when it is at most `MAX_JSON_BYTES`, else `TooLarge`.
pub async fn read_limited(mut body: axum::body::Body) -> Result<Vec<u8>, Error> {
    use http_body_util::BodyExt;
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Error::invalid("body", "could not read the request body"))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen > DRAIN_LIMIT {
            break;
        }
        if seen <= MAX_JSON_BYTES {
            bytes.extend_from_slice(&data);
        }
    }
    if seen > MAX_JSON_BYTES {
        return Err(Error::TooLarge(MAX_JSON_BYTES));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::if_header_tokens;

    #[test]
    fn if_headers_give_their_state_tokens_only() {
        let tokens = if_header_tokens(
            [
                "(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> [\"etag\"])",
                "<http://example.com/a> (Not <opaquelocktoken:x>) (<urn:uuid:2>)",
                "no tokens <here>",
                "(<unterminated",
            ]
            .into_iter(),
        );
        assert_eq!(
            tokens,
            [
                "urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2",
                "opaquelocktoken:x",
                "urn:uuid:2"
            ]
        );
    }
}
