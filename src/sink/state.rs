//! What a running sink remembers: accepted reports, idempotency keys,
//! totals, recorded requests and the current faults.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use uuid::Uuid;

use super::config::{Faults, SinkConfig, XorShift};
use super::validate::ValidReport;
use crate::secret::Secret;

/// How many requests [`super::SinkHandle::requests`] keeps (the most
/// recent ones), so that a long-running sink does not grow without bound.
pub const MAX_RECORDED_REQUESTS: usize = 10_000;

/// Totals over everything a sink accepted: the body of `GET /v1/summary`
/// and the value of [`super::SinkHandle::summary`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Per measure name, the sum of its values over all accepted reports,
    /// each report counted once however often it was retried (saturating
    /// at `u64::MAX`). Gauges such as `langgraph.platform.py_graphs` are
    /// summed too, which is only meaningful as "sum of the values reported";
    /// read [`super::SinkHandle::reports`] for their values over time.
    pub measures: BTreeMap<String, u64>,
    /// Reports accepted (answered `204`, or accepted then dropped by the
    /// `accept_then_drop_rate` fault), duplicates excluded.
    pub reports: u64,
    /// Submits that repeated an accepted report under the same
    /// `Idempotency-Key` with the same body: answered `204`, not counted
    /// again.
    pub duplicates: u64,
    /// Submits refused as invalid: malformed (`400`), too large (`413`),
    /// unknown credential (`401`), breaking the protocol or reusing an
    /// idempotency key for another body (`422`).
    pub rejects: u64,
    /// Accepted reports that came without an `Idempotency-Key` header (a
    /// retry of one of them would be counted twice).
    pub without_idempotency_key: u64,
    /// Submits answered by an injected fault: forced status, `503`, dropped
    /// connection, or accepted then dropped.
    pub faults_injected: u64,
    /// Tokens issued by `POST /v1/beacon/verify`.
    pub verifications: u64,
    /// API keys accepted by `POST /auth`.
    pub auths: u64,
    /// Accepted reports per credential, keyed `license:<redacted>` or
    /// `api_key:<redacted>` (see [`Secret::redacted`]; short keys all show
    /// as `…` and so share one entry).
    pub by_credential: BTreeMap<String, u64>,
}

/// One request as the sink saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Every header in arrival order, names lower-case. The values of
    /// `X-Api-Key`, `Authorization`, `Proxy-Authorization` and `Cookie` are
    /// redacted (see [`Secret::redacted`]). Bodies, and so license keys, are
    /// not recorded.
    pub headers: Vec<(String, String)>,
    /// The status answered, or `None` if the connection was closed without
    /// an answer (an injected drop).
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Headers whose values [`RecordedRequest`] redacts.
const SECRET_HEADERS: [&str; 4] = [
    "x-api-key",
    "authorization",
    "proxy-authorization",
    "cookie",
];

/// The headers of a request, with secrets redacted.
pub(crate) fn redact_headers(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes());
            let value = if SECRET_HEADERS.contains(&name.as_str()) {
                Secret::new(value).redacted()
            } else {
                value.into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// What became of a valid report.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// New: stored and counted.
    New,
    /// Same idempotency key, same body as an accepted report.
    Duplicate,
    /// Same idempotency key as an accepted report, different body.
    Conflict,
    /// Could not be appended to the JSONL file; nothing was counted.
    Storage(std::io::Error),
}

/// The state shared by a sink's connections and its handle.
pub(crate) struct Shared {
    pub(crate) config: SinkConfig,
    pub(crate) key: crate::jwt::SinkKey,
    inner: Mutex<Inner>,
}

struct Inner {
    faults: Faults,
    rng: XorShift,
    reports: Vec<Value>,
    seen: HashMap<Uuid, Value>,
    summary: Summary,
    requests: VecDeque<RecordedRequest>,
    jsonl: Option<File>,
}

impl Shared {
    pub(crate) fn new(config: SinkConfig, key: crate::jwt::SinkKey, jsonl: Option<File>) -> Self {
        let faults = config.faults.clone();
        Shared {
            inner: Mutex::new(Inner {
                rng: XorShift::new(faults.seed),
                faults,
                reports: Vec::new(),
                seen: HashMap::new(),
                summary: Summary::default(),
                requests: VecDeque::new(),
                jsonl,
            }),
            config,
            key,
        }
    }

    pub(crate) fn faults(&self) -> Faults {
        self.inner.lock().faults.clone()
    }

    /// Replaces the faults and reseeds the generator with their seed.
    pub(crate) fn set_faults(&self, faults: Faults) {
        let faults = faults.sanitized();
        let mut inner = self.inner.lock();
        inner.rng = XorShift::new(faults.seed);
        inner.faults = faults;
    }

    pub(crate) fn set_forced_status(&self, status: Option<u16>) {
        self.inner.lock().faults.forced_status = status;
    }

    /// Draws against the current value of one of the rates.
    pub(crate) fn chance(&self, rate: impl Fn(&Faults) -> f64) -> bool {
        let mut inner = self.inner.lock();
        let rate = rate(&inner.faults);
        inner.rng.chance(rate)
    }

    pub(crate) fn summary(&self) -> Summary {
        self.inner.lock().summary.clone()
    }

    pub(crate) fn reports(&self) -> Vec<Value> {
        self.inner.lock().reports.clone()
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().requests.iter().cloned().collect()
    }

    pub(crate) fn record_request(&self, request: RecordedRequest) {
        let mut inner = self.inner.lock();
        if inner.requests.len() >= MAX_RECORDED_REQUESTS {
            inner.requests.pop_front();
        }
        inner.requests.push_back(request);
    }

    pub(crate) fn count_reject(&self) {
        self.inner.lock().summary.rejects += 1;
    }

    pub(crate) fn count_fault(&self) {
        self.inner.lock().summary.faults_injected += 1;
    }

    pub(crate) fn count_verification(&self) {
        self.inner.lock().summary.verifications += 1;
    }

    pub(crate) fn count_auth(&self) {
        self.inner.lock().summary.auths += 1;
    }

    /// Deduplicates, stores and counts a valid report. A conflict counts as
    /// a reject. The JSONL line is written (and flushed) before anything is
    /// counted, so the file never misses an accepted report.
    pub(crate) fn accept(&self, key: Option<Uuid>, report: ValidReport) -> Accepted {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        if let Some(key) = key
            && let Some(previous) = inner.seen.get(&key)
        {
            return if *previous == report.value {
                inner.summary.duplicates += 1;
                Accepted::Duplicate
            } else {
                inner.summary.rejects += 1;
                Accepted::Conflict
            };
        }
        let stored = report.redacted();
        if let Some(file) = &mut inner.jsonl {
            let mut line = stored.to_string();
            line.push('\n');
            if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
                return Accepted::Storage(e);
            }
        }
        let summary = &mut inner.summary;
        summary.reports += 1;
        for (name, value) in &report.measures {
            let total = summary.measures.entry(name.clone()).or_default();
            *total = total.saturating_add(*value);
        }
        let credential = format!(
            "{}:{}",
            report.credential_field.name(),
            Secret::new(report.credential.as_str()).redacted()
        );
        *summary.by_credential.entry(credential).or_default() += 1;
        match key {
            Some(key) => {
                inner.seen.insert(key, report.value);
            }
            None => summary.without_idempotency_key += 1,
        }
        inner.reports.push(stored);
        Accepted::New
    }
}
