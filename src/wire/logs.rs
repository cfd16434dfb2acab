//! Operational log records for the report's `logs` list.
//!
//! A [`LogBuffer`] collects a bounded number of records between two reports.
//! Recording never blocks and never allocates beyond the record itself: the
//! buffer is a lock-free bounded queue, and when it is full the new record is
//! dropped and counted. [`LogBuffer::drain`] empties it into the JSON objects
//! a report carries (plus one record saying how many were dropped, if any).
//!
//! [`fit_report`] keeps an encoded report under the size limit by cutting
//! log records, and says how many it cut.
//!
//! [`LogBufferLayer`] is a `tracing` layer that forwards WARN and ERROR
//! events into a buffer.
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

use super::report::{ReportBody, format_timestamp};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use crossbeam_queue::ArrayQueue;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The default [`LogBuffer`] capacity.
pub const DEFAULT_LOG_CAPACITY: usize = 64;

/// A log record's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

impl LogLevel {
    /// The level as written in a record.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        }
    }
}

impl From<tracing::Level> for LogLevel {
    fn from(l: tracing::Level) -> LogLevel {
        match l {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        }
    }
}

/// One operational log record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// How bad it is.
    pub level: LogLevel,
    /// Where it came from (a module path), if known.
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
        let mut m = Map::new();
        m.insert("timestamp".into(), format_timestamp(&self.timestamp).into());
        m.insert("level".into(), self.level.as_str().into());
        if let Some(t) = &self.target {
            m.insert("target".into(), t.clone().into());
        }
        m.insert("message".into(), self.message.clone().into());
        m.insert("fields".into(), Value::Object(self.fields.clone()));
        m
    }

    fn bounded(mut self) -> LogRecord {
        cut_string(&mut self.message, MAX_MESSAGE_BYTES);
        for v in self.fields.values_mut() {
            if let Value::String(s) = v {
                cut_string(s, MAX_FIELD_BYTES);
            }
        }
        self
    }
}

/// A bounded buffer of log records. See the [module docs](self).
///
/// Share it with `Arc`; every method takes `&self`.
pub struct LogBuffer {
    queue: Option<ArrayQueue<LogRecord>>,
    capacity: usize,
    dropped_since_drain: AtomicU64,
    dropped_total: AtomicU64,
}

impl LogBuffer {
    /// A buffer holding at most `capacity` records between drains. A
    /// capacity of 0 keeps nothing (every record counts as dropped).
    pub fn new(capacity: usize) -> LogBuffer {
        LogBuffer {
            queue: (capacity > 0).then(|| ArrayQueue::new(capacity)),
            capacity,
            dropped_since_drain: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
        }
    }

    /// The most records held between drains.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records held now.
    pub fn len(&self) -> usize {
        self.queue.as_ref().map_or(0, ArrayQueue::len)
    }

    /// True if no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records dropped because the buffer was full, since it was made.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Adds a record without blocking (message and string fields cut to
    /// [`MAX_MESSAGE_BYTES`] / [`MAX_FIELD_BYTES`]). Returns false, and
    /// counts a drop, if the buffer is full.
    pub fn record(&self, record: LogRecord) -> bool {
        let pushed = match &self.queue {
            Some(q) => q.push(record.bounded()).is_ok(),
            None => false,
        };
        if !pushed {
            self.dropped_since_drain.fetch_add(1, Ordering::Relaxed);
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
        pushed
    }

    /// Empties the buffer into JSON objects for the report's `logs`, oldest
    /// first. If records were dropped since the last drain, a last WARN
    /// record says how many (with field `dropped`).
    pub fn drain(&self) -> Vec<Map<String, Value>> {
        let mut out = Vec::with_capacity(self.len() + 1);
        if let Some(q) = &self.queue {
            while let Some(r) = q.pop() {
                out.push(r.to_json());
            }
        }
        let dropped = self.dropped_since_drain.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            out.push(
                LogRecord::new(
                    Utc::now(),
                    LogLevel::Warn,
                    format!(
                        "{dropped} operational log records were dropped: the log buffer \
                         (capacity {}) was full",
                        self.capacity
                    ),
                )
                .with_field("dropped", dropped)
                .to_json(),
            );
        }
        out
    }
}

