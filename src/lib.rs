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
//! * [`wire`]: the Beacon protocol's JSON shapes, as pure data.
//! * [`secret`]: credentials that never reach a log.
//! * [`sink`]: a local Beacon server, for demos, tests and air-gapped
//!   operators.
//! * [`spool`]: the durable, bounded, crash-safe store of closed windows.
//! * [`reporter`]: closes windows on time and delivers each exactly once.
//! * [`client`]: the HTTP side: report submission, license and API-key
//!   verification.
//! * [`cli`]: the `beacon-meter` command line (`check`, `preview`, `sink`,
//!   `spool`).
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

#[cfg(feature = "shell")]
pub mod cli;
#[cfg(feature = "shell")]
pub mod client;
#[cfg(feature = "shell")]
pub mod config;
#[cfg(feature = "shell")]
mod jwt;
pub mod meter;
#[cfg(feature = "shell")]
pub mod reporter;
#[cfg(feature = "shell")]
pub mod secret;
#[cfg(feature = "shell")]
pub mod sink;
#[cfg(feature = "shell")]
pub mod spool;
mod sync;
#[cfg(feature = "shell")]
mod text;
#[cfg(feature = "shell")]
mod urls;
#[cfg(feature = "shell")]
pub mod wire;

pub use meter::{
    AttachError, Attachment, CounterId, LocalMeter, MeasureKind, Meter, MeterBuilder, MeterError,
    Window,
};
