//! S3 credentials: which secret signs for an access key, and the `Principal` it becomes.
//!
//! Two kinds of access key (SPEC §4):
//! - a personal access token or an OAuth access token, with the configured gateway secret
//!   (`gatewaysecret`, seed 003). The secret is public, so the access key itself is the
//!   credential, sent in clear in every request: use it over TLS;
//! - beyond Cells, a token's own S3 access key id (`cpak_…`, names the token) with the S3
//!   secret made for it at creation: the secret never travels, only signatures do.
//!
//! s3s asks `Keys` for the secret and verifies the signature; only then does `Access` turn
//! the key into a `Principal` (so a wrong signature never counts as a token use, never slides
//! an expiry) and hand it to the operation in the request extensions.

use std::sync::atomic::Ordering;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result, s3_error};

use super::{REQUEST, s3_error};
use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::auth::{Client, looks_like_jwt, pat};

pub struct Keys {
    app: SharedApp,
}

impl Keys {
    pub fn new(app: SharedApp) -> Keys {
        Keys { app }
    }
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if let Some(token_id) = pat::parse_s3_access_key_id(access_key) {
            return match self.app.auth.token_s3_secret(token_id).await {
                Ok(Some(secret)) => Ok(SecretKey::from(secret)),
                Ok(None) => Err(unknown_key()),
                Err(error) => Err(s3_error(error)),
            };
        }
        if pat::looks_like_token(access_key) || looks_like_jwt(access_key) {
            return Ok(SecretKey::from(
                self.app.config.s3_gateway_secret.expose().as_str(),
            ));
        }
        Err(unknown_key())
    }
}

fn unknown_key() -> S3Error {
    s3_error!(
        InvalidAccessKeyId,
        "the access key must be a personal access token, an OAuth access token, or a token's S3 access key id"
    )
}

pub struct Access {
    app: SharedApp,
}

impl Access {
    pub fn new(app: SharedApp) -> Access {
        Access { app }
    }
}

/// The client of the request being served (set by `s3::serve`).
fn current_client() -> S3Result<Client> {
    REQUEST
        .try_with(|scope| scope.client)
        .map_err(|_| S3Error::new(S3ErrorCode::InternalError))
}

#[async_trait::async_trait]
impl S3Access for Access {
    /// Runs after s3s verified the signature: the access key becomes a `Principal`.
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(
                AccessDenied,
                "anonymous requests are refused: sign with a token as the access key"
            ));
        };
        let access_key = credentials.access_key.clone();
        let principal = resolve(&self.app, &access_key).await?;
        cx.extensions_mut().insert(principal);
        Ok(())
    }
}

/// The `Principal` of an access key whose signature s3s has verified.
pub async fn resolve(app: &SharedApp, access_key: &str) -> S3Result<Principal> {
    let client = current_client()?;
    let outcome = match pat::parse_s3_access_key_id(access_key) {
        Some(token_id) => app.auth.authenticate_token_id(token_id, client).await,
        None => app.auth.authenticate_bearer(access_key, client).await,
    };
    let principal = outcome.map_err(s3_error)?;
    let _ = REQUEST.try_with(|scope| scope.authenticated.store(true, Ordering::Relaxed));
    Ok(principal)
}

/// The caller of an operation, as `Access::check` resolved it.
pub fn principal<T>(request: &S3Request<T>) -> S3Result<&Principal> {
    request
        .extensions
        .get::<Principal>()
        .ok_or_else(|| s3_error!(AccessDenied, "the request is not authenticated"))
}
