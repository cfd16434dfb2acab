//! The Beacon wire format: pure data and serialization, no network.
//!
//! Layer: wire (pure). May import serde, serde_json, chrono, uuid,
//! thiserror, `crate::secret` and `crate::meter`; must not import tokio, reqwest,
//! hyper, axum, rusqlite, tracing_subscriber, `std::fs`, `std::net`,
//! `std::env` or the shell (client, reporter, spool, sink, cli, config,
//! clock, oplog). `tests/layers.rs` checks this.
//!
//! The shapes follow `docs/protocol.md` exactly; its examples, in
//! `tests/fixtures/protocol/`, are the golden tests (`tests/wire_golden.rs`).
//!
//! * [`ReportBody`]: the usage report body; [`UsageReport`] (body
//!   plus credential) and [`encode_report`], the pure serializer.
//! * [`VerifyRequest`], [`VerifyResponse`], [`AuthResponse`]: the
//!   verification bodies.
//! * [`ErrorBody`]: a refusal's `{"detail": …}`.
//! * [`Dialect`]: published or `langgraph-api`, the license destination's
//!   path and credential field; [`encode_report_in`] writes either.
//! * [`tiling`]: aligned, tiling report windows ([`WindowClock`]).
//! * [`tags`]: the report's tags.
//! * [`logs`]: the report's operational log records and the size guard.
//! * [`truncate`]: UTF-8-safe truncation.

mod dialect;
mod error_body;
pub mod logs;
mod messages;
mod report;
pub mod tags;
pub mod tiling;
pub mod truncate;

pub use dialect::{Dialect, UnknownDialect};

/// The header that carries the license key on the operational metrics
/// channel (OTLP/HTTP, `docs/protocol.md`), as the platform sends it.
/// Lower case, as HTTP/2 sends every header name and as `http` holds them.
pub const METRICS_LICENSE_HEADER: &str = "x-langchain-license-key";
pub use error_body::ErrorBody;
pub use logs::{DEFAULT_MAX_REPORT_BYTES, LogLevel, LogRecord, ReportTooLarge, fit_report};
pub use messages::{AuthResponse, OrgConfig, VerifyRequest, VerifyResponse};
pub use report::{
    API_KEY_FIELD, Credential, ReportBody, UsageReport, encode_report, encode_report_in,
    format_timestamp,
};
pub use tags::{EvaluatedTags, Plan, TagError, Tags, UserAppFlags};
pub use tiling::{ClockError, DEFAULT_INTERVAL, WindowClock};
