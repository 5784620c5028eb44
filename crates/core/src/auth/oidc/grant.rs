//! The token endpoint's grants (RFC 6749 §4): `authorization_code` with PKCE (RFC 7636),
//! `refresh_token` with rotation and reuse detection, `client_credentials`; and the issuing
//! of authorization codes after login.
//!
//! Errors are `OAuthError`s with RFC 6749 §5.2 codes, rendered by the HTTP edge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cells_store::GrantId;
use cells_store::{DeviceStatus, NewCode, NewRefresh, Redemption, Rotation, User};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::clients::{DEVICE_GRANT, OAuthClient};
use super::{Oidc, random_token, sha256_hex};

/// Seconds during which a just-rotated refresh token may be presented again (two requests of
/// one client racing), before reuse counts as theft and revokes the grant.
const REFRESH_GRACE: i64 = 5;

/// An OAuth error response (RFC 6749 §5.2, §4.1.2.1).
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
    /// Seconds to wait, for a throttled client (HTTP 429 `Retry-After`).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> OAuthError {
        OAuthError::new(400, "invalid_request", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> OAuthError {
        OAuthError::new(401, "invalid_client", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> OAuthError {
        OAuthError::new(400, "invalid_grant", d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> OAuthError {
        OAuthError::new(400, "unauthorized_client", d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> OAuthError {
        OAuthError::new(400, "invalid_scope", d)
    }
    pub fn server_error(cause: impl std::fmt::Display) -> OAuthError {
        tracing::error!(error = %cause, "OAuth internal error");
        OAuthError::new(500, "server_error", "internal error")
    }
}

impl From<crate::error::Error> for OAuthError {
    fn from(error: crate::error::Error) -> OAuthError {
        match error {
            crate::error::Error::Internal(cause) => OAuthError::server_error(cause),
            // RFC 6749 §4.1.2.1's code for a server that cannot answer now, with 503.
            error @ crate::error::Error::Unavailable(_) => OAuthError {
                retry_after: Some(2),
                ..OAuthError::new(503, "temporarily_unavailable", error.to_string())
            },
            crate::error::Error::Invalid { field, reason } if field == "scope" => {
                OAuthError::invalid_scope(reason)
            }
            other => OAuthError::invalid_request(other.to_string()),
        }
    }
}

impl From<cells_store::StoreError> for OAuthError {
    fn from(error: cells_store::StoreError) -> OAuthError {
        OAuthError::server_error(error)
    }
}

impl From<anyhow::Error> for OAuthError {
    fn from(error: anyhow::Error) -> OAuthError {
        OAuthError::server_error(error)
    }
}

pub type OAuthResult<T> = Result<T, OAuthError>;

/// The form of a token request (RFC 6749 §4.1.3, §4.4.2, §6).
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub device_code: Option<String>,
}

/// An authorization request, validated; carried sealed through the login page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// Unix time after which the login page refuses it.
    pub exp: i64,
}

/// Identify the client of a token, revocation or introspection request (RFC 6749 §2.3.1):
/// HTTP Basic (form-urlencoded parts) or `client_id`/`client_secret` in the body, never both.
/// A public client names itself with `client_id` only.
pub async fn authenticate_client(
    oidc: &Oidc,
    basic: Option<(String, String)>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> OAuthResult<OAuthClient> {
    let used_basic = basic.is_some();
    let (id, secret) = match (basic, form_id, form_secret) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some((id, secret)), form_id, None) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (id, Some(secret))
        }
        (None, Some(id), secret) => (id.to_string(), secret.map(str::to_string)),
        (None, None, _) => return Err(OAuthError::invalid_client("client authentication required")),
    };
    let client = oidc
        .clients
        .find(&id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client or wrong secret"))?;
    let used = if used_basic {
        "client_secret_basic"
    } else {
        "client_secret_post"
    };
    if !client.is_public()
        && let Some(declared) = &client.auth_method
        && declared != used
    {
        return Err(OAuthError::invalid_client(format!(
            "this client authenticates with {declared}"
        )));
    }
    match (client.is_public(), secret) {
        (true, None) => Ok(client),
        (true, Some(s)) if s.is_empty() => Ok(client),
        (true, Some(_)) => Err(OAuthError::invalid_client("this public client has no secret")),
        (false, Some(secret)) if client.secret_matches(&secret) => Ok(client),
        (false, _) => Err(OAuthError::invalid_client("unknown client or wrong secret")),
    }
}

/// Make an authorization code for `user` after login (RFC 6749 §4.1.2).
pub async fn issue_code(
    oidc: &Oidc,
    user: &User,
    request: &AuthRequest,
    session: Option<Uuid>,
    auth_time: i64,
) -> OAuthResult<String> {
    let grant = oidc
        .store
        .create_grant(Some(user.id), &request.client_id, &request.scope, session)
        .await?;
    let code = random_token();
    oidc.store
        .insert_code(NewCode {
            code_hash: &sha256_hex(&code),
            grant_id: grant.id,
            client_id: &request.client_id,
            redirect_uri: &request.redirect_uri,
            code_challenge: request.code_challenge.as_deref(),
            nonce: request.nonce.as_deref(),
            scope: &request.scope,
            user_id: user.id,
            auth_time,
            expires_at: cells_store::now() + oidc.lifespans.code,
        })
        .await?;
    Ok(code)
}

/// Dispatch a token request to its grant.
pub async fn token(oidc: &Oidc, client: &OAuthClient, form: &TokenForm) -> OAuthResult<Value> {
    let grant_type = form
        .grant_type
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    if ![
        "authorization_code",
        "refresh_token",
        "client_credentials",
        DEVICE_GRANT,
    ]
    .contains(&grant_type)
    {
        return Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            format!("{grant_type:?} is not supported"),
        ));
    }
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "{} may not use {grant_type}",
            client.id
        )));
    }
    match grant_type {
        "authorization_code" => authorization_code(oidc, client, form).await,
        "refresh_token" => refresh(oidc, client, form).await,
        "client_credentials" => client_credentials(oidc, client, form).await,
        _ => device_code(oidc, client, form).await,
    }
}

