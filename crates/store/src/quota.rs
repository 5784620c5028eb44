//! Quotas: how much a root (a user's personal files, a workspace) may hold, and the space
//! promised to writes in progress on any node.
//!
//! A write that would grow a root with a quota first reserves the growth (`reserve_quota`):
//! in one transaction that holds the root's row, so reservations of every node are decided
//! one after the other, the files below the root plus the live reservations plus the growth
//! must fit the quota. The reservation is released once the file is committed (its size then
//! counts through its row), or expires when its node died before that.

use uuid::Uuid;

use crate::ids::NodeId;
use crate::nodes::Node;
use crate::{Result, Store, now};

/// Why a reservation was refused: the root's quota, and what it holds now (files and other
/// writes in progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    pub quota: u64,
    pub used: u64,
}

impl Store {
    /// The quota of a root: its owner's for a personal root, its workspace's otherwise.
    pub async fn quota_of_root(&self, root: &Node) -> Result<Option<u64>> {
        let row: Option<(Option<i64>,)> = match root.owner_id {
            Some(owner) => {
                sqlx::query_as("SELECT quota FROM users WHERE id = $1")
                    .bind(owner.to_string())
                    .fetch_optional(self.pool())
                    .await?
            }
            None => {
                sqlx::query_as("SELECT quota FROM workspaces WHERE root_key = $1")
                    .bind(&root.name)
                    .fetch_optional(self.pool())
                    .await?
            }
        };
        Ok(row.and_then(|(quota,)| quota).map(|q| q.max(0) as u64))
    }

    /// Reserve `bytes` more below `root` for `seconds`, if they fit `quota` with what the root
    /// holds and what other writes reserved. Returns the reservation's id, or what is in the
    /// way.
    pub async fn reserve_quota(
        &self,
        root: NodeId,
        quota: u64,
        bytes: u64,
        seconds: i64,
    ) -> Result<std::result::Result<String, OverQuota>> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        // The root's row, held until the commit: reservations under one root take turns.
        sqlx::query("UPDATE nodes SET mtime = mtime WHERE id = $1")
            .bind(root.to_string())
            .execute(&mut *tx)
            .await?;
        let at = now();
        // SUM of BIGINT is NUMERIC on PostgreSQL: cast back for one decoder on both backends.
        let (files, reserved): (i64, i64) = sqlx::query_as(
            "WITH RECURSIVE sub(id) AS (SELECT id FROM nodes WHERE id = $1 \
                UNION ALL SELECT n.id FROM nodes n JOIN sub ON n.parent_id = sub.id) \
             SELECT \
               (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM nodes \
                 WHERE id IN (SELECT id FROM sub) AND kind = 'LEAF'), \
               (SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM quota_reservations \
                 WHERE root_id = $1 AND expires_at > $2)",
        )
        .bind(root.to_string())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        let used = (files.max(0) as u64).saturating_add(reserved.max(0) as u64);
        if used.saturating_add(bytes) > quota {
            return Ok(Err(OverQuota { quota, used }));
        }
        let id = Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO quota_reservations (id, root_id, bytes, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(root.to_string())
        .bind(bytes.min(i64::MAX as u64) as i64)
        .bind(at + seconds)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    /// Give back a reservation (its write committed or failed).
    pub async fn release_quota(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM quota_reservations WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Remove expired reservations (hourly).
    pub async fn prune_quota_reservations(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM quota_reservations WHERE expires_at <= $1")
            .bind(now())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
