//! What a running sink remembers: its store (accepted reports, idempotency
//! keys, totals), this run's counters, recorded requests and the current
//! faults.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

use super::sink_config::{Faults, SinkConfig};
use super::store::{Store, Stored};
use super::validate::Submission;
use beacon_meter::secret::Secret;

/// How many requests [`super::SinkHandle::requests`] keeps at most (the
/// most recent ones), so that a long-running sink does not grow without
/// bound.
pub const MAX_RECORDED_REQUESTS: usize = 10_000;

/// How many bytes of recorded requests (as [`RecordedRequest::size`]
/// counts them) [`super::SinkHandle::requests`] keeps at most. A count
/// alone does not bound memory: a client sizes its own headers, up to
/// [`MAX_REQUEST_HEAD`] each, and 10 000 heads of 64 KiB are 640 MiB. The
/// oldest requests go first.
pub const MAX_RECORDED_BYTES: usize = 4 << 20;

/// The largest request head (request line and headers, with their
/// separators) the sink serves, in bytes: a larger one is answered `431
/// Request Header Fields Too Large` and the connection closed. A usage
/// report's head is well under 2 KiB.
pub const MAX_REQUEST_HEAD: usize = 64 << 10;

/// Totals over everything a sink accepted: the body of `GET /v1/summary`
/// and the value of [`super::SinkHandle::summary`].
///
/// `measures`, `reports`, `without_idempotency_key`, `by_credential` and
/// `by_dialect` are read from the sink's database, so they cover every
/// report it holds, across restarts. The other counters (`duplicates`,
/// `rejects`, `faults_injected`, `verifications`, `auths`) count since
/// this sink started.
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
    /// OTLP metrics exports stored (`POST /v1/metrics`).
    pub metric_exports: u64,
    /// Points of those exports (kept subject to the retention of
    /// [`crate::otlp`]; this total is not reduced by it).
    pub metric_points: u64,
    /// Tokens issued by `POST /v1/beacon/verify`.
    pub verifications: u64,
    /// API keys accepted by `POST /auth`.
    pub auths: u64,
    /// Accepted reports per credential, keyed `license:<redacted>` (for
    /// both `license` and `license_key`) or `api_key:<redacted>` (see
    /// [`Secret::redacted`]; short keys all show as `…` and so share one
    /// entry).
    pub by_credential: BTreeMap<String, u64>,
    /// Accepted reports per wire dialect: `published` or `langgraph-api`
    /// (see the [`super`] module docs for how a report's dialect is told).
    pub by_dialect: BTreeMap<String, u64>,
}

/// One request as the sink saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Every header in arrival order, names lower-case. The values of
    /// `X-Api-Key`, `X-Langchain-License-Key`, `Authorization`, `Proxy-Authorization` and `Cookie` are
    /// redacted (see [`Secret::redacted`]). Bodies, and so license keys, are
    /// not recorded.
    pub headers: Vec<(String, String)>,
    /// The status answered, or `None` if the connection was closed without
    /// an answer (an injected drop).
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// The bytes this record holds, as [`MAX_RECORDED_BYTES`] counts them:
    /// its text, plus a fixed allowance per string for the allocation.
    pub fn size(&self) -> usize {
        const PER_STRING: usize = 32;
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2 * PER_STRING)
            .sum();
        self.method.len() + self.path.len() + 2 * PER_STRING + headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Headers whose values [`RecordedRequest`] redacts.