impl Default for LogBuffer {
    /// A buffer of [`DEFAULT_LOG_CAPACITY`] records.
    fn default() -> Self {
        LogBuffer::new(DEFAULT_LOG_CAPACITY)
    }
}

impl fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogBuffer")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("dropped_total", &self.dropped_total())
            .finish()
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
    let mut keep = (0..n).rev().find(|&k| estimate(k) <= budget);
    let mut logs = logs;
    loop {
        match keep {
            Some(k) => {
                logs.truncate(k);
                body.logs = logs.clone();
                body.logs.push(note(n - k));
                if len(body) <= budget {
                    return Ok(n - k);
                }
                keep = k.checked_sub(1);
            }
            None => {
                // Not even the note fits: send the report with no logs.
                body.logs.clear();
                return Ok(n);
            }
        }
    }
}

/// A `tracing` layer that forwards WARN and ERROR events into a
/// [`LogBuffer`], as records with the event's message, fields and target.
///
/// # What it forwards, and secrets
///
/// Exactly what each event says, nothing more: its message, the fields
/// written on the event itself (formatted with `Debug`, or as numbers,
/// booleans and strings), its level, its target and the time. It does not
/// read span fields, the environment, request data or anything else. A
/// [`Secret`] passed as a field is formatted through its redacting `Debug`.
/// Events below WARN are ignored. As a second line of defence, secrets
/// registered with [`scrubbing`](Self::scrubbing) are replaced by their
/// redacted form wherever they appear in a message or string field; an event
/// that puts an unregistered raw credential into its own text is forwarded
/// as written, so never log one.
#[derive(Clone)]
pub struct LogBufferLayer {
    buffer: Arc<LogBuffer>,
    scrub: Vec<Secret>,
}

impl LogBufferLayer {
    /// A layer recording into `buffer`.
    pub fn new(buffer: Arc<LogBuffer>) -> LogBufferLayer {
        LogBufferLayer {
            buffer,
            scrub: Vec::new(),
        }
    }

    /// Also replaces `secret`, wherever it appears in forwarded text, with
    /// its redacted form.
    pub fn scrubbing(mut self, secret: Secret) -> LogBufferLayer {
        if !secret.expose().is_empty() {
            self.scrub.push(secret);
        }
        self
    }

    fn clean(&self, mut s: String) -> String {
        for secret in &self.scrub {
            if s.contains(secret.expose()) {
                s = secret.scrub(&s);
            }
        }
        s
    }
}

impl fmt::Debug for LogBufferLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogBufferLayer")
            .field("buffer", &self.buffer)
            .field("scrubbing", &self.scrub.len())
            .finish()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogBufferLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::WARN {
            return;
        }
        let mut v = FieldVisitor::default();
        event.record(&mut v);
        let mut record = LogRecord::new(Utc::now(), (*meta.level()).into(), self.clean(v.message));
        record.target = Some(meta.target().to_owned());
        for (k, val) in v.fields {
            let val = match val {
                Value::String(s) => Value::String(self.clean(s)),
                other => other,
            };
            record.fields.insert(k, val);
        }
        self.buffer.record(record);
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: Map<String, Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &tracing::field::Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl tracing::field::Visit for FieldVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.put(field, Value::String(value.to_string()));
    }
}

