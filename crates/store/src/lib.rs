//! The only place in cells that speaks SQL: one `Store` over SQLite or PostgreSQL (sqlx `Any`).
//!
//! Every query here uses the portable subset both backends accept (`$n` placeholders, TEXT ids,
//! BIGINT booleans and unix seconds, `RETURNING`), so one set of queries and one test suite cover
//! both; only the JSON aggregate of node listings is spelled per backend. A database error is never turned into "not found": `find_*` returns `Ok(None)` only when
//! the row is really absent.

/// A query string built from constants only (column lists, shared CTEs), never from input:
/// every value is bound as a `$n` parameter.
macro_rules! sql {
    ($($format:tt)*) => {
        sqlx::AssertSqlSafe(format!($($format)*))
    };
}

pub mod dav_locks;
pub mod device;
mod migrate;
pub mod nodes;
pub mod oauth;
pub mod props;
pub mod settings;
pub mod ssh_keys;
pub mod tokens;
pub mod uploads;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use dav_locks::StoredLock;
pub use device::{DeviceCode, DeviceStatus};
pub use nodes::{Content, NewNode, Node, NodeKind};
pub use oauth::{
    AuthCode, ClientRow, Grant, LoginSession, NewClient, NewCode, NewRefresh, NewSigningKey, Redemption,
    RefreshToken, Rotation, SigningKey,
};
pub use props::{DeadProp, PropChange};
pub use ssh_keys::SshKey;
pub use tokens::{NewToken, Token, TokenKind, TokenUse};
pub use uploads::{Part, Upload};
pub use users::{FailureCount, NewUser, Profile, User};

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
    #[error("invalid database url: {0}")]
    BadUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Map unique-constraint violations to `Conflict`; keep every other error as it is.
pub(crate) fn on_conflict(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        return StoreError::Conflict(db.constraint().unwrap_or("unique").to_string());
    }
    StoreError::Database(error)
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
}

impl Store {
    /// Connect to `url` (`sqlite://PATH` or `postgres://…`) and bring the schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
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
            .acquire_timeout(Duration::from_secs(10))
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
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::raw_sql("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let store = Store {
            pool,
            backend,
            writer: Default::default(),
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

    /// This process's turn to write, held until the write commits (SQLite only: PostgreSQL
    /// locks rows, not the database).
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        }
    }

    /// True when the database answers a trivial query.
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
        self.pool.close().await;
    }
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