const SECRET_HEADERS: [&str; 5] = [
    "x-api-key",
    beacon_meter::wire::METRICS_LICENSE_HEADER,
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

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive (RFC 9110, section 11.1: `bearer` and `BEARER` are
/// `Bearer`), and one or more spaces separate it from the token.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(b"Bearer".len())?;
    let token = rest.strip_prefix(b" ")?.trim_ascii_start();
    (scheme.eq_ignore_ascii_case(b"Bearer") && !token.is_empty()).then_some(token)
}

/// A running sink's state, shared by its connections and its handle.
pub(crate) struct SinkState {
    pub(crate) config: SinkConfig,
    pub(crate) key: crate::token::Key,
    /// The admin token, if one is configured, as an HMAC tag under a key
    /// drawn when the sink starts: a presented token is checked with
    /// `hmac::verify`, which compares in constant time, whatever the lengths.
    admin: Option<(ring::hmac::Key, ring::hmac::Tag)>,
    pub(crate) store: Store,
    inner: Mutex<Inner>,
}

struct Inner {
    faults: Faults,
    rng: fastrand::Rng,
    /// The counters kept since this sink started (duplicates, rejects,
    /// faults, verifications, auths); the rest of the [`Summary`] is read
    /// from the store.
    counters: Summary,
    /// The most recent requests: at most [`MAX_RECORDED_REQUESTS`] of
    /// them, and at most [`MAX_RECORDED_BYTES`] by their sizes, which
    /// `recorded_bytes` sums.
    requests: VecDeque<RecordedRequest>,
    recorded_bytes: usize,
}

impl SinkState {
    /// Fails only if the system's random source does.
    pub(crate) fn new(
        config: SinkConfig,
        key: crate::token::Key,
        store: Store,
    ) -> Result<Self, ring::error::Unspecified> {
        let faults = config.faults.clone();
        let admin = match &config.admin_token {
            None => None,
            Some(t) => {
                let random = ring::rand::SystemRandom::new();
                let admin_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &random)?;
                let tag = ring::hmac::sign(&admin_key, t.expose().as_bytes());
                Some((admin_key, tag))
            }
        };
        Ok(SinkState {
            admin,
            inner: Mutex::new(Inner {
                rng: fastrand::Rng::with_seed(faults.seed),
                faults,
                counters: Summary::default(),
                requests: VecDeque::new(),
                recorded_bytes: 0,
            }),
            store,
            config,
            key,
        })
    }

    /// Whether a request with this `Authorization` header value may read
    /// the summary and the reports (see the [`super`] module docs).
    pub(crate) fn may_read(&self, authorization: Option<&[u8]>) -> bool {
        match &self.admin {
            None => self.config.bind.ip().is_loopback(),
            Some((key, tag)) => authorization
                .and_then(bearer_token)
                .is_some_and(|token| ring::hmac::verify(key, token, tag.as_ref()).is_ok()),
        }
    }

    pub(crate) fn faults(&self) -> Faults {
        self.inner.lock().faults.clone()
    }

    /// Replaces the faults and reseeds the generator with their seed.
    pub(crate) fn set_faults(&self, faults: Faults) {
        let faults = faults.sanitized();
        let mut inner = self.inner.lock();
        inner.rng = fastrand::Rng::with_seed(faults.seed);
        inner.faults = faults;
    }

    pub(crate) fn set_forced_status(&self, status: Option<u16>) {
        self.inner.lock().faults.forced_status = status;
    }

    /// Draws against the current value of one of the rates. A rate of 0 or
    /// 1 (or NaN, as 0) draws nothing, so it leaves the sequence of later
    /// decisions as it was.
    pub(crate) fn chance(&self, rate: impl Fn(&Faults) -> f64) -> bool {
        let mut inner = self.inner.lock();
        let rate = rate(&inner.faults);
        rate >= 1.0 || (rate > 0.0 && inner.rng.f64() < rate)
    }

    /// The store's totals with this run's counters. If the store cannot be
    /// read (logged), its part is left at zero.
    pub(crate) fn summary(&self) -> Summary {
        let run = self.inner.lock().counters.clone();
        let totals = self.store.totals().unwrap_or_else(|e| {
            tracing::error!(error = %e, "sink could not read its totals");
            Summary::default()
        });
        Summary {
            duplicates: run.duplicates,
            rejects: run.rejects,
            faults_injected: run.faults_injected,
            verifications: run.verifications,
            auths: run.auths,
            ..totals
        }
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().requests.iter().cloned().collect()
    }

    /// Keeps `request`, dropping the oldest until both bounds hold (a
    /// request larger than [`MAX_RECORDED_BYTES`] alone is not kept).
    pub(crate) fn record_request(&self, request: RecordedRequest) {
        let mut inner = self.inner.lock();
        inner.recorded_bytes += request.size();
        inner.requests.push_back(request);
        while inner.requests.len() > MAX_RECORDED_REQUESTS
            || inner.recorded_bytes > MAX_RECORDED_BYTES
        {
            let Some(oldest) = inner.requests.pop_front() else {
                break;
            };
            inner.recorded_bytes -= oldest.size();
        }
    }

    /// Adds one to the run counter `which` picks.
    pub(crate) fn count(&self, which: fn(&mut Summary) -> &mut u64) {
        *which(&mut self.inner.lock().counters) += 1;
    }

    /// Deduplicates, stores and counts a valid report (blocking: it waits
    /// for the commit). A conflict counts as a reject, a duplicate as a
    /// duplicate.
    pub(crate) fn accept(&self, submission: &Submission) -> Stored {
        let stored = self.store.accept(submission);
        match stored {
            Stored::Duplicate => self.count(|s| &mut s.duplicates),
            Stored::Conflict | Stored::TooManyNames(_) => self.count(|s| &mut s.rejects),
            Stored::New | Stored::Failed(_) => {}
        }
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k"] {
            assert_eq!(bearer_token(value.as_bytes()), Some(&b"t0k"[..]), "{value}");
        }
        for value in [
            "Bearert0k",
            "Basic t0k",
            "Bearer ",
            "Bearer",
            "",
            "Bear t0k",
        ] {
            assert_eq!(bearer_token(value.as_bytes()), None, "{value}");
        }
    }

    #[test]
    fn certain_rates_draw_nothing_and_seeds_repeat() {
        let state = || {
            let store = Store::open(None, None).unwrap();
            SinkState::new(
                SinkConfig::ephemeral(),
                crate::token::new_key().unwrap(),
                store,
            )
            .unwrap()
        };
        let draws = |s: &SinkState| (0..64).map(|_| s.chance(|_| 0.5)).collect::<Vec<_>>();
        let (a, b) = (state(), state());
        assert!(a.chance(|_| 1.0) && !a.chance(|_| 0.0) && !a.chance(|_| f64::NAN));
        let seq = draws(&a);
        assert_eq!(seq, draws(&b), "certain rates drew from the generator");
        assert!(seq.contains(&true) && seq.contains(&false), "{seq:?}");
    }
}