fn cut_string(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
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

    #[test]
    fn buffer_is_bounded_counts_drops_and_drains_in_order() {
        let buf = LogBuffer::new(3);
        for i in 0..5 {
            let ok = buf.record(LogRecord::new(Utc::now(), LogLevel::Warn, format!("m{i}")));
            assert_eq!(ok, i < 3);
        }
        assert_eq!((buf.len(), buf.dropped_total()), (3, 2));
        let logs = buf.drain();
        let msgs: Vec<&str> = logs
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        assert_eq!(&msgs[..3], ["m0", "m1", "m2"]);
        assert_eq!(logs.len(), 4);
        assert_eq!(logs[3]["fields"]["dropped"], 2);
        assert_eq!(logs[3]["level"], "WARN");
        assert!(buf.is_empty());
        // the drop note is given once; the total stays
        assert!(buf.drain().is_empty());
        assert_eq!(buf.dropped_total(), 2);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let buf = LogBuffer::new(0);
        assert!(!buf.record(LogRecord::new(Utc::now(), LogLevel::Error, "x")));
        let logs = buf.drain();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0]["fields"]["dropped"], 1);
    }

    #[test]
    fn long_messages_and_fields_are_cut() {
        let buf = LogBuffer::new(1);
        buf.record(
            LogRecord::new(Utc::now(), LogLevel::Warn, "é".repeat(5000))
                .with_field("big", "x".repeat(5000))
                .with_field("n", 5),
        );
        let l = &buf.drain()[0];
        assert!(l["message"].as_str().unwrap().len() <= MAX_MESSAGE_BYTES + 3);
        assert!(l["fields"]["big"].as_str().unwrap().len() <= MAX_FIELD_BYTES + 3);
        assert_eq!(l["fields"]["n"], 5);
    }

    #[test]
    fn concurrent_recording_never_loses_count() {
        let buf = Arc::new(LogBuffer::new(100));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = buf.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        b.record(LogRecord::new(Utc::now(), LogLevel::Warn, "x"));
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(buf.len() as u64 + buf.dropped_total(), 4000);
        assert_eq!(buf.len(), 100);
    }

    #[test]
    fn fit_report_leaves_small_reports_alone() {
        let mut b = body_with_logs(3, 10);
        let before = b.clone();
        assert_eq!(fit_report(&mut b, DEFAULT_MAX_REPORT_BYTES), Ok(0));
        assert_eq!(b, before);
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
        let again = b.clone();
        assert_eq!(fit_report(&mut b, DEFAULT_MAX_REPORT_BYTES), Ok(0));
        assert_eq!(b, again);
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

    #[test]
    fn layer_forwards_warn_and_error_only_and_scrubs_secrets() {
        use tracing_subscriber::layer::SubscriberExt;
        let key = "lsv2_pt_0123456789abcdef0123";
        let buf = Arc::new(LogBuffer::new(10));
        let layer = LogBufferLayer::new(buf.clone()).scrubbing(Secret::new(key));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not forwarded");
            tracing::debug!(x = 1, "not forwarded");
            let span = tracing::warn_span!("span", span_field = "not forwarded");
            let _g = span.enter();
            tracing::warn!(status = 503u64, retry = true, body = %format!("echo {key}"), "server busy");
            tracing::error!(key = ?Secret::new(key), "auth failed for {key}");
        });
        let logs = buf.drain();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0]["level"], "WARN");
        assert_eq!(logs[0]["message"], "server busy");
        assert_eq!(logs[0]["fields"]["status"], 503);
        assert_eq!(logs[0]["fields"]["retry"], true);
        assert_eq!(logs[0]["fields"]["body"], "echo lsv2…0123");
        assert!(logs[0]["target"].as_str().unwrap().contains("logs"));
        assert_eq!(logs[1]["level"], "ERROR");
        assert_eq!(logs[1]["message"], "auth failed for lsv2…0123");
        assert_eq!(logs[1]["fields"]["key"], "Secret(lsv2…0123)");
        let all = serde_json::to_string(&logs).unwrap();
        assert!(!all.contains(key), "{all}");
        assert!(!all.contains("span_field"));
    }
}
