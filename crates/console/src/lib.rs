//! The web console: server-rendered pages for people, not programs. Sign in, browse and manage
//! files, manage personal access tokens (one's own; everyone's for administrators), manage
//! users, see the OAuth clients.
//!
//! A page is a `Browser` (the user of a valid session cookie, as a `Principal`) plus an
//! operation on `files::Tree` or `auth`: the console decides no permission itself. Templates
//! are compiled into the binary (askama, HTML-escaped); the only script is
//! `assets/console.js`, served from here, so the Content-Security-Policy allows no inline
//! code. Every state-changing form carries the CSRF token of `http::session`; pages are not
//! frameable and never cached.

mod clients;
mod files;
mod keys;
mod locks;
mod people;
mod tokens;
mod workspaces;

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cells_core::records::User;
use serde::Deserialize;

use cells_core::SharedApp;
use cells_core::auth::principal::{Principal, Via};
use cells_core::auth::sessions;
use cells_core::error::Error;
use cells_http::session::{
    Csrf, csrf_ok, csrf_token, expired_session_cookie, session_user, set_cookie, sign_in, signed_in,
    with_csrf_cookie,
};

/// Every page of the console, as (method, path) pairs.
pub fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/static/console.css", get(stylesheet))
        .route("/static/console.js", get(script))
        .merge(files::routes())
        .merge(tokens::routes())
        .merge(keys::routes())
        .merge(locks::routes())
        .merge(people::routes())
        .merge(workspaces::routes())
        .route("/admin/clients", get(clients::list))
}

/// `GET /` for a browser: the file browser (S3's signed `GET /` never reaches this).
pub async fn home() -> Response {
    redirect("/files/")
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The signed-in user of this browser, as a `Principal` with the user's full rights, and the
/// CSRF token its forms carry.
pub struct Browser {
    pub principal: Principal,
    pub user: User,
    /// The token this browser's forms carry.
    pub csrf: String,
    cookie: Csrf,
    app: SharedApp,
}

impl FromRequestParts<SharedApp> for Browser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &SharedApp) -> Result<Self, Self::Rejection> {
        let signed_in = match signed_in(app, &parts.headers).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(to_login(parts)),
            Err(error) => return Err(bare_error(error)),
        };
        let cookie = csrf_token(app, &parts.headers);
        Ok(Browser {
            principal: signed_in.principal,
            user: signed_in.user,
            csrf: cookie.token.clone(),
            cookie,
            app: app.clone(),
        })
    }
}

impl Browser {
    fn nav(&self, section: &'static str) -> Nav {
        Nav {
            login: self.user.login.clone(),
            display_name: self.user.display_name.clone(),
            is_admin: self.principal.is_admin(),
            csrf: self.csrf.clone(),
            section,
        }
    }

    /// A posted form, read once its CSRF token is this browser's (a forged form is refused
    /// before any of its fields is looked at).
    fn read_form<T: serde::de::DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<T, Error> {
        let malformed = |_| Error::invalid("form", "malformed");
        let token: CsrfForm = serde_urlencoded::from_bytes(body).map_err(malformed)?;
        self.check_csrf(headers, token.csrf.as_deref())?;
        serde_urlencoded::from_bytes(body).map_err(malformed)
    }

    /// Refuse a form whose CSRF token is not this browser's.
    fn check_csrf(&self, headers: &HeaderMap, presented: Option<&str>) -> Result<(), Error> {
        if csrf_ok(&self.app, headers, presented) {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "this form has expired or did not come from this site (missing or wrong CSRF token); \
                 reload the page and try again"
                    .into(),
            ))
        }
    }

    /// Administrator pages: a standard user gets 403.
    fn require_admin(&self) -> Result<(), Error> {
        if self.principal.is_admin() {
            Ok(())
        } else {
            Err(Error::Forbidden("this page is for administrators".into()))
        }
    }

    /// A page as the response, with the CSRF cookie when this browser had none.
    fn render(&self, status: StatusCode, template: &impl Template) -> Response {
        with_csrf_cookie(&self.app, html(status, template), &self.cookie)
    }

    /// The outcome of a handler: its page, or the error rendered as a page.
    fn finish(&self, page: Result<Response, Error>) -> Response {
        match page {
            Ok(response) => response,
            Err(error) => {
                let status = log_status(&error);
                let page = ErrorPage {
                    nav: self.nav(""),
                    title: status.canonical_reason().unwrap_or("Error").to_string(),
                    message: error.to_string(),
                };
                self.render(status, &page)
            }
        }
    }
}

