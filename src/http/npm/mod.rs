//! The npm registry protocol face: the endpoints npm 11 (and pnpm, yarn and bun) call,
//! in the shapes each reads.

pub mod meta_routes;
pub mod org_routes;
pub mod package_routes;
pub mod profile_routes;
pub mod star_routes;
pub mod token_routes;
pub mod trust_routes;
pub mod user_routes;
