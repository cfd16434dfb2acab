//! Operational log records collected between two reports.
//!
//! A [`LogBuffer`] collects a bounded number of [`LogRecord`]s between two
//! reports. Recording never blocks and never allocates beyond the record
//! itself: the buffer is a lock-free bounded queue, and when it is full the
//! new record is dropped and counted. [`LogBuffer::drain`] empties it into
//! the JSON objects a report carries (plus one record saying how many were
//! dropped, if any). The record shape is [`crate::wire::logs`]'s.
//!
//! [`LogBufferLayer`] is a `tracing` layer that forwards WARN and ERROR
//! events into a buffer.
//!
//! Layer: shell. May import tracing, tracing_subscriber, crossbeam,
//! `crate::secret` and `crate::wire`; must not import `crate::cli`.

use crate::secret::Secret;
use crate::wire::{LogLevel, LogRecord};
use chrono::Utc;
use crossbeam_queue::ArrayQueue;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The default [`LogBuffer`] capacity.
pub const DEFAULT_LOG_CAPACITY: usize = 64;

/// A bounded buffer of log records. See the [module docs](self).
///
/// Share it with `Arc`; every method takes `&self`.
#[derive(Debug)]
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
    /// [`MAX_MESSAGE_BYTES`](crate::wire::logs::MAX_MESSAGE_BYTES) /
    /// [`MAX_FIELD_BYTES`](crate::wire::logs::MAX_FIELD_BYTES)). Returns false, and
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
/// `Debug` shows the scrubbed secrets redacted.
#[derive(Clone, Debug)]
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
        let mut record = LogRecord::new(Utc::now(), level(*meta.level()), self.clean(v.message));
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

/// Numbers, booleans and strings are kept as such; everything else,
/// errors included (through `Visit`'s default `record_error`), is written
/// with its `Debug` (an error's `Debug` there is its `Display`).
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
}

/// The record level of a `tracing` level.
fn level(l: tracing::Level) -> LogLevel {
    match l {
        tracing::Level::ERROR => LogLevel::Error,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::DEBUG => LogLevel::Debug,
        tracing::Level::TRACE => LogLevel::Trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::logs::{MAX_FIELD_BYTES, MAX_MESSAGE_BYTES};

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
        assert!(logs[0]["target"].as_str().unwrap().contains("oplog"));
        assert_eq!(logs[1]["level"], "ERROR");
        assert_eq!(logs[1]["message"], "auth failed for lsv2…0123");
        assert_eq!(logs[1]["fields"]["key"], "Secret(lsv2…0123)");
        let all = serde_json::to_string(&logs).unwrap();
        assert!(!all.contains(key), "{all}");
        assert!(!all.contains("span_field"));
    }
}
