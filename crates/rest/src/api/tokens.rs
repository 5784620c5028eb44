//! `/a/auth/token*`: create, list and revoke personal and document access tokens, in Cells'
//! request and response shapes. Users manage their own tokens; administrators everyone's.
//!
//! A scoped credential can never make or manage tokens: that would let it widen itself.

use axum::Json;
use axum::extract::{Path, State};
use cells_core::records::{Token, TokenId, TokenKind, User};
use serde::Deserialize;
use serde_json::{Value, json};

use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::auth::scope::Scope;
use cells_core::auth::{Expiry, TokenRequest};
use cells_core::error::Error;
use cells_core::files::path::TreePath;
use cells_core::tokens;
use cells_core::users::{self, Actor};
use cells_http::error::Result;
use cells_http::extract::Caller;
use cells_http::extract::{Admin, ApiJson};

/// Default sliding window of document tokens: 30 minutes.
const DOCUMENT_WINDOW: i64 = 30 * 60;

pub fn token_json(token: &Token, login: &str) -> Value {
    let scopes: Vec<&str> = token.scopes.split_whitespace().collect();
    json!({
        "Uuid": token.id,
        "Type": token.kind.as_str(),
        "Label": token.label,
        "UserUuid": token.user_id,
        "UserLogin": login,
        "Scopes": scopes,
        "AutoRefreshWindow": token.auto_refresh,
        "ExpiresAt": token.expires_at,
        "MaxExpiresAt": token.max_expires_at,
        "CreatedBy": token.created_by,
        "CreatedAt": token.created_at,
        "UpdatedAt": token.last_used_at.unwrap_or(token.created_at),
        "LastUsedAt": token.last_used_at,
        "LastUsedProtocol": token.last_used_protocol,
        "LastUsedAddress": token.last_used_address,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PersonalRequest {
    user_login: Option<String>,
    #[serde(default)]
    label: String,
    /// Hard limit: a unix time. With `AutoRefresh`, the absolute cap.
    expires_at: Option<i64>,
    /// Sliding window in seconds.
    auto_refresh: Option<i64>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// `POST /a/auth/token/personal`: the caller makes a token for themselves.
pub async fn create_personal(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    ApiJson(request): ApiJson<PersonalRequest>,
) -> Result<Json<Value>> {
    tokens::require_unscoped(Actor::Principal(&principal))?;
    if let Some(login) = &request.user_login
        && login != principal.login()
    {
        return Err(
            Error::Forbidden("use /a/auth/token/impersonate to make tokens for others".into()).into(),
        );
    }
    let user = users::get_user(&app, principal.login()).await?;
    issue(&app, &user, &principal, request).await
}

/// `POST /a/auth/token/impersonate` (administrators): a token for `UserLogin`.
pub async fn impersonate(
    State(app): State<SharedApp>,
    Admin(admin): Admin,
    ApiJson(request): ApiJson<PersonalRequest>,
) -> Result<Json<Value>> {
    let login = request
        .user_login
        .clone()
        .ok_or_else(|| Error::invalid("UserLogin", "is required"))?;
    let user = users::get_user(&app, &login).await?;
    issue(&app, &user, &admin, request).await
}

async fn issue(
    app: &SharedApp,
    user: &User,
    creator: &Principal,
    request: PersonalRequest,
) -> Result<Json<Value>> {
    let now = cells_core::records::now();
    let (expiry, max_lifetime) = match (request.auto_refresh, request.expires_at) {
        (Some(window), cap) => (Expiry::Sliding(window), cap.map(|at| at - now)),
        (None, Some(at)) => (Expiry::Hard(at - now), None),
        (None, None) => {
            return Err(Error::invalid(
                "ExpiresAt",
                "give ExpiresAt (hard limit) or AutoRefresh (seconds)",
            )
            .into());
        }
    };
    let scopes = request
        .scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<cells_core::error::Result<Vec<_>>>()?;
    let (token, minted) = app
        .auth
        .create_token(
            &app.tree,
            TokenRequest {
                user,
                kind: TokenKind::Personal,
                label: &request.label,
                expiry,
                max_lifetime,
                scopes: &scopes,
                created_by: creator.login(),
            },
        )
        .await?;
    let mut body = json!({ "AccessToken": minted.value, "TokenId": token.id, "ExpiresAt": token.expires_at });
    // Beyond Cells: the token's own S3 key pair, shown once like the token.
    if let Some(s3) = minted.s3 {
        body["S3AccessKeyId"] = json!(s3.access_key_id);
        body["S3SecretAccessKey"] = json!(s3.secret);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DocumentRequest {
    path: String,
    #[serde(default)]
    auto_refresh: Option<i64>,
}

/// `POST /a/auth/token/document` `{"Path"}`: a DOCUMENT token scoped to that node (read and
/// write if the caller may write it, else read only), sliding window of 30 minutes.
pub async fn create_document(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    ApiJson(request): ApiJson<DocumentRequest>,
) -> Result<Json<Value>> {
    tokens::require_unscoped(Actor::Principal(&principal))?;
    let path = TreePath::parse(&request.path)?;
    let entry = app.tree.stat(&principal, &path).await?;
    let write = app.tree.can_write(&principal, &path).await?;
    let user = users::get_user(&app, principal.login()).await?;
    let scope = Scope {
        node: entry.node().id,
        read: true,
        write,
    };
    let (token, minted) = app
        .auth
        .create_token(
            &app.tree,
            TokenRequest {
                user: &user,
                kind: TokenKind::Document,
                label: &format!("Document {path}"),
                expiry: Expiry::Sliding(request.auto_refresh.unwrap_or(DOCUMENT_WINDOW)),
                max_lifetime: None,
                scopes: &[scope],
                created_by: principal.login(),
            },
        )
        .await?;
    Ok(Json(
        json!({ "AccessToken": minted.value, "TokenId": token.id, "ExpiresAt": token.expires_at }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRequest {
    #[serde(default)]
    by_user: Option<String>,
}

/// `POST /a/auth/tokens` `{"ByUser"}` → `{"Tokens":[…]}`: users see their own tokens,
/// administrators anyone's (everyone's without `ByUser`). Values are never returned.
pub async fn list(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    ApiJson(request): ApiJson<ListRequest>,
) -> Result<Json<Value>> {
    let by_user = request.by_user.filter(|login| !login.is_empty());
    let owner = match by_user {
        // Asking for someone else's list is refused by `tokens::list`, not "not found".
        Some(login) if login == principal.login() || principal.is_admin() => {
            Some(users::get_user(&app, &login).await?)
        }
        Some(_) => return Err(Error::Forbidden("you can only list your own tokens".into()).into()),
        None => None,
    };
    let listed = tokens::list(&app, Actor::Principal(&principal), owner.as_ref()).await?;
    let out: Vec<Value> = listed.iter().map(|l| token_json(&l.token, &l.owner)).collect();
    Ok(Json(json!({ "Tokens": out })))
}

/// `DELETE /a/auth/tokens/{TokenId}`.
pub async fn delete(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    Path(token_id): Path<String>,
) -> Result<Json<Value>> {
    let id = TokenId::parse(&token_id).ok_or_else(|| Error::invalid("TokenId", "is not a token id"))?;
    tokens::revoke(&app, Actor::Principal(&principal), id).await?;
    Ok(Json(json!({ "Success": true })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RevokeRequest {
    #[serde(default)]
    token_id: Option<String>,
}

/// `POST /a/auth/token/revoke` `{"TokenId"}`: revoke that token, or without `TokenId` the
/// token this very request was made with (a script logging itself out).
pub async fn revoke(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    ApiJson(request): ApiJson<RevokeRequest>,
) -> Result<Json<Value>> {
    match request.token_id.filter(|t| !t.is_empty()) {
        Some(text) => {
            let id = TokenId::parse(&text).ok_or_else(|| Error::invalid("TokenId", "is not a token id"))?;
            tokens::revoke(&app, Actor::Principal(&principal), id).await?;
        }
        None => tokens::revoke_itself(&app, &principal).await?,
    }
    Ok(Json(json!({ "Success": true })))
}
