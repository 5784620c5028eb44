//! Whether the database answers, as this node last saw it. A watcher (`cells`' server) pings
//! it and records the answer here; while it is down, requests are refused at once as
//! "unavailable" (`Store::answering`) instead of each waiting for the pool's timeout, and the
//! first ping that succeeds lets them through again.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
}

impl Health {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Record a ping's outcome; returns whether that changed the state (for one log line per
    /// outage and one per recovery).
    pub fn record(&self, answered: bool) -> bool {
        self.down.swap(!answered, Ordering::AcqRel) == answered
    }
}

/// Whether `error` says the database cannot be reached (as opposed to a bad statement or a
/// constraint): no connection in time, a connection that broke, a server shutting down.
pub fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's class 08 (connection exception) and 57P01–57P03 (shutting down,
        // crashed, not accepting connections yet).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// Whether `error` is SQLite's "database or disk is full" (SQLITE_FULL, 13).
pub fn is_disk_full(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| code == "13"),
        sqlx::Error::Io(io) => io.raw_os_error() == Some(28),
        _ => false,
    }
}
