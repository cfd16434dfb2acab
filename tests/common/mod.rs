//! Helpers shared by the root crate's integration tests (`tests/tests.rs`):
//! the reporter's configuration, a multi-threaded recorder, polling, checks
//! of what a sink accepted, the spool tests' clock, the proptest runner of
//! the hostile tests, and (in [`jwt`]) the client tests' JWT building blocks.
#![allow(dead_code)]

pub mod jwt;

use beacon_meter::Meter;
use beacon_meter::config::Config;
use beacon_meter::meter::{NODES, RUNS};
use beacon_meter::reporter::{Reporter, ReporterError, ReporterOptions, RetryPolicy};
use beacon_meter::spool::{Destination, Spool, SpoolError, SpooledWindow};
use beacon_meter::wire::Tags;
use beacon_meter_sink::SinkHandle;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::ops::Add;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An online license (the sink accepts any `lcl_` key by default).
pub const LICENSE: &str = "lcl_reporter_test_license_0123456789abcdef0123";
/// An offline license: no `lcl_` prefix.
pub const OFFLINE_LICENSE: &str = "offline_reporter_test_license_0123456789abcdef";
/// An API key (the auth sink must list it in `api_keys`).
pub const API_KEY: &str = "lsv2_pt_reporter_test_api_key_0123456789abcdef";

/// 2025-01-06T09:00:00Z, where the spool tests' windows start.
pub const T0: i64 = 1_736_154_000;

/// The instant `s` seconds after the Unix epoch.
pub fn ts(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(s, 0).unwrap()
}

/// `cases` proptest cases, or `HOSTILE_CASES` if set (for a deeper hunt).
pub fn runner(cases: u32) -> proptest::test_runner::TestRunner {
    let cases = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
}

/// Counts recorded, or counts delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub runs: u64,
    pub nodes: u64,
}

impl Add for Totals {
    type Output = Totals;
    fn add(self, o: Totals) -> Totals {
        Totals {
            runs: self.runs + o.runs,
            nodes: self.nodes + o.nodes,
        }
    }
}

/// Environment variables for a reporter with 1 s windows, a 1 s timeout and
/// 1 s checkpoints, reporting with the test license to `beacon`.
pub fn vars(beacon: &str, spool: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("BEACON_URL", beacon.trim_end_matches('/').to_owned()),
        ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.to_owned()),
        ("BEACON_INTERVAL_SECS", "1".to_owned()),
        ("BEACON_TIMEOUT_SECS", "1".to_owned()),
        ("BEACON_CHECKPOINT_SECS", "1".to_owned()),
        ("BEACON_SPOOL_DIR", spool.display().to_string()),
    ]
}

/// Replaces (or adds) `key` in `vars`.
pub fn set(vars: &mut Vec<(&'static str, String)>, key: &'static str, value: impl Into<String>) {
    vars.retain(|(k, _)| *k != key);
    vars.push((key, value.into()));
}

/// Removes `key` from `vars`.
pub fn unset(vars: &mut Vec<(&'static str, String)>, key: &str) {
    vars.retain(|(k, _)| *k != key);
}

/// The configuration `vars` describe.
pub fn config(vars: &[(&'static str, String)]) -> Config {
    let map: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.clone())).collect();
    Config::from_lookup(|k| map.get(k).map(OsString::from)).expect("test configuration is valid")
}

/// The retry policy of the tests: fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(500),
        credential_backoff: Duration::from_millis(300),
    }
}

/// Reporter options for `vars`, with no tags and the fast retry policy.
pub fn options(vars: &[(&'static str, String)]) -> ReporterOptions {
    ReporterOptions::new(config(vars), Tags::new()).retry(fast_retry())
}

/// Starts a reporter. A reporter dropped in this process a moment ago may
/// still hold the spool's lock while its aborted tasks and their blocking
/// spool calls wind down, so `Locked` is retried for a few seconds (a new
/// process would get the lock at once: the kernel releases it on exit).
pub async fn spawn(meter: Meter, options: impl Fn() -> ReporterOptions) -> Reporter {
    init_tracing();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Reporter::spawn(meter.clone(), options()).await {
            Ok(r) => return r,
            Err(ReporterError::Spool(SpoolError::Locked { .. })) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the reporter did not start: {e}"),
        }
    }
}

/// Logs to the test's output when `RUST_LOG` is set (e.g.
/// `RUST_LOG=beacon_meter=debug`).
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Records on a meter from several threads until stopped. Each thread
/// records runs of 1 to 4 nodes and, now and then, nodes outside a run.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    /// Runs recorded so far by all threads (updated after each record, so
    /// a lower bound of what the meter holds).
    runs: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Totals>>,
}

