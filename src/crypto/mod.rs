//! Pure credential primitives: token format and hashing, passwords,
//! TOTP and the server key. No I/O beyond what callers hand in; no axum, no sqlx.
//! `Debug` on anything secret is redacted.

pub mod password;
pub mod registry_key;
pub mod secret_box;
pub mod server_key;
pub mod token_format;
pub mod totp;
