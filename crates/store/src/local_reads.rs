//! Reads of a SQLite database on the caller's own thread: a few read-only rusqlite connections
//! beside sqlx's pool, for the lookup that nearly every request makes (the path walk).
//!
//! sqlx runs each SQLite statement on the connection's worker thread: a statement of 20 µs
//! costs two thread wake-ups besides (the worker's, then the task's), which on this kind of
//! two-core virtual machine is most of a small request's time. A path walk is a short read
//! of pages that are in the page cache, so it runs where it is asked for instead.
//!
//! Never authoritative: any SQLite error here (the database busy, a schema it does not know
//! yet, an I/O error) gives `None`, and the caller runs the same query through sqlx, whose
//! answer stands. The connections are read-only and never wait on a lock (`busy_timeout`
//! 0). In WAL mode a reader sees every transaction committed before its statement started,
//! as sqlx's readers do.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

/// Idle connections kept for reuse; one per thread that reads at the same time is enough.
const MAX_IDLE: usize = 8;

#[derive(Debug)]
pub(crate) struct LocalReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl LocalReads {
    pub(crate) fn new(path: PathBuf) -> LocalReads {
        LocalReads {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Run `read` on an idle connection (opened on first need); `None` if SQLite refused.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => match self.open() {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::debug!(%error, "a local read connection did not open; reading through sqlx");
                    return None;
                }
            },
        };
        match read(&connection) {
            Ok(value) => {
                if let Ok(mut idle) = self.idle.lock()
                    && idle.len() < MAX_IDLE
                {
                    idle.push(connection);
                }
                Some(value)
            }
            // The connection is dropped: whatever went wrong stays with it.
            Err(error) => {
                tracing::debug!(%error, "a local read failed; reading through sqlx");
                None
            }
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A busy database is sqlx's to wait for, on its own thread, not this request's.
        connection.busy_timeout(std::time::Duration::ZERO)?;
        Ok(connection)
    }
}
