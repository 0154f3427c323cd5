//! Pure credential primitives: token format and hashing, passwords, CIDR lists,
//! TOTP and the server key. No I/O beyond what callers hand in; no axum, no sqlx.
//! `Debug` on anything secret is redacted.

pub mod cidr;
pub mod password;
pub mod secret_box;
pub mod server_key;
pub mod signing;
pub mod token;
pub mod totp;
