//! Operational log records for the report's `logs` list.
//!
//! A [`LogRecord`] is one entry of a report's `logs`; [`LogRecord::bounded`]
//! cuts its text to [`MAX_MESSAGE_BYTES`] / [`MAX_FIELD_BYTES`].
//! [`fit_report`] keeps an encoded report under the size limit by cutting
//! log records, and says how many it cut. Collecting records between two
//! reports (a bounded queue and a `tracing` layer) is the shell's business:
//! `crate::oplog`.
//!
//! Layer: wire (pure). May import chrono, serde_json and the rest of
//! `crate::wire`; must not import tracing_subscriber, a queue or the shell.
//!
//! # Record shape
//!
//! ```json
//! { "timestamp": "2025-01-06T09:03:00Z", "level": "WARN",
//!   "target": "beacon_meter::client", "message": "report rejected",
//!   "fields": { "status": 400 } }
//! ```
//!
//! `target` is present only when known.

use super::report::ReportBody;
use super::truncate::prefix_within;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// The report size limit: 64 KiB.
pub const DEFAULT_MAX_REPORT_BYTES: usize = 64 * 1024;

/// Room [`fit_report`] leaves for the credential field (`"license":"…",`),
/// which the body does not contain. Credentials up to 1 KiB fit with any
/// JSON escaping.
pub const CREDENTIAL_RESERVE: usize = 4096;

/// Messages longer than this (in bytes) are cut when recorded.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// String field values longer than this (in bytes) are cut when recorded.
pub const MAX_FIELD_BYTES: usize = 1024;

/// A log record's severity, written upper-case (`"WARN"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// `"ERROR"`
    Error,
    /// `"WARN"`
    Warn,
    /// `"INFO"`
    Info,
    /// `"DEBUG"`
    Debug,
    /// `"TRACE"`
    Trace,
}

/// One operational log record; it serializes to the [record
/// shape](self#record-shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRecord {
    /// When it happened.
    #[serde(serialize_with = "super::report::rfc3339_z::serialize")]
    pub timestamp: DateTime<Utc>,
    /// How bad it is.
    pub level: LogLevel,
    /// Where it came from (a module path), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What happened.
    pub message: String,
    /// Structured details.
    pub fields: Map<String, Value>,
}

impl LogRecord {
    /// A record with no target and no fields.
    pub fn new(timestamp: DateTime<Utc>, level: LogLevel, message: impl Into<String>) -> LogRecord {
        LogRecord {
            timestamp,
            level,
            target: None,
            message: message.into(),
            fields: Map::new(),
        }
    }

    /// Adds a field.
    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<Value>) -> LogRecord {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// The record as a JSON object for the report's `logs`.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => unreachable!("a struct of strings and a JSON map serializes to an object"),
        }
    }

    /// The record with its message cut to [`MAX_MESSAGE_BYTES`] and each
    /// string field to [`MAX_FIELD_BYTES`] (at a character boundary, with
    /// `…` appended).
    pub fn bounded(mut self) -> LogRecord {
        cut_string(&mut self.message, MAX_MESSAGE_BYTES);
        for v in self.fields.values_mut() {
            if let Value::String(s) = v {
                cut_string(s, MAX_FIELD_BYTES);
            }
        }
        self
    }
}

/// An encoded report would exceed the size limit even without any logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the usage report needs {needed} bytes without any log records (including {CREDENTIAL_RESERVE} \
     bytes kept for the credential), over the {max}-byte limit: its tags or measures are too \
     large; register fewer custom tags, custom counters or gauges"
)]
pub struct ReportTooLarge {
    /// Bytes the report needs with no logs, credential reserve included.
    pub needed: usize,
    /// The limit.
    pub max: usize,
}

/// Cuts `body.logs` so the encoded report, with a credential of up to 1 KiB,
/// stays within `max_bytes` (normally [`DEFAULT_MAX_REPORT_BYTES`]).
///
/// Keeps the oldest records that fit, then adds one WARN record saying how
/// many were cut (field `cut`; its timestamp is the window's end, so the
/// result depends only on the inputs). Tags and measures are never touched.
/// Returns the number of records cut (0 if the report already fit).
pub fn fit_report(body: &mut ReportBody, max_bytes: usize) -> Result<usize, ReportTooLarge> {
    let budget = max_bytes.saturating_sub(CREDENTIAL_RESERVE);
    let len = |b: &ReportBody| {
        serde_json::to_vec(b)
            .expect("a report body always serializes")
            .len()
    };
    if len(body) <= budget {
        return Ok(0);
    }
    let logs = std::mem::take(&mut body.logs);
    let base = len(body); // with "logs":[]
    if base > budget {
        body.logs = logs;
        return Err(ReportTooLarge {
            needed: base + CREDENTIAL_RESERVE,
            max: max_bytes,
        });
    }
    let n = logs.len();
    let note = |cut: usize| {
        LogRecord::new(
            body.to_timestamp,
            LogLevel::Warn,
            format!(
                "{cut} operational log records were cut to keep the report within {max_bytes} bytes"
            ),
        )
        .with_field("cut", cut)
        .to_json()
    };
    let sizes: Vec<usize> = logs
        .iter()
        .map(|l| {
            serde_json::to_vec(l)
                .expect("a JSON object serializes")
                .len()
        })
        .collect();
    // Estimated size with the first `k` records plus the note: every element
    // after the first adds a comma.
    let estimate = |k: usize| {
        let note_len = serde_json::to_vec(&note(n - k)).expect("serializes").len();
        base + sizes[..k].iter().sum::<usize>() + note_len + k
    };
    // The estimate may be short by a few bytes: check, and keep one fewer
    // record while the report does not fit.
    if let Some(start) = (0..n).rev().find(|&k| estimate(k) <= budget) {
        for k in (0..=start).rev() {
            body.logs = logs[..k].to_vec();
            body.logs.push(note(n - k));
            if len(body) <= budget {
                return Ok(n - k);
            }
        }
    }
    // Not even the note fits: send the report with no logs.
    body.logs.clear();
    Ok(n)
}

