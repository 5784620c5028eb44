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
    Locked,
    /// Too many failures from this address; retry after the given number of seconds.
    #[error("too many failed attempts from this address; retry in {0} s")]
    Throttled(u64),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
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
            other => Error::Internal(other.into()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::Internal(error.into())
    }
}
