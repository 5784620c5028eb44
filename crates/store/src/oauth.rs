//! The OpenID Connect provider's rows: signing keys, clients, login sessions, grants, codes,
//! refresh tokens and consents.
//!
//! Codes and refresh tokens are keyed by a hash the caller computes; the secret is never stored.
//! Redeeming a code and rotating a refresh token are single conditional `UPDATE`s, so of two
//! concurrent uses exactly one wins and the other sees the reuse.

use std::collections::BTreeSet;

use sqlx::FromRow;
use uuid::Uuid;

use crate::ids::{GrantId, UserId};
use crate::{Result, Returned, Store, StoreError, bump_epoch, now, on_conflict};

/// A column read back as something it can never have been written as.
fn corrupt(table: &str, column: &str, key: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("{table}.{column} of {key} is invalid").into(),
    ))
}

fn parse_uuid(text: &str, table: &str, column: &str, key: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| corrupt(table, column, key))
}

/// Lists are stored newline-separated; the caller validates that no item contains a newline.
fn join_list(items: &[&str]) -> String {
    items.join("\n")
}

fn split_list(text: &str) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_string).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Signing keys

#[derive(Debug, Clone, FromRow)]
struct SigningKeyRow {
    kid: String,
    alg: String,
    private_sealed: String,
    public_jwk: String,
    created_at: i64,
    retired_at: Option<i64>,
    expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    /// The private key, encrypted by the caller; never logged.
    pub private_sealed: String,
    pub public_jwk: String,
    pub created_at: i64,
    /// Set when a newer key took over signing; the key still verifies until `expires_at`.
    pub retired_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl From<SigningKeyRow> for SigningKey {
    fn from(row: SigningKeyRow) -> SigningKey {
        SigningKey {
            kid: row.kid,
            alg: row.alg,
            private_sealed: row.private_sealed,
            public_jwk: row.public_jwk,
            created_at: row.created_at,
            retired_at: row.retired_at,
            expires_at: row.expires_at,
        }
    }
}

pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub alg: &'a str,
    pub private_sealed: &'a str,
    pub public_jwk: &'a str,
}

const KEY_COLUMNS: &str = "kid, alg, private_sealed, public_jwk, created_at, retired_at, expires_at";

// ---------------------------------------------------------------------------------------------
// Clients

#[derive(Debug, Clone, FromRow)]
struct OauthClientRow {
    client_id: String,
    client_name: String,
    secret_hash: Option<String>,
    redirect_uris: String,
    grant_types: String,
    response_types: String,
    scope: String,
    token_endpoint_auth_method: String,
    id_token_alg: String,
    skip_consent: i64,
    post_logout_redirect_uris: String,
    created_at: i64,
    access_token_alg: String,
    introspect_personal_tokens: i64,
}

/// A registered OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    pub client_id: String,
    pub client_name: String,
    /// Hash of the client secret; `None` for public clients.
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub scope: String,
    pub token_endpoint_auth_method: String,
    pub id_token_alg: String,
    pub skip_consent: bool,
    pub post_logout_redirect_uris: Vec<String>,
    pub created_at: i64,
    pub access_token_alg: String,
    pub introspect_personal_tokens: bool,
}

impl From<OauthClientRow> for ClientRow {
    fn from(row: OauthClientRow) -> ClientRow {
        ClientRow {
            redirect_uris: split_list(&row.redirect_uris),
            grant_types: split_list(&row.grant_types),
            response_types: split_list(&row.response_types),
            client_id: row.client_id,
            client_name: row.client_name,
            secret_hash: row.secret_hash,
            scope: row.scope,
            token_endpoint_auth_method: row.token_endpoint_auth_method,
            id_token_alg: row.id_token_alg,
            skip_consent: row.skip_consent != 0,
            post_logout_redirect_uris: split_list(&row.post_logout_redirect_uris),
            created_at: row.created_at,
            access_token_alg: row.access_token_alg,
            introspect_personal_tokens: row.introspect_personal_tokens != 0,
        }
    }
}

/// A client to register. List items must not contain newlines (the caller validates them).
pub struct NewClient<'a> {
    pub client_id: &'a str,
    pub client_name: &'a str,
    pub secret_hash: Option<&'a str>,
    pub redirect_uris: &'a [&'a str],
    pub grant_types: &'a [&'a str],
    pub response_types: &'a [&'a str],
    pub scope: &'a str,
    pub token_endpoint_auth_method: &'a str,
    pub id_token_alg: &'a str,
    pub skip_consent: bool,
    pub post_logout_redirect_uris: &'a [&'a str],
    pub access_token_alg: &'a str,
    pub introspect_personal_tokens: bool,
}

