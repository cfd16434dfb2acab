//! The `beacon-meter` command line and the operator tools behind it.
//!
//! * [`cli`]: argument parsing (clap), rendering and exit statuses;
//!   `anyhow` is used there and nowhere else.
//! * [`doctor`]: whether a deployment can report (`beacon-meter check`'s
//!   probes) and what it would send (`preview`), as typed results.
//! * [`demo`]: the whole pipeline against a faulty local Beacon, reconciled
//!   (`beacon-meter demo`, the soak example).
//!
//! Embedders depend on `beacon-meter` (the reporter) and, for a local
//! Beacon, `beacon-meter-sink`; this crate is for operators.
#![warn(missing_docs)]

pub mod cli;
pub mod demo;
pub mod doctor;
