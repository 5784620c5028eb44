//! The OpenID provider's JSON endpoints under `/oidc`: discovery, JWKS, token (RFC 6749 §3.2),
//! revocation (RFC 7009), introspection (RFC 7662) and userinfo (OIDC Core §5.3).
//!
//! Errors are RFC 6749 §5.2 JSON (`error`, `error_description`) with `Cache-Control: no-store`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;

use cells_core::SharedApp;
use cells_core::auth::oidc::grant::{self, OAuthError, OAuthResult, TokenForm};
use cells_core::auth::oidc::tokens;

use cells_core::auth::throttle::counted_as;
use cells_http::extract::parse_basic;

/// An OAuth error as RFC 6749 §5.2 answers it: JSON, `no-store`, and `WWW-Authenticate` for a
/// client that failed to authenticate.
pub fn oauth_response(error: OAuthError) -> Response {
    {
        let this = error;
        let status = StatusCode::from_u16(this.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (
            status,
            Json(json!({ "error": this.error, "error_description": this.description })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = this.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if this.error == "invalid_client" {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cells\""),
            );
        }
        response
    }
}

fn no_store(value: Value) -> Response {
    let mut response = Json(value).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Public metadata may be read from any origin (as Cells does for its OIDC endpoints).
fn public(value: Value) -> Response {
    let mut response = Json(value).into_response();
    response
        .headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

pub async fn discovery(State(app): State<SharedApp>) -> Response {
    public(app.oidc.discovery())
}

pub async fn jwks(State(app): State<SharedApp>) -> Response {
    public(serde_json::to_value(app.oidc.keys.jwks()).unwrap_or(Value::Null))
}

/// Parse an `application/x-www-form-urlencoded` body; a repeated parameter is an error
/// (RFC 6749 §3.2).
fn parse_form<T: for<'de> Deserialize<'de>>(body: &Bytes) -> OAuthResult<T> {
    if body.len() > 64 * 1024 {
        return Err(OAuthError::invalid_request("request body too large"));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| OAuthError::invalid_request(format!("malformed form: {e}")))
}

/// `client_id:client_secret` from HTTP Basic; both parts are form-urlencoded (RFC 6749 §2.3.1).
fn basic_client(headers: &HeaderMap) -> OAuthResult<Option<(String, String)>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?;
    if !text.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("basic ")) {
        return Err(OAuthError::invalid_client("use HTTP Basic client authentication"));
    }
    let (id, secret) =
        parse_basic(text).map_err(|_| OAuthError::invalid_client("malformed Basic credentials"))?;
    Ok(Some((form_decode(&id)?, form_decode(&secret)?)))
}

fn form_decode(text: &str) -> OAuthResult<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={text}"))
        .map_err(|_| OAuthError::invalid_client("malformed client credentials"))?;
    Ok(pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default())
}

/// Authenticate the client of a request, counting failures toward the address's throttle
/// like every other credential (a client secret can be as weak as seed 003's `password`).
async fn client_of(
    app: &SharedApp,
    peer: SocketAddr,
    headers: &HeaderMap,
    id: Option<&str>,
    secret: Option<&str>,
) -> OAuthResult<cells_core::auth::oidc::clients::OAuthClient> {
    if let Err(seconds) = app.auth.throttle().check(peer.ip()) {
        let mut error = OAuthError::new(
            429,
            "invalid_client",
            format!("too many failed attempts; retry in {seconds} s"),
        );
        error.retry_after = Some(seconds);
        return Err(error);
    }
    let outcome = grant::authenticate_client(&app.oidc, basic_client(headers)?, id, secret).await;
    if matches!(&outcome, Err(e) if e.error == "invalid_client") {
        app.auth.throttle().failed(peer.ip());
    }
    outcome
}

/// A form whose client authenticates in it or in HTTP Basic (RFC 6749 §2.3.1).
trait ClientForm: for<'de> Deserialize<'de> {
    fn credentials(&self) -> (Option<&str>, Option<&str>);
}

impl ClientForm for TokenForm {
    fn credentials(&self) -> (Option<&str>, Option<&str>) {
        (self.client_id.as_deref(), self.client_secret.as_deref())
    }
}

/// Parse an endpoint's form and authenticate its client (throttled per address).
async fn client_request<F: ClientForm>(
    app: &SharedApp,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &Bytes,
) -> OAuthResult<(F, cells_core::auth::oidc::clients::OAuthClient)> {
    let form: F = parse_form(body)?;
    let (id, secret) = form.credentials();
    let client = client_of(app, peer, headers, id, secret).await?;
    Ok((form, client))
}