impl Recorder {
    pub fn start(meter: &Meter, threads: usize) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|t| {
                let meter = meter.clone();
                let stop = stop.clone();
                let runs = runs.clone();
                std::thread::spawn(move || {
                    let local = meter.local();
                    let mut totals = Totals::default();
                    let mut i: u64 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let nodes = 1 + (i + t as u64) % 4;
                        local.record_run(nodes);
                        totals.runs += 1;
                        totals.nodes += nodes;
                        if i % 10 == 3 {
                            local.record_nodes(2);
                            totals.nodes += 2;
                        }
                        runs.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    totals
                })
            })
            .collect();
        Recorder {
            stop,
            runs,
            threads,
        }
    }

    /// Runs recorded so far (a lower bound).
    pub fn runs_so_far(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Stops every thread and returns the exact totals recorded.
    pub fn stop(self) -> Totals {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().expect("a recording thread panicked"))
            .fold(Totals::default(), Totals::add)
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns
/// whether it held.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sink's deduplicated totals of runs and nodes.
pub fn delivered(sink: &SinkHandle) -> Totals {
    let s = sink.summary();
    Totals {
        runs: s.measures.get(RUNS).copied().unwrap_or(0),
        nodes: s.measures.get(NODES).copied().unwrap_or(0),
    }
}

/// The totals of some spooled windows.
pub fn totals_of(windows: &[SpooledWindow]) -> Totals {
    windows
        .iter()
        .map(|w| Totals {
            runs: w.report.measures.get(RUNS).copied().unwrap_or(0),
            nodes: w.report.measures.get(NODES).copied().unwrap_or(0),
        })
        .fold(Totals::default(), Totals::add)
}

/// The pending windows of `dest`, read without taking the lock.
pub fn pending(spool: &Path, dest: Destination) -> Vec<SpooledWindow> {
    Spool::open_read_only(spool)
        .expect("the spool exists")
        .pending(dest)
        .expect("the spool is readable")
}

/// A child process's sink URL, spool root and output file, from
/// `CHILD_SINK`, `CHILD_SPOOL` and `CHILD_OUT`.
pub fn child_env() -> (String, std::path::PathBuf, std::path::PathBuf) {
    let var = |k| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by the parent test"));
    (
        var("CHILD_SINK"),
        var("CHILD_SPOOL").into(),
        var("CHILD_OUT").into(),
    )
}

/// Slot `n` of the spool root `spool` (`<spool>/slot-n`): a reporter's own
/// spool directory.
pub fn slot(spool: &Path, n: usize) -> std::path::PathBuf {
    spool.join(format!("slot-{n}"))
}

/// Waits until the spool slot `dir` is free (its lock can be taken), up
/// to 10 s. A reporter dropped without `shutdown` releases its slot only
/// when the last of its aborted tasks has ended; a process that dies frees
/// it at once. A reporter started before that claims another slot and
/// leaves this one to a later start. False if it never came free.
pub async fn slot_released(dir: &Path) -> bool {
    eventually(Duration::from_secs(10), || {
        beacon_meter::spool::Spool::open(dir, beacon_meter::spool::SpoolLimits::default()).is_ok()
    })
    .await
}

/// The files of `<spool>/<dest>/<area>/` with extension `ext`.
pub fn files(spool: &Path, dest: Destination, area: &str, suffix: &str) -> Vec<String> {
    let dir = spool.join(dest.as_str()).join(area);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A `[from, to)` span of an accepted report.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

fn timestamp(report: &serde_json::Value, field: &str) -> DateTime<Utc> {
    let text = report[field]
        .as_str()
        .unwrap_or_else(|| panic!("report without {field}: {report}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{field} {text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// The credential of an accepted report as `field:<redacted>` (`license`,
/// `license_key` or `api_key`).
pub fn credential_of(report: &serde_json::Value) -> String {
    ["license", "license_key", "api_key"]
        .iter()
        .find_map(|f| report[*f].as_str().map(|v| format!("{f}:{v}")))
        .unwrap_or_else(|| panic!("report without a credential field: {report}"))
}

/// The accepted reports' runs and nodes, per credential (see
/// [`credential_of`]).
pub fn delivered_per_credential(sink: &SinkHandle) -> BTreeMap<String, Totals> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for r in sink.reports() {
        let m = &r["measures"];
        let t = Totals {
            runs: m[RUNS].as_u64().unwrap_or_else(|| panic!("no runs: {r}")),
            nodes: m[NODES].as_u64().unwrap_or_else(|| panic!("no nodes: {r}")),
        };
        let total = out.entry(credential_of(&r)).or_default();
        *total = *total + t;
    }
    out
}

/// The accepted reports' spans, per credential (see [`credential_of`]),
/// sorted by start.
pub fn spans(sink: &SinkHandle) -> BTreeMap<String, Vec<Span>> {
    let mut out: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    for r in sink.reports() {
        let credential = credential_of(&r);
        let measures = &r["measures"];
        assert!(
            measures[RUNS].is_u64() && measures[NODES].is_u64(),
            "every report carries runs and nodes: {r}"
        );
        out.entry(credential).or_default().push((
            timestamp(&r, "from_timestamp"),
            timestamp(&r, "to_timestamp"),
        ));
    }
    for s in out.values_mut() {
        s.sort();
    }
    out
}

/// Every accepted window has `from < to`, and no two accepted windows of
/// one credential overlap (a window accepted twice under different keys
/// would).
pub fn assert_no_overlap(sink: &SinkHandle) {
    for (credential, spans) in spans(sink) {
        for (from, to) in &spans {
            assert!(from < to, "{credential}: window [{from}, {to}) is empty");
        }
        for w in spans.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "{credential}: accepted windows overlap: [{}, {}) and [{}, {})",
                w[0].0,
                w[0].1,
                w[1].0,
                w[1].1
            );
        }
    }
}

/// The spans tile time (each `from` is the previous `to`), and every window
/// but the last ends on a whole second (the 1 s interval's boundaries).
pub fn assert_tiles(credential: &str, spans: &[Span]) {
    assert!(!spans.is_empty(), "{credential}: no window accepted");
    for w in spans.windows(2) {
        assert_eq!(
            w[1].0, w[0].1,
            "{credential}: windows do not tile: [{}, {}) then [{}, {})",
            w[0].0, w[0].1, w[1].0, w[1].1
        );
        assert_eq!(
            w[0].1.timestamp_subsec_nanos(),
            0,
            "{credential}: window [{}, {}) does not end on a boundary of the 1 s interval",
            w[0].0,
            w[0].1
        );
    }
}

/// The spans of the only credential the sink saw.
pub fn only_spans(sink: &SinkHandle) -> (String, Vec<Span>) {
    let mut all = spans(sink);
    assert_eq!(
        all.len(),
        1,
        "expected one credential, got {:?}",
        all.keys()
    );
    all.pop_first().expect("one entry")
}

/// The full check after a scenario: the sink's deduplicated totals equal
/// `expected` exactly, no report came without an idempotency key, nothing
/// was refused as malformed, and no two accepted windows overlap.
pub fn assert_delivered_exactly(sink: &SinkHandle, expected: Totals) {
    let s = sink.summary();
    assert_eq!(
        delivered(sink),
        expected,
        "the sink's totals must equal the recorded totals; summary: {s:?}"
    );
    assert_eq!(s.rejects, 0, "no report may be refused as malformed: {s:?}");
    assert_eq!(s.without_idempotency_key, 0, "{s:?}");
    assert_no_overlap(sink);
}
