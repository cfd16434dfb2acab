//! The operational metrics export end to end: a real reporter exports to
//! the real sink's `POST /v1/metrics`, and what the sink stored, decoded,
//! equals the reporter's stats. Also the platform's rules: nothing without
//! a license key, nothing offline, and a failing collector changes nothing
//! in usage delivery.
#![cfg(feature = "otlp")]

use crate::common::*;
use beacon_meter::Meter;
use beacon_meter::reporter::ReporterStats;
use beacon_meter_sink::{Period, Series, SinkConfig};
use std::path::Path;
use std::time::Duration;

/// `vars` with the metrics export on, to the sink at `base`, every 200 ms.
fn with_metrics(base: &str, spool: &Path) -> Vec<(&'static str, String)> {
    let mut v = vars(base, spool);
    set(&mut v, "LANGGRAPH_METRICS_ENABLED", "true");
    set(
        &mut v,
        "LANGGRAPH_METRICS_ENDPOINT",
        format!("{}/v1/metrics", base.trim_end_matches('/')),
    );
    set(&mut v, "LANGGRAPH_METRICS_EXPORT_INTERVAL_MS", "1000");
    set(&mut v, "HOSTNAME", "pod-otlp-test");
    v
}

/// The latest value of `name` whose attributes include `attrs`.
fn latest(series: &[Series], name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
    series
        .iter()
        .filter(|s| s.name == name)
        .find(|s| {
            attrs
                .iter()
                .all(|(k, v)| s.attributes.get(k).and_then(|x| x.as_str()) == Some(v))
        })
        .map(|s| s.latest)
}

/// A metric, the attributes of its point, and the value it must have.
type Check<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

fn assert_export_equals(series: &[Series], stats: &ReporterStats) {
    let beacon = dest_stats(stats);
    let b = [("destination", "beacon")];
    let checks: Vec<Check> = vec![
        (
            "beacon_meter_windows_closed_total",
            vec![],
            stats.windows_closed as f64,
        ),
        (
            "beacon_meter_windows_sent_total",
            b.to_vec(),
            beacon.sent as f64,
        ),
        (
            "beacon_meter_windows_pending",
            b.to_vec(),
            beacon.pending as f64,
        ),
        (
            "beacon_meter_spool_bytes",
            b.to_vec(),
            beacon.pending_bytes as f64,
        ),
        (
            "beacon_meter_bytes_sent_total",
            b.to_vec(),
            beacon.bytes_sent as f64,
        ),
        (
            "beacon_meter_retries_total",
            b.to_vec(),
            beacon.retries as f64,
        ),
        (
            "beacon_meter_windows_rejected_total",
            b.to_vec(),
            beacon.rejected as f64,
        ),
        (
            "langgraph.platform.runs",
            vec![],
            stats.measures["langgraph.platform.runs"] as f64,
        ),
        (
            "langgraph.platform.nodes",
            vec![],
            stats.measures["langgraph.platform.nodes"] as f64,
        ),
    ];
    for (name, attrs, want) in checks {
        assert_eq!(
            latest(series, name, &attrs),
            Some(want),
            "{name}: {stats:?}"
        );
    }
    for s in series {
        assert_eq!(s.instance, "pod-otlp-test", "{}", s.name);
        assert_eq!(s.service, "beacon-meter");
    }
}

fn dest_stats(stats: &ReporterStats) -> beacon_meter::reporter::DestinationStats {
    stats.destinations[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_stores_what_the_reporter_exported_equal_to_its_stats() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sink.db");
    let sink = SinkConfig::ephemeral().db(&db).start().await.unwrap();
    let v = with_metrics(sink.base_url().as_str(), &dir.path().join("spool"));
    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    for _ in 0..25 {
        meter.record_run(3);
    }
    let exported = eventually(Duration::from_secs(10), || {
        sink.summary().metric_exports >= 2
    })
    .await;
    assert!(exported, "no exports arrived: {:?}", reporter.stats());
    meter.record_run(4);
    let stats = reporter.shutdown(Duration::from_secs(5)).await;
    let m = stats.metrics_export.clone().expect("the export ran");
    assert_eq!(m.failures, 0, "{m:?}");
    let summary = sink.summary();
    assert_eq!(
        summary.metric_exports, m.exports,
        "every export the reporter counted was stored"
    );
    sink.shutdown().await;
    // The final export came after the final window's delivery: the
    // latest points are the final stats.
    let series = beacon_meter_sink::metrics(&db, None, None, Period::Hour).unwrap();
    assert_eq!(stats.measures["langgraph.platform.runs"], 26);
    assert_export_equals(&series, &stats);
    let license_left = latest(&series, "beacon_meter_license_expires_in_seconds", &[]).unwrap();
    assert!(license_left > 0.0, "{license_left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_license_key_or_offline_exports_nothing() {
    let sink = SinkConfig::ephemeral()
        .api_keys(vec![beacon_meter::secret::Secret::new(API_KEY)])
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = sink.base_url().to_string();
    // An API key only: the platform exports metrics only with a license.
    let mut v = with_metrics(&base, &dir.path().join("a"));
    unset(&mut v, "LANGGRAPH_CLOUD_LICENSE_KEY");
    set(&mut v, "LANGSMITH_API_KEY", API_KEY);
    set(
        &mut v,
        "LANGSMITH_AUTH_ENDPOINT",
        base.trim_end_matches('/'),
    );
    let meter = Meter::new();
    let r = spawn(meter.clone(), || options(&v)).await;
    meter.record_run(1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = r.shutdown(Duration::from_secs(5)).await;
    assert!(stats.metrics_export.is_none(), "{stats:?}");
    // Offline: nothing at all.
    let mut v = with_metrics(&base, &dir.path().join("b"));
    set(&mut v, "BEACON_OFFLINE", "true");
    let meter = Meter::new();
    let r = spawn(meter.clone(), || options(&v)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = r.shutdown(Duration::from_secs(5)).await;
    assert!(stats.metrics_export.is_none(), "{stats:?}");
    assert_eq!(sink.summary().metric_exports, 0);
    assert!(sink.requests().iter().all(|r| r.path != "/v1/metrics"));
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_fails_changes_nothing_in_usage_delivery() {
    let sink = SinkConfig::ephemeral().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = sink.base_url().to_string();
    let mut v = with_metrics(&base, &dir.path().join("spool"));
    // Nothing listens there: every export fails.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    set(
        &mut v,
        "LANGGRAPH_METRICS_ENDPOINT",
        format!("http://127.0.0.1:{port}/v1/metrics"),
    );
    let meter = Meter::new();
    let r = spawn(meter.clone(), || options(&v)).await;
    for _ in 0..10 {
        meter.record_run(2);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let stats = r.shutdown(Duration::from_secs(5)).await;
    let m = stats.metrics_export.clone().unwrap();
    assert!(m.failures >= 1 && m.exports == 0, "{m:?}");
    assert!(
        m.last_error
            .as_deref()
            .is_some_and(|e| !e.contains(LICENSE)),
        "{m:?}"
    );
    assert_eq!(sink.summary().measures["langgraph.platform.runs"], 10);
    sink.shutdown().await;
}
