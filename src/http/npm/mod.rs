//! The npm registry protocol face: the endpoints npm 11 (and pnpm, yarn and bun) call,
//! in the shapes each reads.

pub mod meta;
pub mod orgs;
pub mod packages;
pub mod profile;
pub mod stars;
pub mod tokens;
pub mod trust;
pub mod users;
