//! The CLI's integration tests, in one binary (one link instead of one per
//! file): `cli` runs the `beacon-meter` binary's subcommands, `sink_access`
//! the sink's admin token and TLS, `sink_flood` a sink flooded with idle
//! connections past its open-file limit, `sink_restart` a sink killed and
//! restarted under load. Run one area with
//! `cargo test -p beacon-meter-cli --test integration cli::`.
//!
//! `tests/secrets.rs` stays a binary of its own: it installs the process's
//! global `tracing` subscriber, at TRACE, to sweep every log line for
//! secrets.

mod common;

mod cli;
mod sink_access;
mod sink_flood;
mod sink_restart;
