//! The reporter end to end: a meter recorded from several threads, a real
//! reporter (1 s windows, 1 s checkpoints, 1 s timeout) and the real local
//! Beacon sink on 127.0.0.1, through outages, refusals, restarts, crashes
//! and shutdowns. After every scenario the sink's deduplicated totals must
//! equal what was recorded (or, after a hard crash, fall short by at most
//! one checkpoint interval of recording), no window may be accepted twice
//! under different keys, and the accepted windows of one process run must
//! tile time.
#![cfg(feature = "reporter")]

use crate::common::*;
use beacon_meter::Meter;
use beacon_meter::meter::RUNS;
use beacon_meter::reporter::ReporterStats;
use beacon_meter::secret::Secret;
use beacon_meter::spool::{Destination, Spool, SpoolLimits};
use beacon_meter_sink::{Faults, SinkConfig, SinkHandle};
use chrono::Utc;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::time::sleep;

/// Right after a reporter on `meter` was dropped: the meter is free at once
/// (not when the aborted tasks wind down), a run recorded then is held by
/// the meter, and the reporter's slot is released.
async fn assert_dropped_frees_meter_and_slot(meter: &Meter, slot: &Path) {
    assert_eq!(
        meter.attach().err(),
        None,
        "a dropped reporter must free its meter"
    );
    meter.record_run(1);
    assert!(
        slot_released(slot).await,
        "the dropped reporter never released its slot"
    );
}

