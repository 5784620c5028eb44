//! The only place in cells that speaks SQL: one `Store` over SQLite or PostgreSQL (sqlx `Any`).
//!
//! Every query here uses the portable subset both backends accept (`$n` placeholders, TEXT ids,
//! BIGINT booleans and unix seconds, `RETURNING`), so one set of queries and one test suite cover
//! both; only the JSON aggregate of node listings and the database's clock (`address_failures`) are spelled per backend. A database error is never turned into "not found": `find_*` returns `Ok(None)` only when
//! the row is really absent.

/// A query string built from constants only (column lists, shared CTEs), never from input:
/// every value is bound as a `$n` parameter.
macro_rules! sql {
    ($($format:tt)*) => {
        sqlx::AssertSqlSafe(format!($($format)*))
    };
}

pub mod address_failures;
pub mod dav_locks;
pub mod device;
pub mod durability;
pub mod groups;
pub mod health;
pub mod ids;
pub mod intents;
mod leases;
mod local_reads;
mod migrate;
pub mod nodes;
pub mod oauth;
pub mod props;
pub mod quota;
pub mod settings;
pub mod ssh_keys;
pub mod tokens;
pub mod uploads;
pub mod users;
pub mod workspaces;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use address_failures::AddressFailures;
pub use dav_locks::StoredLock;
pub use device::{DeviceCode, DeviceStatus};
pub use durability::Durability;
pub use groups::Group;
pub use ids::{GrantId, GroupId, NodeId, TokenId, UserId, WorkspaceId};
pub use nodes::{Content, NewNode, Node, NodeKind};
pub use oauth::{
    AuthCode, ClientRow, Grant, LoginSession, NewClient, NewCode, NewRefresh, NewSigningKey, Redemption,
    RefreshToken, Rotation, SigningKey,
};
pub use props::{DeadProp, PropChange};
pub use quota::OverQuota;
pub use ssh_keys::SshKey;
pub use tokens::{NewToken, Token, TokenKind, TokenUse};
pub use uploads::{Part, Upload};
pub use users::{FailureCount, NewUser, Profile, Suspension, User};
pub use workspaces::{Grantee, NewWorkspace, Workspace, WorkspaceGrant};

/// Which SQL engine a `Store` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors of the store. `Conflict` is a unique-constraint violation, named by its constraint.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists ({0})")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// The change would leave no active administrator (`users`).
    #[error("the last active administrator cannot be locked, demoted or deleted")]
    LastAdmin,
    #[error("invalid database url: {0}")]
    BadUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The write ran, but the transaction it was committed in failed (see `group_write`).
    #[error("the commit failed: {0}")]
    Commit(String),
    /// The database is known not to answer (`health`): refused without trying.
    #[error("the database does not answer")]
    Unavailable,
}

impl StoreError {
    /// Whether this error says the database cannot be reached now (worth a retry later).
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unavailable => true,
            StoreError::Database(error) => health::is_unreachable(error),
            _ => false,
        }
    }

    /// Whether the database refused a write for lack of disk space.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Database(error) => health::is_disk_full(error),
            StoreError::Commit(message) => message.contains("database or disk is full"),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Map unique-constraint violations to `Conflict`; keep every other error as it is.
pub(crate) fn on_conflict(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            return StoreError::Conflict(db.constraint().unwrap_or("unique").to_string());
        }
        // What the row names went meanwhile (a parent folder, a workspace's root, a user).
        if db.is_foreign_key_violation() {
            return StoreError::NotFound;
        }
    }
    StoreError::Database(error)
}

/// The rows of a write with `RETURNING`, read with `fetch_all`, never `fetch_one` or
/// `fetch_optional`, wherever the write may run outside a transaction.
///
/// Outside a transaction the database commits a write when its statement ends, and those two
/// hand the first row back before that: sqlx resets a SQLite statement once it has the row and
/// drops any error of the commit that runs then (a full disk, an I/O error), and a PostgreSQL
/// row arrives before the server has committed. A write that was not kept would look kept.
/// `fetch_all` runs the statement to its end, where a failed commit is an error.
pub(crate) trait Returned<T> {
    /// The one row of a write that always returns one (an INSERT).
    fn row(self) -> Result<T>;
    /// The row of a write that returns at most one (an UPDATE of one key).
    fn optional_row(self) -> Option<T>;
}

impl<T> Returned<T> for Vec<T> {
    fn row(self) -> Result<T> {
        self.into_iter()
            .next()
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    fn optional_row(self) -> Option<T> {
        self.into_iter().next()
    }
}

/// A pool of connections to the cells database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time. This process's writers take turns here instead of
    /// racing for the database lock, where the losers sleep in SQLite's busy handler (steps of
    /// 1 to 100 ms). Other processes (the CLI) still wait through `busy_timeout`.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Writes waiting for the next group commit (SQLite; see `group_write`).
    queued: std::sync::Arc<Queued>,
    /// SQLite in a file: the path walk runs on the caller's thread (see `local_reads`).
    local: Option<std::sync::Arc<local_reads::LocalReads>>,
    /// How this handle's `group_write`s commit (`deferred`).
    durability: Durability,
    /// SQLite in a file: the connection of deferred commits, and the log's background sync.
    deferred: Option<std::sync::Arc<durability::DeferredCommits>>,
    /// Whether the database answered the last ping.
    health: std::sync::Arc<health::Health>,
}

