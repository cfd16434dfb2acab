//! The `beacon-meter sink` binary with `--db`, killed with SIGKILL while 32
//! clients post reports (each retried until answered, and every answered
//! one sent once more as a duplicate), then restarted on the same
//! database: every distinct report is counted exactly once.
#![cfg(unix)]

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::Running;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use uuid::Uuid;

const CLIENTS: u64 = 32;
const REPORTS_PER_CLIENT: u64 = 20;
const LICENSE: &str = "lcl_restart_test_0123456789";

fn start_sink(db: &Path) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_beacon-meter"));
    command
        .args(["sink", "--bind", "127.0.0.1:0", "--json", "--db"])
        .arg(db)
        .stderr(Stdio::null());
    Running::start(command)
}

fn report(client: u64, i: u64) -> Value {
    json!({
        "license": LICENSE,
        "from_timestamp": format!("2026-11-30T{:02}:{:02}:00Z", client % 24, i),
        "to_timestamp": format!("2026-11-30T{:02}:{:02}:30Z", client % 24, i),
        "tags": {"langgraph.platform.host": format!("host-{client}")},
        "measures": {"langgraph.platform.runs": client * 1000 + i + 1, "langgraph.platform.nodes": 1},
        "logs": []
    })
}

/// Posts until a `204`, following the sink to its current URL; returns
/// how many attempts were not answered `204`.
async fn deliver(
    c: &reqwest::Client,
    url: &parking_lot::RwLock<String>,
    key: Uuid,
    body: &Value,
) -> u64 {
    let mut failures = 0;
    loop {
        let target = format!("{}/v1/metadata/submit", url.read());
        let sent = c
            .post(target)
            .header("content-type", "application/json")
            .header("idempotency-key", key.to_string())
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 204 => return failures,
            Ok(r) => assert!(r.status().is_server_error(), "refused: {}", r.status()),
            Err(_) => {}
        }
        failures += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_run_then_restart_counts_every_report_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sink.db");
    let mut sink = start_sink(&db);
    let url = Arc::new(parking_lot::RwLock::new(sink.url.clone()));
    let delivered = Arc::new(AtomicU64::new(0));
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (c, url, delivered) = (c.clone(), url.clone(), delivered.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = 0;
            for i in 0..REPORTS_PER_CLIENT {
                let (key, body) = (Uuid::new_v4(), report(client, i));
                failures += deliver(&c, &url, key, &body).await;
                delivered.fetch_add(1, Ordering::SeqCst);
                // The retry of an in-doubt request: same key, same body.
                failures += deliver(&c, &url, key, &body).await;
            }
            failures
        }));
    }

    // Kill the sink once a third of the reports are in, mid-traffic.
    let total = CLIENTS * REPORTS_PER_CLIENT;
    while delivered.load(Ordering::SeqCst) < total / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sink.child.kill().expect("SIGKILL");
    sink.child.wait().unwrap();
    let killed_at = delivered.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink = start_sink(&db);
    *url.write() = sink.url.clone();

    let mut failures = 0;
    for client in clients {
        failures += client.await.unwrap();
    }
    let answer = c
        .get(format!("{}/v1/summary", sink.url))
        .send()
        .await
        .unwrap();
    let summary: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    sink.child.kill().unwrap();
    sink.child.wait().unwrap();

    let runs: u64 = (0..CLIENTS)
        .flat_map(|c| (0..REPORTS_PER_CLIENT).map(move |i| c * 1000 + i + 1))
        .sum();
    println!(
        "{total} distinct reports, each sent at least twice; killed after {killed_at} \
         delivered; {failures} attempts unanswered or refused across the kill; summary after \
         restart: {summary}"
    );
    assert!(killed_at < total, "the kill came after the last report");
    assert!(failures > 0, "no request saw the kill");
    assert_eq!(summary["reports"], total);
    assert_eq!(summary["measures"]["langgraph.platform.runs"], runs);
    assert_eq!(summary["measures"]["langgraph.platform.nodes"], total);
    assert_eq!(summary["without_idempotency_key"], 0);

    // And `sink usage` reads the same totals from the file.
    let out = Command::new(env!("CARGO_BIN_EXE_beacon-meter"))
        .args(["sink", "usage", "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len() as u64, CLIENTS, "one row per host");
    let sum = |f: &dyn Fn(&Value) -> u64| rows.iter().map(f).sum::<u64>();
    assert_eq!(sum(&|r| r["reports"].as_u64().unwrap()), total);
    assert_eq!(
        sum(&|r| r["measures"]["langgraph.platform.runs"].as_u64().unwrap()),
        runs
    );
}