/// What the layout shows: who is signed in, where they are, the token for the sign-out form.
pub struct Nav {
    pub login: String,
    pub display_name: String,
    pub is_admin: bool,
    pub csrf: String,
    pub section: &'static str,
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    nav: Nav,
    title: String,
    message: String,
}

/// "Are you sure?" before an action that cannot be undone: a form that posts `fields`.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage {
    pub nav: Nav,
    pub title: String,
    pub message: String,
    pub action: String,
    pub fields: Vec<(String, String)>,
    pub button: String,
    pub cancel_href: String,
}

/// A message at the top of a page after an action.
pub struct Notice {
    pub is_error: bool,
    pub text: String,
}

impl Notice {
    pub fn ok(text: impl Into<String>) -> Option<Notice> {
        Some(Notice {
            is_error: false,
            text: text.into(),
        })
    }

    pub fn error(error: &Error) -> Option<Notice> {
        log_status(error);
        Some(Notice {
            is_error: true,
            text: error.to_string(),
        })
    }
}

/// The status of an error, logging an internal cause once (it is never shown).
fn log_status(error: &Error) -> StatusCode {
    if let Error::Internal(cause) = error {
        tracing::error!(error = ?cause, "internal error");
    }
    cells_http::error::status(error)
}

/// A rendered template with the console's security headers.
fn html(status: StatusCode, template: &impl Template) -> Response {
    cells_http::html::render(status, template, CSP)
}

/// An error before any session is known (the database failed while reading it).
fn bare_error(error: Error) -> Response {
    let status = log_status(&error);
    let page = LoginPage {
        csrf: String::new(),
        next: "/".into(),
        login: String::new(),
        error: Some(error.to_string()),
    };
    html(status, &page)
}

/// `303 See Other` to a local path.
pub fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Send a browser without a session to the sign-in page, to come back here after (for a
/// form post, back to the page it came from is unknown: the files).
fn to_login(parts: &Parts) -> Response {
    let next = if parts.method == Method::GET || parts.method == Method::HEAD {
        parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string()
    } else {
        "/files/".to_string()
    };
    redirect(&format!("/login?next={}", encode_component(&next)))
}

/// Only local paths are followed after sign-in: never another site (an open redirect).
/// Where to go after signing in: a local path in its plain form, else the files page. A path
/// with an empty, `.` or `..` segment (in any encoding), a backslash or an encoded slash is
/// refused: once normalised by a browser or a proxy, `/.//evil.example` could become a
/// network-path reference to another site.
fn safe_next(next: Option<&str>) -> String {
    let plain = |next: &str| {
        let path = next.split(['?', '#']).next().unwrap_or_default();
        let lowered = next.to_ascii_lowercase();
        next.starts_with('/')
            && !next.contains('\\')
            && !next.chars().any(char::is_control)
            && !lowered.contains("%2f")
            && !lowered.contains("%5c")
            && path[1..].split('/').enumerate().all(|(index, segment)| {
                let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
                // Only the last segment may be empty (a trailing slash).
                (!segment.is_empty() || index == path[1..].split('/').count() - 1)
                    && decoded != "."
                    && decoded != ".."
            })
    };
    match next {
        Some(next) if plain(next) => next.to_string(),
        _ => "/files/".to_string(),
    }
}

pub use cells_http::encoding::encode_component;

/// `2026-11-28 14:05 UTC`.
pub fn format_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => "-".into(),
    }
}

