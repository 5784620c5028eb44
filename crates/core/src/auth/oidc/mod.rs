//! The OpenID Connect provider: signing keys, clients, and the tokens it issues.
//!
//! - Access tokens are JWTs (RFC 9068, `typ: at+jwt`) signed with EdDSA (fast to sign), that
//!   our own endpoints verify without a database read; each carries its grant id, and a
//!   revoked grant (revocation, logout, code replay, refresh-token reuse) is refused at once
//!   through the revocation list that every node reloads when the auth epoch moves.
//! - ID tokens are JWTs signed with the client's `id_token_signed_response_alg` (RS256 by
//!   default, as OIDC Core §15.1 requires of every provider).
//! - Refresh tokens and authorization codes are random values stored as SHA-256.

pub mod clients;
mod consent;
pub mod grant;
pub mod keys;
pub mod tokens;

use cells_store::GrantId;
use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cells_store::{Store, User, UserId};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::vault::Vault;
use crate::config::Config;
use clients::Clients;
use keys::KeyRing;

/// Signing keys are replaced on a schedule, every 30 days.
pub const KEY_ROTATION_SECONDS: i64 = 30 * 24 * 3600;

/// Token lifetimes, from `services."pydio.web.oauth"` in `pydio.json` (Go durations).
#[derive(Debug, Clone, Copy)]
pub struct Lifespans {
    pub access: i64,
    pub id: i64,
    pub refresh: i64,
    pub code: i64,
}

impl Lifespans {
    fn from_config(config: &Config) -> anyhow::Result<Lifespans> {
        let section = &config.oauth;
        let read = |key: &str, value: &Option<String>, default: i64| -> anyhow::Result<i64> {
            match value {
                Some(text) => crate::duration::parse(text, false)
                    .map_err(|e| anyhow::anyhow!("services.\"pydio.web.oauth\".{key}: {e}")),
                None => Ok(default),
            }
        };
        Ok(Lifespans {
            access: read("accessTokenLifespan", &section.access_token_lifespan, 600)?,
            id: read("idTokenLifespan", &section.id_token_lifespan, 3600)?,
            refresh: read(
                "refreshTokenLifespan",
                &section.refresh_token_lifespan,
                1440 * 3600,
            )?,
            code: read("authCodeLifespan", &section.auth_code_lifespan, 600)?,
        })
    }
}

/// Claims of our access tokens (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// User id, or the client id for `client_credentials`.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// Our grant id: what revocation names.
    pub gid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The user's login (absent for client tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl AccessClaims {
    pub fn grant_id(&self) -> Option<GrantId> {
        GrantId::parse(&self.gid)
    }

    /// The user the token acts for; `None` for a client's own token.
    pub fn user_id(&self) -> Option<UserId> {
        if self.sub == self.client_id && self.name.is_none() {
            return None;
        }
        UserId::parse(&self.sub)
    }
}

/// What an `id_token_hint` says (OIDC RP-Initiated Logout §2): the client it was issued to,
/// the user, and the browser session it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    pub client_id: String,
    pub user_id: UserId,
    pub session_id: Option<Uuid>,
}

pub struct Oidc {
    /// `<external-url>/oidc`.
    pub issuer: String,
    /// The audience of our access tokens: this server's API.
    pub audience: String,
    pub external_url: String,
    pub keys: KeyRing,
    pub clients: Clients,
    pub lifespans: Lifespans,
    pub(crate) store: Store,
    pub vault: Arc<Vault>,
    /// Access tokens whose signature and claims already checked out, by SHA-256 of the token,
    /// until they expire: a signature verifies the same way every time, so a repeated token
    /// costs a hash, not an EdDSA verification. Revocation is checked apart, on every use.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], AccessClaims>>,
    /// Keys the successor of a refresh token (`successor_of`).
    refresh_key: aws_lc_rs::hmac::Key,
    /// Device authorizations per address (`DEVICE_REQUESTS` a minute).
    pub device_requests: super::rate::RateLimit<std::net::IpAddr>,
}

/// Device authorizations one address may start in a minute (a person starts one or two).
pub const DEVICE_REQUESTS: u32 = 20;

/// Most verified access tokens kept in memory.
const VERIFIED_MAX: usize = 50_000;

/// A random 32-byte value, base64url: codes, refresh tokens, CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    crate::random::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Lowercase hex SHA-256: how codes and refresh tokens are stored.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, text.as_bytes()))
}