#[derive(Default)]
struct Queued(std::sync::Mutex<Vec<(Job, Durability)>>);

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.0.lock().map_or(0, |jobs| jobs.len());
        write!(f, "Queued({waiting} writes)")
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A write queued for a group commit: it runs in the batch's transaction and gives back whether
/// that transaction is still sound (its statement succeeded, or failed on a constraint, which
/// SQLite rolls back alone), and what to tell its caller once the commit's outcome is known.
type Job = Box<dyn for<'c> FnOnce(&'c mut sqlx::AnyConnection) -> BoxFuture<'c, (bool, Reply)> + Send>;
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

/// Whether a failed statement left the transaction as it was: SQLite undoes a statement that
/// breaks a constraint and keeps the transaction; after other errors (I/O, a full disk) it may
/// have rolled the whole transaction back.
fn keeps_transaction<T>(result: &Result<T>) -> bool {
    match result {
        Ok(_) | Err(StoreError::Conflict(_) | StoreError::NotFound) => true,
        Err(StoreError::Database(sqlx::Error::Database(db))) => db.kind() != sqlx::error::ErrorKind::Other,
        Err(_) => false,
    }
}

impl Store {
    /// Connect to `url` (`sqlite://PATH` or `postgres://…`) and bring the schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, Duration::from_secs(10)).await
    }

    /// `open`, with `wait` as the longest a statement waits for a connection: past it, the
    /// database counts as unreachable (`--dependency-timeout`).
    pub async fn open_with(url: &str, wait: Duration) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(
                "expected sqlite://PATH or postgres://…".into(),
            ));
        };
        let options = AnyConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(wait)
            // sqlx pings every connection it hands out by default: for SQLite that is one more
            // trip to the connection's worker thread per statement, for a file that cannot hang
            // up. A PostgreSQL connection can (a server restart), so it keeps the ping there.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // FULL: a committed transaction survives a crash or power cut; WAL lets
                        // readers run beside the writer; busy_timeout serialises writers from
                        // several processes (server and CLI) instead of failing them.
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                             PRAGMA synchronous = FULL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        if backend == Backend::Sqlite {
            sqlx::raw_sql("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let local = match backend {
            Backend::Sqlite => {
                let file = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .map_err(|e| StoreError::BadUrl(e.to_string()))?
                    .get_filename()
                    .to_path_buf();
                // An in-memory database is private to its sqlx connection.
                (file.as_os_str() != ":memory:").then(|| {
                    (
                        std::sync::Arc::new(local_reads::LocalReads::new(file.clone())),
                        std::sync::Arc::new(durability::DeferredCommits::new(options, file)),
                    )
                })
            }
            Backend::Postgres => None,
        };
        let (local, deferred) = local.unzip();
        let store = Store {
            pool,
            backend,
            writer: Default::default(),
            queued: Default::default(),
            local,
            durability: Durability::Durable,
            deferred,
            health: Default::default(),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// This store, with its single-statement writes (`create_node`, `replace_content_if`)
    /// committed with deferred durability (see `durability`): for a protocol whose own
    /// "written" is not a promise of durability (SFTP's CLOSE, whose promise is
    /// `fsync@openssh.com`). On PostgreSQL, and SQLite in memory, the same durable store.
    pub fn deferred(&self) -> Store {
        let mut store = self.clone();
        if store.deferred.is_some() {
            store.durability = Durability::Deferred;
        }
        store
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Syncs of the log made after deferred commits since start-up (none without SQLite in a
    /// file).
    pub fn log_syncs(&self) -> u64 {
        self.deferred.as_ref().map_or(0, |deferred| deferred.syncs())
    }

    /// This process's turn to write, held until the write commits (SQLite only: PostgreSQL
    /// locks rows, not the database).
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Run the single-statement write `op`, durably (or within `durability::SYNC_WINDOW` on a
    /// `deferred` store), and return its result.
    ///
    /// On SQLite every commit waits for an fsync of the log, one commit at a time, so concurrent
    /// writers would each pay a whole fsync in turn. Here they queue instead: whoever gets the
    /// write turn runs every queued write in one transaction and commits them with one fsync
    /// (a group commit), and each caller gets its own result once that commit is durable. A
    /// lone writer commits alone, as before. PostgreSQL groups commits itself.
    ///
    /// The write runs in its own task: a caller that goes away (a client hung up) neither
    /// leaves a half-run batch nor a queued write that would land only with a later one.
    pub(crate) async fn group_write<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut sqlx::AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        if self.backend == Backend::Postgres {
            let mut conn = self.pool.acquire().await?;
            return op(&mut conn).await;
        }
        let store = self.clone();
        tokio::spawn(async move { store.queue_write(op).await })
            .await
            .map_err(|e| StoreError::Commit(e.to_string()))?
    }

    async fn queue_write<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut sqlx::AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (sender, mut receiver) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = op(conn).await;
                let sound = keeps_transaction(&result);
                let reply: Reply = Box::new(move |commit_error: Option<&str>| {
                    let result = match (result, commit_error) {
                        (Ok(_), Some(error)) => Err(StoreError::Commit(error.to_string())),
                        (result, _) => result,
                    };
                    let _ = sender.send(result);
                });
                (sound, reply)
            })
        });
        self.queued
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((job, self.durability));
        let dropped = || StoreError::Commit("the batch holding this write could not start".into());
        tokio::select! {
            biased;
            answer = &mut receiver => return answer.map_err(|_| dropped())?,
            turn = self.writer.lock() => {
                let jobs = std::mem::take(&mut *self.queued.0.lock().unwrap_or_else(|e| e.into_inner()));
                run_batch(&self.pool, jobs, self.deferred.as_deref()).await;
                drop(turn);
            }
        }
        receiver.await.map_err(|_| dropped())?
    }

    /// True when the database answers a trivial query.
    /// Whether the database answered the last ping (`health`).
    pub fn health(&self) -> &health::Health {
        &self.health
    }

    /// `Unavailable` at once while the database is known down, so that a request does not
    /// wait for the pool's timeout first.
    pub fn answering(&self) -> Result<()> {
        match self.health.is_down() {
            true => Err(StoreError::Unavailable),
            false => Ok(()),
        }
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The current auth epoch (see `bump_epoch`).
    pub async fn auth_epoch(&self) -> Result<i64> {
        let (value,): (i64,) = sqlx::query_as("SELECT value FROM auth_epoch WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(value)
    }

    /// Close the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        if let Some(deferred) = &self.deferred {
            deferred.pool.close().await;
        }
        self.pool.close().await;
    }
}

