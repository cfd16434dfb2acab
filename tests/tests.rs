//! The root crate's integration tests, in one binary (as ripgrep's
//! `tests/tests.rs`): one link instead of one per file, and one home for the
//! helpers in [`common`]. Each module is one area; run one with
//! `cargo test --test integration spool::`.
//!
//! `tests/client_proxy.rs` stays a binary of its own: it sets the process's
//! proxy variables, which every HTTP client built in the same process
//! would read.

mod common;

mod client;
mod faults;
mod hostile_client;
mod hostile_config;
mod hostile_spool;
mod langgraph_api_dialect;
mod layers;
mod meter_stress;
mod otlp;
mod reporter;
mod slots;
mod spool;
mod wire_golden;
