//! Pure npm formats and rules: package names, versions and their identity, dist-tag
//! names, Node core module names, integrity strings, search keywords, publish bodies, tarball
//! inspection, provenance bundles, the body-versus-tarball manifest comparison and the packument
//! documents the CLI reads. No I/O, no axum, no sqlx.

pub mod core_modules;
pub mod integrity;
pub mod keywords;
pub mod manifest;
pub mod name;
pub mod packument;
pub mod provenance;
pub mod proxied;
pub mod publish_body;
pub mod tag;
pub mod tarball;
pub mod version;