/// One group commit (see `Store::group_write`): `jobs` in one transaction, then each told the
/// outcome. A job that leaves the transaction unsound ends the batch: it is rolled back, every
/// job that ran is told it failed, and the ones after it are dropped (their callers see the
/// batch could not run), so nobody is told a write is durable unless it is. The batch commits
/// with deferred durability only when every job in it asked for that.
async fn run_batch(
    pool: &AnyPool,
    jobs: Vec<(Job, Durability)>,
    deferred: Option<&durability::DeferredCommits>,
) {
    if jobs.is_empty() {
        return;
    }
    let writes = jobs.len();
    let deferred = deferred.filter(|_| jobs.iter().all(|(_, d)| *d == Durability::Deferred));
    let mut conn = match deferred.map_or(pool, |deferred| &deferred.pool).acquire().await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::warn!(%error, writes, "could not start a write");
            return;
        }
    };
    let committed = run_jobs(&mut conn, jobs).await;
    if let Some(deferred) = deferred
        && committed
    {
        deferred.schedule_sync();
    }
}

/// The jobs of `run_batch` on `conn`; true when they committed.
async fn run_jobs(conn: &mut sqlx::AnyConnection, jobs: Vec<(Job, Durability)>) -> bool {
    use sqlx::Connection;
    if jobs.len() == 1 {
        // A lone write is its own transaction: its statement commits as it ends, and its rows
        // are read to that end (`Returned`), so BEGIN and COMMIT would only be two more trips
        // to the connection's worker thread.
        let Some((job, _)) = jobs.into_iter().next() else {
            return false;
        };
        let (_, reply) = job(conn).await;
        reply(None);
        return true;
    }
    let writes = jobs.len();
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(error) => {
            tracing::warn!(%error, writes, "could not start a group commit");
            return false;
        }
    };
    let mut replies = Vec::with_capacity(writes);
    let mut sound = true;
    for (job, _) in jobs {
        if !sound {
            break;
        }
        let (keeps, reply) = job(&mut tx).await;
        sound = keeps;
        replies.push(reply);
    }
    let outcome = if sound {
        tx.commit().await.err().map(|e| e.to_string())
    } else {
        let _ = tx.rollback().await;
        Some("a write in the same transaction failed; nothing of it was kept".to_string())
    };
    for reply in replies {
        reply(outcome.as_deref());
    }
    outcome.is_none()
}

/// Bump the auth epoch inside `conn`'s transaction: every change that can end a credential's
/// validity does this, so that caches of verified credentials everywhere are dropped.
pub(crate) async fn bump_epoch(conn: &mut sqlx::AnyConnection) -> Result<()> {
    sqlx::query("UPDATE auth_epoch SET value = value + 1 WHERE id = 1")
        .execute(conn)
        .await?;
    Ok(())
}

/// Seconds since the Unix epoch: the time unit of every timestamp column.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
