//! The domain's error vocabulary. `http::error` maps each variant to a status and
//! the JSON body npm prints; nothing else decides statuses.

use crate::blob::BlobError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    /// No or invalid credentials (401 + `www-authenticate: Bearer`).
    #[error("{0}")]
    Unauthenticated(String),
    /// A bearer token that cannot be used: malformed, unknown, revoked, expired or
    /// unreadable (401 + `www-authenticate: Bearer`). The message says which, and goes
    /// out in an `npm-notice` header too: npm prints that beside its own "your
    /// authentication token seems to be invalid", and the other clients show the body.
    #[error("{0}")]
    TokenRefused(String),
    /// Wrong username or password (401 + `www-authenticate: Basic`).
    #[error("{0}")]
    BadPassword(String),
    #[error("{0}")]
    Forbidden(String),
    /// A one-time password is needed or was wrong (401 + `www-authenticate: OTP`).
    #[error("{0}")]
    OtpRequired(String),
    /// A throttle refused the attempt (429 + `Retry-After`); the message names
    /// which secret was wrong too often.
    #[error("{message}")]
    TooManyAttempts {
        message: String,
        retry_after_secs: u64,
    },
    /// The token is CIDR-limited and the client is outside (401 + `ipaddress`).
    #[error("this token may not be used from {0}")]
    IpNotAllowed(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// The request is bigger than the registry accepts (413).
    #[error("{0}")]
    TooLarge(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// An uplink failed or sent something refused, and nothing cached can stand in
    /// (502). The message names the uplink and is shown to the client.
    #[error("{0}")]
    Upstream(String),
    /// The database's or the blob folder's disk is full (507); the cause is logged,
    /// the client reads a fixed message.
    #[error("storage full: {0}")]
    StorageFull(String),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Error::Conflict("conflicting write; try again".into()),
            StoreError::Unavailable(m) => Error::Unavailable(m),
            StoreError::Full(m) => Error::StorageFull(m),
            StoreError::Other(e) => Error::Internal(e),
        }
    }
}

impl From<BlobError> for Error {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Full(cause) => Error::StorageFull(format!("blob store: {cause}")),
            BlobError::Other(cause) => {
                Error::Unavailable(format!("could not store the tarball: {cause:#}"))
            }
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Internal(e)
    }
}
