//! A day of operational metrics from many instances, quickly: posts
//! INSTANCES × EXPORTS real exports of beacon-meter's own exporter (the
//! first export of a reporter, `beacon_meter::otlp::sample`, one
//! `instance_id` per instance, about 2 KB and 25 points each) to an
//! in-process sink with a SQLite database, 16 in flight, and prints the
//! process's resident memory and the database's size as it goes. One
//! export a minute for a day is 1 440 exports per instance (the default).
//! The process holds the clients too, so its memory is an upper bound for
//! the sink alone. The database goes to `DIR` (default: a temporary
//! directory).
//!
//! ```text
//! cargo run --release -p beacon-meter-sink --example otlp_day [-- INSTANCES EXPORTS [DIR]]
//! ```

use beacon_meter::config::Config;
use beacon_meter_sink::SinkConfig;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const IN_FLIGHT: u64 = 16;
const LICENSE: &str = "lcl_otlp_day_0123456789";

/// The database's size with its WAL, in MiB.
fn db_mib(db: &Path) -> f64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = db.with_extension("db-wal");
    (size(db) + size(&wal)) as f64 / (1024.0 * 1024.0)
}

/// The export body of instance `i`.
fn body(i: u64) -> Vec<u8> {
    let config = Config::from_pairs(&[
        ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE),
        ("LANGGRAPH_METRICS_ENABLED", "true"),
        (
            "LANGGRAPH_METRICS_ENDPOINT",
            "http://127.0.0.1:1/v1/metrics",
        ),
        ("HOSTNAME", &format!("pod-{i:03}")),
    ])
    .expect("a valid configuration");
    beacon_meter::otlp::sample(&config, chrono::Utc::now()).expect("an export")
}

#[tokio::main]
async fn main() {
    let arg = |n: usize, default: u64| {
        std::env::args()
            .nth(n)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (instances, exports) = (arg(1, 100), arg(2, 1440));
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = std::env::args()
        .nth(3)
        .map_or_else(|| tmp.path().to_owned(), Into::into);
    let db = dir.join("otlp_day.db");
    let sink = SinkConfig::ephemeral()
        .db(&db)
        .start()
        .await
        .expect("the sink starts");
    let url = sink.base_url().join("v1/metrics").unwrap();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..instances).map(body).collect());
    let total = instances * exports;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    println!(
        "{instances} instances x {exports} exports, {} bytes and ~{} points each",
        bodies[0].len(),
        beacon_meter::otlp::describe(&bodies[0]).unwrap().len()
    );
    println!(
        "{:>9}  {:>11}  {:>9}  {:>9}  {:>9}",
        "exports", "points", "RSS MiB", "DB MiB", "elapsed s"
    );
    let started = Instant::now();
    let row = |n: u64, points: u64| {
        let s = started.elapsed().as_secs_f64();
        println!(
            "{n:>9}  {points:>11}  {:>9.1}  {:>9.1}  {s:>9.1}",
            beacon_meter_testkit::rss_kib() as f64 / 1024.0,
            db_mib(&db)
        );
    };
    row(0, 0);
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (client, url, next, bodies) =
            (client.clone(), url.clone(), next.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    return;
                }
                let r = client
                    .post(url.clone())
                    .header("content-type", "application/x-protobuf")
                    .header(beacon_meter::wire::METRICS_LICENSE_HEADER, LICENSE)
                    .body(bodies[(n % bodies.len() as u64) as usize].clone())
                    .send()
                    .await
                    .expect("the sink answers");
                assert_eq!(r.status(), 200);
            }
        }));
    }
    let marks: Vec<u64> = (1..=4).map(|q| total * q / 4).collect();
    for mark in marks {
        while sink.summary().metric_exports < mark {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        row(mark, sink.summary().metric_points);
    }
    for t in tasks {
        t.await.unwrap();
    }
    sink.shutdown().await;
}
