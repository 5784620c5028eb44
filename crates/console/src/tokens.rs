//! Personal access tokens in the console: "My tokens" (`/tokens`) for everyone, and the same
//! list, create and revoke for one user under People (`/admin/people/<login>/tokens`), the
//! panel of the seed. A token's value is shown once, on the page that answers its creation
//! (never in a URL, never cached); scopes are shown as paths.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use cells_core::records::{NodeId, Token, TokenId, TokenKind, User};
use serde::Deserialize;

use super::{Browser, ConfirmPage, Nav, Notice, format_duration, format_time, redirect};
use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::auth::scope::Scope;
use cells_core::auth::{Expiry, TokenRequest};
use cells_core::error::{Error, Result};
use cells_core::files::path::TreePath;
use cells_core::tokens;
use cells_core::users::Actor;

pub fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/tokens", get(my_tokens).post(create_mine))
        .route(
            "/tokens/{token_id}/revoke",
            get(confirm_revoke_mine).post(revoke_mine),
        )
}

/// Whose tokens a page manages, and where its forms go.
pub struct Owner<'a> {
    pub user: &'a User,
    /// `/tokens`, or `/admin/people/<login>/tokens`.
    pub base: String,
    /// The People tabs, when an administrator manages someone's tokens.
    pub person: Option<PersonTabs>,
}

#[derive(Clone)]
pub struct PersonTabs {
    pub login: String,
    pub profile_href: String,
    pub tokens_href: String,
}

struct TokenRow {
    label: String,
    kind: &'static str,
    model: String,
    expires: String,
    last_used: String,
    scopes: Vec<String>,
    active: bool,
    revoke_href: String,
}

/// The creation form, kept as typed when it is refused.
pub struct TokenForm {
    label: String,
    model: String,
    amount: String,
    unit: String,
    scope: String,
    rights: String,
}

