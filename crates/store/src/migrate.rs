//! Schema migrations: numbered SQL files, one folder per backend with the same numbers and names.
//!
//! Applied in order inside a transaction each, recorded in `schema_migrations`. On PostgreSQL an
//! advisory lock keeps several nodes starting at once from racing each other.

use sqlx::Acquire;

use crate::{Backend, Result, Store};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! migration {
    ($version:expr, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
        }
    };
}

const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_init"),
    migration!(2, "0002_tokens"),
    migration!(3, "0003_auth_epoch"),
    migration!(4, "0004_oauth"),
    migration!(5, "0005_s3"),
    migration!(6, "0006_ssh_keys"),
    migration!(7, "0007_dav_locks"),
    migration!(8, "0008_inline_content"),
    migration!(9, "0009_pending_etags"),
    migration!(10, "0010_login_suspension"),
    migration!(11, "0011_client_token_options"),
    migration!(12, "0012_leases"),
    migration!(13, "0013_blob_intents"),
    migration!(14, "0014_address_failures"),
    migration!(15, "0015_workspaces"),
];

/// Any number, the same on every node: the key of the PostgreSQL advisory lock.
const LOCK_KEY: i64 = 0x63656c6c73;

pub(crate) async fn run(store: &Store) -> Result<()> {
    let mut conn = store.pool().acquire().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    let outcome = apply_pending(store.backend(), &mut conn).await;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    outcome
}

async fn apply_pending(backend: Backend, conn: &mut sqlx::AnyConnection) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    for migration in MIGRATIONS {
        let mut tx = conn.begin().await?;
        let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(migration.version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            continue;
        }
        let sql = match backend {
            Backend::Sqlite => migration.sqlite,
            Backend::Postgres => migration.postgres,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(migration.version)
            .bind(migration.name)
            .bind(crate::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    Ok(())
}
