//! Browser sessions and CSRF tokens, shared by the provider's pages and the web console.
//!
//! A session cookie is `<session id>.<HMAC of it>` (`HttpOnly`, `SameSite=Lax`): it cannot be
//! forged without the server's key, and every request re-reads the session and its user, so a
//! logout, a lock or a deletion holds at the next page. Forms carry a CSRF token bound to the
//! `cells_csrf` cookie (a random nonce, `SameSite=Strict`, `HttpOnly`) and to the browser's
//! session: a keyed hash of both, so a value planted in a cookie pairs with nothing, and a
//! token taken from one session is worth nothing in another.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cells_core::auth::Client;
use cells_core::auth::sessions::{self, SignedIn};
use cells_core::records::User;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use cells_core::SharedApp;
use cells_core::auth::oidc::random_token;
use cells_core::error::Error;

pub const CSRF_COOKIE: &str = "cells_csrf";
pub const SESSION_COOKIE: &str = "cells_session";

/// The session cookie's name: with the `__Host-` prefix when browsers reach us over HTTPS
/// (RFC 6265bis §4.1.3.2: the browser keeps it only if it is `Secure`, for `Path=/` and
/// without `Domain`, so no sibling host and no plain-HTTP page can set or shadow it).
pub fn session_cookie(app: &SharedApp) -> &'static str {
    if app.config.is_https() {
        "__Host-cells_session"
    } else {
        SESSION_COOKIE
    }
}

/// The CSRF cookie's name, prefixed as `session_cookie`.
pub fn csrf_cookie(app: &SharedApp) -> &'static str {
    if app.config.is_https() {
        "__Host-cells_csrf"
    } else {
        CSRF_COOKIE
    }
}
/// How long a browser login lasts.
pub const SESSION_SECONDS: i64 = 14 * 24 * 3600;

pub fn secure_flag(app: &SharedApp) -> &'static str {
    if app.config.is_https() { "; Secure" } else { "" }
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
    Ok(signed_in(app, headers)
        .await?
        .map(|signed_in| (signed_in.user, signed_in.session_id, signed_in.auth_time)))
}

/// The signed-in browser whose valid session cookie `headers` carry, as a principal.
pub async fn signed_in(app: &SharedApp, headers: &HeaderMap) -> Result<Option<SignedIn>, Error> {
    let Some(value) = cookie(headers, session_cookie(app)) else {
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
    sessions::resume(app, id).await
}

/// The CSRF token of this browser, and the cookie to set when it is new.
/// A page's CSRF state: the cookie's nonce (new when the browser had none) and the token its
/// forms carry.
pub struct Csrf {
    pub nonce: String,
    pub token: String,
    pub is_new: bool,
}

/// The token forms carry for `nonce` in the session that `headers` present.
fn csrf_for(app: &SharedApp, headers: &HeaderMap, nonce: &str) -> String {
    let session = cookie(headers, session_cookie(app)).unwrap_or_default();
    let mut context = aws_lc_rs::hmac::Context::with_key(&app.session_key);
    context.update(b"csrf\0");
    context.update(nonce.as_bytes());
    context.update(b"\0");
    context.update(session.as_bytes());
    URL_SAFE_NO_PAD.encode(context.sign().as_ref())
}

pub fn csrf_token(app: &SharedApp, headers: &HeaderMap) -> Csrf {
    let (nonce, is_new) = match cookie(headers, csrf_cookie(app)) {
        Some(value) if value.len() == 43 => (value.to_string(), false),
        _ => (random_token(), true),
    };
    Csrf {
        token: csrf_for(app, headers, &nonce),
        nonce,
        is_new,
    }
}

pub fn with_csrf_cookie(app: &SharedApp, mut response: Response, csrf: &Csrf) -> Response {
    if csrf.is_new {
        // One path for every page's token, so a browser never holds two `cells_csrf` cookies.
        let value = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict{}",
            csrf_cookie(app),
            csrf.nonce,
            secure_flag(app)
        );
        set_cookie(&mut response, value);
    }
    response
}

pub fn csrf_ok(app: &SharedApp, headers: &HeaderMap, presented: Option<&str>) -> bool {
    match (cookie(headers, csrf_cookie(app)), presented) {
        (Some(nonce), Some(presented)) if nonce.len() == 43 => {
            let expected = csrf_for(app, headers, nonce);
            expected.as_bytes().ct_eq(presented.as_bytes()).into()
        }
        _ => false,
    }
}

/// `headers` as the next request will send them, once `set_cookie` (a new session) is kept:
/// for a page rendered in the same answer that opens the session.
pub fn with_session_cookie(headers: &HeaderMap, set_cookie: &str) -> HeaderMap {
    let mut headers = headers.clone();
    if let Some(pair) = set_cookie.split(';').next() {
        let name = pair.split('=').next().unwrap_or_default().trim();
        let mut others: Vec<String> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|p| !p.starts_with(&format!("{name}=")) && !p.is_empty())
            .map(str::to_string)
            .collect();
        others.push(pair.trim().to_string());
        headers.remove(header::COOKIE);
        if let Ok(value) = HeaderValue::from_str(&others.join("; ")) {
            headers.insert(header::COOKIE, value);
        }
    }
    headers
}

/// A browser that has just signed in with a password on one of our pages.
pub struct NewSession {
    pub user: User,
    pub id: Uuid,
    pub auth_time: i64,
    /// The `Set-Cookie` value that carries the session.
    pub cookie: String,
}

/// The one password sign-in of our pages (the console, the provider's login and device
/// pages): the password checked by the `Authenticator` (throttling, lockout, the same answer
/// for every refusal) for a browser at `address`, then a session opened.
pub async fn sign_in(
    app: &SharedApp,
    login: &str,
    password: &str,
    address: IpAddr,
) -> Result<NewSession, Error> {
    let who = Client {
        protocol: "web",
        address,
    };
    let user = app.auth.verify_password(login, password, who).await?;
    let (id, auth_time, cookie) = open_session(app, &user).await?;
    Ok(NewSession {
        user,
        id,
        auth_time,
        cookie,
    })
}

/// Open a browser session for `user` (after a password check on our pages): its id, login
/// time, and the `Set-Cookie` value that carries it.
pub async fn open_session(app: &SharedApp, user: &User) -> Result<(Uuid, i64, String), Error> {
    let (id, now) = sessions::open(app, user, SESSION_SECONDS).await?;
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_SECONDS}{}",
        session_cookie(app),
        session_cookie_value(app, id),
        secure_flag(app)
    );
    Ok((id, now, cookie))
}

/// The `Set-Cookie` value that ends the browser's session cookie.
pub fn expired_session_cookie(app: &SharedApp) -> String {
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        session_cookie(app),
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
    fn session_cookies_replace_the_old_one() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("cells_csrf=abc; cells_session=old"),
        );
        let next = with_session_cookie(&headers, "cells_session=new.tag; Path=/; HttpOnly");
        assert_eq!(cookie(&next, SESSION_COOKIE), Some("new.tag"));
        assert_eq!(cookie(&next, CSRF_COOKIE), Some("abc"));
    }
}
