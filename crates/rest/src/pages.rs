//! Browser pages of the OpenID provider: `/oidc/oauth2/auth` (RFC 6749 §4.1.1), the login
//! page `/oauth2/login`, consent `/oauth2/consent`, and the code display `/oauth2/oob`
//! (also `/oauth/oob`, the spelling of seed 002).
//!
//! Server-rendered, no JavaScript. Every form carries a CSRF token (`http::session`). The
//! authorization request travels sealed (AES-GCM under the master key) in `login_challenge`,
//! so it cannot be altered between the authorize call and the login. Pages refuse framing.

use std::net::SocketAddr;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cells_core::records::User;
use serde::Deserialize;
use uuid::Uuid;

use cells_core::SharedApp;
use cells_core::auth::oidc::clients::OAuthClient;
use cells_core::auth::oidc::grant::{self, AuthRequest};
use cells_core::auth::sessions;
use cells_core::error::Error;
use cells_http::error::Failure;
use cells_http::session::{
    csrf_ok, csrf_token, expired_session_cookie, session_user, set_cookie, sign_in, with_csrf_cookie,
    with_session_cookie,
};

/// How long the login page accepts an authorization request.
const CHALLENGE_SECONDS: i64 = 15 * 60;

/// The pages' policy: no script at all, our stylesheet only. There is no `form-action`: a
/// sign-in or consent form's answer redirects to the client (RFC 6749 §4.1.2), which browsers
/// would hold to it.
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /oauth2/pages.css`: the pages' stylesheet.
pub async fn stylesheet() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/pages.css"),
    )
        .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// A page with a heading and one paragraph: errors and what happened.
#[derive(Template)]
#[template(path = "oidc/message.html")]
struct Message<'a> {
    title: &'a str,
    heading: &'a str,
    text: &'a str,
    is_error: bool,
}

#[derive(Template)]
#[template(path = "oidc/login.html")]
struct LoginPage<'a> {
    title: &'a str,
    client: &'a str,
    challenge: &'a str,
    csrf: &'a str,
    login: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "oidc/consent.html")]
struct ConsentPage<'a> {
    title: &'a str,
    client: &'a str,
    scopes: Vec<&'a str>,
    redirect: &'a str,
    challenge: &'a str,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "oidc/oob.html")]
struct OobPage<'a> {
    title: &'a str,
    code: &'a str,
    state: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "oidc/device.html")]
struct DevicePage<'a> {
    title: &'a str,
    csrf: &'a str,
    user_code: &'a str,
    asking: Option<&'a str>,
    signed_in: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "oidc/logout.html")]
struct LogoutPage<'a> {
    title: &'a str,
    csrf: &'a str,
    post_logout_redirect_uri: Option<&'a str>,
    state: Option<&'a str>,
    client_id: Option<&'a str>,
}

/// A rendered page with the pages' security headers.
fn page(status: StatusCode, template: &impl Template) -> Response {
    cells_http::html::render(status, template, CSP)
}

/// A heading and a paragraph.
fn message(status: StatusCode, title: &str, text: &str, is_error: bool) -> Response {
    page(
        status,
        &Message {
            title,
            heading: title,
            text,
            is_error,
        },
    )
}

fn error_page(status: StatusCode, text: &str) -> Response {
    page(
        status,
        &Message {
            title: "Error",
            heading: "Cannot continue",
            text,
            is_error: true,
        },
    )
}

fn seal_request(app: &SharedApp, request: &AuthRequest) -> String {
    let json = serde_json::to_vec(request).expect("an AuthRequest serializes");
    app.vault.seal("login_challenge", &json)
}

/// The sealed authorization request, or why the login link cannot be used.
fn open_request(app: &SharedApp, challenge: &str) -> Result<AuthRequest, &'static str> {
    const INVALID: &str = "This login link is invalid. Start again from your application.";
    let plain = app
        .vault
        .unseal("login_challenge", challenge)
        .map_err(|_| INVALID)?;
    let request: AuthRequest = serde_json::from_slice(&plain).map_err(|_| INVALID)?;
    if request.exp < cells_core::records::now() {
        return Err("This login link has expired. Start again from your application.");
    }
    Ok(request)
}

/// `redirect_uri` with `params` added to its query (RFC 6749 §4.1.2).
fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let location = if params.is_empty() {
        uri.to_string()
    } else {
        let query = serde_urlencoded::to_string(params).unwrap_or_default();
        let separator = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{separator}{query}")
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect_error(request_uri: &str, state: Option<&str>, error: &str, description: &str) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect_with(request_uri, &params)
}

#[derive(Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<i64>,
}

/// `POST /oidc/oauth2/auth`: the same request as a form (OIDC Core §3.1.2.1).
pub async fn authorize_post(State(app): State<SharedApp>, headers: HeaderMap, body: Bytes) -> Response {
    match serde_urlencoded::from_bytes::<AuthorizeQuery>(&body) {
        Ok(query) => authorize(State(app), headers, Query(query)).await,
        Err(_) => error_page(StatusCode::BAD_REQUEST, "Malformed authorization request."),
    }
}

/// `GET /oidc/oauth2/auth`.
pub async fn authorize(
    State(app): State<SharedApp>,
    headers: HeaderMap,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    // Until the client and its redirect URI are known good, errors stay on our page
    // (never redirect to an unchecked URI: RFC 6749 §4.1.2.1).
    let Some(client_id) = query.client_id.as_deref() else {
        return error_page(StatusCode::BAD_REQUEST, "client_id is missing.");
    };
    let client = match app.oidc.clients.find(client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return error_page(StatusCode::BAD_REQUEST, "Unknown client."),
        Err(error) => return Failure(error).into_response(),
    };
    let Some(redirect_uri) = query.redirect_uri.clone() else {
        return error_page(StatusCode::BAD_REQUEST, "redirect_uri is missing.");
    };
    if !client.allows_redirect(&redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This redirect_uri is not registered for this client.",
        );
    }
    let state = query.state.as_deref();
    let fail = |error: &str, description: &str| redirect_error(&redirect_uri, state, error, description);
    match query.response_type.as_deref() {
        Some("code") => {}
        // Implicit and hybrid flows are refused (RFC 9700 §2.1.2).
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
        None => return fail("invalid_request", "response_type is required"),
    }
    if !client.allows_grant("authorization_code") {
        return fail(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        );
    }
    let scope = match client.check_scopes(query.scope.as_deref().unwrap_or("openid")) {
        Ok(scopes) => scopes.join(" "),
        Err(error) => return fail("invalid_scope", &error.to_string()),
    };
    match (
        query.code_challenge.as_deref(),
        query.code_challenge_method.as_deref(),
    ) {
        (Some(_), Some("S256")) => {}
        (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256"),
        (None, Some(_)) => return fail("invalid_request", "code_challenge_method without code_challenge"),
        (None, None) if client.is_public() && !client.pkce_optional => {
            return fail(
                "invalid_request",
                "PKCE (code_challenge with S256) is required for public clients",
            );
        }
        (None, None) => {}
    }
    let request = AuthRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.clone(),
        scope,
        state: query.state.clone(),
        nonce: query.nonce.clone(),
        code_challenge: query.code_challenge.clone(),
        exp: cells_core::records::now() + CHALLENGE_SECONDS,
    };
    // `prompt` is a space-separated set (OIDC Core §3.1.2.1); `none` stands alone.
    let prompt: Vec<&str> = query.prompt.as_deref().unwrap_or("").split_whitespace().collect();
    let silent = prompt.contains(&"none");
    if silent && prompt.len() > 1 {
        return fail(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        );
    }
    let session = match session_user(&app, &headers).await {
        Ok(session) => session,
        Err(error) => return Failure(error).into_response(),
    };
    // A session older than max_age, or prompt=login, means signing in again.
    let fresh_enough = |auth_time: i64| {
        query
            .max_age
            .is_none_or(|max| cells_core::records::now() - auth_time <= max)
    };
    let session = session.filter(|(_, _, auth_time)| !prompt.contains(&"login") && fresh_enough(*auth_time));
    match session {
        Some((user, session_id, auth_time)) => {
            if silent && client.always_ask_consent {
                return fail(
                    "consent_required",
                    "this app asks for the user's consent every time",
                );
            }
            if silent && !client.skip_consent {
                match app.oidc.has_consent(user.id, &client.id, &request.scope).await {
                    Ok(true) => {}
                    Ok(false) => return fail("consent_required", "this client needs the user's consent"),
                    Err(error) => return Failure(error).into_response(),
                }
            }
            if prompt.contains(&"consent") {
                return consent_page(&app, &headers, &client, &request);
            }
            continue_as(
                &app, &headers, &client, &user, session_id, auth_time, &request, false,
            )
            .await
        }
        None if silent => fail("login_required", "no browser session"),
        None => {
            let challenge = seal_request(&app, &request);
            let query = serde_urlencoded::to_string([("login_challenge", challenge)]).unwrap_or_default();
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("/oauth2/login?{query}")) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
    }
}

/// After login: consent when needed (unless `consented` just now), else the code, sent to the
/// client's redirect URI.
#[allow(clippy::too_many_arguments)]
async fn continue_as(
    app: &SharedApp,
    headers: &HeaderMap,
    client: &OAuthClient,
    user: &User,
    session: Uuid,
    auth_time: i64,
    request: &AuthRequest,
    consented: bool,
) -> Response {
    if !client.skip_consent && !consented {
        if client.always_ask_consent {
            return consent_page(app, headers, client, request);
        }
        match app.oidc.has_consent(user.id, &client.id, &request.scope).await {
            Ok(true) => {}
            Ok(false) => return consent_page(app, headers, client, request),
            Err(error) => return Failure(error).into_response(),
        }
    }
    match grant::issue_code(&app.oidc, user, request, Some(session), auth_time).await {
        Ok(code) => {
            let mut params = vec![("code", code.as_str())];
            if let Some(state) = request.state.as_deref() {
                params.push(("state", state));
            }
            redirect_with(&request.redirect_uri, &params)
        }
        Err(error) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &error.description),
    }
}

fn login_form(
    app: &SharedApp,
    headers: &HeaderMap,
    challenge: &str,
    client: &str,
    login: &str,
    error: Option<&str>,
) -> Response {
    let csrf = csrf_token(app, headers);
    let status = if error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    let login_page = LoginPage {
        title: "Sign in",
        client,
        challenge,
        csrf: &csrf.token,
        login,
        error,
    };
    with_csrf_cookie(app, page(status, &login_page), &csrf)
}

#[derive(Deserialize)]
pub struct ChallengeQuery {
    login_challenge: Option<String>,
}

/// `GET /oauth2/login?login_challenge=…`.
pub async fn login_page(
    State(app): State<SharedApp>,
    headers: HeaderMap,
    Query(query): Query<ChallengeQuery>,
) -> Response {
    let Some(challenge) = query.login_challenge else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "login_challenge is missing. Start from your application.",
        );
    };
    let request = match open_request(&app, &challenge) {
        Ok(request) => request,
        Err(message) => return error_page(StatusCode::BAD_REQUEST, message),
    };
    let client_name = match app.oidc.clients.find(&request.client_id).await {
        Ok(Some(client)) => client.name,
        _ => request.client_id.clone(),
    };
    login_form(&app, &headers, &challenge, &client_name, "", None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    login_challenge: Option<String>,
    csrf: Option<String>,
    login: Option<String>,
    password: Option<String>,
}

/// `POST /oauth2/login`: check CSRF and credentials, open a browser session, continue.
pub async fn login_submit(
    State(app): State<SharedApp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "Malformed form.");
    };
    if !csrf_ok(&app, &headers, form.csrf.as_deref()) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Missing or invalid CSRF token. Reload the login page.",
        );
    }
    let Some(challenge) = form.login_challenge else {
        return error_page(StatusCode::BAD_REQUEST, "login_challenge is missing.");
    };
    let request = match open_request(&app, &challenge) {
        Ok(request) => request,
        Err(message) => return error_page(StatusCode::BAD_REQUEST, message),
    };
    let client = match app.oidc.clients.find(&request.client_id).await {
        Ok(Some(client)) => client,
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown client."),
    };
    let login = form.login.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let signed_in = match sign_in(&app, &login, &password, peer.ip()).await {
        Ok(signed_in) => signed_in,
        Err(error @ (Error::Unauthenticated(_) | Error::AccountLocked | Error::Throttled(_))) => {
            return login_form(
                &app,
                &headers,
                &challenge,
                &client.name,
                &login,
                Some(&error.to_string()),
            );
        }
        Err(error) => return Failure(error).into_response(),
    };
    let (user, session, now, cookie) = (
        signed_in.user,
        signed_in.id,
        signed_in.auth_time,
        signed_in.cookie,
    );
    // A consent page in this answer belongs to the session it opens (its CSRF token is bound
    // to it).
    let headers = with_session_cookie(&headers, &cookie);
    let mut response = continue_as(&app, &headers, &client, &user, session, now, &request, false).await;
    set_cookie(&mut response, cookie);
    response
}

fn consent_page(
    app: &SharedApp,
    headers: &HeaderMap,
    client: &OAuthClient,
    request: &AuthRequest,
) -> Response {
    let csrf = csrf_token(app, headers);
    let challenge = seal_request(app, request);
    let consent = ConsentPage {
        title: "Allow access",
        client: &client.name,
        scopes: request.scope.split_whitespace().collect(),
        redirect: &request.redirect_uri,
        challenge: &challenge,
        csrf: &csrf.token,
    };
    with_csrf_cookie(app, page(StatusCode::OK, &consent), &csrf)
}

#[derive(Deserialize)]
pub struct ConsentForm {
    login_challenge: Option<String>,
    csrf: Option<String>,
    decision: Option<String>,
}

/// `POST /oauth2/consent`: remember the decision per (user, client, scopes).
pub async fn consent_submit(State(app): State<SharedApp>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<ConsentForm>(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "Malformed form.");
    };
    if !csrf_ok(&app, &headers, form.csrf.as_deref()) {
        return error_page(StatusCode::FORBIDDEN, "Missing or invalid CSRF token.");
    }
    let request = match open_request(&app, form.login_challenge.as_deref().unwrap_or_default()) {
        Ok(request) => request,
        Err(message) => return error_page(StatusCode::BAD_REQUEST, message),
    };
    let Ok(Some((user, session, auth_time))) = session_user(&app, &headers).await else {
        return error_page(
            StatusCode::UNAUTHORIZED,
            "Your session has ended. Start again from your application.",
        );
    };
    let client = match app.oidc.clients.find(&request.client_id).await {
        Ok(Some(client)) => client,
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown client."),
    };
    if form.decision.as_deref() != Some("allow") {
        return redirect_error(
            &request.redirect_uri,
            request.state.as_deref(),
            "access_denied",
            "the user denied access",
        );
    }
    if !client.always_ask_consent
        && let Err(error) = app
            .oidc
            .remember_consent(user.id, &client.id, &request.scope)
            .await
    {
        return Failure(error).into_response();
    }
    continue_as(&app, &headers, &client, &user, session, auth_time, &request, true).await
}

#[derive(Deserialize)]
pub struct OobQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /oauth2/oob` (and `/oauth/oob`): shows the code to copy (seed 003).
pub async fn oob(Query(query): Query<OobQuery>) -> Response {
    if let Some(error) = query.error {
        let description = query.error_description.unwrap_or_default();
        return error_page(StatusCode::BAD_REQUEST, &format!("{error}: {description}"));
    }
    let Some(code) = query.code else {
        return error_page(StatusCode::BAD_REQUEST, "No authorization code here.");
    };
    let oob = OobPage {
        title: "Authorization code",
        code: &code,
        state: query.state.as_deref(),
    };
    page(StatusCode::OK, &oob)
}