impl Oidc {
    pub async fn open(config: &Config, store: Store, vault: Arc<Vault>) -> anyhow::Result<Oidc> {
        // jsonwebtoken needs its crypto backend named once per process.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let keys = KeyRing::open(store.clone(), vault.clone()).await?;
        let clients = Clients::load(config, store.clone())?;
        let refresh_secret = vault.secret(&store, "refresh_successor_key", 32).await?;
        Ok(Oidc {
            refresh_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &refresh_secret),
            device_requests: super::rate::RateLimit::new(DEVICE_REQUESTS, std::time::Duration::from_secs(60)),
            issuer: format!("{}/oidc", config.external_url),
            audience: config.external_url.clone(),
            external_url: config.external_url.clone(),
            keys,
            clients,
            lifespans: Lifespans::from_config(config)?,
            store,
            vault,
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The refresh token that replaces `presented` at its rotation: a keyed hash of it, so a
    /// retry gets the same successor, and nobody without the server's key can compute it.
    pub fn successor_of(&self, presented: &str) -> String {
        use base64::Engine;
        let tag = aws_lc_rs::hmac::sign(&self.refresh_key, presented.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Sign an access token (RFC 9068) for `user`, or for the client itself when `user` is
    /// `None`, with the client's algorithm (ES256 unless it asked for RS256 or EdDSA).
    pub fn issue_access(
        &self,
        user: Option<&User>,
        client: &clients::OAuthClient,
        scope: &str,
        grant: GrantId,
        session: Option<Uuid>,
        auth_time: Option<i64>,
    ) -> anyhow::Result<(String, i64)> {
        let alg = client.access_token_alg;
        let client_id = client.id.as_str();
        let key = self
            .keys
            .signer(alg)
            .ok_or_else(|| anyhow::anyhow!("no {alg:?} key"))?;
        let now = cells_store::now();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: user.map_or_else(|| client_id.to_string(), |u| u.id.to_string()),
            aud: self.audience.clone(),
            exp: now + self.lifespans.access,
            iat: now,
            jti: Uuid::new_v4().to_string(),
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            gid: grant.to_string(),
            sid: session.map(|s| s.to_string()),
            auth_time,
            name: user.map(|u| u.login.clone()),
        };
        // RFC 9068 §2.1: the `typ` of a JWT access token.
        let token = key.sign_jwt("at+jwt", &claims)?;
        Ok((token, self.lifespans.access))
    }

    /// Check an access token's signature, type, issuer, audience and expiry. Only the
    /// algorithms we issue are accepted (no `none`, no HMAC, no unknown `kid`).
    pub fn verify_access(&self, token: &str) -> Option<AccessClaims> {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        let now = cells_store::now();
        {
            let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(claims) = verified.get(&key) {
                return (claims.exp >= now && self.keys_still_trusted(token)).then(|| claims.clone());
            }
        }
        let claims = self.verify_access_uncached(token)?;
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, c| c.exp >= now);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(key, claims.clone());
        Some(claims)
    }

    /// The key that signed a cached token must still be one we verify with.
    fn keys_still_trusted(&self, token: &str) -> bool {
        jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| h.kid)
            .is_some_and(|kid| self.keys.verifier(&kid).is_some())
    }

    fn verify_access_uncached(&self, token: &str) -> Option<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some("at+jwt") || !keys::ALGORITHMS.contains(&header.alg) {
            return None;
        }
        // The key named decides the algorithm: a token cannot pick another for it.
        let key = self.keys.verifier(header.kid.as_deref()?)?;
        if key.alg != header.alg {
            return None;
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }

    /// The client (`aud`) and session (`sid`) named by an ID token we signed, expired or not
    /// (RP-Initiated Logout §2: `id_token_hint` may have expired).
    pub fn read_id_token_hint(&self, token: &str) -> Option<IdTokenHint> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.verifier(header.kid.as_deref()?)?;
        if key.alg != header.alg {
            return None;
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key.decoding, &validation)
            .ok()?
            .claims;
        let client_id = claims.get("aud")?.as_str()?.to_string();
        let user_id = UserId::parse(claims.get("sub")?.as_str()?)?;
        let session_id = claims
            .get("sid")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        Some(IdTokenHint {
            client_id,
            user_id,
            session_id,
        })
    }

