//! The one error type of cells, with semantic variants; each protocol renders it once.
//!
//! Messages are written for the user and never carry a secret. Internal causes are logged once
//! (at the edge that renders them) and replaced by a generic message for the client.

use cells_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential, or a wrong one. The message says which, without helping a guesser.
    #[error("{0}")]
    Unauthenticated(String),
    /// The account is locked after too many failed logins.
    #[error("account is locked after too many failed logins; an administrator can unlock it")]
    AccountLocked,
    /// Too many failures from this address; retry after the given number of seconds.
    #[error("too many failed attempts from this address; retry in {0} s")]
    Throttled(u64),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the state of what it names (for example a file where a folder
    /// is needed); the message says how.
    #[error("{0}")]
    Conflict(String),
    /// The folder a path goes through does not exist (its path).
    #[error("folder {0} does not exist")]
    ParentMissing(String),
    /// Something exists where the request would create it (its path).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A folder where a file is needed (its path).
    #[error("{0} is a folder")]
    IsFolder(String),
    /// The resource is locked by someone else (a WebDAV lock); the message says which.
    #[error("{0}")]
    Locked(String),
    /// A service this request needs (the database, the blob store) does not answer now; worth
    /// a retry.
    #[error("{0}; try again later")]
    Unavailable(String),
    /// No room left to keep what was sent.
    #[error("not enough storage: {0}")]
    InsufficientStorage(String),
    /// Bad input: which field, and why.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// A file would be larger than `max-file-size` allows.
    #[error("files may be at most {0} bytes here (max-file-size)")]
    FileTooLarge(u64),
    /// A range that the resource cannot satisfy.
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable(u64),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Error {
        Error::Internal(cause.into())
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Error {
        match error {
            StoreError::Conflict(_) => Error::Conflict("already exists".into()),
            StoreError::NotFound => Error::NotFound("not found".into()),
            StoreError::LastAdmin => Error::Conflict(
                "the last active administrator cannot be locked, demoted or deleted; make another administrator first".into(),
            ),
            other if other.is_unreachable() => Error::Unavailable("the database does not answer".into()),
            other if other.is_disk_full() => {
                Error::InsufficientStorage("the database's disk is full".into())
            }
            other => Error::Internal(other.into()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        // ENOSPC, EDQUOT: the disk (or the quota of the user we run as) is full.
        if matches!(error.raw_os_error(), Some(28 | 122)) || error.kind() == std::io::ErrorKind::StorageFull {
            return Error::InsufficientStorage("the disk is full; delete files to make room".into());
        }
        if crate::files::blob::is_unavailable(&error) {
            return Error::Unavailable(error.to_string());
        }
        Error::Internal(error.into())
    }
}
