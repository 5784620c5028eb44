//! Server-wide settings as key/value text: generated keys (stored encrypted by the caller).

use crate::{Result, Store, on_conflict};

impl Store {
    pub async fn find_setting(&self, key: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(value,)| value))
    }

    /// Store `value` under `key` unless the key is already set, and return the value that won:
    /// several processes starting together agree on one generated secret.
    pub async fn init_setting(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(self.pool())
            .await
            .map_err(on_conflict)?;
        let (stored,): (String,) = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(self.pool())
            .await?;
        Ok(stored)
    }
}
