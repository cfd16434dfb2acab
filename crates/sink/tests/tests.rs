//! The local Beacon's integration tests, in one binary (one link instead of
//! one per file): `sink` is what the protocol asks of it, `hostile_sink` what
//! a hostile client throws at it, `store_files` what a full disk, loose file
//! modes and a damaged database do to its files. Run one area with
//! `cargo test -p beacon-meter-sink --test integration hostile_sink::`.

mod hostile_sink;
mod sink;
mod store_files;