const CLIENT_COLUMNS: &str = "client_id, client_name, secret_hash, redirect_uris, grant_types, \
    response_types, scope, token_endpoint_auth_method, id_token_alg, skip_consent, \
    post_logout_redirect_uris, created_at, access_token_alg, introspect_personal_tokens";

// ---------------------------------------------------------------------------------------------
// Login sessions

#[derive(Debug, Clone, FromRow)]
struct SessionRow {
    id: String,
    user_id: String,
    auth_time: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

/// A browser login at the provider, shared by the grants it authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSession {
    pub id: Uuid,
    pub user_id: UserId,
    pub auth_time: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl TryFrom<SessionRow> for LoginSession {
    type Error = StoreError;
    fn try_from(row: SessionRow) -> Result<LoginSession> {
        Ok(LoginSession {
            id: parse_uuid(&row.id, "login_sessions", "id", &row.id)?,
            user_id: UserId::new(parse_uuid(&row.user_id, "login_sessions", "user_id", &row.id)?),
            auth_time: row.auth_time,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

const SESSION_COLUMNS: &str = "id, user_id, auth_time, expires_at, revoked_at";

// ---------------------------------------------------------------------------------------------
// Grants

#[derive(Debug, Clone, FromRow)]
struct GrantRow {
    id: String,
    user_id: Option<String>,
    client_id: String,
    scope: String,
    session_id: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

/// One authorisation of a client: the codes and refresh tokens issued under it live and die
/// with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: GrantId,
    /// `None` for grants to the client itself (client credentials).
    pub user_id: Option<UserId>,
    pub client_id: String,
    pub scope: String,
    pub session_id: Option<Uuid>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;
    fn try_from(row: GrantRow) -> Result<Grant> {
        let uuid = |text: &str, column: &str| parse_uuid(text, "oauth_grants", column, &row.id);
        Ok(Grant {
            id: GrantId::new(uuid(&row.id, "id")?),
            user_id: row
                .user_id
                .as_deref()
                .map(|u| uuid(u, "user_id").map(UserId::new))
                .transpose()?,
            session_id: row
                .session_id
                .as_deref()
                .map(|s| uuid(s, "session_id"))
                .transpose()?,
            client_id: row.client_id,
            scope: row.scope,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

const GRANT_COLUMNS: &str = "id, user_id, client_id, scope, session_id, created_at, revoked_at";

// ---------------------------------------------------------------------------------------------
// Authorization codes

#[derive(Debug, Clone, FromRow)]
struct CodeRow {
    code_hash: String,
    grant_id: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
    scope: String,
    user_id: String,
    auth_time: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub code_hash: String,
    pub grant_id: GrantId,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub user_id: UserId,
    pub auth_time: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl TryFrom<CodeRow> for AuthCode {
    type Error = StoreError;
    fn try_from(row: CodeRow) -> Result<AuthCode> {
        let uuid = |text: &str, column: &str| parse_uuid(text, "oauth_codes", column, &row.code_hash);
        Ok(AuthCode {
            grant_id: GrantId::new(uuid(&row.grant_id, "grant_id")?),
            user_id: UserId::new(uuid(&row.user_id, "user_id")?),
            code_hash: row.code_hash,
            client_id: row.client_id,
            redirect_uri: row.redirect_uri,
            code_challenge: row.code_challenge,
            nonce: row.nonce,
            scope: row.scope,
            auth_time: row.auth_time,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub grant_id: GrantId,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub scope: &'a str,
    pub user_id: UserId,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// The outcome of presenting a code. `AlreadyUsed` is a replay: the caller revokes the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    Redeemed(AuthCode),
    AlreadyUsed(AuthCode),
    Unknown,
}

const CODE_COLUMNS: &str = "code_hash, grant_id, client_id, redirect_uri, code_challenge, nonce, \
    scope, user_id, auth_time, expires_at, used_at";

// ---------------------------------------------------------------------------------------------
// Refresh tokens

#[derive(Debug, Clone, FromRow)]
struct RefreshRow {
    token_hash: String,
    grant_id: String,
    client_id: String,
    user_id: String,
    scope: String,
    auth_time: i64,
    expires_at: i64,
    created_at: i64,
    rotated_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: String,
    pub grant_id: GrantId,
    pub client_id: String,
    pub user_id: UserId,
    pub scope: String,
    pub auth_time: i64,
    pub expires_at: i64,
    pub created_at: i64,
    pub rotated_at: Option<i64>,
}

impl TryFrom<RefreshRow> for RefreshToken {
    type Error = StoreError;
    fn try_from(row: RefreshRow) -> Result<RefreshToken> {
        let uuid = |text: &str, column: &str| parse_uuid(text, "refresh_tokens", column, &row.token_hash);
        Ok(RefreshToken {
            grant_id: GrantId::new(uuid(&row.grant_id, "grant_id")?),
            user_id: UserId::new(uuid(&row.user_id, "user_id")?),
            token_hash: row.token_hash,
            client_id: row.client_id,
            scope: row.scope,
            auth_time: row.auth_time,
            expires_at: row.expires_at,
            created_at: row.created_at,
            rotated_at: row.rotated_at,
        })
    }
}

pub struct NewRefresh<'a> {
    pub token_hash: &'a str,
    pub grant_id: GrantId,
    pub client_id: &'a str,
    pub user_id: UserId,
    pub scope: &'a str,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// The outcome of presenting a refresh token. `AlreadyRotated` is a replay: the caller revokes
/// the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    Rotated(RefreshToken),
    AlreadyRotated(RefreshToken),
    Unknown,
}

const REFRESH_COLUMNS: &str = "token_hash, grant_id, client_id, user_id, scope, auth_time, \
    expires_at, created_at, rotated_at";

impl Store {
    // -- Signing keys -------------------------------------------------------------------------

    /// All keys, newest first: the first unretired key of an alg is the one that signs.
    pub async fn list_signing_keys(&self) -> Result<Vec<SigningKey>> {
        let rows: Vec<SigningKeyRow> = sqlx::query_as(sql!(
            "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC, kid"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(SigningKey::from).collect())
    }

    /// Insert keys in one transaction. With `retire_old_until`, the unretired keys of the same
    /// algs are retired first and keep verifying until that time, so tokens they signed stay
    /// valid while the new keys take over.
    pub async fn add_signing_keys(
        &self,
        new: &[NewSigningKey<'_>],
        retire_old_until: Option<i64>,
    ) -> Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let at = now();
        let mut tx = self.pool().begin().await?;
        if let Some(until) = retire_old_until {
            let algs: BTreeSet<&str> = new.iter().map(|key| key.alg).collect();
            for alg in algs {
                sqlx::query(
                    "UPDATE signing_keys SET retired_at = $1, expires_at = $2 \
                     WHERE retired_at IS NULL AND alg = $3",
                )
                .bind(at)
                .bind(until)
                .bind(alg)
                .execute(&mut *tx)
                .await?;
            }
        }
        for key in new {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_sealed, public_jwk, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(key.kid)
            .bind(key.alg)
            .bind(key.private_sealed)
            .bind(key.public_jwk)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(on_conflict)?;
        }
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete retired keys past their verification window; returns how many.
    pub async fn prune_signing_keys(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    // -- Clients ------------------------------------------------------------------------------

    /// Register a client; `Conflict` when the client id is taken.
    pub async fn create_client(&self, new: NewClient<'_>) -> Result<ClientRow> {
        let row: OauthClientRow = sqlx::query_as(sql!(
            "INSERT INTO oauth_clients (client_id, client_name, secret_hash, redirect_uris, \
             grant_types, response_types, scope, token_endpoint_auth_method, id_token_alg, \
             skip_consent, created_at, post_logout_redirect_uris, access_token_alg, \
             introspect_personal_tokens) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             RETURNING {CLIENT_COLUMNS}"
        ))
        .bind(new.client_id)
        .bind(new.client_name)
        .bind(new.secret_hash)
        .bind(join_list(new.redirect_uris))
        .bind(join_list(new.grant_types))
        .bind(join_list(new.response_types))
        .bind(new.scope)
        .bind(new.token_endpoint_auth_method)
        .bind(new.id_token_alg)
        .bind(i64::from(new.skip_consent))
        .bind(now())
        .bind(join_list(new.post_logout_redirect_uris))
        .bind(new.access_token_alg)
        .bind(i64::from(new.introspect_personal_tokens))
        .fetch_all(self.pool())
        .await
        .map_err(on_conflict)?
        .row()?;
        Ok(row.into())
    }

    pub async fn find_client(&self, id: &str) -> Result<Option<ClientRow>> {
        let row: Option<OauthClientRow> = sqlx::query_as(sql!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(ClientRow::from))
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientRow>> {
        let rows: Vec<OauthClientRow> = sqlx::query_as(sql!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY client_id"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(ClientRow::from).collect())
    }

    /// Delete a client and revoke its grants, so nothing it was issued works any more;
    /// `NotFound` when there is no such client.
    pub async fn delete_client(&self, id: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE oauth_grants SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    // -- Login sessions -----------------------------------------------------------------------

    pub async fn create_session(
        &self,
        user_id: UserId,
        auth_time: i64,
        expires_at: i64,
    ) -> Result<LoginSession> {
        let row: SessionRow = sqlx::query_as(sql!(
            "INSERT INTO login_sessions (id, user_id, auth_time, expires_at) \
             VALUES ($1, $2, $3, $4) RETURNING {SESSION_COLUMNS}"
        ))
        .bind(Uuid::new_v4().to_string())
        .bind(user_id.to_string())
        .bind(auth_time)
        .bind(expires_at)
        .fetch_all(self.pool())
        .await
        .map_err(on_conflict)?
        .row()?;
        row.try_into()
    }

    pub async fn find_session(&self, id: Uuid) -> Result<Option<LoginSession>> {
        let row: Option<SessionRow> =
            sqlx::query_as(sql!("SELECT {SESSION_COLUMNS} FROM login_sessions WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(self.pool())
                .await?;
        row.map(LoginSession::try_from).transpose()
    }

    /// Log out: revoke the session and every grant made under it; `NotFound` when there is no
    /// such session. An already revoked session keeps its first revocation time.
    pub async fn revoke_session(&self, id: Uuid) -> Result<()> {
        let at = now();
        let mut tx = self.pool().begin().await?;
        let done =
            sqlx::query("UPDATE login_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                .bind(id.to_string())
                .bind(at)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE oauth_grants SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL")
            .bind(id.to_string())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    // -- Grants -------------------------------------------------------------------------------

    pub async fn create_grant(
        &self,
        user_id: Option<UserId>,
        client_id: &str,
        scope: &str,
        session_id: Option<Uuid>,
    ) -> Result<Grant> {
        let row: GrantRow = sqlx::query_as(sql!(
            "INSERT INTO oauth_grants (id, user_id, client_id, scope, session_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {GRANT_COLUMNS}"
        ))
        .bind(Uuid::new_v4().to_string())
        .bind(user_id.map(|u| u.to_string()))
        .bind(client_id)
        .bind(scope)
        .bind(session_id.map(|s| s.to_string()))
        .bind(now())
        .fetch_all(self.pool())
        .await
        .map_err(on_conflict)?
        .row()?;
        row.try_into()
    }

    pub async fn find_grant(&self, id: GrantId) -> Result<Option<Grant>> {
        let row: Option<GrantRow> =
            sqlx::query_as(sql!("SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(self.pool())
                .await?;
        row.map(Grant::try_from).transpose()
    }

    /// Revoke a grant; true when it was active. The epoch moves only when something changed.
    pub async fn revoke_grant(&self, id: GrantId) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let done =
            sqlx::query("UPDATE oauth_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.to_string())
                .bind(now())
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ids of grants revoked at or after `since`: what caches of issued tokens must drop.
    pub async fn revoked_grants_since(&self, since: i64) -> Result<Vec<GrantId>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM oauth_grants WHERE revoked_at >= $1 ORDER BY revoked_at, id")
                .bind(since)
                .fetch_all(self.pool())
                .await?;
        rows.into_iter()
            .map(|(id,)| parse_uuid(&id, "oauth_grants", "id", &id).map(GrantId::new))
            .collect()
    }

    // -- Authorization codes ------------------------------------------------------------------

    pub async fn insert_code(&self, new: NewCode<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_codes (code_hash, grant_id, client_id, redirect_uri, \
             code_challenge, nonce, scope, user_id, auth_time, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new.code_hash)
        .bind(new.grant_id.to_string())
        .bind(new.client_id)
        .bind(new.redirect_uri)
        .bind(new.code_challenge)
        .bind(new.nonce)
        .bind(new.scope)
        .bind(new.user_id.to_string())
        .bind(new.auth_time)
        .bind(new.expires_at)
        .execute(self.pool())
        .await
        .map_err(on_conflict)?;
        Ok(())
    }

    /// A code, used or not, without changing it: its client, redirect URI and verifier are
    /// checked before it is redeemed, so that a wrong client cannot spend it.
    pub async fn find_code(&self, code_hash: &str) -> Result<Option<AuthCode>> {
        let row: Option<CodeRow> = sqlx::query_as(sql!(
            "SELECT {CODE_COLUMNS} FROM oauth_codes WHERE code_hash = $1"
        ))
        .bind(code_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Mark a code used, atomically: of concurrent redemptions exactly one gets `Redeemed`.
    /// Expiry is the caller's to check.
    pub async fn redeem_code(&self, code_hash: &str, now: i64) -> Result<Redemption> {
        let used: Option<CodeRow> = sqlx::query_as(sql!(
            "UPDATE oauth_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL \
             RETURNING {CODE_COLUMNS}"
        ))
        .bind(code_hash)
        .bind(now)
        .fetch_all(self.pool())
        .await?
        .optional_row();
        if let Some(row) = used {
            return Ok(Redemption::Redeemed(row.try_into()?));
        }
        let existing: Option<CodeRow> = sqlx::query_as(sql!(
            "SELECT {CODE_COLUMNS} FROM oauth_codes WHERE code_hash = $1"
        ))
        .bind(code_hash)
        .fetch_optional(self.pool())
        .await?;
        match existing {
            Some(row) => Ok(Redemption::AlreadyUsed(row.try_into()?)),
            None => Ok(Redemption::Unknown),
        }
    }

    // -- Refresh tokens -----------------------------------------------------------------------

    pub async fn insert_refresh(&self, new: NewRefresh<'_>) -> Result<()> {
        let mut conn = self.pool().acquire().await?;
        insert_refresh(&mut conn, &new).await
    }

    /// Retire a refresh token and store its `successor` in the same transaction, so that a
    /// retry never finds the token retired and its successor missing. Of concurrent rotations
    /// exactly one gets `Rotated`.
    pub async fn rotate_refresh(
        &self,
        token_hash: &str,
        now: i64,
        successor: NewRefresh<'_>,
    ) -> Result<Rotation> {
        let mut tx = self.pool().begin().await?;
        let rotated: Option<RefreshRow> = sqlx::query_as(sql!(
            "UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1 \
             AND rotated_at IS NULL RETURNING {REFRESH_COLUMNS}"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .optional_row();
        if let Some(row) = rotated {
            insert_refresh(&mut tx, &successor).await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated(row.try_into()?));
        }
        drop(tx);
        match self.find_refresh(token_hash).await? {
            Some(token) => Ok(Rotation::AlreadyRotated(token)),
            None => Ok(Rotation::Unknown),
        }
    }

    pub async fn find_refresh(&self, token_hash: &str) -> Result<Option<RefreshToken>> {
        let row: Option<RefreshRow> = sqlx::query_as(sql!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(RefreshToken::try_from).transpose()
    }

    // -- Consents -----------------------------------------------------------------------------

    pub async fn has_consent(&self, user_id: UserId, client_id: &str, scope: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT created_at FROM consents WHERE user_id = $1 AND client_id = $2 AND scope = $3",
        )
        .bind(user_id.to_string())
        .bind(client_id)
        .bind(scope)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    /// Record a consent; consenting again is not an error.
    pub async fn add_consent(&self, user_id: UserId, client_id: &str, scope: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(user_id.to_string())
        .bind(client_id)
        .bind(scope)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    // -- Housekeeping -------------------------------------------------------------------------

    /// Delete expired codes (kept an hour past expiry, so a late replay is still recognised and
    /// revokes its grant), refresh tokens and sessions; returns how many rows went.
    pub async fn prune_oauth(&self, now: i64) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let mut deleted = 0;
        for (query, before) in [
            ("DELETE FROM oauth_codes WHERE expires_at < $1", now - 3600),
            ("DELETE FROM refresh_tokens WHERE expires_at < $1", now),
            ("DELETE FROM login_sessions WHERE expires_at < $1", now),
        ] {
            let done = sqlx::query(query).bind(before).execute(&mut *tx).await?;
            deleted += done.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

async fn insert_refresh(conn: &mut sqlx::AnyConnection, new: &NewRefresh<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id, scope, \
         auth_time, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new.token_hash)
    .bind(new.grant_id.to_string())
    .bind(new.client_id)
    .bind(new.user_id.to_string())
    .bind(new.scope)
    .bind(new.auth_time)
    .bind(new.expires_at)
    .bind(now())
    .execute(&mut *conn)
    .await
    .map_err(on_conflict)?;
    Ok(())
}
