//! "WebDAV locks" (`/locks`): the live locks a user took, or every one for an administrator,
//! and breaking one (its owner's editor loses it at once, on every node). The same operations
//! as `cells admin lock list | break`.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::{Browser, Nav, Notice, format_time, redirect};
use cells_core::SharedApp;
use cells_core::error::{Error, Result};

pub fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/locks", get(list))
        .route("/locks/break", post(break_lock))
}

struct LockRow {
    token: String,
    owner: String,
    path: String,
    scope: &'static str,
    depth: &'static str,
    expires: String,
}

#[derive(Template)]
#[template(path = "console/locks.html")]
struct LocksPage {
    nav: Nav,
    rows: Vec<LockRow>,
    all: bool,
    notice: Option<Notice>,
}

/// The live locks this browser's user may see: their own, or all for an administrator.
async fn visible(browser: &Browser) -> Result<Vec<cells_core::records::StoredLock>> {
    let all = browser.principal.is_admin();
    let login = browser.user.login.as_str();
    Ok(browser
        .app
        .locks()
        .all_live()
        .await?
        .into_iter()
        .filter(|lock| all || lock.principal.as_deref() == Some(login))
        .collect())
}

#[derive(Deserialize, Default)]
struct ListQuery {
    done: Option<String>,
}

/// `GET /locks`.
async fn list(browser: Browser, Query(query): Query<ListQuery>) -> Response {
    let page = async {
        let rows = visible(&browser)
            .await?
            .into_iter()
            .map(|lock| LockRow {
                owner: lock.principal.clone().unwrap_or_default(),
                path: String::from_utf8_lossy(&cells_core::files::path::percent_decode(&lock.path))
                    .into_owned(),
                scope: if lock.shared { "shared" } else { "exclusive" },
                depth: if lock.deep { "infinity" } else { "0" },
                expires: lock.expires_at.map_or_else(|| "never".to_string(), format_time),
                token: lock.token,
            })
            .collect();
        let notice = match query.done.as_deref() {
            Some("broken") => Notice::ok("The lock was broken: the file can be written again."),
            _ => None,
        };
        let page = LocksPage {
            nav: browser.nav("locks"),
            rows,
            all: browser.principal.is_admin(),
            notice,
        };
        Ok(browser.render(StatusCode::OK, &page))
    }
    .await;
    browser.finish(page)
}

#[derive(Deserialize)]
struct BreakForm {
    token: Option<String>,
}

/// `POST /locks/break`: break a lock the user took (any lock, for an administrator).
async fn break_lock(browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let page = async {
        let form: BreakForm = browser.read_form(&headers, &body)?;
        let token = form.token.unwrap_or_default();
        if !visible(&browser).await?.iter().any(|lock| lock.token == token) {
            return Err(Error::NotFound("no such lock of yours".into()));
        }
        browser.app.locks().delete(std::slice::from_ref(&token)).await?;
        tracing::info!(login = %browser.user.login, "a WebDAV lock was broken from the console");
        Ok(redirect("/locks?done=broken"))
    }
    .await;
    browser.finish(page)
}
