//! WebDAV locks as every node keeps them (RFC 4918 §6): live locks read per user, a new lock
//! checked against the live ones and taken in one turn of the store, refreshed, released,
//! and broken by an administrator (console, command line). The WebDAV adapter speaks the
//! protocol; this is where the locks are kept.

use cells_store::{Store, StoredLock};

use crate::App;
use crate::error::Result;

/// The lock table of one server's database.
#[derive(Clone)]
pub struct Locks {
    store: Store,
}

impl App {
    pub fn locks(&self) -> Locks {
        Locks {
            store: self.store.clone(),
        }
    }
}

impl Locks {
    /// Every live lock, oldest first (the console's and the command line's lists).
    pub async fn all_live(&self) -> Result<Vec<StoredLock>> {
        Ok(self.store.all_live_dav_locks().await?)
    }

    /// The live locks a request of `user` can meet: theirs in personal files, and all in
    /// common files.
    pub async fn live(&self, user: &str) -> Result<Vec<StoredLock>> {
        Ok(self.store.live_dav_locks(user).await?)
    }

    /// Take `lock` unless `conflict` finds one among the live locks that forbids it (returned
    /// as `Err`): checked and written in one turn, so two nodes never grant conflicting locks.
    pub async fn add(
        &self,
        user: &str,
        lock: &StoredLock,
        conflict: impl FnOnce(&[StoredLock]) -> Option<StoredLock>,
    ) -> Result<Option<StoredLock>> {
        Ok(self.store.add_dav_lock(user, lock, conflict).await?)
    }

    /// A new timeout for lock `token`; `None` when it is gone.
    pub async fn refresh(
        &self,
        token: &str,
        timeout_seconds: Option<i64>,
        expires_at: Option<i64>,
    ) -> Result<Option<StoredLock>> {
        Ok(self
            .store
            .refresh_dav_lock(token, timeout_seconds, expires_at)
            .await?)
    }

    /// Release (or break) these locks.
    pub async fn delete(&self, tokens: &[String]) -> Result<()> {
        Ok(self.store.delete_dav_locks(tokens).await?)
    }
}
