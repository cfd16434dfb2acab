//! # beacon-meter
//!
//! Usage metering for high-throughput graph executors, with windowed,
//! exactly-once delivery of usage reports to a Beacon service.
//!
//! The crate is layered:
//!
//! * [`meter`]: the lock-free hot-path core. Sharded single-writer counters
//!   and a snapshot-and-diff rotation that cuts exact windows. No async, no
//!   HTTP, no JSON.
//! * [`wire`]: the Beacon protocol's JSON shapes, as pure data: no I/O,
//!   environment, clock or tracing layer.
//! * [`config`]: settings from the environment; [`clock`]: the wall clock
//!   the reporter reads; [`oplog`]: operational log records collected for
//!   the reports.
//! * [`secret`]: credentials that never reach a log.
//! * [`spool`]: the durable, bounded, crash-safe store of closed windows.
//! * [`reporter`]: closes windows on time and delivers each exactly once.
//! * [`client`]: the HTTP side: report submission, license and API-key
//!   verification.
//!
//! Features: `reporter` (the default) is everything above; `wire` is the
//! wire format and [`secret`] alone (what the local Beacon,
//! `beacon-meter-sink`, builds on); with no features the crate is the
//! metering core, with no dependency beyond `crossbeam-utils` and
//! `parking_lot`. The local Beacon and the `beacon-meter` command line
//! (`beacon-meter-cli`: the doctor, the demo) are crates of their own.
//!
//! Each module's doc says in one line what it may import; `tests/layers.rs`
//! checks the rules inside this crate: the core uses nothing of the
//! shell's crates, and `wire` does no I/O and uses no shell.
//!
//! ```
//! use beacon_meter::Meter;
//!
//! let meter = Meter::new();
//! let local = meter.local(); // keep one per worker thread
//! local.record_run(3);       // one run of 3 nodes, indivisibly
//! let window = meter.rotate();
//! assert_eq!((window.runs(), window.nodes()), (1, 3));
//! ```
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "reporter")]
pub mod client;
#[cfg(feature = "reporter")]
pub mod clock;
#[cfg(feature = "reporter")]
pub mod config;
#[cfg(feature = "wire")]
mod error_chain;
#[cfg(feature = "reporter")]
mod jwt;
pub mod meter;
#[cfg(feature = "reporter")]
pub mod oplog;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "reporter")]
pub mod reporter;
#[cfg(feature = "wire")]
pub mod secret;
#[cfg(feature = "reporter")]
pub mod spool;
mod sync;
#[cfg(feature = "reporter")]
mod urls;
#[cfg(feature = "wire")]
pub mod wire;

#[cfg(feature = "wire")]
pub use error_chain::error_chain;
/// The README's Rust snippets, compiled and run as doc tests.
#[cfg(all(doctest, feature = "reporter"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use meter::{
    AttachError, Attachment, CounterId, LocalMeter, MeasureKind, Meter, MeterBuilder, MeterError,
    Window,
};