#[derive(Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn device_form(
    app: &SharedApp,
    headers: &HeaderMap,
    user_code: &str,
    asking: Option<&str>,
    signed_in: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = csrf_token(app, headers);
    let device = DevicePage {
        title: "Connect a device",
        csrf: &csrf.token,
        user_code,
        asking,
        signed_in,
        error,
    };
    with_csrf_cookie(app, page(status, &device), &csrf)
}

/// The pending device code behind `user_code`, and what it asks for, in words.
async fn device_request(
    app: &SharedApp,
    user_code: &str,
) -> Option<(cells_core::records::DeviceCode, String)> {
    let device = app.oidc.pending_device(user_code).await.ok()??;
    let name = match app.oidc.clients.find(&device.client_id).await {
        Ok(Some(client)) => client.name,
        _ => device.client_id.clone(),
    };
    let words = format!("{name} asks for access with the scopes: {}.", device.scope);
    Some((device, words))
}

/// `GET /oauth2/device?user_code=…` (RFC 8628 §3.3).
pub async fn device_page(
    State(app): State<SharedApp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<DeviceQuery>,
) -> Response {
    let signed_in = match session_user(&app, &headers).await {
        Ok(session) => session.map(|(user, _, _)| user.login),
        Err(error) => return Failure(error).into_response(),
    };
    let code = query.user_code.unwrap_or_default();
    // A code in the link tells valid codes from others: throttled as the form's POST is.
    if !code.is_empty()
        && let Err(seconds) = app.auth.throttle().check(peer.ip())
    {
        return error_page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many attempts; retry in {seconds} s."),
        );
    }
    let asking = if code.is_empty() {
        None
    } else {
        let found = device_request(&app, &code).await.map(|(_, words)| words);
        if found.is_none() {
            app.auth.throttle().failed(peer.ip());
        }
        found
    };
    let error = (!code.is_empty() && asking.is_none()).then_some("This code is unknown or has expired.");
    device_form(
        &app,
        &headers,
        &code,
        asking.as_deref(),
        signed_in.as_deref(),
        error,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct DeviceSubmit {
    csrf: Option<String>,
    user_code: Option<String>,
    login: Option<String>,
    password: Option<String>,
    decision: Option<String>,
}

/// `POST /oauth2/device`: the signed-in (or signing-in) user allows or denies the device.
pub async fn device_submit(
    State(app): State<SharedApp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<DeviceSubmit>(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "Malformed form.");
    };
    if !csrf_ok(&app, &headers, form.csrf.as_deref()) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Missing or invalid CSRF token. Reload the page.",
        );
    }
    let code = form.user_code.unwrap_or_default();
    let session = match session_user(&app, &headers).await {
        Ok(session) => session,
        Err(error) => return Failure(error).into_response(),
    };
    if let Err(seconds) = app.auth.throttle().check(peer.ip()) {
        return error_page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many attempts; retry in {seconds} s."),
        );
    }
    let Some((device, asking)) = device_request(&app, &code).await else {
        // Guessing codes is throttled like passwords: 8 letters of 20 are many, not infinite.
        app.auth.throttle().failed(peer.ip());
        let signed_in = session.as_ref().map(|(user, _, _)| user.login.clone());
        let error = Some("This code is unknown or has expired.");
        return device_form(
            &app,
            &headers,
            &code,
            None,
            signed_in.as_deref(),
            error,
            StatusCode::BAD_REQUEST,
        );
    };
    let mut new_session = None;
    let user = match session {
        Some((user, _, _)) => user,
        None => {
            let login = form.login.unwrap_or_default();
            match sign_in(&app, &login, &form.password.unwrap_or_default(), peer.ip()).await {
                Ok(signed_in) => {
                    new_session = Some(signed_in.cookie);
                    signed_in.user
                }
                Err(error @ (Error::Unauthenticated(_) | Error::AccountLocked | Error::Throttled(_))) => {
                    let message = error.to_string();
                    let status = StatusCode::UNAUTHORIZED;
                    return device_form(&app, &headers, &code, Some(&asking), None, Some(&message), status);
                }
                Err(error) => return Failure(error).into_response(),
            }
        }
    };
    let allow = form.decision.as_deref() == Some("allow");
    match app.oidc.decide_device(&device.user_code, user.id, allow).await {
        Ok(true) => {}
        Ok(false) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This code was already answered or has expired.",
            );
        }
        Err(error) => return Failure(error).into_response(),
    }
    let (title, text) = if allow {
        (
            "Device connected",
            "You allowed the device. You can go back to it now.",
        )
    } else {
        ("Access denied", "You denied the device. Nothing was shared.")
    };
    let mut done = message(StatusCode::OK, title, text, false);
    if let Some(cookie) = new_session {
        set_cookie(&mut done, cookie);
    }
    done
}

