//! The registry's rules, as functions over `&App`. Never builds an HTTP response and
//! never contains SQL. Every operation passes `access`'s gate, which runs the one
//! access check (`access::decide`), asks for a one-time password when the decision
//! says so, and returns the grant the store requires; every password and one-time
//! password is checked by `credentials`, behind one throttle.

pub mod access;
pub mod auth;
pub mod credentials;
mod error;
pub mod packages;
pub mod packument_cache;
pub mod publish;
pub mod security_log;
pub mod sessions;
pub mod tokens;
pub mod two_factor;
pub mod usage;
pub mod users;
pub mod web_login;

pub use access::{Target, package_facts};
pub use auth::{Caller, authenticate_header};
pub use error::Error;

/// Result of domain operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether the database and the blob store answer (for `/-/ready`).
pub async fn readiness(app: &crate::app::App) -> (bool, bool) {
    let db = app.store.ping().await.is_ok();
    let blobs = app.blobs.ready().await;
    (db, blobs)
}