async fn start_sink(config: SinkConfig) -> SinkHandle {
    config.start().await.expect("the sink starts")
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The stats of one destination.
fn dest(stats: &ReporterStats, d: Destination) -> beacon_meter::reporter::DestinationStats {
    stats
        .destinations
        .iter()
        .find(|x| x.destination == d)
        .unwrap_or_else(|| panic!("no stats for {d}: {stats:?}"))
        .clone()
}

/// Waits until the sink's totals reach `expected` (all closed windows
/// delivered while the reporter keeps running).
async fn await_delivery(sink: &SinkHandle, expected: Totals, within: Duration) {
    let ok = eventually(within, || delivered(sink) == expected).await;
    assert!(
        ok,
        "not delivered within {within:?}: the sink has {:?}, recorded {expected:?}; summary {:?}",
        delivered(sink),
        sink.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_503_honour_retry_after_and_lose_nothing() {
    let sink = start_sink(SinkConfig::ephemeral()).await;
    let dir = tempfile::tempdir().unwrap();
    let v = vars(sink.base_url().as_str(), dir.path());
    let meter = Meter::new();
    // A cap well above Retry-After, so that honouring it is visible: with
    // the 50 ms backoff alone a 1.6 s burst would see about six attempts.
    let reporter = spawn(meter.clone(), || {
        options(&v).retry(beacon_meter::client::RetryPolicy {
            cap: Duration::from_secs(5),
            ..fast_retry()
        })
    })
    .await;
    let recorder = Recorder::start(&meter, 3);
    let burst = Faults {
        failure_rate: 1.0,
        retry_after_secs: 1,
        ..Faults::none()
    };
    sink.set_faults(burst.clone());
    sleep(secs(1.6)).await;
    sink.set_faults(Faults::none());
    sleep(secs(1.2)).await;
    sink.set_faults(burst);
    sleep(secs(1.6)).await;
    sink.set_faults(Faults::none());
    let recorded = recorder.stop();

    await_delivery(&sink, recorded, secs(5.0)).await;
    let running = reporter.stats();
    assert!(running.retries > 0, "{running:?}");
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_eq!(stats.windows_sent, stats.windows_closed, "{stats:?}");

    assert_delivered_exactly(&sink, recorded);
    let (credential, spans) = only_spans(&sink);
    assert_tiles(&credential, &spans);
    let refused = sink
        .requests()
        .iter()
        .filter(|r| r.status == Some(503))
        .count();
    assert!(refused >= 2, "the bursts were answered 503 {refused} times");
    assert!(
        refused <= 6,
        "Retry-After: 1 allows at most ~2 attempts per 1.6 s burst, saw {refused} 503s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried_without_loss() {
    let sink = start_sink(SinkConfig::ephemeral()).await;
    let dir = tempfile::tempdir().unwrap();
    let v = vars(sink.base_url().as_str(), dir.path());
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    let recorder = Recorder::start(&meter, 3);
    sink.set_faults(Faults {
        drop_rate: 0.6,
        ..Faults::none()
    });
    sleep(secs(3.0)).await;
    sink.set_faults(Faults::none());
    sleep(secs(0.5)).await;
    let recorded = recorder.stop();

    await_delivery(&sink, recorded, secs(5.0)).await;
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert!(stats.retries > 0, "{stats:?}");

    let summary = sink.summary();
    assert!(summary.faults_injected > 0, "{summary:?}");
    let unanswered = sink
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/metadata/submit" && r.status.is_none())
        .count();
    assert!(unanswered > 0, "no connection was dropped");
    // Dropped before the sink looked at the report: nothing to deduplicate.
    assert_eq!(summary.duplicates, 0, "{summary:?}");
    assert_delivered_exactly(&sink, recorded);
    let (credential, spans) = only_spans(&sink);
    assert_tiles(&credential, &spans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_lost_after_acceptance_are_deduplicated_by_idempotency_key() {
    let sink = start_sink(SinkConfig::ephemeral()).await;
    let dir = tempfile::tempdir().unwrap();
    let v = vars(sink.base_url().as_str(), dir.path());
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    let recorder = Recorder::start(&meter, 3);
    // Every new report is accepted, then the connection is closed unanswered.
    sink.set_faults(Faults {
        accept_then_drop_rate: 1.0,
        ..Faults::none()
    });
    sleep(secs(2.2)).await;
    // Answers slower than the client's 1 s timeout.
    sink.set_faults(Faults {
        latency: Duration::from_millis(1500),
        ..Faults::none()
    });
    sleep(secs(2.5)).await;
    sink.set_faults(Faults::none());
    let recorded = recorder.stop();

    await_delivery(&sink, recorded, secs(6.0)).await;
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert!(stats.retries > 0, "{stats:?}");

    let summary = sink.summary();
    assert!(
        summary.duplicates > 0,
        "retries of accepted reports must reach the sink as duplicates: {summary:?}"
    );
    assert_delivered_exactly(&sink, recorded);
    let (credential, spans) = only_spans(&sink);
    assert_tiles(&credential, &spans);
    // Every attempt of a window carried the same key, so every key the sink
    // saw more than once belongs to a single accepted report.
    let keys: std::collections::BTreeSet<String> = sink
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/metadata/submit")
        .map(|r| r.header("idempotency-key").expect("keyed").to_owned())
        .collect();
    assert_eq!(
        keys.len() as u64,
        summary.reports,
        "each accepted report has exactly one key, and every key was accepted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credential_keeps_windows_until_fixed_and_retry_now() {
    let sink = start_sink(SinkConfig::ephemeral().faults(Faults {
        forced_status: Some(401),
        ..Faults::none()
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let v = vars(sink.base_url().as_str(), dir.path());
    let meter = Meter::new();
    // A long credential backoff: only `retry_now` can bring delivery back
    // within the test's time.
    let reporter = spawn(meter.clone(), || {
        options(&v).retry(beacon_meter::client::RetryPolicy {
            credential_backoff: Duration::from_secs(60),
            ..fast_retry()
        })
    })
    .await;
    let recorder = Recorder::start(&meter, 3);
    let refused = eventually(secs(6.0), || {
        let d = dest(&reporter.stats(), Destination::Beacon);
        d.credential_rejected && d.pending >= 2
    })
    .await;
    assert!(refused, "stats: {:?}", reporter.stats());
    let during = reporter.stats();
    let d = dest(&during, Destination::Beacon);
    assert_eq!(d.sent, 0, "{during:?}");
    assert!(
        d.last_error.as_deref().unwrap_or("").contains("401"),
        "{during:?}"
    );
    assert!(
        !format!("{during:?}").contains(LICENSE),
        "stats must not show the license"
    );
    assert_eq!(sink.summary().reports, 0);
    let recorded = recorder.stop();

    sink.set_forced_status(None);
    reporter.retry_now();
    await_delivery(&sink, recorded, secs(5.0)).await;
    let after = dest(&reporter.stats(), Destination::Beacon);
    assert!(!after.credential_rejected, "{after:?}");
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_delivered_exactly(&sink, recorded);
    let (credential, spans) = only_spans(&sink);
    assert_tiles(&credential, &spans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_report_path_keeps_windows_until_the_switch() {
    // 404 on the report path (a wrong BEACON_WIRE or base URL): every
    // window would be refused alike, so none may go to rejected/.
    let sink = start_sink(SinkConfig::ephemeral().faults(Faults {
        forced_status: Some(404),
        ..Faults::none()
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let v = vars(sink.base_url().as_str(), dir.path());
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || {
        options(&v).retry(beacon_meter::client::RetryPolicy {
            credential_backoff: Duration::from_secs(60),
            ..fast_retry()
        })
    })
    .await;
    let recorder = Recorder::start(&meter, 3);
    let held = eventually(secs(6.0), || {
        let d = dest(&reporter.stats(), Destination::Beacon);
        d.pending >= 2 && d.last_error.is_some()
    })
    .await;
    assert!(held, "stats: {:?}", reporter.stats());
    let during = reporter.stats();
    let d = dest(&during, Destination::Beacon);
    assert_eq!(
        (d.sent, d.rejected, during.rejected),
        (0, 0, 0),
        "{during:?}"
    );
    let error = d.last_error.clone().unwrap_or_default();
    let url = format!("{}v1/metadata/submit", sink.base_url());
    assert!(
        error.contains("404") && error.contains("BEACON_WIRE") && error.contains(&url),
        "the error must name the status, the URL and the dialect setting: {error}"
    );
    assert!(!format!("{during:?}").contains(LICENSE));
    assert_eq!(sink.summary().reports, 0);
    let recorded = recorder.stop();

    // The switch: the path is there now.
    sink.set_forced_status(None);
    reporter.retry_now();
    await_delivery(&sink, recorded, secs(5.0)).await;
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!((stats.pending(), stats.rejected), (0, 0), "{stats:?}");
    assert!(files(dir.path(), Destination::Beacon, "rejected", ".json").is_empty());
    assert_delivered_exactly(&sink, recorded);
    let (credential, spans) = only_spans(&sink);
    assert_tiles(&credential, &spans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_now_during_an_attempt_is_not_lost() {
    // `retry_now` called the moment the refusal shows in the stats, while
    // the sender is still recording the failed attempt in the spool (not
    // yet waiting), must still cut the wait that follows.
    for _ in 0..2 {
        let sink = start_sink(SinkConfig::ephemeral().faults(Faults {
            forced_status: Some(401),
            ..Faults::none()
        }))
        .await;
        let dir = tempfile::tempdir().unwrap();
        let v = vars(sink.base_url().as_str(), dir.path());
        let meter = Meter::new();
        let reporter = spawn(meter.clone(), || {
            options(&v).retry(beacon_meter::client::RetryPolicy {
                credential_backoff: Duration::from_secs(60),
                ..fast_retry()
            })
        })
        .await;
        meter.record_run(2);
        let deadline = Instant::now() + secs(5.0);
        while !dest(&reporter.stats(), Destination::Beacon).credential_rejected {
            assert!(Instant::now() < deadline, "{:?}", reporter.stats());
            std::thread::sleep(Duration::from_micros(200));
        }
        sink.set_forced_status(None);
        reporter.retry_now();
        let resumed = eventually(secs(3.0), || sink.summary().reports >= 1).await;
        assert!(resumed, "retry_now was lost: {:?}", reporter.stats());
        let stats = reporter.shutdown(secs(5.0)).await;
        assert_eq!(stats.pending(), 0, "{stats:?}");
        assert_delivered_exactly(&sink, Totals { runs: 1, nodes: 2 });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_windows_go_to_rejected_and_requeue_delivers_them() {
    let sink = start_sink(SinkConfig::ephemeral().faults(Faults {
        forced_status: Some(422),
        ..Faults::none()
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let v = vars(sink.base_url().as_str(), dir.path());
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    let recorder = Recorder::start(&meter, 3);
    let rejected = eventually(secs(6.0), || reporter.stats().rejected >= 2).await;
    assert!(rejected, "stats: {:?}", reporter.stats());
    sink.set_forced_status(None);
    // Delivery goes on with the next windows.
    let resumed = eventually(secs(4.0), || sink.summary().reports >= 1).await;
    assert!(resumed, "nothing delivered after the refusals stopped");
    sleep(secs(0.8)).await;
    let recorded = recorder.stop();
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert!(stats.rejected >= 2, "{stats:?}");
    assert_eq!(dest(&stats, Destination::Beacon).rejected, stats.rejected);

    // Every refused window is in rejected/ with the server's answer.
    let windows = files(
        &slot(dir.path(), 0),
        Destination::Beacon,
        "rejected",
        ".json",
    );
    let answers = files(
        &slot(dir.path(), 0),
        Destination::Beacon,
        "rejected",
        ".answer.txt",
    );
    assert_eq!(windows.len() as u64, stats.rejected, "{windows:?}");
    assert_eq!(answers.len(), windows.len(), "{answers:?}");
    let answer = std::fs::read_to_string(
        slot(dir.path(), 0)
            .join("beacon")
            .join("rejected")
            .join(&answers[0]),
    )
    .unwrap();
    assert!(answer.contains("422"), "{answer}");
    assert!(
        !answer.contains(LICENSE),
        "the answer file leaks the license"
    );

    // Put them back and deliver them with a restart.
    let first_run = delivered(&sink);
    let requeued = {
        let spool = Spool::open(&slot(dir.path(), 0), SpoolLimits::default()).unwrap();
        let n = spool.requeue_rejected().unwrap();
        let back = totals_of(&spool.pending(Destination::Beacon).unwrap());
        assert_eq!(
            first_run + back,
            recorded,
            "delivered plus refused must be everything recorded"
        );
        n
    };
    assert_eq!(requeued as u64, stats.rejected);
    assert!(
        files(
            &slot(dir.path(), 0),
            Destination::Beacon,
            "rejected",
            ".json"
        )
        .is_empty()
    );

    let run2 = Utc::now();
    let reporter = spawn(Meter::new(), || options(&v)).await;
    await_delivery(&sink, recorded, secs(5.0)).await;
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");
    assert_delivered_exactly(&sink, recorded);
    let (credential, spans) = only_spans(&sink);
    let first: Vec<_> = spans.iter().copied().filter(|s| s.0 < run2).collect();
    assert_tiles(&credential, &first);
}

/// Sleeps past the next whole minute if it is less than `margin` away, so
/// that a 60 s window stays open for at least `margin`.
async fn clear_of_minute_boundary(margin: Duration) {
    let into = Utc::now().timestamp_millis().rem_euclid(60_000) as u64;
    let left = Duration::from_millis(60_000 - into);
    if left < margin {
        sleep(left + Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporter_dropped_without_shutdown_spools_its_open_window() {
    let sink = start_sink(SinkConfig::ephemeral()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut v = vars(sink.base_url().as_str(), dir.path());
    // A 60 s window that does not close during the test: the counts reach
    // the spool only through the checkpoint (every 1 s).
    set(&mut v, "BEACON_INTERVAL_SECS", "60");
    clear_of_minute_boundary(secs(8.0)).await;
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    let recorder = Recorder::start(&meter, 3);
    sleep(secs(2.0)).await;
    let recorded = recorder.stop();
    // 1.5 checkpoint intervals: the last checkpoint holds everything.
    sleep(secs(1.5)).await;
    let before = reporter.stats();
    assert_eq!(
        before.windows_closed, 0,
        "the window must still be open: {before:?}"
    );
    assert!(slot(dir.path(), 0).join("checkpoint.json").is_file());
    drop(reporter);
    // `Drop` closed the open window and spooled it, and let go of the
    // meter at once: the restart finds a pending window, not a checkpoint
    // to recover, and may use the same meter.
    assert_eq!(
        meter.attach().err(),
        None,
        "the dropped reporter still holds the meter"
    );
    assert!(
        slot_released(&slot(dir.path(), 0)).await,
        "the dropped reporter never released its slot"
    );

    let reporter = spawn(meter.clone(), || options(&v)).await;
    assert_eq!(reporter.stats().recovered_on_start, 0);
    await_delivery(&sink, recorded, secs(5.0)).await;
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_delivered_exactly(&sink, recorded);
    assert!(!slot(dir.path(), 0).join("checkpoint.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_without_shutdown_loses_nothing() {
    let sink = start_sink(SinkConfig::ephemeral()).await;
    let dir = tempfile::tempdir().unwrap();
    let v = vars(sink.base_url().as_str(), dir.path());
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    let recorder = Recorder::start(&meter, 3);
    // Past two checkpoints and into the third interval.
    sleep(secs(2.7)).await;
    // No shutdown, no wait for the next checkpoint: `Drop` spools the open
    // window. (A crash, which runs no `Drop`, is the child-process tests'.)
    let recorded = recorder.stop();
    drop(reporter);
    drop(meter);

    let run2 = Utc::now();
    let reporter = spawn(Meter::new(), || options(&v)).await;
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_delivered_exactly(&sink, recorded);
    let summary = sink.summary();
    assert_eq!(summary.rejects, 0, "{summary:?}");
    assert_no_overlap(&sink);
    let (credential, spans) = only_spans(&sink);
    let first: Vec<_> = spans.iter().copied().filter(|s| s.0 < run2).collect();
    assert_tiles(&credential, &first);
}

const CHILD_ENV: &str = "BEACON_REPORTER_TEST_CHILD";
/// Runs the child records per 100 ms (each of 3 nodes).
const CHILD_BATCH: u64 = 10;

/// Not a test: the reporter process of
/// `kill9_loses_at_most_one_checkpoint_interval`, started by it with
/// `--ignored --exact kill9_child`. Mode `record`: report to the sink and
/// record `CHILD_BATCH` runs every 100 ms, until killed, writing the running
/// total to a file *before* each batch (so the file never undercounts).
/// Mode `drain`: start on the spool without recording, shut down, and write
/// the final stats to the file.
#[test]
#[ignore = "child process of kill9_loses_at_most_one_checkpoint_interval"]
fn kill9_child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        eprintln!(
            "kill9_child only runs as the child of kill9_loses_at_most_one_checkpoint_interval"
        );
        return;
    };
    let (sink_url, spool, out) = child_env();
    beacon_meter_testkit::runtime().block_on(async move {
        let v = vars(&sink_url, &spool);
        let meter = Meter::new();
        let reporter = beacon_meter::reporter::Reporter::spawn(meter.clone(), options(&v))
            .await
            .expect("the child's reporter starts");
        match mode.as_str() {
            "record" => {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                let mut total = 0u64;
                loop {
                    tick.tick().await;
                    total += CHILD_BATCH;
                    write_atomic(&out, &total.to_string());
                    for _ in 0..CHILD_BATCH {
                        meter.record_run(3);
                    }
                }
            }
            "drain" => {
                let stats = reporter.shutdown(Duration::from_secs(10)).await;
                write_atomic(&out, &serde_json::to_string(&stats).unwrap());
            }
            other => panic!("unknown child mode {other}"),
        }
    });
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn child(mode: &str, sink: &SinkHandle, spool: &Path, out: &Path, log: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "reporter::kill9_child",
        "--exact",
        "--ignored",
        "--nocapture",
    ])
    .env(CHILD_ENV, mode)
    .env("CHILD_SINK", sink.base_url().as_str())
    .env("CHILD_SPOOL", spool)
    .env("CHILD_OUT", out)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(log).unwrap());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_at_most_one_checkpoint_interval() {
    let sink = start_sink(SinkConfig::ephemeral()).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let total_file = dir.path().join("total");
    let log = dir.path().join("child.log");
    let mut first = child("record", &sink, &spool, &total_file, &log)
        .spawn()
        .unwrap();
    let read_total = || -> u64 {
        std::fs::read_to_string(&total_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    // 2.5 s of recording, with windows already delivered.
    let running = eventually(secs(15.0), || {
        read_total() >= 25 * CHILD_BATCH && sink.summary().reports >= 1
    })
    .await;
    if !running {
        let _ = first.kill();
        panic!(
            "the child did not record and report: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    first.kill().unwrap(); // SIGKILL
    let status = first.wait().unwrap();
    assert!(!status.success(), "the child was killed: {status:?}");
    let recorded = read_total();
    let before_restart = delivered(&sink);

    let stats_file = dir.path().join("stats.json");
    let mut second = child("drain", &sink, &spool, &stats_file, &log);
    let status = tokio::task::spawn_blocking(move || second.status().unwrap())
        .await
        .unwrap();
    assert!(
        status.success(),
        "the restarted child failed: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_file).unwrap()).unwrap();
    assert_eq!(stats["destinations"][0]["pending"], 0, "{stats}");

    let got = delivered(&sink);
    let allowed = (CHILD_BATCH * 10) * 3 / 2; // 1.5 checkpoint intervals of recording
    eprintln!(
        "kill -9: recorded {recorded} runs, delivered {} before the restart and {} in all; recovered on restart: {}",
        before_restart.runs, got.runs, stats["recovered_on_start"]
    );
    assert!(
        got.runs <= recorded,
        "delivered {} runs, more than the {recorded} recorded",
        got.runs
    );
    assert!(
        got.runs + allowed >= recorded,
        "lost {} runs of {recorded}, more than the {allowed} of 1.5 checkpoint intervals (delivered before the restart: {})",
        recorded - got.runs,
        before_restart.runs
    );
    // Runs and their nodes are indivisible, crash or not.
    assert_eq!(got.nodes, 3 * got.runs);
    let summary = sink.summary();
    assert_eq!(summary.rejects, 0, "{summary:?}");
    assert_no_overlap(&sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_delivers_everything_including_the_partial_window() {
    let sink = start_sink(SinkConfig::ephemeral()).await;
    let dir = tempfile::tempdir().unwrap();
    let v = vars(sink.base_url().as_str(), dir.path());
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    let recorder = Recorder::start(&meter, 4);
    sleep(secs(2.4)).await;
    let recorded = recorder.stop();
    // At once: the open window is partial and holds counts.
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_eq!(stats.windows_sent, stats.windows_closed, "{stats:?}");
    assert_delivered_exactly(&sink, recorded);
    let (credential, spans) = only_spans(&sink);
    assert_tiles(&credential, &spans);
    assert!(
        !dir.path().join("checkpoint.json").exists(),
        "a graceful shutdown leaves no checkpoint to recover"
    );

    // A restart finds nothing to recover or resend.
    let reporter = spawn(Meter::new(), || options(&v)).await;
    assert_eq!(reporter.stats().recovered_on_start, 0);
    assert_eq!(reporter.stats().pending(), 0);
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_delivered_exactly(&sink, recorded);
}

/// Both destinations configured; `down` fails, the other must get every
/// window on time while the failing one's windows stay spooled.
async fn one_destination_down(down: Destination) {
    let beacon_sink = start_sink(SinkConfig::ephemeral()).await;
    let auth_sink = start_sink(SinkConfig::ephemeral().api_keys(vec![Secret::new(API_KEY)])).await;
    let dir = tempfile::tempdir().unwrap();
    let mut v = vars(beacon_sink.base_url().as_str(), dir.path());
    set(&mut v, "LANGSMITH_API_KEY", API_KEY);
    set(
        &mut v,
        "LANGSMITH_AUTH_ENDPOINT",
        auth_sink.base_url().as_str().trim_end_matches('/'),
    );
    let (up_sink, down_sink, up) = match down {
        Destination::Auth => (&beacon_sink, &auth_sink, Destination::Beacon),
        Destination::Beacon => (&auth_sink, &beacon_sink, Destination::Auth),
    };
    // The auth endpoint answers 503 to every report (but still verifies the
    // key); the Beacon is not listening at all.
    let mut down_vars = v.clone();
    match down {
        Destination::Auth => down_sink.set_forced_status(Some(503)),
        Destination::Beacon => {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", closed.local_addr().unwrap());
            drop(closed);
            set(&mut down_vars, "BEACON_URL", url);
        }
    }
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&down_vars)).await;
    let recorder = Recorder::start(&meter, 3);
    sleep(secs(2.5)).await;
    let recorded = recorder.stop();
    // On time: the last window closes within 1 s and goes out at once.
    await_delivery(up_sink, recorded, secs(3.0)).await;
    // (Windows keep closing, empty now: one may be on its way.)
    let mut running = reporter.stats();
    let caught_up = eventually(secs(2.0), || {
        running = reporter.stats();
        dest(&running, up).pending == 0
    })
    .await;
    assert!(caught_up, "{running:?}");
    let u = dest(&running, up);
    let d = dest(&running, down);
    assert!(u.sent >= 2, "{running:?}");
    assert_eq!(d.sent, 0, "{running:?}");
    assert!(d.retries > 0, "{running:?}");
    // Its backlog (two windows or more) is merged for sending: one or more files.
    assert!(d.pending >= 1, "{running:?}");
    assert!(d.last_error.is_some(), "{running:?}");

    let stats = reporter.shutdown(secs(1.5)).await;
    assert_eq!(dest(&stats, up).pending, 0, "{stats:?}");
    assert_delivered_exactly(up_sink, recorded);
    let (credential, spans) = only_spans(up_sink);
    assert_tiles(&credential, &spans);
    assert_eq!(delivered(down_sink), Totals::default());
    // Everything for the failing destination waits in its spool,
    // including the final window closed at shutdown.
    let waiting = pending(dir.path(), down);
    assert_eq!(dest(&stats, down).pending, waiting.len(), "{stats:?}");
    assert_eq!(totals_of(&waiting), recorded);

    // Once it is back, a restart delivers the backlog to it.
    down_sink.set_forced_status(None);
    let reporter = spawn(Meter::new(), || options(&v)).await;
    let stats = reporter.shutdown(secs(1.5)).await;
    assert_eq!(dest(&stats, down).pending, 0, "{stats:?}");
    assert_delivered_exactly(down_sink, recorded);
    assert_delivered_exactly(up_sink, recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_endpoint_down_does_not_hold_up_the_beacon() {
    one_destination_down(Destination::Auth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_unreachable_does_not_hold_up_the_auth_endpoint() {
    one_destination_down(Destination::Beacon).await;
}

/// Offline: not a single connection, while windows are spooled for export.
async fn offline_run(extra: &[(&'static str, &str)]) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let contacted = Arc::new(AtomicBool::new(false));
    let flag = contacted.clone();
    let guard = tokio::spawn(async move {
        if listener.accept().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut v = vars(&url, dir.path());
    set(&mut v, "LANGSMITH_AUTH_ENDPOINT", url.clone());
    for (k, val) in extra {
        set(&mut v, k, *val);
    }
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    assert!(reporter.stats().offline);
    let recorder = Recorder::start(&meter, 3);
    let closed = eventually(secs(5.0), || reporter.stats().windows_closed >= 2).await;
    assert!(closed, "{:?}", reporter.stats());
    let recorded = recorder.stop();
    let stats = reporter.shutdown(secs(2.0)).await;
    assert!(stats.offline);
    assert_eq!(stats.windows_sent, 0, "{stats:?}");
    let mut dests = 0;
    for d in Destination::ALL {
        if stats.destinations.iter().any(|x| x.destination == d) {
            dests += 1;
            let waiting = pending(dir.path(), d);
            assert!(waiting.len() >= 3, "{d}: {} windows", waiting.len());
            assert_eq!(totals_of(&waiting), recorded, "{d}");
        }
    }
    assert!(dests >= 1);
    assert!(
        !contacted.load(Ordering::SeqCst),
        "an offline reporter opened a connection"
    );
    guard.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_license_with_an_api_key_reports_by_api_key_only_and_never_sends_the_license() {
    // The platform's rule. Both endpoints point at one recording server,
    // so a license sent anywhere (verification, a report) would be seen.
    let (url, seen) = beacon_meter_testkit::recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut v = vars(&url, dir.path());
    set(&mut v, "LANGGRAPH_CLOUD_LICENSE_KEY", OFFLINE_LICENSE);
    set(&mut v, "LANGCHAIN_API_KEY", API_KEY); // the legacy name works too
    set(&mut v, "LANGSMITH_AUTH_ENDPOINT", url.clone());
    set(&mut v, "BEACON_WIRE", "langgraph-api");
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    assert!(!reporter.stats().offline);
    let recorder = Recorder::start(&meter, 2);
    let sent = eventually(secs(6.0), || reporter.stats().windows_sent >= 2).await;
    assert!(sent, "{:?}", reporter.stats());
    recorder.stop();
    let stats = reporter.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert!(
        stats
            .destinations
            .iter()
            .all(|d| d.destination == Destination::Auth)
    );

    let seen = seen.lock().unwrap().clone();
    let reports: Vec<&String> = seen
        .iter()
        .filter(|r| r.starts_with("POST /v1/metadata/submit"))
        .collect();
    assert!(reports.len() >= 2, "{seen:#?}");
    for r in &seen {
        assert!(
            !r.contains(OFFLINE_LICENSE) && !r.contains("offline_reporter_test"),
            "the offline license left the process: {r}"
        );
        assert!(
            r.starts_with("POST /auth\n") || r.starts_with("POST /v1/metadata/submit\n"),
            "a request to somewhere other than the API-key destination: {r}"
        );
        assert!(!r.contains("\"license"), "a license field was sent: {r}");
    }
    assert!(
        reports
            .iter()
            .all(|r| r.contains(&format!("\"api_key\":\"{API_KEY}\"")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_offline_makes_no_network_call() {
    offline_run(&[("BEACON_OFFLINE", "true"), ("LANGSMITH_API_KEY", API_KEY)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_license_makes_no_network_call() {
    offline_run(&[("LANGGRAPH_CLOUD_LICENSE_KEY", OFFLINE_LICENSE)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_right_after_start_delivers_the_first_window() {
    // Long windows and checkpoints: only the shutdown itself can close the
    // window, and it must do so at once, even if it comes before the
    // reporter's tasks first ran.
    let sink = start_sink(SinkConfig::ephemeral()).await;
    let mut expected = Totals::default();
    for i in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vars(sink.base_url().as_str(), dir.path());
        set(&mut v, "BEACON_INTERVAL_SECS", "3600");
        set(&mut v, "BEACON_CHECKPOINT_SECS", "3600");
        let meter = Meter::new();
        let reporter = spawn(meter.clone(), || options(&v)).await;
        meter.record_run(5 + i);
        meter.record_run(7);
        expected = expected
            + Totals {
                runs: 2,
                nodes: 12 + i,
            };
        let started = Instant::now();
        let stats = reporter.shutdown(secs(3.0)).await;
        assert!(
            started.elapsed() < secs(2.0),
            "shutdown took {:?}",
            started.elapsed()
        );
        assert_eq!(stats.pending(), 0, "{stats:?}");
        assert_eq!(stats.windows_sent, 1, "{stats:?}");
        assert_delivered_exactly(&sink, expected);
    }
    let sum: u64 = sink
        .reports()
        .iter()
        .map(|r| r["measures"][RUNS].as_u64().unwrap())
        .sum();
    assert_eq!(sum, expected.runs);
}

/// One reporter per meter: a second spawn is refused while the first runs;
/// `shutdown` hands the meter over, and so does a drop after a checkpoint
/// (`Drop` closes and spools the open window, so the meter holds only
/// what no one has): every count is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_is_handed_over_by_shutdown_and_by_a_drop() {
    use beacon_meter::AttachError;
    use beacon_meter::reporter::{Reporter, ReporterError};
    let sink = start_sink(SinkConfig::ephemeral()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut v = vars(sink.base_url().as_str(), dir.path());
    // A 60 s window that stays open: the second reporter's counts reach
    // the spool only through its checkpoint (every 1 s).
    set(&mut v, "BEACON_INTERVAL_SECS", "60");
    clear_of_minute_boundary(secs(10.0)).await;
    let meter = Meter::new();
    let first = spawn(meter.clone(), || options(&v)).await;
    match Reporter::spawn(meter.clone(), options(&v)).await {
        Err(ReporterError::Meter(AttachError::Attached)) => {}
        Err(e) => panic!("a second reporter on a meter must be refused as Attached: {e}"),
        Ok(_) => panic!("a second reporter on a meter must be refused as Attached"),
    }
    meter.record_run(3);
    first.shutdown(secs(5.0)).await;

    let second = spawn(meter.clone(), || options(&v)).await;
    meter.record_run(4);
    let second_slot = second.spool_dir();
    let checkpoint = second_slot.join("checkpoint.json");
    assert!(eventually(secs(5.0), || checkpoint.is_file()).await);
    drop(second);
    assert_dropped_frees_meter_and_slot(&meter, &second_slot).await;
    let third = spawn(meter.clone(), || options(&v)).await;
    assert_eq!(third.stats().recovered_on_start, 0);
    let stats = third.shutdown(secs(5.0)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_delivered_exactly(&sink, Totals { runs: 3, nodes: 8 });
}

/// The warnings and errors `f` logs on this thread, as text.
fn warnings_of(f: impl FnOnce()) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reporter with neither a license nor an API key (and not offline)
/// says once, at start, that its windows will never be sent; one with a
/// credential says nothing of the kind.
#[test]
fn a_reporter_without_a_credential_says_so_once() {
    let warnings = |credential: bool| {
        let text = warnings_of(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let mut v = vars("http://127.0.0.1:9", dir.path());
            if !credential {
                unset(&mut v, "LANGGRAPH_CLOUD_LICENSE_KEY");
            }
            runtime.block_on(async {
                let reporter = spawn(Meter::new(), || options(&v)).await;
                sleep(Duration::from_millis(300)).await;
                reporter.shutdown(secs(1.0)).await;
            });
        });
        text.matches("has no credential").count()
    };
    assert_eq!(warnings(false), 1);
    assert_eq!(warnings(true), 0);
}

/// The case a checkpoint cannot cover: a reporter dropped before its first
/// checkpoint (and its first close). `Drop` spools the open window, says so
/// once, and frees the meter, so a reporter started next on the same meter
/// delivers every count once.
#[test]
fn a_reporter_dropped_before_its_first_checkpoint_loses_nothing_and_says_so() {
    let text = warnings_of(|| {
        beacon_meter_testkit::runtime().block_on(async {
            let sink = start_sink(SinkConfig::ephemeral()).await;
            let dir = tempfile::tempdir().unwrap();
            let mut v = vars(sink.base_url().as_str(), dir.path());
            set(&mut v, "BEACON_INTERVAL_SECS", "3600");
            set(&mut v, "BEACON_CHECKPOINT_SECS", "3600");
            let meter = Meter::new();
            let reporter = spawn(meter.clone(), || options(&v)).await;
            meter.record_run(3);
            meter.record_run(2);
            drop(reporter);
            let slot0 = slot(dir.path(), 0);
            assert!(
                !slot0.join("checkpoint.json").exists(),
                "no checkpoint was due"
            );
            assert_dropped_frees_meter_and_slot(&meter, &slot0).await;
            let next = spawn(meter.clone(), || options(&v)).await;
            let stats = next.shutdown(secs(5.0)).await;
            assert_eq!(stats.pending(), 0, "{stats:?}");
            assert_delivered_exactly(&sink, Totals { runs: 3, nodes: 6 });
        })
    });
    assert_eq!(
        text.matches("dropped without shutdown").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("runs=2") && text.contains("nodes=5"),
        "{text}"
    );
}