    /// An ID token (OIDC Core §2) for `user`, signed as the client asked, with the claims the
    /// granted `scope` allows.
    #[allow(clippy::too_many_arguments)]
    pub fn issue_id_token(
        &self,
        user: &User,
        client: &clients::OAuthClient,
        scope: &str,
        nonce: Option<&str>,
        auth_time: i64,
        session: Option<Uuid>,
        access_token: &str,
    ) -> anyhow::Result<String> {
        let alg = client.id_token_alg;
        let key = self
            .keys
            .signer(alg)
            .ok_or_else(|| anyhow::anyhow!("no {alg:?} key"))?;
        let now = cells_store::now();
        // at_hash: left half of the hash of the access token, with the JWS alg's hash
        // (OIDC Core §3.1.3.6); SHA-512 for Ed25519.
        let digest_alg = if alg == Algorithm::EdDSA {
            &digest::SHA512
        } else {
            &digest::SHA256
        };
        let hash = digest::digest(digest_alg, access_token.as_bytes());
        let at_hash = URL_SAFE_NO_PAD.encode(&hash.as_ref()[..hash.as_ref().len() / 2]);
        let mut claims = user_claims(user, scope);
        claims.extend([
            ("iss".to_string(), Value::String(self.issuer.clone())),
            ("aud".to_string(), Value::String(client.id.clone())),
            ("exp".to_string(), Value::from(now + self.lifespans.id)),
            ("iat".to_string(), Value::from(now)),
            ("auth_time".to_string(), Value::from(auth_time)),
            ("at_hash".to_string(), Value::String(at_hash)),
        ]);
        let mut claims = Value::Object(claims);
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::String(nonce.to_string());
        }
        if let Some(session) = session {
            claims["sid"] = Value::String(session.to_string());
        }
        key.sign_jwt("JWT", &claims)
    }

    /// Replace the signing keys. The old ones keep verifying as long as a token they signed
    /// may live (the longer of the access and ID token lifetimes, plus a minute).
    pub async fn rotate_keys(&self) -> anyhow::Result<()> {
        let keep = self.lifespans.access.max(self.lifespans.id) + 60;
        self.keys.rotate(cells_store::now() + keep).await
    }

    /// Rotate when the signing keys are older than `KEY_ROTATION_SECONDS` (run hourly).
    pub async fn rotate_keys_if_due(&self) -> anyhow::Result<bool> {
        let oldest = keys::ALGORITHMS
            .iter()
            .filter_map(|alg| self.keys.signer(*alg))
            .map(|key| key.created_at)
            .min()
            .unwrap_or(0);
        if cells_store::now() - oldest < KEY_ROTATION_SECONDS {
            return Ok(false);
        }
        self.rotate_keys().await?;
        Ok(true)
    }

    /// The OpenID Provider metadata (OIDC Discovery §3, RFC 8414 §2).
    pub fn discovery(&self) -> Value {
        let iss = &self.issuer;
        serde_json::json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/oauth2/auth"),
            "token_endpoint": format!("{iss}/oauth2/token"),
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "userinfo_endpoint": format!("{iss}/userinfo"),
            "revocation_endpoint": format!("{iss}/oauth2/revoke"),
            "introspection_endpoint": format!("{iss}/oauth2/introspect"),
            "device_authorization_endpoint": format!("{iss}/oauth2/device/auth"),
            "end_session_endpoint": format!("{iss}/oauth2/sessions/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                                      "urn:ietf:params:oauth:grant-type:device_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            "userinfo_signing_alg_values_supported": ["none"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile", "pydio", "offline", "offline_access"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid",
                                 "name", "preferred_username", "email", "given_name"],
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "claims_parameter_supported": false,
            "authorization_response_iss_parameter_supported": false,
        })
    }
}

/// The claims about `user` that `scope` grants (OIDC Core §5.4), for the ID token and userinfo:
/// `sub` always; `name`, `preferred_username` (the login) and `given_name` (the display name)
/// with `profile`, or with Cells' own `pydio` scope, whose clients read the login from `name`;
/// `email` with `email`.
pub fn user_claims(user: &User, scope: &str) -> serde_json::Map<String, Value> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), Value::String(user.id.to_string()));
    if scopes.contains(&"profile") || scopes.contains(&"pydio") {
        claims.insert("name".into(), Value::String(user.login.clone()));
        claims.insert("preferred_username".into(), Value::String(user.login.clone()));
        if !user.display_name.is_empty() {
            claims.insert("given_name".into(), Value::String(user.display_name.clone()));
        }
    }
    if scopes.contains(&"email") && !user.email.is_empty() {
        claims.insert("email".into(), Value::String(user.email.clone()));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_the_granted_scopes() {
        let user = User {
            id: UserId::new(Uuid::nil()),
            login: "alice".into(),
            display_name: "Alice A".into(),
            email: "alice@example.org".into(),
            profile: cells_store::Profile::Standard,
            password_hash: String::new(),
            locked: false,
            failed_logins: 0,
            suspended_until: 0,
            quota: None,
            groups: Vec::new(),
            created_at: 0,
            updated_at: 0,
        };
        let keys = |scope: &str| {
            let mut keys: Vec<String> = user_claims(&user, scope).keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(keys("openid"), ["sub"]);
        assert_eq!(keys("openid email"), ["email", "sub"]);
        assert_eq!(
            keys("openid profile"),
            ["given_name", "name", "preferred_username", "sub"]
        );
        assert_eq!(user_claims(&user, "openid pydio")["name"], "alice");
        let all = keys("openid email profile pydio offline");
        assert!(all.contains(&"email".to_string()) && all.contains(&"name".to_string()));
    }
}
