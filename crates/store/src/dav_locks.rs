//! WebDAV locks, in the database so that every node sees the locks any node granted. The
//! rules (which locks conflict) are the WebDAV adapter's; here is only their storage, and the
//! one-at-a-time turn in which a new lock is checked against the others and taken.

use sqlx::FromRow;

use crate::{Result, Returned, Store, now};

#[derive(Debug, Clone, FromRow)]
struct LockRow {
    token: String,
    namespace: String,
    path: String,
    principal: Option<String>,
    owner: Option<String>,
    timeout_seconds: Option<i64>,
    expires_at: Option<i64>,
    shared: i64,
    deep: i64,
    created_at: i64,
}

/// A WebDAV lock as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLock {
    pub token: String,
    /// A user id for a path in personal files (each user's own), `""` for common files.
    pub namespace: String,
    /// URL-encoded, below the WebDAV prefix.
    pub path: String,
    pub principal: Option<String>,
    /// The client's `DAV:owner` element, as XML.
    pub owner: Option<String>,
    /// The granted timeout in seconds; `None` for Infinite.
    pub timeout_seconds: Option<i64>,
    /// Unix seconds; `None` for never.
    pub expires_at: Option<i64>,
    pub shared: bool,
    pub deep: bool,
    /// Microseconds since the epoch: locks are considered in the order they were taken.
    pub created_at: i64,
}

impl From<LockRow> for StoredLock {
    fn from(row: LockRow) -> StoredLock {
        StoredLock {
            token: row.token,
            namespace: row.namespace,
            path: row.path,
            principal: row.principal,
            owner: row.owner,
            timeout_seconds: row.timeout_seconds,
            expires_at: row.expires_at,
            shared: row.shared != 0,
            deep: row.deep != 0,
            created_at: row.created_at,
        }
    }
}

const COLUMNS: &str =
    "token, namespace, path, principal, owner, timeout_seconds, expires_at, shared, deep, created_at";

/// The live locks a user's requests can meet: theirs, and those on the common files.
const LIVE: &str = "(namespace = '' OR namespace = $2) AND (expires_at IS NULL OR expires_at > $1) \
                    ORDER BY created_at, token";

impl Store {
    /// Every lock that has not expired, of every user, oldest first (for administrators).
    pub async fn all_live_dav_locks(&self) -> Result<Vec<StoredLock>> {
        let rows: Vec<LockRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM dav_locks WHERE expires_at IS NULL OR expires_at > $1 \
             ORDER BY created_at, token"
        ))
        .bind(now())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(StoredLock::from).collect())
    }

    /// The locks of `user`'s view that have not expired (theirs, and those on the common
    /// files), oldest first.
    pub async fn live_dav_locks(&self, user: &str) -> Result<Vec<StoredLock>> {
        let rows: Vec<LockRow> = sqlx::query_as(sql!("SELECT {COLUMNS} FROM dav_locks WHERE {LIVE}"))
            .bind(now())
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(StoredLock::from).collect())
    }

    /// The live locks of one namespace (a user id, or `""` for the common files), for a
    /// change made by any protocol to check first.
    pub async fn live_dav_locks_in(&self, namespace: &str) -> Result<Vec<StoredLock>> {
        // Nearly always there is none: on SQLite that answer costs no trip to sqlx's worker
        // thread (`local_reads`; a write's lock check would otherwise double its time).
        let now = now();
        let none = self.local.as_ref().and_then(|local| {
            local.read(|connection| {
                connection.query_row(
                    "SELECT NOT EXISTS (SELECT 1 FROM dav_locks WHERE namespace = ?1 \
                     AND (expires_at IS NULL OR expires_at > ?2))",
                    rusqlite::params![namespace, now],
                    |row| row.get::<_, bool>(0),
                )
            })
        });
        if none == Some(true) {
            return Ok(Vec::new());
        }
        let rows: Vec<LockRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM dav_locks WHERE namespace = $2 \
             AND (expires_at IS NULL OR expires_at > $1) ORDER BY created_at, token"
        ))
        .bind(now)
        .bind(namespace)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(StoredLock::from).collect())
    }

    /// Take `lock` for `user` if `conflict` finds nothing against it among the live locks
    /// of their view, read in the same turn (no other node takes a lock in between). Returns
    /// the conflicting lock.
    pub async fn add_dav_lock(
        &self,
        user: &str,
        lock: &StoredLock,
        conflict: impl FnOnce(&[StoredLock]) -> Option<StoredLock>,
    ) -> Result<Option<StoredLock>> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE dav_lock_turn SET n = n + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let rows: Vec<LockRow> = sqlx::query_as(sql!("SELECT {COLUMNS} FROM dav_locks WHERE {LIVE}"))
            .bind(now())
            .bind(user)
            .fetch_all(&mut *tx)
            .await?;
        let live: Vec<StoredLock> = rows.into_iter().map(StoredLock::from).collect();
        if let Some(conflicting) = conflict(&live) {
            return Ok(Some(conflicting));
        }
        sqlx::query(sql!(
            "INSERT INTO dav_locks ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&lock.token)
        .bind(&lock.namespace)
        .bind(&lock.path)
        .bind(lock.principal.as_deref())
        .bind(lock.owner.as_deref())
        .bind(lock.timeout_seconds)
        .bind(lock.expires_at)
        .bind(i64::from(lock.shared))
        .bind(i64::from(lock.deep))
        .bind(lock.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(None)
    }

    /// A new timeout for a lock; the lock as it is now, or `None` when it is gone.
    pub async fn refresh_dav_lock(
        &self,
        token: &str,
        timeout_seconds: Option<i64>,
        expires_at: Option<i64>,
    ) -> Result<Option<StoredLock>> {
        let _turn = self.write_turn().await;
        let row: Option<LockRow> = sqlx::query_as(sql!(
            "UPDATE dav_locks SET timeout_seconds = $2, expires_at = $3 WHERE token = $1 \
             RETURNING {COLUMNS}"
        ))
        .bind(token)
        .bind(timeout_seconds)
        .bind(expires_at)
        .fetch_all(self.pool())
        .await?
        .optional_row();
        Ok(row.map(StoredLock::from))
    }

    /// Remove locks by token (an UNLOCK, or the locks of a deleted or moved resource).
    pub async fn delete_dav_locks(&self, tokens: &[String]) -> Result<()> {
        if tokens.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        for token in tokens {
            sqlx::query("DELETE FROM dav_locks WHERE token = $1")
                .bind(token)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forget locks that expired before `before` (the hourly job).
    pub async fn prune_dav_locks(&self, before: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM dav_locks WHERE expires_at IS NOT NULL AND expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
