//! What a client may learn about, and do to, the tokens our provider issued: revocation
//! (RFC 7009) and introspection (RFC 7662), with one rule for whether a token is live.
//!
//! An access token is live while its signature and expiry hold and its grant is not revoked
//! (read now, not from the epoch's cache: introspection answers for other servers). A refresh
//! token is live while it is the newest of its chain, unexpired, and its grant not revoked.

use serde_json::{Value, json};

use cells_store::TokenKind;

use super::AccessClaims;
use super::clients::OAuthClient;
use super::grant::{OAuthError, OAuthResult};
use super::sha256_hex;
use crate::App;

/// Whether a verified access token's grant still stands.
pub async fn access_is_live(app: &App, claims: &AccessClaims) -> OAuthResult<bool> {
    let Some(grant_id) = claims.grant_id() else {
        return Ok(false);
    };
    Ok(!app.auth.is_grant_revoked_now(grant_id).await?)
}

/// RFC 7009: `client` revokes one of its tokens, which ends the token's whole grant. A token
/// that is unknown, or another client's, changes nothing and is answered the same (§2.2).
pub async fn revoke(app: &App, client: &OAuthClient, token: &str) -> OAuthResult<()> {
    if let Some(claims) = app.oidc.verify_access(token) {
        if claims.client_id != client.id {
            return Ok(());
        }
        let grant_id = claims
            .grant_id()
            .ok_or_else(|| OAuthError::invalid_request("malformed token"))?;
        if app.store.find_grant(grant_id).await?.is_none() {
            // A client's own token has no grant to revoke: it lives accessTokenLifespan.
            return Err(OAuthError::new(
                400,
                "unsupported_token_type",
                "client_credentials access tokens cannot be revoked; they expire",
            ));
        }
        app.store.revoke_grant(grant_id).await?;
    } else if let Some(refresh) = app.store.find_refresh(&sha256_hex(token)).await?
        && refresh.client_id == client.id
    {
        app.store.revoke_grant(refresh.grant_id).await?;
    }
    app.auth.settle().await;
    Ok(())
}

/// RFC 7662 §2.2: what `client` is told about `token`; `{"active": false}` for anything not
/// live, not the client's own refresh token, or a personal access token when the client is
/// not allowed to introspect those (`introspect_personal_tokens`).
pub async fn introspect(app: &App, client: &OAuthClient, token: &str) -> OAuthResult<Value> {
    let inactive = json!({ "active": false });
    if let Some(claims) = app.oidc.verify_access(token) {
        return Ok(match access_is_live(app, &claims).await? {
            true => access_json(&claims),
            false => inactive,
        });
    }
    let now = crate::records::now();
    if let Some(refresh) = app.store.find_refresh(&sha256_hex(token)).await?
        && refresh.client_id == client.id
        && refresh.rotated_at.is_none()
        && refresh.expires_at >= now
        && app
            .store
            .find_grant(refresh.grant_id)
            .await?
            .is_some_and(|g| g.revoked_at.is_none())
    {
        return Ok(json!({
            "active": true, "token_type": "refresh_token", "client_id": refresh.client_id,
            "sub": refresh.user_id.to_string(), "scope": refresh.scope, "exp": refresh.expires_at,
            "iat": refresh.created_at, "iss": app.oidc.issuer,
        }));
    }
    if client.introspect_personal_tokens
        && let Some((token, user, expires_at)) = app.auth.inspect_token(token).await?
    {
        let token_type = match token.kind {
            TokenKind::Personal => "personal_access_token",
            TokenKind::Document => "document_token",
        };
        // `scope` lists the token's node scopes (`node:UUID:r`); empty for an unscoped token,
        // which may do whatever its owner may.
        return Ok(json!({
            "active": true, "token_type": token_type, "sub": user.id.to_string(),
            "username": user.login, "scope": token.scopes, "exp": expires_at,
            "iat": token.created_at, "iss": app.oidc.issuer,
        }));
    }
    Ok(inactive)
}

fn access_json(claims: &AccessClaims) -> Value {
    let mut value = json!({
        "active": true, "token_type": "access_token", "client_id": claims.client_id, "sub": claims.sub,
        "scope": claims.scope, "exp": claims.exp, "iat": claims.iat, "iss": claims.iss, "aud": claims.aud,
        "jti": claims.jti,
    });
    if let Some(name) = &claims.name {
        value["username"] = Value::String(name.clone());
    }
    value
}
