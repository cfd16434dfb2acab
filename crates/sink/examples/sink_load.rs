//! Posts 100 000 reports to an in-process `beacon-meter` sink with a SQLite
//! database over loopback (32 concurrent clients, each report with its own
//! idempotency key) and prints the process's resident memory at 0, 25k,
//! 50k and 100k accepted reports, to show that the sink's memory stays
//! flat. The process holds the clients too, so the figures are an upper
//! bound for the sink alone.
//!
//! ```text
//! cargo run --release --example sink_load [-- REPORTS]
//! ```

use beacon_meter_sink::SinkConfig;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: u64 = 32;

fn report(n: u64) -> String {
    json!({
        "license": "lcl_load_test_0123456789",
        "from_timestamp": "2026-11-30T02:00:00Z",
        "to_timestamp": "2026-11-30T02:05:00Z",
        "tags": {
            "langgraph.platform.host": format!("host-{}", n % 8),
            "langgraph.platform.tenant_id": "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1",
            "langgraph_api.version": "0.16.7"
        },
        "measures": {"langgraph.platform.runs": n % 100, "langgraph.platform.nodes": n % 1000},
        "logs": []
    })
    .to_string()
}

#[tokio::main]
async fn main() {
    let total: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sink = SinkConfig::ephemeral()
        .db(dir.path().join("load.db"))
        .start()
        .await
        .expect("the sink starts");
    let url = sink.base_url().join("v1/metadata/submit").unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let marks = [0, total / 4, total / 2, total];
    println!(
        "{:>9}  {:>9}  {:>9}  {:>11}",
        "accepted", "RSS MiB", "elapsed s", "reports/s"
    );
    let started = Instant::now();
    let row = |n: u64| {
        let s = started.elapsed().as_secs_f64();
        println!(
            "{n:>9}  {:>9.1}  {s:>9.1}  {:>11.0}",
            beacon_meter_testkit::rss_kib() as f64 / 1024.0,
            if s > 0.0 { n as f64 / s } else { 0.0 }
        );
    };
    row(0);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    return;
                }
                let r = client
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                    .body(report(n))
                    .send()
                    .await
                    .expect("the sink answers");
                assert_eq!(r.status(), 204);
            }
        }));
    }
    let mut shown = 1;
    while shown < marks.len() {
        let accepted = sink.summary().reports;
        if accepted >= marks[shown] {
            row(accepted);
            shown += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = sink.summary();
    println!(
        "summary: {} reports, runs {:?}",
        s.reports,
        s.measures.get("langgraph.platform.runs")
    );
    sink.shutdown().await;
}