/// PKCE S256 (RFC 7636 §4.6).
fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    let valid_verifier = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    valid_verifier && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

async fn authorization_code(oidc: &Oidc, client: &OAuthClient, form: &TokenForm) -> OAuthResult<Value> {
    let code = form
        .code
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let now = cells_store::now();
    let hash = sha256_hex(code);
    // Everything the request must match is checked before the code is spent: a code presented
    // by another client, or with a wrong redirect URI or verifier, stays redeemable by its
    // rightful client, and cannot trigger the replay revocation below.
    let found = oidc
        .store
        .find_code(&hash)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("unknown code"))?;
    if found.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "this code was issued to another client",
        ));
    }
    if form.redirect_uri.as_deref() != Some(found.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    match (&found.code_challenge, form.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) if pkce_matches(challenge, verifier) => {}
        (Some(_), _) => return Err(OAuthError::invalid_grant("PKCE code_verifier does not match")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "no code_challenge was sent for this code",
            ));
        }
        (None, None) => {}
    }
    if found.used_at.is_none() && found.expires_at < now {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    let redeemed = match oidc.store.redeem_code(&hash, now).await? {
        Redemption::Redeemed(redeemed) => redeemed,
        Redemption::AlreadyUsed(used) => {
            // A code used twice was stolen or replayed: revoke what it gave (RFC 6749 §4.1.2).
            oidc.store.revoke_grant(used.grant_id).await?;
            return Err(OAuthError::invalid_grant(
                "this code was already used; its tokens are revoked",
            ));
        }
        Redemption::Unknown => return Err(OAuthError::invalid_grant("unknown code")),
    };
    let user = oidc
        .store
        .find_user(redeemed.user_id)
        .await?
        .filter(|u| !u.locked)
        .ok_or_else(|| OAuthError::invalid_grant("the user is gone or locked"))?;
    let grant = oidc.store.find_grant(redeemed.grant_id).await?;
    let Some(grant) = grant.filter(|g| g.revoked_at.is_none()) else {
        return Err(OAuthError::invalid_grant("the grant was revoked"));
    };
    issue_tokens(
        oidc,
        &user,
        client,
        &redeemed.scope,
        grant.id,
        grant.session_id,
        redeemed.auth_time,
        redeemed.nonce.as_deref(),
        NextRefresh::Random,
    )
    .await
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): each use gives a new refresh token and
/// retires the one presented. The successor is derived from the token presented
/// (`Oidc::successor_of`), so a retry within `REFRESH_GRACE` (a lost response, one client
/// racing itself) gets the same successor, never a second, independent branch; a retired token
/// presented later, or once its successor was itself used, revokes the whole grant.
async fn refresh(oidc: &Oidc, client: &OAuthClient, form: &TokenForm) -> OAuthResult<Value> {
    let presented = form
        .refresh_token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let now = cells_store::now();
    let hash = sha256_hex(presented);
    // The client is checked before anything changes: a token presented by another client is
    // neither rotated nor counted as a reuse.
    let found = oidc
        .store
        .find_refresh(&hash)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("unknown refresh token"))?;
    if found.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "this refresh token belongs to another client",
        ));
    }
    if found.expires_at < now {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    // A refresh may narrow the scope, never widen it (RFC 6749 §6): checked before anything
    // changes, so a refused request spends nothing.
    let scope = match form.scope.as_deref() {
        Some(requested) => {
            let granted: Vec<&str> = found.scope.split_whitespace().collect();
            if let Some(extra) = requested.split_whitespace().find(|s| !granted.contains(s)) {
                return Err(OAuthError::invalid_scope(format!("{extra:?} was not granted")));
            }
            requested.to_string()
        }
        None => found.scope.clone(),
    };
    let successor = oidc.successor_of(presented);
    let successor_hash = sha256_hex(&successor);
    let next = NewRefresh {
        token_hash: &successor_hash,
        grant_id: found.grant_id,
        client_id: &client.id,
        user_id: found.user_id,
        scope: &scope,
        auth_time: found.auth_time,
        expires_at: now + oidc.lifespans.refresh,
    };
    let (old, scope) = match oidc.store.rotate_refresh(&hash, now, next).await? {
        Rotation::Rotated(old) => (old, scope),
        Rotation::AlreadyRotated(old) if old.rotated_at.is_some_and(|at| now - at <= REFRESH_GRACE) => {
            // A retry: the answer carries the successor the first one stored, with its scope.
            match oidc.store.find_refresh(&successor_hash).await? {
                Some(next) if next.rotated_at.is_none() => (old, next.scope),
                Some(_) => {
                    // The successor was used already: whoever holds this one is not its client.
                    oidc.store.revoke_grant(old.grant_id).await?;
                    return Err(OAuthError::invalid_grant(
                        "refresh token reused; the grant is revoked",
                    ));
                }
                None => {
                    return Err(OAuthError::invalid_grant(
                        "this refresh token was just rotated; use its successor",
                    ));
                }
            }
        }
        Rotation::AlreadyRotated(old) => {
            // Reuse of a rotated token: someone holds a copy. Revoke the whole grant.
            oidc.store.revoke_grant(old.grant_id).await?;
            return Err(OAuthError::invalid_grant(
                "refresh token reused; the grant is revoked",
            ));
        }
        Rotation::Unknown => return Err(OAuthError::invalid_grant("unknown refresh token")),
    };
    let grant = oidc.store.find_grant(old.grant_id).await?;
    let Some(grant) = grant.filter(|g| g.revoked_at.is_none()) else {
        return Err(OAuthError::invalid_grant("the grant was revoked"));
    };
    let user = oidc
        .store
        .find_user(old.user_id)
        .await?
        .filter(|u| !u.locked)
        .ok_or_else(|| OAuthError::invalid_grant("the user is gone or locked"))?;
    issue_tokens(
        oidc,
        &user,
        client,
        &scope,
        grant.id,
        grant.session_id,
        old.auth_time,
        None,
        NextRefresh::Stored(successor),
    )
    .await
}