impl Default for TokenForm {
    fn default() -> TokenForm {
        TokenForm {
            label: String::new(),
            model: "hard".into(),
            amount: "30".into(),
            unit: "d".into(),
            scope: String::new(),
            rights: "r".into(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    nav: Nav,
    heading: String,
    person: Option<PersonTabs>,
    owner_login: String,
    action: String,
    rows: Vec<TokenRow>,
    form: TokenForm,
    notice: Option<Notice>,
}

#[derive(Template)]
#[template(path = "console/token_created.html")]
struct CreatedPage {
    nav: Nav,
    person: Option<PersonTabs>,
    owner_login: String,
    label: String,
    value: String,
    model: String,
    expires: String,
    scopes: Vec<String>,
    s3_access_key: String,
    s3_secret: String,
    back_href: String,
}

/// The owner as a principal with their own full rights: scopes are paths as the owner sees
/// them, and a scope can only name what the owner reaches (as `create_token` checks).
fn owner_principal(owner: &User) -> Principal {
    Principal::acting_for(owner)
}

fn section(owner: &Owner<'_>) -> &'static str {
    if owner.person.is_some() {
        "people"
    } else {
        "tokens"
    }
}

/// `node:UUID:rw` as `personal-files/docs (read and write)`.
async fn scope_text(app: &SharedApp, owner: &Principal, scope: &Scope) -> String {
    let rights = match (scope.read, scope.write) {
        (true, true) => "read and write",
        (true, false) => "read only",
        _ => "write only",
    };
    match app.tree.stat_by_id(owner, scope.node).await {
        Ok(entry) => format!("{} ({rights})", entry.path()),
        Err(_) => format!("deleted node {} ({rights})", scope.node),
    }
}

fn model_text(token: &Token) -> String {
    let mut text = if token.auto_refresh > 0 {
        format!(
            "Auto refresh: renewed on use, every {}",
            format_duration(token.auto_refresh)
        )
    } else {
        "Hard limit".to_string()
    };
    if let Some(cap) = token.max_expires_at {
        text.push_str(&format!(", at most until {}", format_time(cap)));
    }
    text
}

async fn row(app: &SharedApp, owner: &Principal, base: &str, token: &Token, now: i64) -> TokenRow {
    let mut scopes = Vec::new();
    for text in token.scopes.split_whitespace() {
        scopes.push(match Scope::parse(text) {
            Ok(scope) => scope_text(app, owner, &scope).await,
            Err(_) => text.to_string(),
        });
    }
    let last_used = match token.last_used_at {
        Some(at) => {
            let mut text = format_time(at);
            if let Some(protocol) = &token.last_used_protocol {
                text.push_str(&format!(" via {protocol}"));
            }
            if let Some(address) = &token.last_used_address {
                text.push_str(&format!(" from {address}"));
            }
            text
        }
        None => "never".into(),
    };
    TokenRow {
        label: if token.label.is_empty() {
            "(no name)".into()
        } else {
            token.label.clone()
        },
        kind: match token.kind {
            TokenKind::Personal => "personal",
            TokenKind::Document => "document",
        },
        model: model_text(token),
        expires: format_time(token.expires_at),
        last_used,
        scopes,
        active: token.expires_at > now,
        revoke_href: format!("{base}/{}/revoke", token.id),
    }
}

/// The token list and the creation form of `owner`.
pub async fn tokens_page(
    browser: &Browser,
    owner: &Owner<'_>,
    form: TokenForm,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    let app = &browser.app;
    let principal = owner_principal(owner.user);
    let now = cells_core::records::now();
    let mut rows = Vec::new();
    for listed in tokens::list(app, Actor::Principal(&browser.principal), Some(owner.user)).await? {
        rows.push(row(app, &principal, &owner.base, &listed.token, now).await);
    }
    let heading = match &owner.person {
        Some(person) => format!("Personal access tokens of {}", person.login),
        None => "My tokens".into(),
    };
    let page = TokensPage {
        nav: browser.nav(section(owner)),
        heading,
        person: owner.person.clone(),
        owner_login: owner.user.login.clone(),
        action: owner.base.clone(),
        rows,
        form,
        notice,
    };
    Ok(browser.render(status, &page))
}

#[derive(Deserialize, Default)]
pub struct TokensQuery {
    /// Pre-fill the form's folder with this node (the files' "create a token" shortcut).
    node: Option<String>,
    /// What the last action did.
    done: Option<String>,
}

/// The page for a GET: the list, a notice after a revocation, the form pre-filled.
pub async fn show(browser: &Browser, owner: &Owner<'_>, query: TokensQuery) -> Result<Response> {
    let mut form = TokenForm::default();
    if let Some(node) = query.node.as_deref().and_then(NodeId::parse)
        && let Ok(entry) = browser
            .app
            .tree
            .stat_by_id(&owner_principal(owner.user), node)
            .await
    {
        form.scope = entry.path().to_string();
        form.label = format!(
            "Access to {}",
            entry.path().name().unwrap_or(entry.path().workspace().as_str())
        );
    }
    let notice = match query.done.as_deref() {
        Some("revoked") => Notice::ok("The token was revoked: it no longer works anywhere."),
        _ => None,
    };
    tokens_page(browser, owner, form, notice, StatusCode::OK).await
}

#[derive(Deserialize)]
struct CreateForm {
    label: Option<String>,
    model: Option<String>,
    amount: Option<String>,
    unit: Option<String>,
    scope: Option<String>,
    rights: Option<String>,
}

/// A POSTed creation form: the token, shown once, or the form again with what is wrong.
pub async fn create(
    browser: &Browser,
    owner: &Owner<'_>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let form: CreateForm = browser.read_form(headers, body)?;
    let typed = TokenForm {
        label: form.label.unwrap_or_default().trim().to_string(),
        model: form.model.unwrap_or_default(),
        amount: form.amount.unwrap_or_default().trim().to_string(),
        unit: form.unit.unwrap_or_default(),
        scope: form.scope.unwrap_or_default().trim().to_string(),
        rights: form.rights.unwrap_or_default(),
    };
    match mint(browser, owner, &typed).await {
        Ok(page) => Ok(page),
        Err(error) => {
            let status = cells_http::error::status(&error);
            tokens_page(browser, owner, typed, Notice::error(&error), status).await
        }
    }
}

async fn mint(browser: &Browser, owner: &Owner<'_>, form: &TokenForm) -> Result<Response> {
    let app = &browser.app;
    if form.label.is_empty() {
        return Err(Error::invalid("name", "give the token a friendly name"));
    }
    let amount: i64 = form
        .amount
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::invalid("duration", "must be a whole number above 0"))?;
    let unit = match form.unit.as_str() {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(Error::invalid("unit", "must be minutes, hours or days")),
    };
    let seconds = amount.saturating_mul(unit);
    let expiry = match form.model.as_str() {
        "hard" => Expiry::Hard(seconds),
        "auto" => Expiry::Sliding(seconds),
        _ => {
            return Err(Error::invalid(
                "expiration model",
                "must be Hard Limit or Auto Refresh",
            ));
        }
    };
    let principal = owner_principal(owner.user);
    let mut scopes = Vec::new();
    if !form.scope.is_empty() {
        let (read, write) = match form.rights.as_str() {
            "r" => (true, false),
            "w" => (false, true),
            "rw" => (true, true),
            _ => return Err(Error::invalid("rights", "must be read, write, or both")),
        };
        // A node UUID, or a path as the owner sees it.
        let node = match NodeId::parse(&form.scope) {
            Some(id) => id,
            None => {
                let path = TreePath::parse(&form.scope)?;
                app.tree.stat(&principal, &path).await?.node().id
            }
        };
        scopes.push(Scope { node, read, write });
    }
    let (token, minted) = app
        .auth
        .create_token(
            &app.tree,
            TokenRequest {
                user: owner.user,
                kind: TokenKind::Personal,
                label: &form.label,
                expiry,
                max_lifetime: None,
                scopes: &scopes,
                created_by: &browser.user.login,
            },
        )
        .await?;
    let mut scope_texts = Vec::new();
    for scope in &scopes {
        scope_texts.push(scope_text(app, &principal, scope).await);
    }
    let (s3_access_key, s3_secret) = minted
        .s3
        .map(|key| (key.access_key_id, key.secret))
        .unwrap_or_default();
    let page = CreatedPage {
        nav: browser.nav(section(owner)),
        person: owner.person.clone(),
        owner_login: owner.user.login.clone(),
        label: token.label.clone(),
        value: minted.value,
        model: model_text(&token),
        expires: format_time(token.expires_at),
        scopes: scope_texts,
        s3_access_key,
        s3_secret,
        back_href: owner.base.clone(),
    };
    Ok(browser.render(StatusCode::CREATED, &page))
}

/// The token `id` of `owner`; anyone else's is "not found", so ids cannot be probed.
async fn owned_token(browser: &Browser, owner: &Owner<'_>, id: &str) -> Result<Token> {
    let id = TokenId::parse(id).ok_or_else(|| Error::NotFound("no such token".into()))?;
    tokens::find(&browser.app, Actor::Principal(&browser.principal), owner.user, id).await
}

/// The confirmation page before a revocation.
pub async fn confirm_revoke(browser: &Browser, owner: &Owner<'_>, id: &str) -> Result<Response> {
    let token = owned_token(browser, owner, id).await?;
    let page = ConfirmPage {
        nav: browser.nav(section(owner)),
        title: format!("Revoke the token {:?}?", token.label),
        message: format!(
            "Every program that uses it (REST, WebDAV, S3, SFTP) is refused from its next request. \
             This cannot be undone. Owner: {}.",
            owner.user.login
        ),
        action: format!("{}/{}/revoke", owner.base, token.id),
        fields: Vec::new(),
        button: "Revoke".into(),
        cancel_href: owner.base.clone(),
    };
    Ok(browser.render(StatusCode::OK, &page))
}

/// A POSTed revocation: the token stops working on every node, then back to the list.
pub async fn revoke(
    browser: &Browser,
    owner: &Owner<'_>,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    browser.read_form::<super::CsrfForm>(headers, body)?;
    let token = owned_token(browser, owner, id).await?;
    tokens::revoke(&browser.app, Actor::Principal(&browser.principal), token.id).await?;
    Ok(redirect(&format!("{}?done=revoked", owner.base)))
}

fn mine(browser: &Browser) -> Owner<'_> {
    Owner {
        user: &browser.user,
        base: "/tokens".into(),
        person: None,
    }
}

/// `GET /tokens`.
async fn my_tokens(browser: Browser, Query(query): Query<TokensQuery>) -> Response {
    let page = show(&browser, &mine(&browser), query).await;
    browser.finish(page)
}

/// `POST /tokens`.
async fn create_mine(browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let page = create(&browser, &mine(&browser), &headers, &body).await;
    browser.finish(page)
}

/// `GET /tokens/<id>/revoke`.
async fn confirm_revoke_mine(browser: Browser, Path(id): Path<String>) -> Response {
    let page = confirm_revoke(&browser, &mine(&browser), &id).await;
    browser.finish(page)
}

/// `POST /tokens/<id>/revoke`.
async fn revoke_mine(browser: Browser, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let page = revoke(&browser, &mine(&browser), &id, &headers, &body).await;
    browser.finish(page)
}