/// `s` cut to at most `max` bytes at a character boundary, with `…`
/// appended if anything was cut.
fn cut_string(s: &mut String, max: usize) {
    if s.len() > max {
        s.truncate(prefix_within(s, max).len());
        s.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn body_with_logs(n: usize, msg_len: usize) -> ReportBody {
        ReportBody {
            from_timestamp: t("2025-01-06T09:00:00Z"),
            to_timestamp: t("2025-01-06T09:05:00Z"),
            tags: BTreeMap::from([("langgraph.platform.plan".into(), "enterprise".into())]),
            measures: BTreeMap::from([("langgraph.platform.runs".into(), 150)]),
            logs: (0..n)
                .map(|i| {
                    LogRecord::new(
                        t("2025-01-06T09:01:00Z"),
                        LogLevel::Warn,
                        "m".repeat(msg_len),
                    )
                    .with_field("i", i)
                    .to_json()
                })
                .collect(),
        }
    }

    #[test]
    fn records_become_json_objects() {
        let mut r = LogRecord::new(
            t("2025-01-06T09:03:00Z"),
            LogLevel::Error,
            "report rejected",
        )
        .with_field("status", 400);
        assert_eq!(
            Value::Object(r.to_json()),
            serde_json::json!({"timestamp":"2025-01-06T09:03:00Z","level":"ERROR",
                               "message":"report rejected","fields":{"status":400}})
        );
        r.target = Some("beacon_meter::client".into());
        assert_eq!(r.to_json()["target"], "beacon_meter::client");
    }

    /// Asserts that `b` already fits: fitting cuts nothing and changes nothing.
    fn assert_fits_as_is(b: &mut ReportBody) {
        let before = b.clone();
        assert_eq!(fit_report(b, DEFAULT_MAX_REPORT_BYTES), Ok(0));
        assert_eq!(*b, before);
    }

    #[test]
    fn fit_report_leaves_small_reports_alone() {
        assert_fits_as_is(&mut body_with_logs(3, 10));
    }

    #[test]
    fn fit_report_cuts_logs_and_notes_it() {
        let mut b = body_with_logs(200, 1000);
        let cut = fit_report(&mut b, DEFAULT_MAX_REPORT_BYTES).unwrap();
        assert!(cut > 0 && cut < 200, "{cut}");
        assert_eq!(b.logs.len(), 200 - cut + 1);
        let note = b.logs.last().unwrap();
        assert_eq!(note["fields"]["cut"], cut);
        assert_eq!(note["timestamp"], "2025-01-06T09:05:00Z");
        // the kept records are the oldest, in order
        for (i, l) in b.logs[..200 - cut].iter().enumerate() {
            assert_eq!(l["fields"]["i"], i);
        }
        // with a credential of 1 KiB the encoded report is within the limit,
        // and keeping one more record would not have been
        let key = crate::secret::Secret::new("k".repeat(1024));
        let cred = super::super::Credential::ApiKey(key);
        let bytes = super::super::encode_report(&cred, &b);
        assert!(bytes.len() <= DEFAULT_MAX_REPORT_BYTES, "{}", bytes.len());
        let budget = DEFAULT_MAX_REPORT_BYTES - CREDENTIAL_RESERVE;
        assert!(serde_json::to_vec(&b).unwrap().len() <= budget);
        let mut one_more = body_with_logs(200, 1000);
        one_more.logs.truncate(200 - cut + 1);
        one_more.logs.push(b.logs.last().unwrap().clone());
        assert!(serde_json::to_vec(&one_more).unwrap().len() > budget);
        // fitting again changes nothing
        assert_fits_as_is(&mut b);
    }

    #[test]
    fn fit_report_drops_all_logs_when_even_the_note_does_not_fit() {
        let mut b = body_with_logs(5, 100);
        b.logs.clear();
        let base = serde_json::to_vec(&b).unwrap().len();
        let mut b = body_with_logs(5, 100);
        assert_eq!(fit_report(&mut b, base + CREDENTIAL_RESERVE + 10), Ok(5));
        assert!(b.logs.is_empty());
    }

    #[test]
    fn fit_report_fails_when_tags_alone_are_too_big() {
        let mut b = body_with_logs(2, 10);
        for i in 0..2000 {
            b.tags.insert(format!("custom.tag.{i}"), "v".repeat(40));
        }
        let before = b.clone();
        let err = fit_report(&mut b, DEFAULT_MAX_REPORT_BYTES).unwrap_err();
        assert_eq!(err.max, DEFAULT_MAX_REPORT_BYTES);
        assert!(err.needed > DEFAULT_MAX_REPORT_BYTES);
        assert!(err.to_string().contains("tags or measures"));
        assert_eq!(b, before, "an unfittable body is left as it was");
    }
}