async fn client_credentials(oidc: &Oidc, client: &OAuthClient, form: &TokenForm) -> OAuthResult<Value> {
    if client.is_public() {
        return Err(OAuthError::unauthorized_client(
            "client_credentials is for confidential clients",
        ));
    }
    let scope = client
        .check_scopes(form.scope.as_deref().unwrap_or(""))?
        .join(" ");
    // No grant row: a client token is revoked by recording its grant id as revoked.
    let (access, expires_in) = oidc.issue_access(None, client, &scope, GrantId::random(), None, None)?;
    Ok(json!({ "access_token": access, "token_type": "bearer", "expires_in": expires_in, "scope": scope }))
}

/// How long a device code lives, and how often the device may poll (RFC 8628 §3.2).
const DEVICE_CODE_SECONDS: i64 = 600;
const DEVICE_INTERVAL: i64 = 5;
/// User codes: 8 letters of an alphabet without vowels or look-alikes (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A user code as people type it: case and separators ignored.
pub fn normalize_user_code(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// `XXXX-XXXX`, as shown to people.
pub fn display_user_code(code: &str) -> String {
    if code.len() == 8 {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_string()
    }
}

/// The device authorization request (RFC 8628 §3.1, §3.2).
pub async fn device_authorization(
    oidc: &Oidc,
    client: &OAuthClient,
    scope: Option<&str>,
) -> OAuthResult<Value> {
    if !client.allows_grant(DEVICE_GRANT) {
        return Err(OAuthError::unauthorized_client(format!(
            "{} may not use the device flow",
            client.id
        )));
    }
    let scope = client.check_scopes(scope.unwrap_or("openid"))?.join(" ");
    let device_code = random_token();
    let expires_at = cells_store::now() + DEVICE_CODE_SECONDS;
    for _ in 0..5 {
        let mut random = [0u8; 8];
        crate::random::fill(&mut random);
        let user_code: String = random
            .iter()
            .map(|b| USER_CODE_ALPHABET[*b as usize % USER_CODE_ALPHABET.len()] as char)
            .collect();
        let stored = oidc
            .store
            .create_device_code(
                &sha256_hex(&device_code),
                &user_code,
                &client.id,
                &scope,
                expires_at,
                DEVICE_INTERVAL,
            )
            .await;
        match stored {
            Ok(()) => {
                let verification_uri = format!("{}/oauth2/device", oidc.external_url);
                let shown = display_user_code(&user_code);
                return Ok(json!({
                    "device_code": device_code,
                    "user_code": shown,
                    "verification_uri": verification_uri,
                    "verification_uri_complete": format!("{verification_uri}?user_code={shown}"),
                    "expires_in": DEVICE_CODE_SECONDS,
                    "interval": DEVICE_INTERVAL,
                }));
            }
            Err(cells_store::StoreError::Conflict(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(OAuthError::server_error("no free user code after five tries"))
}

/// The device's token request (RFC 8628 §3.4, §3.5).
async fn device_code(oidc: &Oidc, client: &OAuthClient, form: &TokenForm) -> OAuthResult<Value> {
    let code = form
        .device_code
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("device_code is required"))?;
    let hash = sha256_hex(code);
    let now = cells_store::now();
    let Some(device) = oidc.store.poll_device(&hash, now).await? else {
        return Err(OAuthError::invalid_grant("unknown device_code"));
    };
    if device.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "this device_code belongs to another client",
        ));
    }
    if device.expires_at < now {
        return Err(OAuthError::new(
            400,
            "expired_token",
            "the device code has expired; start again",
        ));
    }
    match device.status {
        DeviceStatus::Pending => {
            if device
                .last_poll_at
                .is_some_and(|at| now - at < device.interval_seconds)
            {
                oidc.store.slow_device(&hash).await?;
                return Err(OAuthError::new(400, "slow_down", "poll less often"));
            }
            Err(OAuthError::new(
                400,
                "authorization_pending",
                "the user has not answered yet",
            ))
        }
        DeviceStatus::Denied => Err(OAuthError::new(400, "access_denied", "the user denied access")),
        DeviceStatus::Used => Err(OAuthError::invalid_grant("this device_code was already used")),
        DeviceStatus::Approved => {
            if !oidc.store.consume_device(&hash).await? {
                return Err(OAuthError::invalid_grant("this device_code was already used"));
            }
            let user_id = device
                .user_id
                .ok_or_else(|| OAuthError::server_error("approved without a user"))?;
            let user = oidc
                .store
                .find_user(user_id)
                .await?
                .filter(|u| !u.locked)
                .ok_or_else(|| OAuthError::invalid_grant("the user is gone or locked"))?;
            let grant = oidc
                .store
                .create_grant(Some(user.id), &client.id, &device.scope, None)
                .await?;
            let auth_time = device.auth_time.unwrap_or(now);
            issue_tokens(
                oidc,
                &user,
                client,
                &device.scope,
                grant.id,
                None,
                auth_time,
                None,
                NextRefresh::Random,
            )
            .await
        }
    }
}

/// The refresh token an answer carries (with `offline`).
enum NextRefresh {
    /// A new random one (a new grant).
    Random,
    /// This value, already stored (a rotation's successor).
    Stored(String),
}

/// Access token, plus an ID token with `openid` and a refresh token with `offline`.
#[allow(clippy::too_many_arguments)]
async fn issue_tokens(
    oidc: &Oidc,
    user: &User,
    client: &OAuthClient,
    scope: &str,
    grant: GrantId,
    session: Option<Uuid>,
    auth_time: i64,
    nonce: Option<&str>,
    refresh: NextRefresh,
) -> OAuthResult<Value> {
    let (access, expires_in) =
        oidc.issue_access(Some(user), client, scope, grant, session, Some(auth_time))?;
    let mut body =
        json!({ "access_token": access, "token_type": "bearer", "expires_in": expires_in, "scope": scope });
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.contains(&"openid") {
        body["id_token"] =
            Value::String(oidc.issue_id_token(user, client, scope, nonce, auth_time, session, &access)?);
    }
    if (scopes.contains(&"offline") || scopes.contains(&"offline_access"))
        && client.allows_grant("refresh_token")
    {
        let (refresh, stored) = match refresh {
            NextRefresh::Random => (random_token(), false),
            NextRefresh::Stored(value) => (value, true),
        };
        if !stored {
            oidc.store
                .insert_refresh(NewRefresh {
                    token_hash: &sha256_hex(&refresh),
                    grant_id: grant,
                    client_id: &client.id,
                    user_id: user.id,
                    scope,
                    auth_time,
                    expires_at: cells_store::now() + oidc.lifespans.refresh,
                })
                .await?;
        }
        body["refresh_token"] = Value::String(refresh);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::pkce_matches;

    #[test]
    fn pkce_s256_vector() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_matches(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            verifier
        ));
        assert!(!pkce_matches(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN",
            verifier
        ));
        assert!(!pkce_matches(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "short"
        ));
    }
}
