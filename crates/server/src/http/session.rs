//! Browser sessions and CSRF tokens, shared by the provider's pages and the web console.
//!
//! A session cookie is `<session id>.<HMAC of it>` (`HttpOnly`, `SameSite=Lax`): it cannot be
//! forged without the server's key, and every request re-reads the session and its user, so a
//! logout, a lock or a deletion holds at the next page. Forms carry a CSRF token that must
//! equal the `cells_csrf` cookie (double submit; that cookie is `SameSite=Strict`, `HttpOnly`).

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cells_store::User;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::SharedApp;
use crate::auth::oidc::random_token;
use crate::error::Error;

pub const CSRF_COOKIE: &str = "cells_csrf";
pub const SESSION_COOKIE: &str = "cells_session";
/// How long a browser login lasts.
pub const SESSION_SECONDS: i64 = 14 * 24 * 3600;

pub fn secure_flag(app: &SharedApp) -> &'static str {
    if app.config.external_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

pub fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `<session id>.<HMAC of it>`: a cookie that cannot be forged without the server's key.
fn session_cookie_value(app: &SharedApp, id: Uuid) -> String {
    let tag = aws_lc_rs::hmac::sign(&app.session_key, id.to_string().as_bytes());
    format!("{id}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The user of a valid browser session, with the session's id and login time.
pub async fn session_user(app: &SharedApp, headers: &HeaderMap) -> Result<Option<(User, Uuid, i64)>, Error> {
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some((id, tag)) = value.split_once('.') else {
        return Ok(None);
    };
    let Ok(id) = Uuid::parse_str(id) else {
        return Ok(None);
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return Ok(None);
    };
    if aws_lc_rs::hmac::verify(&app.session_key, id.to_string().as_bytes(), &tag).is_err() {
        return Ok(None);
    }
    let now = cells_store::now();
    let Some(session) = app.store.find_session(id).await? else {
        return Ok(None);
    };
    if session.revoked_at.is_some() || session.expires_at < now {
        return Ok(None);
    }
    match app.store.find_user(session.user_id).await? {
        Some(user) if !user.locked => Ok(Some((user, session.id, session.auth_time))),
        _ => Ok(None),
    }
}

/// The CSRF token of this browser, and the cookie to set when it is new.
pub fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE) {
        Some(value) if value.len() == 43 => (value.to_string(), false),
        _ => (random_token(), true),
    }
}

pub fn with_csrf_cookie(app: &SharedApp, mut response: Response, token: &str, is_new: bool) -> Response {
    if is_new {
        // One path for every page's token, so a browser never holds two `cells_csrf` cookies.
        let value = format!(
            "{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
            secure_flag(app)
        );
        set_cookie(&mut response, value);
    }
    response
}

pub fn csrf_ok(headers: &HeaderMap, presented: Option<&str>) -> bool {
    match (cookie(headers, CSRF_COOKIE), presented) {
        (Some(expected), Some(presented)) if !expected.is_empty() => {
            expected.as_bytes().ct_eq(presented.as_bytes()).into()
        }
        _ => false,
    }
}

/// Open a browser session for `user` (after a password check on our pages): its id, login
/// time, and the `Set-Cookie` value that carries it.
pub async fn open_session(app: &SharedApp, user: &User) -> Result<(Uuid, i64, String), Error> {
    let now = cells_store::now();
    let session = app
        .store
        .create_session(user.id, now, now + SESSION_SECONDS)
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_SECONDS}{}",
        session_cookie_value(app, session.id),
        secure_flag(app)
    );
    Ok((session.id, now, cookie))
}

/// The `Set-Cookie` value that ends the browser's session cookie.
pub fn expired_session_cookie(app: &SharedApp) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        secure_flag(app)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cells_csrf_x=2; cells_csrf=3"),
        );
        assert_eq!(cookie(&headers, "cells_csrf"), Some("3"));
        assert_eq!(cookie(&headers, "b"), None);
    }

    #[test]
    fn csrf_needs_the_cookie_and_the_same_value() {
        let mut headers = HeaderMap::new();
        assert!(!csrf_ok(&headers, Some("x")));
        headers.insert(header::COOKIE, HeaderValue::from_static("cells_csrf=abc"));
        assert!(!csrf_ok(&headers, None));
        assert!(!csrf_ok(&headers, Some("abd")));
        assert!(!csrf_ok(&headers, Some("")));
        assert!(csrf_ok(&headers, Some("abc")));
    }
}
