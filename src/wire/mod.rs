//! The Beacon wire format: pure data and serialization, no network.
//!
//! The shapes follow `../shared/spec/beacon-protocol.md` exactly.
//!
//! * [`ReportBody`]: the usage report body; [`UsageReport`] (body
//!   plus credential) and [`encode_report`], the pure serializer.
//! * [`VerifyRequest`], [`VerifyResponse`], [`AuthResponse`]: the
//!   verification bodies.
//! * [`clock`]: aligned, tiling report windows and an injectable [`Clock`].
//! * [`tags`]: the report's tags.
//! * [`logs`]: the report's operational log records and the size guard.

pub mod clock;
pub mod logs;
mod messages;
mod report;
pub mod tags;

pub use clock::{Clock, ClockError, DEFAULT_INTERVAL, ManualClock, SystemClock, WindowClock};
pub use logs::{
    DEFAULT_MAX_REPORT_BYTES, LogBuffer, LogBufferLayer, LogLevel, LogRecord, ReportTooLarge,
    fit_report,
};
pub use messages::{AuthResponse, OrgConfig, VerifyRequest, VerifyResponse};
pub use report::{Credential, ReportBody, UsageReport, encode_report, format_timestamp};
pub use tags::{EvaluatedTags, Plan, TagError, Tags, UserAppFlags};
