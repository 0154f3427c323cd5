//! Tessera: a self-hosted, npm-compatible package registry built around its
//! access-token system. See ARCHITECTURE.md for the map of modules.

pub mod app;
pub mod blob;
pub mod cidr;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod disk;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod npm;
pub mod server;
pub mod store;
pub mod uplink_client;
