//! beacon-meter's own reporter in the `langgraph-api` dialect
//! (`BEACON_WIRE=langgraph-api`), end to end against the real local Beacon
//! sink on 127.0.0.1: both destinations at once, the auth endpoint given
//! with the `/api/v1` prefix of a self-hosted control plane. The sink's
//! totals must equal what was recorded exactly, on each destination.
//! (`tests/conformance/` does the same for the reference reporter itself.)

use crate::common::*;
use beacon_meter::Meter;
use beacon_meter::secret::Secret;
use beacon_meter_sink::SinkConfig;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporter_in_the_langgraph_api_dialect_delivers_exact_totals_to_both_destinations() {
    let sink = SinkConfig::ephemeral()
        .api_keys(vec![Secret::new(API_KEY)])
        .start()
        .await
        .expect("the sink starts");
    let base = sink.base_url().as_str().trim_end_matches('/').to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut v = vars(&base, dir.path());
    set(&mut v, "BEACON_WIRE", "langgraph-api");
    set(&mut v, "LANGSMITH_API_KEY", API_KEY);
    set(&mut v, "LANGSMITH_AUTH_ENDPOINT", format!("{base}/api/v1"));

    let meter = Meter::new();
    let reporter = spawn(meter.clone(), || options(&v)).await;
    let recorder = Recorder::start(&meter, 3);
    tokio::time::sleep(Duration::from_millis(2400)).await;
    let recorded = recorder.stop();
    let stats = reporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert!(recorded.runs > 0, "the recorder recorded nothing");

    // Exact totals on each destination, from the reports the sink stored.
    let per = delivered_per_credential(&sink);
    println!("recorded {recorded:?}; the sink stored, per credential: {per:?}");
    let fields: Vec<&str> = per.keys().map(|k| k.split(':').next().unwrap()).collect();
    assert_eq!(fields, ["api_key", "license_key"], "{per:?}");
    for (credential, totals) in &per {
        assert_eq!(*totals, recorded, "{credential}: delivered vs recorded");
    }
    // The summary agrees: twice the recorded totals, nothing refused, every
    // report with an idempotency key (so a retry could not double-count).
    let s = sink.summary();
    assert_eq!(delivered(&sink), recorded + recorded, "{s:?}");
    assert_eq!(s.rejects, 0, "{s:?}");
    assert_eq!(s.without_idempotency_key, 0, "{s:?}");
    for (credential, spans) in spans(&sink) {
        assert_tiles(&credential, &spans);
    }

    // On the wire: the license reports went to the langgraph-api path with
    // `license_key`, the API-key reports under the /api/v1 prefix.
    let license_reports = sink
        .reports()
        .into_iter()
        .filter(|r| r.get("license_key").is_some())
        .count();
    assert!(license_reports >= 2, "{per:?}");
    // The sink tells the dialect by the credential field, the timestamps
    // and the path: `license_key` and the /api/v1 prefix are langgraph-api.
    assert_eq!(
        s.by_dialect,
        [("langgraph-api".to_owned(), s.reports)].into(),
        "the sink must see every report in the langgraph-api dialect: {s:?}"
    );
    let report_paths: std::collections::BTreeSet<String> = sink
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/submit"))
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.status))
        .collect();
    assert_eq!(
        report_paths,
        [
            "POST /api/v1/metadata/submit Some(204)",
            "POST /v1/beacon/metadata/submit Some(204)",
        ]
        .map(String::from)
        .into(),
        "every report went to its dialect's path and was accepted"
    );
}
