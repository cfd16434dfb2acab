//! Catch-up after an outage: how fast a reporter drains a backlog of spooled
//! windows into the local Beacon sink, and whether its cost per window stays
//! flat as the backlog grows.
//!
//! ```sh
//! cargo run --release --example catchup            # 100, 1 000 and 10 000 windows
//! cargo run --release --example catchup -- 500     # other sizes
//! ```
//!
//! For each size, a fresh spool root gets that many 5-minute windows (each
//! 3 runs and 7 nodes, ending now), written straight into `slot-0` as an
//! outage would have left them. A reporter then starts on it, against the
//! sink in this process, and the clock runs until the sink holds every
//! count. Printed: wall time, windows per second, reports the sink
//! accepted, and CPU time (user + system, of the whole process: reporter
//! and sink) per window. The run fails if a total is off by one.

use beacon_meter::Meter;
use beacon_meter::config::Config;
use beacon_meter::meter::{NODES, RUNS};
use beacon_meter::reporter::{Reporter, ReporterOptions};
use beacon_meter::spool::{Destination, SpooledWindow};
use beacon_meter::wire::{ReportBody, Tags};
use beacon_meter_sink::{SinkConfig, SinkHandle};
use chrono::{DurationRound, TimeDelta, Utc};
use std::path::Path;
use std::time::{Duration, Instant};

const LICENSE: &str = "lcl_catchup_benchmark_license_0123456789abcdef";
const RUNS_PER_WINDOW: u64 = 3;
const NODES_PER_WINDOW: u64 = 7;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are window counts"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1_000, 10_000]
    } else {
        sizes
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "{:>8} {:>9} {:>10} {:>9} {:>14}",
        "windows", "seconds", "windows/s", "reports", "CPU µs/window"
    );
    for n in sizes {
        let r = rt.block_on(run(n));
        println!(
            "{:>8} {:>9.3} {:>10.0} {:>9} {:>14.1}",
            n,
            r.wall.as_secs_f64(),
            n as f64 / r.wall.as_secs_f64(),
            r.reports,
            r.cpu.as_secs_f64() * 1e6 / n as f64
        );
    }
}

struct Run {
    wall: Duration,
    cpu: Duration,
    reports: u64,
}

async fn run(n: usize) -> Run {
    let sink = SinkConfig::ephemeral()
        .start()
        .await
        .expect("the sink starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    backlog(&dir.path().join("slot-0"), n);
    let options = ReporterOptions::new(config(&sink, dir.path()), Tags::new());

    let (cpu0, t0) = (cpu_time(), Instant::now());
    let reporter = Reporter::spawn(Meter::new(), options)
        .await
        .expect("the reporter starts");
    let want = n as u64;
    while measure(&sink, RUNS) < want * RUNS_PER_WINDOW {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (wall, cpu) = (t0.elapsed(), cpu_time() - cpu0);
    reporter.shutdown(Duration::from_secs(10)).await;
    assert_eq!(measure(&sink, RUNS), want * RUNS_PER_WINDOW, "runs exact");
    assert_eq!(
        measure(&sink, NODES),
        want * NODES_PER_WINDOW,
        "nodes exact"
    );
    let summary = sink.summary();
    assert_eq!(summary.rejects, 0, "{summary:?}");
    Run {
        wall,
        cpu,
        reports: summary.reports,
    }
}

fn measure(sink: &SinkHandle, name: &str) -> u64 {
    sink.summary().measures.get(name).copied().unwrap_or(0)
}

/// `n` closed 5-minute windows ending at the last 5-minute boundary,
/// written as the spool writes them.
fn backlog(slot: &Path, n: usize) {
    let pending = slot.join("beacon").join("pending");
    std::fs::create_dir_all(&pending).expect("the spool directory");
    let step = TimeDelta::minutes(5);
    let end = Utc::now().duration_trunc(step).expect("a whole minute");
    for i in 0..n {
        let from = end - step * (n - i) as i32;
        let w = SpooledWindow::new(
            uuid::Uuid::new_v4(),
            Destination::Beacon,
            from + step,
            Vec::new(),
            ReportBody {
                from_timestamp: from,
                to_timestamp: from + step,
                tags: Default::default(),
                measures: [
                    (RUNS.to_owned(), RUNS_PER_WINDOW),
                    (NODES.to_owned(), NODES_PER_WINDOW),
                ]
                .into(),
                logs: Vec::new(),
            },
        );
        let bytes = serde_json::to_vec_pretty(&w).expect("a window serializes");
        std::fs::write(pending.join(w.file_name()), bytes).expect("a window is written");
    }
}

fn config(sink: &SinkHandle, spool: &Path) -> Config {
    Config::builder()
        .beacon_url(sink.base_url().as_str())
        .license_key(LICENSE)
        .spool_dir(spool)
        .build()
        .expect("a valid configuration")
}

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is valid.
    let u = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()), 0);
        u.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}
