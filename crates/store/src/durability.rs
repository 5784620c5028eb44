//! When a commit is durable: at once (every write but one kind), or within `SYNC_WINDOW`
//! (a `Store::deferred` write, on SQLite in a file), its log synced by a background fsync.
//!
//! A deferred commit runs on a connection of its own with `synchronous = NORMAL`: it is
//! written to SQLite's log (WAL) before it returns, so it is visible to every reader, survives
//! the server process being killed (the bytes are in the kernel), and is never torn (the log's
//! frames are checksummed); but a power cut or kernel crash in the next `SYNC_WINDOW` may lose
//! it, where a durable commit (`synchronous = FULL`) fsyncs the log before it returns. Any
//! later durable commit syncs the deferred ones with it: the log is one file, synced whole.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// The longest a deferred commit waits for its log to be synced.
pub const SYNC_WINDOW: Duration = Duration::from_millis(50);

/// How a `Store`'s writes commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The commit returns once it is on disk.
    Durable,
    /// The commit returns once it is in the log; the log is synced within `SYNC_WINDOW`.
    Deferred,
}

/// The connection deferred commits run on, and the background sync of the log after them.
#[derive(Debug)]
pub(crate) struct DeferredCommits {
    /// One connection, `synchronous = NORMAL` from the start: no durable write ever runs on
    /// it, and no setting is switched back and forth on a shared one. Writes still take the
    /// store's write turn, so it never waits for the database lock.
    pub(crate) pool: AnyPool,
    /// `cells.db-wal`: fsync flushes a file's dirty pages whichever descriptor wrote them.
    wal: PathBuf,
    /// A sync is due: the commits before it was cleared are covered by the fsync after.
    scheduled: std::sync::Arc<AtomicBool>,
    syncs: std::sync::Arc<AtomicU64>,
}

impl DeferredCommits {
    pub(crate) fn new(options: AnyConnectOptions, database: PathBuf) -> DeferredCommits {
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                         PRAGMA synchronous = NORMAL;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        let mut wal = database.into_os_string();
        wal.push("-wal");
        DeferredCommits {
            pool,
            wal: wal.into(),
            scheduled: Default::default(),
            syncs: Default::default(),
        }
    }

    /// After a deferred commit: make sure one sync starts within `SYNC_WINDOW`.
    pub(crate) fn schedule_sync(&self) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let (scheduled, syncs, wal) = (self.scheduled.clone(), self.syncs.clone(), self.wal.clone());
        tokio::spawn(async move {
            tokio::time::sleep(SYNC_WINDOW).await;
            // Cleared before the fsync: a commit that lands after this schedules the next one,
            // a commit before it is in the file this fsync flushes.
            scheduled.store(false, Ordering::Release);
            let synced = tokio::task::spawn_blocking(move || match std::fs::File::open(&wal) {
                Ok(file) => file.sync_data(),
                // No log: the last connection closed, and SQLite synced and removed it.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(error),
            })
            .await;
            match synced {
                Ok(Ok(())) => {
                    syncs.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(error)) => tracing::error!(%error, "could not sync the database log"),
                Err(error) => tracing::error!(%error, "the database log sync did not run"),
            }
        });
    }

    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewNode, NodeKind, Store};

    /// Deferred writes commit at once and their log is synced soon after; durable ones stay
    /// on connections that fsync.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deferred_writes_commit_now_and_sync_soon() {
        let dir = std::env::temp_dir().join(format!("cells-durability-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("cells.db").display());
        let store = Store::open(&url).await.unwrap();
        let deferred = store.deferred();
        assert_eq!(store.durability(), Durability::Durable);
        assert_eq!(deferred.durability(), Durability::Deferred);
        let root = store.ensure_root("common-files", None).await.unwrap();

        let leaf = |name: &'static str| NewNode {
            parent_id: root.id,
            name,
            kind: NodeKind::Leaf,
            size: 2,
            etag: "e",
            blob_id: Some("inline-test"),
            mtime: 1,
            meta: None,
            data: Some(b"hi"),
        };
        // Lone writes, then a batch of concurrent ones, then one durable among deferred ones.
        deferred.create_node(leaf("a")).await.unwrap();
        let batch = ["b", "c", "d", "e", "f", "g"].map(|name| {
            let deferred = deferred.clone();
            let leaf = leaf(name);
            let (parent_id, size, data) = (leaf.parent_id, leaf.size, leaf.data);
            tokio::spawn(async move {
                deferred
                    .create_node(NewNode {
                        parent_id,
                        name,
                        kind: NodeKind::Leaf,
                        size,
                        etag: "e",
                        blob_id: Some("inline-test"),
                        mtime: 1,
                        meta: None,
                        data,
                    })
                    .await
            })
        });
        let durable = store.create_node(leaf("durable"));
        durable.await.unwrap();
        for task in batch {
            task.await.unwrap().unwrap();
        }
        for name in ["a", "b", "g", "durable"] {
            let chain = store.walk(&root, &[name]).await.unwrap();
            assert_eq!(chain.len(), 2, "{name} is committed when its write returns");
        }

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.log_syncs() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the log was never synced");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // Durable writes never run with the deferred setting: every connection of the main
        // pool, all held at once, is FULL (2); the deferred one is NORMAL (1).
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(store.pool().acquire().await.unwrap());
        }
        for conn in &mut held {
            let (level,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(level, 2, "a durable connection is not FULL");
        }
        drop(held);
        let pool = &store.deferred.as_ref().unwrap().pool;
        let (level,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(level, 1);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
