//! SSH public keys registered for SFTP logins: one user, many keys, each named by its
//! fingerprint. Removing a key bumps the auth epoch, so that every node stops accepting it
//! (and sessions opened with it) at their next request.

use sqlx::FromRow;
use uuid::Uuid;

use crate::ids::UserId;
use crate::{Result, Returned, Store, StoreError, bump_epoch, now, on_conflict};

#[derive(Debug, Clone, FromRow)]
struct SshKeyRow {
    id: String,
    user_id: String,
    fingerprint: String,
    public_key: String,
    comment: String,
    created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    pub id: Uuid,
    pub user_id: UserId,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// The OpenSSH public key line, without its comment.
    pub public_key: String,
    pub comment: String,
    pub created_at: i64,
}

impl TryFrom<SshKeyRow> for SshKey {
    type Error = StoreError;
    fn try_from(row: SshKeyRow) -> Result<SshKey> {
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(
                format!("ssh_keys.{what} of {} is invalid", row.id).into(),
            ))
        };
        Ok(SshKey {
            id: Uuid::parse_str(&row.id).map_err(|_| corrupt("id"))?,
            user_id: UserId::parse(&row.user_id).ok_or_else(|| corrupt("user_id"))?,
            fingerprint: row.fingerprint,
            public_key: row.public_key,
            comment: row.comment,
            created_at: row.created_at,
        })
    }
}

const COLUMNS: &str = "id, user_id, fingerprint, public_key, comment, created_at";

impl Store {
    /// Register a key for a user; `Conflict` when the user has it already.
    pub async fn add_ssh_key(
        &self,
        user_id: UserId,
        fingerprint: &str,
        public_key: &str,
        comment: &str,
    ) -> Result<SshKey> {
        let row: SshKeyRow = sqlx::query_as(sql!(
            "INSERT INTO ssh_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(Uuid::new_v4().to_string())
        .bind(user_id.to_string())
        .bind(fingerprint)
        .bind(public_key)
        .bind(comment)
        .bind(now())
        .fetch_all(self.pool())
        .await
        .map_err(on_conflict)?
        .row()?;
        row.try_into()
    }

    /// The key of `user_id` with this fingerprint, if registered.
    pub async fn find_ssh_key(&self, user_id: UserId, fingerprint: &str) -> Result<Option<SshKey>> {
        let row: Option<SshKeyRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE user_id = $1 AND fingerprint = $2"
        ))
        .bind(user_id.to_string())
        .bind(fingerprint)
        .fetch_optional(self.pool())
        .await?;
        row.map(SshKey::try_from).transpose()
    }

    pub async fn list_ssh_keys(&self, user_id: UserId) -> Result<Vec<SshKey>> {
        let rows: Vec<SshKeyRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE user_id = $1 ORDER BY created_at, fingerprint"
        ))
        .bind(user_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(SshKey::try_from).collect()
    }

    /// Remove a key; `NotFound` when the user has no such key.
    pub async fn delete_ssh_key(&self, user_id: UserId, fingerprint: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("DELETE FROM ssh_keys WHERE user_id = $1 AND fingerprint = $2")
            .bind(user_id.to_string())
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
