//! Pure npm formats: package names, integrity strings, tarball inspection and the
//! packument documents the CLI reads. No I/O, no axum, no sqlx.

pub mod integrity;
pub mod name;
pub mod packument;
pub mod tarball;
