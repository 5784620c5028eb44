//! "My SSH keys" (`/keys`): the SSH public keys a user logs in to SFTP with. Adding one is
//! pasting an OpenSSH `.pub` line; removing one ends the sessions it opened at their next
//! request. The same operations as `cells admin user add-key | list-keys | remove-key`.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{Browser, ConfirmPage, Nav, Notice, encode_component, format_time, redirect};
use cells_core::SharedApp;
use cells_core::error::{Error, Result};
use cells_core::users;

pub fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/keys", get(list).post(add))
        .route("/keys/remove", get(confirm_remove).post(remove))
}

struct KeyRow {
    fingerprint: String,
    comment: String,
    added: String,
    remove_href: String,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    nav: Nav,
    rows: Vec<KeyRow>,
    sftp: String,
    key: String,
    notice: Option<Notice>,
}

async fn keys_page(
    browser: &Browser,
    key: String,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    let app = &browser.app;
    let rows = users::ssh_keys(app, &browser.user)
        .await?
        .into_iter()
        .map(|key| KeyRow {
            remove_href: format!("/keys/remove?fingerprint={}", encode_component(&key.fingerprint)),
            fingerprint: key.fingerprint,
            comment: key.comment,
            added: format_time(key.created_at),
        })
        .collect();
    let page = KeysPage {
        nav: browser.nav("keys"),
        rows,
        sftp: app.config.sftp_bind.clone(),
        key,
        notice,
    };
    Ok(browser.render(status, &page))
}

#[derive(Deserialize, Default)]
struct ListQuery {
    done: Option<String>,
}

/// `GET /keys`.
async fn list(browser: Browser, Query(query): Query<ListQuery>) -> Response {
    let notice = match query.done.as_deref() {
        Some("added") => Notice::ok("The key was added: it logs you in to SFTP now."),
        Some("removed") => Notice::ok("The key was removed: it no longer logs anyone in."),
        _ => None,
    };
    let page = keys_page(&browser, String::new(), notice, StatusCode::OK).await;
    browser.finish(page)
}

#[derive(Deserialize)]
struct AddForm {
    key: Option<String>,
}

/// `POST /keys`: add the pasted key.
async fn add(browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let page = async {
        let form: AddForm = browser.read_form(&headers, &body)?;
        let key = form.key.unwrap_or_default();
        match users::add_ssh_key(&browser.app, &browser.user, &key).await {
            Ok(_) => Ok(redirect("/keys?done=added")),
            Err(error) => {
                let status = cells_http::error::status(&error);
                keys_page(&browser, key, Notice::error(&error), status).await
            }
        }
    }
    .await;
    browser.finish(page)
}

#[derive(Deserialize)]
struct RemoveQuery {
    fingerprint: Option<String>,
}

/// `GET /keys/remove?fingerprint=…`: confirm first.
async fn confirm_remove(browser: Browser, Query(query): Query<RemoveQuery>) -> Response {
    let page = async {
        let fingerprint = query.fingerprint.unwrap_or_default();
        let known = users::find_ssh_key(&browser.app, &browser.user, &fingerprint)
            .await?
            .ok_or_else(|| Error::NotFound("no such key".into()))?;
        let page = ConfirmPage {
            nav: browser.nav("keys"),
            title: format!("Remove the key {}?", known.fingerprint),
            message: format!(
                "SFTP clients using it ({}) are refused from their next request.",
                if known.comment.is_empty() {
                    "no comment"
                } else {
                    &known.comment
                }
            ),
            action: "/keys/remove".into(),
            fields: vec![("fingerprint".into(), known.fingerprint)],
            button: "Remove".into(),
            cancel_href: "/keys".into(),
        };
        Ok(browser.render(StatusCode::OK, &page))
    }
    .await;
    browser.finish(page)
}

#[derive(Deserialize)]
struct RemoveForm {
    fingerprint: Option<String>,
}

/// `POST /keys/remove`.
async fn remove(browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let page = async {
        let form: RemoveForm = browser.read_form(&headers, &body)?;
        let fingerprint = form.fingerprint.unwrap_or_default();
        users::remove_ssh_key(&browser.app, &browser.user, &fingerprint).await?;
        Ok(redirect("/keys?done=removed"))
    }
    .await;
    browser.finish(page)
}
