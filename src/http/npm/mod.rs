//! The npm registry protocol face: the endpoints npm 11 calls, in the shapes it reads.

pub mod meta;
pub mod orgs;
pub mod packages;
pub mod profile;
pub mod tokens;
pub mod users;
