//! The Beacon wire format: pure data and serialization, no network.
//!
//! The shapes follow `../shared/spec/beacon-protocol.md` exactly.

mod report;

pub use report::{Credential, ReportBody, encode_report, format_timestamp};
