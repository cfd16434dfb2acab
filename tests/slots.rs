//! Several processes on one spool root (`spool::slots`): each child process
//! of this test binary runs a real reporter on the same `BEACON_SPOOL_DIR`
//! against the real local Beacon sink. One child is killed with `kill -9`;
//! a process started later adopts what it left, and also what an old flat
//! (pre-slot) spool at the root held. The sink's deduplicated totals must
//! equal everything recorded, exactly.
#![cfg(feature = "reporter")]

use crate::common::*;
use beacon_meter::Meter;
use beacon_meter::meter::{NODES, RUNS};
use beacon_meter::spool::{Destination, Spool, SpoolLimits, SpooledWindow, slots};
use beacon_meter::wire::ReportBody;
use beacon_meter_sink::{SinkConfig, SinkHandle};
use chrono::{TimeDelta, Utc};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "BEACON_SLOTS_TEST_CHILD";
/// Runs a child records per 50 ms (each of 3 nodes).
const BATCH: u64 = 5;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Not a test: a reporter process of `processes_share_a_spool_root...`,
/// started by it with `--ignored --exact slots_child`. It records `BATCH`
/// runs every 50 ms until the file `<out>.stop` appears, writing its running
/// total to `<out>` *after* each batch, then (mode `graceful`) shuts its
/// reporter down and writes `<out>.done`, or (mode `hang`) keeps its
/// reporter running, checkpointing, until it is killed.
#[test]
#[ignore = "child process of processes_share_a_spool_root_and_a_killed_ones_windows_are_delivered"]
fn slots_child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        eprintln!("slots_child only runs as a child of the slots test");
        return;
    };
    let (sink_url, spool, out) = child_env();
    // A child never outlives its test: if the parent is gone (a failed
    // test ends its process without writing `stop`), the child exits.
    let parent = std::os::unix::process::parent_id();
    let orphaned = move || std::os::unix::process::parent_id() != parent;
    beacon_meter_testkit::runtime().block_on(async move {
        let mut v = vars(&sink_url, &spool);
        // Windows that stay open: a killed child's counts are only in its
        // checkpoint, which only a later process can deliver.
        set(&mut v, "BEACON_INTERVAL_SECS", "3600");
        let meter = Meter::new();
        let reporter = beacon_meter::reporter::Reporter::spawn(meter.clone(), options(&v))
            .await
            .expect("the child's reporter starts");
        write_atomic(
            &out.with_extension("slot"),
            &reporter.spool_dir().display().to_string(),
        );
        let mut total = 0u64;
        while !out.with_extension("stop").exists() {
            if orphaned() {
                std::process::exit(2);
            }
            for _ in 0..BATCH {
                meter.record_run(3);
            }
            total += BATCH;
            write_atomic(&out, &total.to_string());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match mode.as_str() {
            "graceful" => {
                let stats = reporter.shutdown(Duration::from_secs(10)).await;
                assert_eq!(stats.pending(), 0, "{stats:?}");
                write_atomic(&out.with_extension("done"), "done");
            }
            "hang" => {
                write_atomic(&out.with_extension("done"), "done");
                while !orphaned() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                std::process::exit(2);
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

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// One child process and its files.
struct Proc {
    child: Child,
    out: PathBuf,
    log: PathBuf,
}

impl Proc {
    fn start(mode: &str, sink: &SinkHandle, spool: &Path, dir: &Path, name: &str) -> Proc {
        let out = dir.join(name);
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["slots::slots_child", "--exact", "--ignored", "--nocapture"])
            .env(CHILD_ENV, mode)
            .env("CHILD_SINK", sink.base_url().as_str())
            .env("CHILD_SPOOL", spool)
            .env("CHILD_OUT", &out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Proc { child, out, log }
    }

    fn total(&self) -> u64 {
        read(&self.out)
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    fn slot(&self) -> Option<String> {
        read(&self.out.with_extension("slot"))
    }

    fn stop(&self) {
        write_atomic(&self.out.with_extension("stop"), "stop");
    }

    fn done(&self) -> bool {
        self.out.with_extension("done").exists()
    }

    fn log(&self) -> String {
        read(&self.log).unwrap_or_default()
    }
}

/// A window of an old, flat (pre-slot) spool at the root.
fn flat_window(runs: u64) -> SpooledWindow {
    let from = Utc::now() - TimeDelta::hours(2);
    SpooledWindow::new(
        uuid::Uuid::new_v4(),
        Destination::Beacon,
        from + TimeDelta::minutes(5),
        Vec::new(),
        ReportBody {
            from_timestamp: from,
            to_timestamp: from + TimeDelta::minutes(5),
            tags: Default::default(),
            measures: [(RUNS.to_owned(), runs), (NODES.to_owned(), 3 * runs)].into(),
            logs: Vec::new(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_a_spool_root_and_a_killed_ones_windows_are_delivered() {
    init_tracing();
    let sink = SinkConfig::ephemeral().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    // A spool written before slots existed: adopted, not lost.
    let flat_runs = 7;
    Spool::open(&root, SpoolLimits::default())
        .unwrap()
        .push(&flat_window(flat_runs))
        .unwrap();

    let procs: Vec<Proc> = ["graceful", "graceful", "hang"]
        .iter()
        .enumerate()
        .map(|(i, mode)| Proc::start(mode, &sink, &root, dir.path(), &format!("p{i}")))
        .collect();
    let started = eventually(secs(30.0), || procs.iter().all(|p| p.total() >= 10 * BATCH)).await;
    assert!(
        started,
        "children: {:?}",
        procs.iter().map(Proc::log).collect::<Vec<_>>()
    );

    // Three live processes, three slots, each claimed by one of them.
    let mut claimed: Vec<String> = procs.iter().map(|p| p.slot().unwrap()).collect();
    claimed.sort();
    let expected: Vec<String> = (0..3)
        .map(|n| slot(&root, n).display().to_string())
        .collect();
    assert_eq!(claimed, expected);
    assert_eq!(slots::slot_dirs(&root).unwrap().len(), 3);
    assert!(!slots::has_flat_spool(&root), "the flat spool was adopted");

    // The hanging child stops recording, checkpoints, and is killed.
    let mut procs = procs;
    let mut victim = procs.pop().unwrap();
    victim.stop();
    assert!(eventually(secs(10.0), || victim.done()).await);
    let victim_slot = PathBuf::from(victim.slot().unwrap());
    // Two checkpoint intervals: the last checkpoint holds every count.
    tokio::time::sleep(secs(2.5)).await;
    victim.child.kill().unwrap(); // SIGKILL
    assert!(!victim.child.wait().unwrap().success());
    assert!(
        victim_slot.join("checkpoint.json").is_file(),
        "the killed process left its open window in its checkpoint"
    );

    // The others shut down and deliver everything of theirs.
    for p in &procs {
        p.stop();
    }
    let mut recorded = victim.total() + flat_runs;
    for mut p in procs {
        let status = tokio::task::spawn_blocking(move || (p.child.wait().unwrap(), p))
            .await
            .unwrap();
        assert!(status.0.success(), "child failed: {}", status.1.log());
        recorded += status.1.total();
    }

    // A later process claims the lowest free slot, adopts the killed one's
    // and delivers it.
    let later = Proc::start("graceful", &sink, &root, dir.path(), "later");
    assert!(
        eventually(secs(30.0), || later.total() >= BATCH).await,
        "{}",
        later.log()
    );
    later.stop();
    let status = tokio::task::spawn_blocking(move || (later.child.wait_with_output(), later.out))
        .await
        .unwrap();
    assert!(status.0.unwrap().status.success());
    recorded += read(&status.1).unwrap().trim().parse::<u64>().unwrap();

    let want = Totals {
        runs: recorded,
        nodes: 3 * recorded,
    };
    // Processes' windows overlap in time (each has its own), so no tiling
    // check across them: exact totals, every report well-formed and keyed.
    let summary = sink.summary();
    assert_eq!(delivered(&sink), want, "{summary:?}");
    assert_eq!(summary.rejects, 0, "{summary:?}");
    assert_eq!(summary.without_idempotency_key, 0, "{summary:?}");
    assert_eq!(slots::slot_dirs(&root).unwrap().len(), 3, "no new slot");
    let left = Spool::open_read_only(&root).unwrap().list().unwrap();
    assert!(left.pending.values().all(Vec::is_empty), "{left}");
    assert!(!left.checkpoint, "{left}");
}