/// `POST /oidc/oauth2/token`.
pub async fn token(
    State(app): State<SharedApp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match token_inner(&app, peer, &headers, &body).await {
        Ok(value) => no_store(value),
        Err(error) => {
            if error.error == "invalid_grant" {
                // A replayed code or reused refresh token may just have revoked a grant:
                // make it visible on this node at once (others see it at their next poll).
                app.auth.poll_epoch().await;
            }
            oauth_response(error)
        }
    }
}

async fn token_inner(
    app: &SharedApp,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &Bytes,
) -> OAuthResult<Value> {
    let (form, client) = client_request::<TokenForm>(app, peer, headers, body).await?;
    grant::token(&app.oidc, &client, &form).await
}

#[derive(Deserialize)]
struct TokenParam {
    token: Option<String>,
    #[allow(dead_code, reason = "accepted as RFC 7009 allows; we find the type ourselves")]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

impl ClientForm for TokenParam {
    fn credentials(&self) -> (Option<&str>, Option<&str>) {
        (self.client_id.as_deref(), self.client_secret.as_deref())
    }
}

/// `POST /oidc/oauth2/revoke` (RFC 7009): revokes the token's whole grant. Unknown tokens
/// get 200 too (§2.2), so the endpoint tells an attacker nothing.
pub async fn revoke(
    State(app): State<SharedApp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome: OAuthResult<()> = async {
        let (form, client) = client_request::<TokenParam>(&app, peer, &headers, &body).await?;
        let token = form
            .token
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        tokens::revoke(&app, &client, &token).await?;
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => no_store(json!({})),
        Err(error) => oauth_response(error),
    }
}

/// `POST /oidc/oauth2/introspect` (RFC 7662), for confidential clients.
pub async fn introspect(
    State(app): State<SharedApp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome: OAuthResult<Value> = async {
        let (form, client) = client_request::<TokenParam>(&app, peer, &headers, &body).await?;
        if client.is_public() {
            return Err(OAuthError::invalid_client(
                "introspection is for confidential clients",
            ));
        }
        let token = form
            .token
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        tokens::introspect(&app, &client, &token).await
    }
    .await;
    match outcome {
        Ok(value) => no_store(value),
        Err(error) => oauth_response(error),
    }
}

/// `GET|POST /oidc/userinfo` with `Authorization: Bearer <access token>` (scope `openid`).
pub async fn userinfo(State(app): State<SharedApp>, headers: HeaderMap) -> Response {
    let refuse = |description: &str| {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_token", "error_description": description })),
        )
            .into_response();
        let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim().to_string())
        });
    let Some(token) = token else {
        return refuse("a Bearer access token is required");
    };
    let Some(claims) = app.oidc.verify_access(&token) else {
        return refuse("invalid or expired token");
    };
    match tokens::access_is_live(&app, &claims).await {
        Ok(true) => {}
        Ok(false) => return refuse("the token was revoked"),
        Err(error) => return oauth_response(error),
    }
    if !claims.scope.split_whitespace().any(|s| s == "openid") {
        return refuse("the token lacks the openid scope");
    }
    let Some(user_id) = claims.user_id() else {
        return refuse("a client's own token has no user");
    };
    let user = match cells_core::users::find_by_id(&app, user_id).await {
        Ok(Some(user)) if !user.locked => user,
        Ok(_) => return refuse("the user is gone or locked"),
        Err(error) => return oauth_response(OAuthError::server_error(error)),
    };
    no_store(Value::Object(cells_core::auth::oidc::user_claims(
        &user,
        &claims.scope,
    )))
}

#[derive(Deserialize)]
struct DeviceForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

impl ClientForm for DeviceForm {
    fn credentials(&self) -> (Option<&str>, Option<&str>) {
        (self.client_id.as_deref(), self.client_secret.as_deref())
    }
}

/// `POST /oidc/oauth2/device/auth` (RFC 8628 §3.1).
pub async fn device_authorization(
    State(app): State<SharedApp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome: OAuthResult<Value> = async {
        // Each call stores a pending code: one address may not fill the table.
        if let Err(seconds) = app.oidc.device_requests.allow(counted_as(peer.ip())) {
            return Err(OAuthError::new(
                429,
                "slow_down",
                format!("too many device authorizations from this address; retry in {seconds} s"),
            ));
        }
        let (form, client) = client_request::<DeviceForm>(&app, peer, &headers, &body).await?;
        grant::device_authorization(&app.oidc, &client, form.scope.as_deref()).await
    }
    .await;
    match outcome {
        Ok(value) => no_store(value),
        Err(error) => oauth_response(error),
    }
}
