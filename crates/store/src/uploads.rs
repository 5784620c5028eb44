//! S3 multipart uploads in progress: the upload rows and their parts (one blob each).
//!
//! Nothing here is visible in the tree. Completing an upload writes a new blob and commits a
//! node like any other write; aborting or expiring one deletes its rows, and the caller then
//! deletes the part blobs that were returned.

use sqlx::FromRow;
use uuid::Uuid;

use crate::ids::UserId;
use crate::{Result, Returned, Store, StoreError, now};

#[derive(Debug, Clone, FromRow)]
struct UploadRow {
    id: String,
    user_id: String,
    object_key: String,
    meta: Option<String>,
    created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: Uuid,
    pub user_id: UserId,
    /// The S3 key the object will have (`<workspace>/<path>`).
    pub object_key: String,
    /// Content-Type and user metadata given at creation, as JSON.
    pub meta: Option<String>,
    pub created_at: i64,
}

impl TryFrom<UploadRow> for Upload {
    type Error = StoreError;
    fn try_from(row: UploadRow) -> Result<Upload> {
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(
                format!("s3_uploads.{what} of {} is invalid", row.id).into(),
            ))
        };
        Ok(Upload {
            id: Uuid::parse_str(&row.id).map_err(|_| corrupt("id"))?,
            user_id: UserId::parse(&row.user_id).ok_or_else(|| corrupt("user_id"))?,
            object_key: row.object_key,
            meta: row.meta,
            created_at: row.created_at,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Part {
    pub part_number: i64,
    pub blob_id: String,
    pub size: i64,
    /// Hex MD5 of the part's content.
    pub etag: String,
    pub created_at: i64,
}

const UPLOAD_COLUMNS: &str = "id, user_id, object_key, meta, created_at";

impl Store {
    /// A new upload for `user`, unless they already have `max_open` in progress (`None`).
    pub async fn create_upload(
        &self,
        user: UserId,
        object_key: &str,
        meta: Option<&str>,
        max_open: i64,
    ) -> Result<Option<Upload>> {
        let row: Option<UploadRow> = sqlx::query_as(sql!(
            "INSERT INTO s3_uploads ({UPLOAD_COLUMNS}) SELECT $1, $2, $3, $4, $5 \
             WHERE (SELECT COUNT(*) FROM s3_uploads WHERE user_id = $2) < $6 RETURNING {UPLOAD_COLUMNS}"
        ))
        .bind(Uuid::new_v4().to_string())
        .bind(user.to_string())
        .bind(object_key)
        .bind(meta)
        .bind(now())
        .bind(max_open)
        .fetch_all(self.pool())
        .await?
        .optional_row();
        row.map(Upload::try_from).transpose()
    }

    pub async fn find_upload(&self, id: Uuid) -> Result<Option<Upload>> {
        let row: Option<UploadRow> =
            sqlx::query_as(sql!("SELECT {UPLOAD_COLUMNS} FROM s3_uploads WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(self.pool())
                .await?;
        row.map(Upload::try_from).transpose()
    }

    /// A user's uploads in progress, by key then age.
    pub async fn list_uploads(&self, user: UserId) -> Result<Vec<Upload>> {
        let rows: Vec<UploadRow> = sqlx::query_as(sql!(
            "SELECT {UPLOAD_COLUMNS} FROM s3_uploads WHERE user_id = $1 ORDER BY object_key, created_at"
        ))
        .bind(user.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Upload::try_from).collect()
    }

    /// Record a part, replacing one of the same number. Returns the replaced part's blob (to
    /// delete). `NotFound` when the upload is gone (completed or aborted meanwhile).
    pub async fn put_part(
        &self,
        upload: Uuid,
        number: i64,
        blob_id: &str,
        size: i64,
        etag: &str,
    ) -> Result<Option<String>> {
        let mut tx = self.pool().begin().await?;
        // A write first: SQLite then takes the write lock now (waiting its turn) instead of
        // failing with BUSY when a read transaction tries to write later.
        let exists = sqlx::query("UPDATE s3_uploads SET created_at = created_at WHERE id = $1")
            .bind(upload.to_string())
            .execute(&mut *tx)
            .await?;
        if exists.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let old: Option<(String,)> =
            sqlx::query_as("SELECT blob_id FROM s3_parts WHERE upload_id = $1 AND part_number = $2")
                .bind(upload.to_string())
                .bind(number)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM s3_parts WHERE upload_id = $1 AND part_number = $2")
            .bind(upload.to_string())
            .bind(number)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO s3_parts (upload_id, part_number, blob_id, size, etag, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(upload.to_string())
        .bind(number)
        .bind(blob_id)
        .bind(size)
        .bind(etag)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(old.map(|(blob,)| blob))
    }

    /// The parts of an upload, by number.
    pub async fn list_parts(&self, upload: Uuid) -> Result<Vec<Part>> {
        Ok(sqlx::query_as(
            "SELECT part_number, blob_id, size, etag, created_at FROM s3_parts WHERE upload_id = $1 \
             ORDER BY part_number",
        )
        .bind(upload.to_string())
        .fetch_all(self.pool())
        .await?)
    }

    /// Remove an upload and its parts. Returns the part blobs (to delete), or `NotFound`.
    pub async fn delete_upload(&self, upload: Uuid) -> Result<Vec<String>> {
        let mut tx = self.pool().begin().await?;
        // The write comes first (see `put_part`).
        let blobs: Vec<(String,)> =
            sqlx::query_as("DELETE FROM s3_parts WHERE upload_id = $1 RETURNING blob_id")
                .bind(upload.to_string())
                .fetch_all(&mut *tx)
                .await?;
        let deleted = sqlx::query("DELETE FROM s3_uploads WHERE id = $1")
            .bind(upload.to_string())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(blobs.into_iter().map(|(blob,)| blob).collect())
    }

    /// Uploads started before `before` (seconds): abandoned, to be cleaned up.
    pub async fn stale_uploads(&self, before: i64) -> Result<Vec<Uuid>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM s3_uploads WHERE created_at < $1")
            .bind(before)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id,)| Uuid::parse_str(&id).ok())
            .collect())
    }
}
