//! The registry's rules, as functions over `&App`. Never builds an HTTP response and
//! never contains SQL. Every operation passes `access`'s gate, which runs the one
//! access check (`access::decide`), asks for a one-time password when the decision
//! says so, and returns the grant the store requires; every password and one-time
//! password is checked by `credentials`, behind one throttle.

pub mod access;
pub mod auth;
pub mod credentials;
mod error;
pub mod leaks;
pub mod maintenance;
pub mod orgs;
pub mod packages;
pub mod packument_cache;
pub mod proxy;
pub mod publish;
pub mod publishers;
pub mod security_log;
pub mod sessions;
pub mod signing;
pub mod staging;
pub mod tokens;
pub mod trust;
pub mod two_factor;
pub mod usage;
pub mod users;
pub mod web_login;

pub use access::{Target, package_facts};
pub use auth::{Caller, authenticate_header};
pub use error::Error;

/// Result of domain operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What `/-/ready` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The database answers.
    pub database: bool,
    /// The blob store answers.
    pub blobs: bool,
    /// The database or the blob store is out of space.
    pub full: bool,
}

/// Whether the database and the blob store answer and have room.
pub async fn readiness(app: &crate::app::App) -> Readiness {
    let (db, blobs, db_full, blobs_full) = tokio::join!(
        app.store.ping(),
        app.blobs.ready(),
        app.store.storage_full(),
        app.blobs.is_full()
    );
    Readiness {
        database: db.is_ok(),
        blobs,
        full: db_full || blobs_full,
    }
}