#[derive(Deserialize)]
pub struct LogoutQuery {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    csrf: Option<String>,
}

/// `GET /oidc/oauth2/sessions/logout` (OpenID RP-Initiated Logout 1.0). With a valid
/// `id_token_hint` the session ends at once; without one, the user confirms (a form with a
/// CSRF token), so that no other site can sign the user out.
pub async fn logout(
    State(app): State<SharedApp>,
    headers: HeaderMap,
    Query(query): Query<LogoutQuery>,
) -> Response {
    let hint = query
        .id_token_hint
        .as_deref()
        .and_then(|t| app.oidc.read_id_token_hint(t));
    if query.id_token_hint.is_some() && hint.is_none() {
        return error_page(
            StatusCode::BAD_REQUEST,
            "id_token_hint is not an ID token of this server.",
        );
    }
    let client_id = hint
        .as_ref()
        .map(|hint| hint.client_id.clone())
        .or_else(|| query.client_id.clone());
    if let Err(response) = check_post_logout(
        &app,
        client_id.as_deref(),
        query.post_logout_redirect_uri.as_deref(),
    )
    .await
    {
        return *response;
    }
    // A GET ends the browser's session only when the hint names that very session and user:
    // any page can make a browser send a GET with an ID token of the attacker's own (a CSRF
    // logout). Anything else asks the person first.
    let browser = session_user(&app, &headers).await.ok().flatten();
    let matches = match (&hint, &browser) {
        (Some(hint), Some((user, session, _))) => {
            hint.user_id == user.id && hint.session_id == Some(*session)
        }
        _ => false,
    };
    // With no session in this browser, the one the hint names ends (RP-initiated logout from
    // another browser); a page could only make a browser end a session of the attacker's own.
    if browser.is_none()
        && let Some(session) = hint.as_ref().and_then(|hint| hint.session_id)
        && let Err(error) = sessions::end(&app, session).await
    {
        return Failure(error).into_response();
    }
    if matches || (browser.is_none() && hint.is_some()) {
        return finish_logout(
            &app,
            &headers,
            query.post_logout_redirect_uri.as_deref(),
            query.state.as_deref(),
        )
        .await;
    }
    let csrf = csrf_token(&app, &headers);
    let confirm = LogoutPage {
        title: "Sign out",
        csrf: &csrf.token,
        post_logout_redirect_uri: query.post_logout_redirect_uri.as_deref(),
        state: query.state.as_deref(),
        client_id: client_id.as_deref(),
    };
    with_csrf_cookie(&app, page(StatusCode::OK, &confirm), &csrf)
}

