//! Device authorization codes (RFC 8628): a device polls with its code while the user
//! approves the short user code in a browser. Only a SHA-256 of the device code is stored.

use crate::ids::UserId;
use sqlx::FromRow;

use crate::{Result, Store, StoreError, now, on_conflict};

#[derive(Debug, Clone, FromRow)]
struct DeviceRow {
    device_code_hash: String,
    user_code: String,
    client_id: String,
    scope: String,
    expires_at: i64,
    interval_seconds: i64,
    last_poll_at: Option<i64>,
    status: String,
    user_id: Option<String>,
    auth_time: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    Used,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    pub device_code_hash: String,
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: i64,
    pub interval_seconds: i64,
    pub last_poll_at: Option<i64>,
    pub status: DeviceStatus,
    pub user_id: Option<UserId>,
    pub auth_time: Option<i64>,
}

impl TryFrom<DeviceRow> for DeviceCode {
    type Error = StoreError;
    fn try_from(row: DeviceRow) -> Result<DeviceCode> {
        let corrupt =
            |what: &str| StoreError::Database(sqlx::Error::Decode(format!("device_codes.{what}").into()));
        Ok(DeviceCode {
            status: match row.status.as_str() {
                "pending" => DeviceStatus::Pending,
                "approved" => DeviceStatus::Approved,
                "denied" => DeviceStatus::Denied,
                "used" => DeviceStatus::Used,
                _ => return Err(corrupt("status")),
            },
            user_id: row
                .user_id
                .as_deref()
                .map(|u| UserId::parse(u).ok_or_else(|| corrupt("user_id")))
                .transpose()?,
            device_code_hash: row.device_code_hash,
            user_code: row.user_code,
            client_id: row.client_id,
            scope: row.scope,
            expires_at: row.expires_at,
            interval_seconds: row.interval_seconds,
            last_poll_at: row.last_poll_at,
            auth_time: row.auth_time,
        })
    }
}

const COLUMNS: &str = "device_code_hash, user_code, client_id, scope, expires_at, interval_seconds, \
    last_poll_at, status, user_id, auth_time";

impl Store {
    /// Store a new pending device code; `Conflict` if the user code is taken (retry another).
    pub async fn create_device_code(
        &self,
        device_code_hash: &str,
        user_code: &str,
        client_id: &str,
        scope: &str,
        expires_at: i64,
        interval_seconds: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_codes (device_code_hash, user_code, client_id, scope, expires_at, \
             interval_seconds, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)",
        )
        .bind(device_code_hash)
        .bind(user_code)
        .bind(client_id)
        .bind(scope)
        .bind(expires_at)
        .bind(interval_seconds)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(on_conflict)?;
        Ok(())
    }

    pub async fn find_device_by_user_code(&self, user_code: &str) -> Result<Option<DeviceCode>> {
        let row: Option<DeviceRow> =
            sqlx::query_as(sql!("SELECT {COLUMNS} FROM device_codes WHERE user_code = $1"))
                .bind(user_code)
                .fetch_optional(self.pool())
                .await?;
        row.map(DeviceCode::try_from).transpose()
    }

    /// Approve or deny a pending, unexpired code. False when it is no longer pending.
    pub async fn decide_device(
        &self,
        user_code: &str,
        user_id: UserId,
        approve: bool,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE device_codes SET status = $2, user_id = $3, auth_time = $4 \
             WHERE user_code = $1 AND status = 'pending' AND expires_at >= $4",
        )
        .bind(user_code)
        .bind(if approve { "approved" } else { "denied" })
        .bind(user_id.to_string())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One poll by the device: the code as it was before this poll, and the poll recorded.
    pub async fn poll_device(&self, device_code_hash: &str, now: i64) -> Result<Option<DeviceCode>> {
        let row: Option<DeviceRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM device_codes WHERE device_code_hash = $1"
        ))
        .bind(device_code_hash)
        .fetch_optional(self.pool())
        .await?;
        sqlx::query("UPDATE device_codes SET last_poll_at = $2 WHERE device_code_hash = $1")
            .bind(device_code_hash)
            .bind(now)
            .execute(self.pool())
            .await?;
        row.map(DeviceCode::try_from).transpose()
    }

    /// Slow a device down (RFC 8628 §3.5 `slow_down`: the interval grows by 5 s).
    pub async fn slow_device(&self, device_code_hash: &str) -> Result<()> {
        sqlx::query(
            "UPDATE device_codes SET interval_seconds = interval_seconds + 5 WHERE device_code_hash = $1",
        )
        .bind(device_code_hash)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Turn an approved code into tokens once: true for the one caller that wins.
    pub async fn consume_device(&self, device_code_hash: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE device_codes SET status = 'used' WHERE device_code_hash = $1 AND status = 'approved'",
        )
        .bind(device_code_hash)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Delete device codes that expired before `before`.
    pub async fn prune_device_codes(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM device_codes WHERE expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
