//! Leases: work that runs on one node at a time across every node of one database (the sweep
//! of a blob store). Taken in one statement, so two nodes never both hold one.

use crate::{Result, Store, now};

impl Store {
    /// Take or renew lease `name` for `holder` for `seconds`, if it is free, expired or already
    /// `holder`'s. Returns whether `holder` holds it now.
    pub async fn take_lease(&self, name: &str, holder: &str, seconds: i64) -> Result<bool> {
        let now = now();
        let _turn = self.write_turn().await;
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now + seconds)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Give lease `name` back if `holder` holds it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