/// `POST /oidc/oauth2/sessions/logout`: the confirmation form.
pub async fn logout_confirm(State(app): State<SharedApp>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<LogoutQuery>(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "Malformed form.");
    };
    if !csrf_ok(&app, &headers, form.csrf.as_deref()) {
        return error_page(StatusCode::FORBIDDEN, "Missing or invalid CSRF token.");
    }
    if let Err(response) = check_post_logout(
        &app,
        form.client_id.as_deref(),
        form.post_logout_redirect_uri.as_deref(),
    )
    .await
    {
        return *response;
    }
    finish_logout(
        &app,
        &headers,
        form.post_logout_redirect_uri.as_deref(),
        form.state.as_deref(),
    )
    .await
}

/// A post-logout redirect must be registered for the client, exactly.
async fn check_post_logout(
    app: &SharedApp,
    client_id: Option<&str>,
    uri: Option<&str>,
) -> Result<(), Box<Response>> {
    let Some(uri) = uri else { return Ok(()) };
    let client = match client_id {
        Some(id) => app.oidc.clients.find(id).await.ok().flatten(),
        None => None,
    };
    match client {
        Some(client) if client.allows_post_logout(uri) => Ok(()),
        _ => Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "This post_logout_redirect_uri is not registered for the client.",
        ))),
    }
}

