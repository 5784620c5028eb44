//! Failed logins per client address, shared by every node (the address throttle's counts).

use crate::{Result, Store};

/// One address's failures in its current window, as the database has them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AddressFailures {
    pub address: String,
    pub failures: i64,
    /// Epoch milliseconds.
    pub window_start: i64,
    /// Epoch milliseconds of the last failure counted.
    pub changed: i64,
}

impl Store {
    /// Add `count` failures of `address` at `now_ms`; a window that started `window_ms` ago or
    /// earlier starts again.
    pub async fn add_address_failures(
        &self,
        address: &str,
        count: i64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        // Every SET reads the row as it was, so `failures` sees the old `window_start`.
        sqlx::query(
            "INSERT INTO address_failures (address, failures, window_start, changed) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (address) DO UPDATE SET \
             failures = CASE WHEN address_failures.window_start <= $4 THEN excluded.failures \
                        ELSE address_failures.failures + excluded.failures END, \
             window_start = CASE WHEN address_failures.window_start <= $4 THEN excluded.window_start \
                            ELSE address_failures.window_start END, \
             changed = excluded.changed",
        )
        .bind(address)
        .bind(count)
        .bind(now_ms)
        .bind(now_ms - window_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The rows changed at or after `since_ms`.
    pub async fn address_failures_since(&self, since_ms: i64) -> Result<Vec<AddressFailures>> {
        Ok(sqlx::query_as(
            "SELECT address, failures, window_start, changed FROM address_failures WHERE changed >= $1",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?)
    }

    /// Forget the addresses whose last failure is older than `before_ms`.
    pub async fn prune_address_failures(&self, before_ms: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM address_failures WHERE changed < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
