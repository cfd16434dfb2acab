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
//! * [`sink`]: a local Beacon server, for demos, tests and air-gapped
//!   operators.
//! * [`spool`]: the durable, bounded, crash-safe store of closed windows.
//! * [`reporter`]: closes windows on time and delivers each exactly once.
//! * [`client`]: the HTTP side: report submission, license and API-key
//!   verification.
//! * [`doctor`]: whether a deployment can report (`beacon-meter check`'s
//!   probes) and what it would send (`preview`), as typed results.
//! * [`demo`]: the whole pipeline against a faulty local Beacon, reconciled
//!   (`beacon-meter demo`, the soak test).
//!
//! The `beacon-meter` command line (`src/cli`) is part of the binary only.
//!
//! Each module's doc says in one line what it may import; `tests/layers.rs`
//! checks the rules that matter: the core uses nothing of the shell's
//! crates, `wire` no I/O and no shell, and only the CLI uses the CLI.
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
pub mod client;
#[cfg(feature = "shell")]
pub mod clock;
#[cfg(feature = "shell")]
pub mod config;
#[cfg(feature = "shell")]
pub mod demo;
#[cfg(feature = "shell")]
pub mod doctor;
#[cfg(feature = "shell")]
mod jwt;
pub mod meter;
#[cfg(feature = "shell")]
pub mod oplog;
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
