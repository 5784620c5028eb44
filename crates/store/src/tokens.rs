//! Personal and document access tokens: rows keyed by the id embedded in the token value.
//!
//! Only a hash of the secret is stored. Sliding expiry is written by `touch_token`, which only
//! ever moves `expires_at` forward, so writes from several nodes in any order agree.

use crate::ids::{TokenId, UserId};
use crate::users::User;
use crate::{Result, Returned, Store, StoreError, bump_epoch, now, on_conflict};
use sqlx::FromRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Personal,
    Document,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Personal => "PERSONAL",
            TokenKind::Document => "DOCUMENT",
        }
    }
}

#[derive(Debug, Clone, FromRow)]
struct TokenRow {
    id: String,
    user_id: String,
    kind: String,
    label: String,
    secret_hash: String,
    scopes: String,
    auto_refresh: i64,
    expires_at: i64,
    max_expires_at: Option<i64>,
    created_at: i64,
    created_by: String,
    last_used_at: Option<i64>,
    last_used_protocol: Option<String>,
    last_used_address: Option<String>,
    s3_secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: TokenId,
    pub user_id: UserId,
    pub kind: TokenKind,
    pub label: String,
    /// Lowercase hex SHA-256 of the token's secret part.
    pub secret_hash: String,
    /// Space-separated `node:UUID:PERM` scopes, as validated at creation; empty = unscoped.
    pub scopes: String,
    /// Sliding window in seconds; 0 for a hard limit.
    pub auto_refresh: i64,
    pub expires_at: i64,
    /// Absolute cap on a sliding token's life.
    pub max_expires_at: Option<i64>,
    pub created_at: i64,
    pub created_by: String,
    pub last_used_at: Option<i64>,
    pub last_used_protocol: Option<String>,
    pub last_used_address: Option<String>,
    /// The token's own S3 secret access key, sealed (never stored in clear).
    pub s3_secret: Option<String>,
}

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;
    fn try_from(row: TokenRow) -> Result<Token> {
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(
                format!("tokens.{what} of {} is invalid", row.id).into(),
            ))
        };
        Ok(Token {
            id: TokenId::parse(&row.id).ok_or_else(|| corrupt("id"))?,
            user_id: UserId::parse(&row.user_id).ok_or_else(|| corrupt("user_id"))?,
            kind: match row.kind.as_str() {
                "PERSONAL" => TokenKind::Personal,
                "DOCUMENT" => TokenKind::Document,
                _ => return Err(corrupt("kind")),
            },
            label: row.label,
            secret_hash: row.secret_hash,
            scopes: row.scopes,
            auto_refresh: row.auto_refresh,
            expires_at: row.expires_at,
            max_expires_at: row.max_expires_at,
            created_at: row.created_at,
            created_by: row.created_by,
            last_used_at: row.last_used_at,
            last_used_protocol: row.last_used_protocol,
            last_used_address: row.last_used_address,
            s3_secret: row.s3_secret,
        })
    }
}

pub struct NewToken<'a> {
    pub id: TokenId,
    pub user_id: UserId,
    pub kind: TokenKind,
    pub label: &'a str,
    pub secret_hash: &'a str,
    pub scopes: &'a str,
    pub auto_refresh: i64,
    pub expires_at: i64,
    pub max_expires_at: Option<i64>,
    pub created_by: &'a str,
    pub s3_secret: Option<&'a str>,
}

/// One recorded use of a token, written in batches.
#[derive(Debug, Clone)]
pub struct TokenUse {
    pub id: TokenId,
    /// New sliding expiry; ignored unless it is later than the stored one.
    pub expires_at: Option<i64>,
    pub used_at: i64,
    pub protocol: String,
    pub address: String,
}

const COLUMNS: &str = "id, user_id, kind, label, secret_hash, scopes, auto_refresh, expires_at, \
    max_expires_at, created_at, created_by, last_used_at, last_used_protocol, last_used_address, s3_secret";

impl Store {
    pub async fn create_token(&self, new: NewToken<'_>) -> Result<Token> {
        let row: TokenRow = sqlx::query_as(sql!(
            "INSERT INTO tokens (id, user_id, kind, label, secret_hash, scopes, auto_refresh, \
             expires_at, max_expires_at, created_at, created_by, s3_secret) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
        ))
        .bind(new.id.to_string())
        .bind(new.user_id.to_string())
        .bind(new.kind.as_str())
        .bind(new.label)
        .bind(new.secret_hash)
        .bind(new.scopes)
        .bind(new.auto_refresh)
        .bind(new.expires_at)
        .bind(new.max_expires_at)
        .bind(now())
        .bind(new.created_by)
        .bind(new.s3_secret)
        .fetch_all(self.pool())
        .await
        .map_err(on_conflict)?
        .row()?;
        row.try_into()
    }

    pub async fn find_token(&self, id: TokenId) -> Result<Option<Token>> {
        let row: Option<TokenRow> = sqlx::query_as(sql!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(Token::try_from).transpose()
    }

    /// A token and its owner in one read: what every request with a token needs.
    pub async fn find_token_and_user(&self, id: TokenId) -> Result<Option<(Token, User)>> {
        let Some(token) = self.find_token(id).await? else {
            return Ok(None);
        };
        let Some(user) = self.find_user(token.user_id).await? else {
            return Ok(None);
        };
        Ok(Some((token, user)))
    }

    /// Tokens of one user, or of everyone; newest first.
    pub async fn list_tokens(&self, user: Option<UserId>) -> Result<Vec<Token>> {
        let rows: Vec<TokenRow> = match user {
            Some(user) => {
                sqlx::query_as(sql!(
                    "SELECT {COLUMNS} FROM tokens WHERE user_id = $1 ORDER BY created_at DESC, id"
                ))
                .bind(user.to_string())
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query_as(sql!("SELECT {COLUMNS} FROM tokens ORDER BY created_at DESC, id"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.into_iter().map(Token::try_from).collect()
    }

    /// Delete (revoke) a token; `NotFound` when there is no such token.
    pub async fn delete_token(&self, id: TokenId) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record uses of tokens: last use, and the sliding expiry moved forward (never back).
    pub async fn touch_tokens(&self, uses: &[TokenUse]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for one in uses {
            sqlx::query(
                "UPDATE tokens SET \
                 expires_at = CASE WHEN auto_refresh > 0 AND $2 > expires_at THEN $2 \
                              ELSE expires_at END, \
                 last_used_at = $3, last_used_protocol = $4, last_used_address = $5 \
                 WHERE id = $1",
            )
            .bind(one.id.to_string())
            .bind(one.expires_at.unwrap_or(0))
            .bind(one.used_at)
            .bind(&one.protocol)
            .bind(&one.address)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Delete tokens that expired before `before`; returns how many.
    pub async fn prune_tokens(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM tokens WHERE expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
