//! Multipart uploads in progress (S3's CreateMultipartUpload … Complete): the upload, its
//! parts (blobs outside the tree until completion), and the stale ones to expire. The S3
//! adapter speaks the protocol; this is where uploads are kept.

use cells_store::{Part, Store, Upload, UserId};
use uuid::Uuid;

use crate::App;
use crate::error::Result;

/// The uploads of one server's database.
#[derive(Clone)]
pub struct Uploads {
    store: Store,
}

impl App {
    pub fn uploads(&self) -> Uploads {
        Uploads {
            store: self.store.clone(),
        }
    }
}

impl Uploads {
    /// A new upload of `user` to `object_key`; `None` when they have `max_open` already.
    pub async fn create(
        &self,
        user: UserId,
        object_key: &str,
        meta: Option<&str>,
        max_open: i64,
    ) -> Result<Option<Upload>> {
        Ok(self.store.create_upload(user, object_key, meta, max_open).await?)
    }

    pub async fn find(&self, id: Uuid) -> Result<Option<Upload>> {
        Ok(self.store.find_upload(id).await?)
    }

    /// `user`'s uploads in progress, by key.
    pub async fn of_user(&self, user: UserId) -> Result<Vec<Upload>> {
        Ok(self.store.list_uploads(user).await?)
    }

    /// Record part `number`; the blob of the part it replaces, for the caller to delete.
    /// `NotFound` when the upload is gone.
    pub async fn put_part(
        &self,
        upload: Uuid,
        number: i64,
        blob_id: &str,
        size: i64,
        etag: &str,
    ) -> Result<Option<String>> {
        Ok(self.store.put_part(upload, number, blob_id, size, etag).await?)
    }

    /// The parts, by number.
    pub async fn parts(&self, upload: Uuid) -> Result<Vec<Part>> {
        Ok(self.store.list_parts(upload).await?)
    }

    /// End an upload; the blobs of its parts, for the caller to delete. `NotFound` when it was
    /// ended already.
    pub async fn delete(&self, upload: Uuid) -> Result<Vec<String>> {
        Ok(self.store.delete_upload(upload).await?)
    }

    /// Uploads started before `before`.
    pub async fn stale(&self, before: i64) -> Result<Vec<Uuid>> {
        Ok(self.store.stale_uploads(before).await?)
    }
}
