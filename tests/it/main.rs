//! Integration tests.

mod web;
mod web_harness;