/// End the browser's own session, revoking the grants made through it.
async fn finish_logout(
    app: &SharedApp,
    headers: &HeaderMap,
    redirect: Option<&str>,
    state: Option<&str>,
) -> Response {
    let mut sessions = Vec::new();
    if let Ok(Some((_, session, _))) = session_user(app, headers).await {
        sessions.push(session);
    }
    for session in sessions {
        if let Err(error) = sessions::end(app, session).await {
            return Failure(error).into_response();
        }
    }
    // Acknowledge only once every node refuses the session's tokens.
    app.auth.settle().await;
    let mut response = match redirect {
        Some(uri) => {
            let params: Vec<(&str, &str)> = state.map(|s| vec![("state", s)]).unwrap_or_default();
            redirect_with(uri, &params)
        }
        None => message(StatusCode::OK, "Signed out", "You are signed out.", false),
    };
    set_cookie(&mut response, expired_session_cookie(app));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever a client name, a login or a scope holds, it stays text on our pages.
    #[test]
    fn pages_escape_what_they_show() {
        let hostile = "<script>alert('x')</script>\"&";
        let login = LoginPage {
            title: "Sign in",
            client: hostile,
            challenge: hostile,
            csrf: "t",
            login: hostile,
            error: Some(hostile),
        };
        let consent = ConsentPage {
            title: "Allow access",
            client: hostile,
            scopes: vec![hostile],
            redirect: hostile,
            challenge: hostile,
            csrf: "t",
        };
        for html in [login.render().unwrap(), consent.render().unwrap()] {
            assert!(!html.contains("<script>"), "{html}");
            assert!(html.contains("&#60;script&#62;"), "{html}");
            assert!(
                !html.contains("style=") && !html.contains("<style"),
                "no inline style: {html}"
            );
        }
    }
}
