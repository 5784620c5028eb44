//! Blob intents: the objects being written to a shared blob store right now, by which node,
//! refreshed by that node's heartbeat, so that a sweep on any node leaves them alone.

use sqlx::FromRow;

use crate::{Result, Store, now};

/// An object the sweep must not touch while its writer lives.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Intent {
    pub object_key: String,
    pub node: String,
    /// The object store's multipart upload id, once one was started.
    pub upload_id: Option<String>,
    pub heartbeat: i64,
    /// When the object became whole (its row commits next), if it did.
    pub completed: Option<i64>,
}

impl Store {
    /// Record that `node` is about to write `object_key` (before its first byte).
    pub async fn add_intent(&self, object_key: &str, node: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO blob_intents (object_key, node, upload_id, heartbeat) VALUES ($1, $2, NULL, $3) \
             ON CONFLICT (object_key) DO UPDATE SET node = excluded.node, heartbeat = excluded.heartbeat",
        )
        .bind(object_key)
        .bind(node)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The store's multipart upload for `object_key` began: a sweep that finds the intent dead
    /// aborts it.
    pub async fn set_intent_upload(&self, object_key: &str, upload_id: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE blob_intents SET upload_id = $1 WHERE object_key = $2")
            .bind(upload_id)
            .bind(object_key)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The object of `object_key` is whole; the row that names it commits next.
    pub async fn complete_intent(&self, object_key: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE blob_intents SET completed = $1 WHERE object_key = $2")
            .bind(now())
            .bind(object_key)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The write of `object_key` ended (its object is complete, or gone).
    pub async fn remove_intent(&self, object_key: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM blob_intents WHERE object_key = $1")
            .bind(object_key)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The write of `object_key` was cut: its intent is dead from now on, so the next sweep
    /// aborts its upload and removes what it left, however alive its node is.
    pub async fn abandon_intent(&self, object_key: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE blob_intents SET heartbeat = 0, node = '' WHERE object_key = $1")
            .bind(object_key)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// `node` is alive: every intent it holds is fresh again. One statement per node.
    pub async fn beat_intents(&self, node: &str) -> Result<u64> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("UPDATE blob_intents SET heartbeat = $1 WHERE node = $2")
            .bind(now())
            .bind(node)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Every intent, live or dead (the sweep tells them apart by `heartbeat`).
    pub async fn intents(&self) -> Result<Vec<Intent>> {
        let intents = sqlx::query_as::<_, Intent>(
            "SELECT object_key, node, upload_id, heartbeat, completed FROM blob_intents",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(intents)
    }
}
