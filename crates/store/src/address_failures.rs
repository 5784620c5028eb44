//! Failed logins per client address, shared by every node (the address throttle's counts).
//! Rows are dated by the database's clock, not the nodes': nodes whose clocks differ still see
//! each other's failures.

use crate::{Backend, Result, Store};

/// One address's failures in its current window, as the database has them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AddressFailures {
    pub address: String,
    pub failures: i64,
    /// Epoch milliseconds (the database's clock).
    pub window_start: i64,
    /// Epoch milliseconds of the last failure counted (the database's clock).
    pub changed: i64,
}

/// The database's time, in epoch milliseconds, as SQL (a constant per backend: no input
/// reaches the statements it is put in).
fn now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

impl Store {
    /// The database's time, in epoch milliseconds.
    pub async fn database_now_ms(&self) -> Result<i64> {
        let (now,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {}", now_ms(self.backend()))))
                .fetch_one(self.pool())
                .await?;
        Ok(now)
    }

    /// Add failures (address, count), in one transaction; an address whose window started
    /// `window_ms` ago or earlier starts a new one.
    pub async fn add_address_failures(&self, failures: &[(String, i64)], window_ms: i64) -> Result<()> {
        if failures.is_empty() {
            return Ok(());
        }
        // Every SET reads the row as it was, so `failures` sees the old `window_start`.
        let now = now_ms(self.backend());
        let statement = format!(
            "INSERT INTO address_failures (address, failures, window_start, changed) \
             VALUES ($1, $2, {now}, {now}) \
             ON CONFLICT (address) DO UPDATE SET \
             failures = CASE WHEN address_failures.window_start <= excluded.window_start - $3 \
                        THEN excluded.failures \
                        ELSE address_failures.failures + excluded.failures END, \
             window_start = CASE WHEN address_failures.window_start <= excluded.window_start - $3 \
                            THEN excluded.window_start \
                            ELSE address_failures.window_start END, \
             changed = excluded.changed"
        );
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        for (address, count) in failures {
            sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
                .bind(address)
                .bind(count)
                .bind(window_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The rows changed at or after `since_ms` (the database's clock).
    pub async fn address_failures_since(&self, since_ms: i64) -> Result<Vec<AddressFailures>> {
        Ok(sqlx::query_as(
            "SELECT address, failures, window_start, changed FROM address_failures WHERE changed >= $1",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?)
    }

    /// Forget the addresses whose last failure is older than `age_ms` (the database's clock).
    pub async fn prune_address_failures(&self, age_ms: i64) -> Result<u64> {
        let statement = format!(
            "DELETE FROM address_failures WHERE changed < {} - $1",
            now_ms(self.backend())
        );
        let _turn = self.write_turn().await;
        let done = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(age_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