/// `4.2 MB`, `512 B`.
pub fn format_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// `90 s`, `10 min`, `6 h`, `30 days`: a whole number of the largest unit that fits.
pub fn format_duration(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{} day{}", s / 86_400, if s == 86_400 { "" } else { "s" }),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    login: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// `GET /login`: the sign-in form (a browser already signed in goes on at once).
async fn login_page(
    State(app): State<SharedApp>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if let Ok(Some(_)) = session_user(&app, &headers).await {
        return redirect(&next);
    }
    login_form(&app, &headers, next, String::new(), None, StatusCode::OK)
}

fn login_form(
    app: &SharedApp,
    headers: &HeaderMap,
    next: String,
    login: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let csrf = csrf_token(app, headers);
    let page = LoginPage {
        csrf: csrf.token.clone(),
        next,
        login,
        error,
    };
    with_csrf_cookie(app, html(status, &page), &csrf)
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: Option<String>,
    next: Option<String>,
    login: Option<String>,
    password: Option<String>,
}

/// `POST /login`: the password check of every protocol (lockout, throttling), then a session
/// shared with the OpenID provider's pages.
async fn login_submit(
    State(app): State<SharedApp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return login_form(
            &app,
            &headers,
            "/files/".into(),
            String::new(),
            Some("Malformed form.".into()),
            StatusCode::BAD_REQUEST,
        );
    };
    let next = safe_next(form.next.as_deref());
    let login = form.login.unwrap_or_default();
    if !csrf_ok(&app, &headers, form.csrf.as_deref()) {
        let message = "This form has expired (missing or wrong CSRF token). Try again.";
        return login_form(
            &app,
            &headers,
            next,
            login,
            Some(message.into()),
            StatusCode::FORBIDDEN,
        );
    }
    match sign_in(&app, &login, &form.password.unwrap_or_default(), peer.ip()).await {
        Ok(signed_in) => {
            let mut response = redirect(&next);
            set_cookie(&mut response, signed_in.cookie);
            response
        }
        Err(error @ Error::Internal(_)) => bare_error(error),
        Err(error) => {
            let status = log_status(&error);
            login_form(&app, &headers, next, login, Some(error.to_string()), status)
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /logout`: end this browser's session (and the grants it gave), everywhere.
async fn logout(State(app): State<SharedApp>, browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let page = async {
        browser.read_form::<CsrfForm>(&headers, &body)?;
        if let Via::Session { session_id } = browser.principal.via() {
            sessions::end(&app, *session_id).await?;
        }
        app.auth.settle().await;
        let mut response = redirect("/login");
        set_cookie(&mut response, expired_session_cookie(&app));
        Ok(response)
    }
    .await;
    browser.finish(page)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../assets/console.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/tokens")), "/tokens");
        assert_eq!(safe_next(Some("/files/a?info=b")), "/files/a?info=b");
        assert_eq!(safe_next(Some("/files/")), "/files/");
        assert_eq!(safe_next(Some("/")), "/");
        for hostile in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "/.//evil.example",
            "/./evil",
            "/%2e%2e//evil.example",
            "/%2F%2Fevil.example",
            "/a//b",
            "/files/../..//evil.example",
            "",
            "tokens",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/files/", "{hostile}");
        }
        assert_eq!(safe_next(None), "/files/");
    }

    #[test]
    fn components_are_encoded_for_urls() {
        assert_eq!(encode_component("a b/c?d#e%é"), "a%20b%2Fc%3Fd%23e%25%C3%A9");
        assert_eq!(encode_component("Report-1_v2.~"), "Report-1_v2.~");
    }

    #[test]
    fn sizes_durations_and_times_read_well() {
        assert_eq!(format_size(999), "999 B");
        assert_eq!(format_size(4_200_000), "4.2 MB");
        assert_eq!(format_duration(600), "10 min");
        assert_eq!(format_duration(86_400), "1 day");
        assert_eq!(format_duration(30 * 86_400), "30 days");
        assert_eq!(format_duration(7200), "2 h");
        assert_eq!(format_duration(61), "61 s");
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
    }
}
