//! Hard faults against the reporter: a full or read-only spool, wall-clock
//! jumps, a server that accepts connections and never answers, and panics
//! in user callbacks. Each test runs a real reporter against the real local
//! Beacon sink (or a silent TCP listener) on 127.0.0.1, with short windows,
//! and checks that no count is lost, counted twice, or put in overlapping
//! windows.
//!
//! The spool faults that need a real filesystem (a full tmpfs, a read-only
//! bind mount) need `mount`, i.e. root in a sandbox that allows it; where
//! `mount` fails they print why and return. The read-only fault made by
//! replacing `pending/` with a regular file needs no privilege and always
//! runs. (Tests run as root, where `chmod` does not stop writes.)
#![cfg(feature = "reporter")]

use beacon_meter::Meter;
use beacon_meter::clock::ManualClock;
use beacon_meter::config::{Config, ConfigBuilder};
use beacon_meter::meter::{NODES, RUNS};
use beacon_meter::reporter::{Reporter, ReporterError, ReporterOptions, RetryPolicy};
use beacon_meter::spool::{Destination, Spool, SpoolError};
use beacon_meter::wire::Tags;
use beacon_meter_sink::{SinkConfig, SinkHandle};
use beacon_meter_testkit::{Mount, fill};
use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::time::sleep;

const LICENSE: &str = "lcl_faults_test_0123456789abcdef";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------

/// Everything the reporter logged, as plain text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.0.clone())
    }
}

/// A two-worker runtime whose threads (workers and blocking pool) log into
/// the returned [`Logs`]; other tests running in parallel log elsewhere.
fn runtime() -> (tokio::runtime::Runtime, Logs) {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // The thread ends with the runtime; so does this default.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .expect("a tokio runtime");
    (rt, logs)
}

/// A configuration for `url` with the spool in `spool`: windows of
/// `interval`, checkpoints every 200 ms, requests time out after 1 s.
fn config(url: &str, spool: &Path, interval: Duration) -> Config {
    builder(url, spool, interval)
        .build()
        .expect("a valid configuration")
}

/// [`config`], as a builder to change.
fn builder(url: &str, spool: &Path, interval: Duration) -> ConfigBuilder {
    Config::builder()
        .beacon_url(url)
        .license_key(LICENSE)
        .spool_dir(spool)
        .interval(interval)
        .checkpoint_interval(ms(200))
        .timeout(ms(1000))
}

/// Options with a snappy retry policy.
fn options(config: Config, tags: Tags) -> ReporterOptions {
    ReporterOptions::new(config, tags).retry(RetryPolicy {
        base: ms(50),
        cap: ms(300),
        credential_backoff: ms(1000),
    })
}

/// Spawns a reporter, waiting (up to 5 s) for a previous one on the same
/// spool to let go of its lock.
async fn spawn(meter: &Meter, options: impl Fn() -> ReporterOptions) -> Reporter {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Reporter::spawn(meter.clone(), options()).await {
            Ok(r) => return r,
            Err(ReporterError::Spool(SpoolError::Locked { .. })) if Instant::now() < deadline => {
                sleep(ms(20)).await
            }
            Err(e) => panic!("the reporter does not start: {e}"),
        }
    }
}

/// Polls `cond` every 20 ms for up to `within`.
async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        sleep(ms(20)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Totals {
    runs: u64,
    nodes: u64,
}

/// A worker thread recording runs of 1..=7 nodes, in bursts of 20 with a
/// 1 ms pause, until stopped.
struct Recorder {
    stop: Arc<AtomicBool>,
    runs: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Totals>,
}

impl Recorder {
    fn start(meter: &Meter) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicU64::new(0));
        let local = meter.local();
        let thread = {
            let (stop, progress) = (stop.clone(), runs.clone());
            std::thread::spawn(move || {
                let mut t = Totals::default();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..20 {
                        let n = 1 + t.runs % 7;
                        local.record_run(n);
                        t.runs += 1;
                        t.nodes += n;
                    }
                    progress.store(t.runs, Ordering::Relaxed);
                    std::thread::sleep(ms(1));
                }
                t
            })
        };
        Recorder { stop, runs, thread }
    }

    /// Runs recorded so far.
    fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    fn stop(self) -> Totals {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the recorder thread")
    }
}

/// The sink's deduplicated totals.
fn delivered(sink: &SinkHandle) -> Totals {
    let m = sink.summary().measures;
    Totals {
        runs: m.get(RUNS).copied().unwrap_or(0),
        nodes: m.get(NODES).copied().unwrap_or(0),
    }
}

/// Counter totals of the windows pending in a spool (read-only: works
/// while a reporter still holds it).
fn spooled(dir: &Path) -> Totals {
    let spool = Spool::open_read_only(dir).expect("the spool opens read-only");
    let mut t = Totals::default();
    for w in spool.pending(Destination::Beacon).expect("pending windows") {
        t.runs += w.report.measures.get(RUNS).copied().unwrap_or(0);
        t.nodes += w.report.measures.get(NODES).copied().unwrap_or(0);
    }
    t
}

/// One accepted report as the sink stored it.
#[derive(Debug, Clone)]
struct Accepted {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    measures: BTreeMap<String, u64>,
    tags: BTreeMap<String, String>,
}

fn accepted(sink: &SinkHandle) -> Vec<Accepted> {
    let time = |v: &Value| -> DateTime<Utc> {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a timestamp: {v}"))
    };
    sink.reports()
        .iter()
        .map(|r| Accepted {
            from: time(&r["from_timestamp"]),
            to: time(&r["to_timestamp"]),
            measures: serde_json::from_value(r["measures"].clone()).expect("measures"),
            tags: serde_json::from_value(r["tags"].clone()).expect("tags"),
        })
        .collect()
}

/// The accepted windows of one reporter run, in arrival order, must tile
/// time: each non-empty, each starting where the previous one ended (so
/// none overlaps another or goes backwards).
fn assert_tiles(windows: &[Accepted]) {
    assert!(!windows.is_empty(), "no window was accepted");
    for (i, w) in windows.iter().enumerate() {
        assert!(w.to > w.from, "window {i} is empty or reversed: {w:?}");
        if i > 0 {
            let prev = &windows[i - 1];
            assert_eq!(
                w.from,
                prev.to,
                "window {i} does not start where window {} ended:\n{prev:?}\n{w:?}",
                i - 1
            );
        }
    }
}

/// A path replaced by a regular file (writes under it fail with ENOTDIR)
/// until restored: a spool directory that cannot be written or read,
/// without any privilege.
struct Blocked {
    path: PathBuf,
    aside: PathBuf,
}

impl Blocked {
    fn new(path: &Path) -> Blocked {
        let aside = path.with_extension("aside");
        std::fs::rename(path, &aside).expect("move the directory aside");
        std::fs::write(path, b"not a directory").expect("put a file in its place");
        Blocked {
            path: path.to_owned(),
            aside,
        }
    }

    fn restore(self) {
        std::fs::remove_file(&self.path).expect("remove the blocking file");
        std::fs::rename(&self.aside, &self.path).expect("put the directory back");
    }
}

// ---------------------------------------------------------------------------
// 1. disk full, read-only spool
// ---------------------------------------------------------------------------

/// A full filesystem under the spool: records keep landing, closed windows
/// wait in memory (`unspooled`), the reporter logs loudly, and once space is
/// freed every window is written and delivered, with exact totals.
#[test]
fn disk_full_keeps_windows_in_memory_and_writes_them_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs_or_skip(tmp.path(), 1024 * 1024, "disk_full test") else {
        return;
    };
    let (rt, logs) = runtime();
    rt.block_on(async {
        let sink = SinkConfig::ephemeral().start().await.unwrap();
        let spool_dir = tmp.path().join("spool");
        let cfg = config(sink.base_url().as_str(), &spool_dir, ms(300));
        let meter = Meter::new();
        let reporter = spawn(&meter, || options(cfg.clone(), Tags::new())).await;
        let recorder = Recorder::start(&meter);
        assert!(
            eventually(Duration::from_secs(3), || reporter.stats().windows_sent
                >= 1)
            .await,
            "nothing delivered before the fault: {:?}",
            reporter.stats()
        );

        // The Beacon is down too, so no delivery frees space by deleting.
        sink.set_forced_status(Some(503));
        let filler = fill(tmp.path());
        let before = (recorder.runs(), reporter.stats().windows_closed);
        assert!(
            eventually(Duration::from_secs(3), || reporter.stats().unspooled >= 2).await,
            "closed windows are not kept in memory: {:?}",
            reporter.stats()
        );
        let during = reporter.stats();
        assert!(
            during.windows_closed > before.1,
            "windows stopped closing: {during:?}"
        );
        assert!(
            recorder.runs() > before.0,
            "records stopped landing while the disk was full"
        );
        let text = logs.text();
        assert!(
            text.contains("ERROR") && text.contains("CANNOT WRITE THE SPOOL"),
            "the reporter did not log the full disk loudly:\n{text}"
        );
        assert!(text.to_lowercase().contains("no space left"), "{text}");

        std::fs::remove_file(filler).unwrap();
        sink.set_forced_status(None);
        assert!(
            eventually(Duration::from_secs(3), || reporter.stats().unspooled == 0).await,
            "the windows kept in memory were not written once space returned: {:?}",
            reporter.stats()
        );
        sleep(ms(300)).await;
        let recorded = recorder.stop();
        let stats = reporter.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.pending(), 0, "{stats:?}");
        assert_eq!(stats.unspooled, 0, "{stats:?}");
        assert_eq!(delivered(&sink), recorded, "{:?}", sink.summary());
        assert_tiles(&accepted(&sink));
        sink.shutdown().await;
    });
}

/// `pending/` unusable (a file in its place) for longer than the memory
/// bound: the backlog never holds more than `memory_backlog` windows (it
/// merges, even though a dynamic tag makes every window's tags differ), and
/// nothing is lost once the directory is back.
#[test]
fn unwritable_spool_keeps_memory_within_the_bound_by_merging() {
    const BOUND: usize = 3;
    let (rt, logs) = runtime();
    rt.block_on(async {
        let sink = SinkConfig::ephemeral().start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(sink.base_url().as_str(), dir.path(), ms(250));
        let meter = Meter::new();
        let seq = Arc::new(AtomicU64::new(0));
        let reporter = spawn(&meter, || {
            let seq = seq.clone();
            let tags = Tags::new()
                .dynamic("test.evaluation", move || {
                    seq.fetch_add(1, Ordering::Relaxed).to_string()
                })
                .unwrap();
            options(cfg.clone(), tags).memory_backlog(BOUND)
        })
        .await;
        let recorder = Recorder::start(&meter);
        assert!(
            eventually(Duration::from_secs(3), || reporter.stats().windows_sent
                >= 1)
            .await,
            "{:?}",
            reporter.stats()
        );

        let blocked = Blocked::new(&dir.path().join("slot-0").join("beacon").join("pending"));
        let closed_before = reporter.stats().windows_closed;
        let mut peak = 0;
        let until = Instant::now() + ms(2200);
        while Instant::now() < until {
            peak = peak.max(reporter.stats().unspooled);
            sleep(ms(10)).await;
        }
        let during = reporter.stats();
        let closed = during.windows_closed - closed_before;
        assert!(
            closed as usize > BOUND + 2,
            "too few windows closed during the fault to test the bound: {during:?}"
        );
        assert!(peak >= 2, "no window was kept in memory: {during:?}");
        assert!(
            peak <= BOUND,
            "{peak} windows in memory, more than the bound of {BOUND}: {during:?}"
        );
        assert!(
            logs.text().contains("CANNOT WRITE THE SPOOL"),
            "{}",
            logs.text()
        );

        blocked.restore();
        assert!(
            eventually(Duration::from_secs(3), || reporter.stats().unspooled == 0).await,
            "{:?}",
            reporter.stats()
        );
        let recorded = recorder.stop();
        let stats = reporter.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.pending(), 0, "{stats:?}");
        assert_eq!(delivered(&sink), recorded, "{:?}", sink.summary());
        let windows = accepted(&sink);
        assert_tiles(&windows);
        assert!(
            windows
                .iter()
                .any(|w| w.to - w.from >= TimeDelta::milliseconds(500)),
            "no merged (wider) window was delivered: {windows:?}"
        );
        sink.shutdown().await;
    });
}

/// `pending/` read-only (a read-only bind mount: reading works, deleting
/// does not) while a window is delivered: the sender must not resend that
/// window in a hot loop because it cannot delete it, and the server sees no
/// duplicate.
#[test]
fn read_only_spool_does_not_resend_a_delivered_window_in_a_loop() {
    let (rt, _logs) = runtime();
    rt.block_on(async {
        let sink = SinkConfig::ephemeral().start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(sink.base_url().as_str(), dir.path(), ms(250));
        let meter = Meter::new();
        let reporter = spawn(&meter, || options(cfg.clone(), Tags::new())).await;
        let recorder = Recorder::start(&meter);

        sink.set_forced_status(Some(503));
        assert!(
            eventually(Duration::from_secs(3), || reporter.stats().pending() >= 1).await,
            "{:?}",
            reporter.stats()
        );
        let pending = dir.path().join("slot-0").join("beacon").join("pending");
        let mount = match Mount::read_only(&pending) {
            Ok(m) => m,
            Err(why) => {
                eprintln!("SKIPPED read-only mount test: {why}");
                recorder.stop();
                return;
            }
        };
        let submits = |sink: &SinkHandle| {
            sink.requests()
                .iter()
                .filter(|r| r.path == "/v1/metadata/submit")
                .count()
        };
        let sent_before = reporter.stats().windows_sent;
        let requests_before = submits(&sink);
        sink.set_forced_status(None);
        assert!(
            eventually(Duration::from_secs(3), || reporter.stats().windows_sent
                > sent_before)
            .await,
            "{:?}",
            reporter.stats()
        );
        sleep(ms(1000)).await;
        let requests = submits(&sink) - requests_before;
        assert!(
            requests <= 5,
            "{requests} submits in about a second for a window already delivered \
             (it could not be deleted): {:?}",
            sink.summary()
        );
        drop(mount);

        let recorded = recorder.stop();
        let stats = reporter.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.pending(), 0, "{stats:?}");
        assert_eq!(delivered(&sink), recorded, "{:?}", sink.summary());
        assert_eq!(sink.summary().duplicates, 0, "{:?}", sink.summary());
        assert_tiles(&accepted(&sink));
        sink.shutdown().await;
    });
}

/// The spool cannot be written when shutdown starts but recovers before the
/// deadline: the final windows are written and delivered, none lost.
#[test]
fn spool_recovering_before_the_shutdown_deadline_loses_nothing() {
    let (rt, _logs) = runtime();
    rt.block_on(async {
        let sink = SinkConfig::ephemeral().start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(sink.base_url().as_str(), dir.path(), ms(250));
        let meter = Meter::new();
        let reporter = spawn(&meter, || options(cfg.clone(), Tags::new())).await;
        let recorder = Recorder::start(&meter);
        sleep(ms(400)).await;
        let blocked = Blocked::new(&dir.path().join("slot-0").join("beacon").join("pending"));
        assert!(
            eventually(Duration::from_secs(3), || reporter.stats().unspooled >= 1).await,
            "{:?}",
            reporter.stats()
        );
        let recorded = recorder.stop();
        let restorer = std::thread::spawn(move || {
            std::thread::sleep(ms(700));
            blocked.restore();
        });
        let started = Instant::now();
        let stats = reporter.shutdown(Duration::from_secs(4)).await;
        restorer.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(stats.unspooled, 0, "{stats:?}");
        assert_eq!(stats.pending(), 0, "{stats:?}");
        assert_eq!(delivered(&sink), recorded, "{:?}", sink.summary());
        assert_tiles(&accepted(&sink));
        sink.shutdown().await;
    });
}

/// Shutdown with an idle sender: the sender must not stop (finding the
/// spool empty) before the closer has spooled the final window, which would
/// leave it undelivered. A race, so tried several times. Each round's clock
/// stands still in the middle of its own window, so that the round closes
/// exactly one window (on the wall clock, a minute boundary inside a round
/// made it close two).
#[test]
fn shutdown_delivers_the_final_window_even_with_an_idle_sender() {
    let (rt, _logs) = runtime();
    rt.block_on(async {
        let sink = SinkConfig::ephemeral().start().await.unwrap();
        let mut recorded = Totals::default();
        for round in 0..6 {
            let dir = tempfile::tempdir().unwrap();
            let cfg = config(
                sink.base_url().as_str(),
                dir.path(),
                Duration::from_secs(60),
            );
            // 30 s into the minute `round` minutes after this one a day ago.
            let minute = Utc::now().timestamp() / 60 - 24 * 60 + round as i64;
            let at = DateTime::from_timestamp(minute * 60 + 30, 0).unwrap();
            let clock = Arc::new(ManualClock::new(at));
            let meter = Meter::new();
            let opts = || options(cfg.clone(), Tags::new()).clock(clock.clone());
            let reporter = spawn(&meter, opts).await;
            meter.record_run(round + 1);
            recorded.runs += 1;
            recorded.nodes += round + 1;
            // Let the sender go idle on an empty spool.
            sleep(ms(100)).await;
            let stats = reporter.shutdown(Duration::from_secs(5)).await;
            assert_eq!(stats.pending(), 0, "round {round}: {stats:?}");
            assert_eq!(stats.windows_sent, 1, "round {round}: {stats:?}");
            assert_eq!(delivered(&sink), recorded, "round {round}");
        }
        sink.shutdown().await;
    });
}

// ---------------------------------------------------------------------------
// 2. wall-clock jumps
// ---------------------------------------------------------------------------

/// A manual clock that follows real time (ticked every 5 ms) until told to
/// jump.
struct TickingClock {
    clock: Arc<ManualClock>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TickingClock {
    fn start(at: DateTime<Utc>) -> TickingClock {
        let clock = Arc::new(ManualClock::new(at));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (clock, stop) = (clock.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(ms(5));
                    let now = Instant::now();
                    clock.advance(now - last);
                    last = now;
                }
            })
        };
        TickingClock {
            clock,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TickingClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The wall clock jumps back an hour mid-window, then forward two hours,
/// then back one: the delivered windows still tile time in arrival order
/// (no overlap, never backwards), and every count arrives exactly once.
#[test]
fn clock_jumps_never_overlap_windows_or_lose_counts() {
    let (rt, _logs) = runtime();
    rt.block_on(async {
        let sink = SinkConfig::ephemeral().start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(sink.base_url().as_str(), dir.path(), ms(400));
        let ticking = TickingClock::start(Utc::now());
        let clock = ticking.clock.clone();
        let meter = Meter::new();
        let reporter = spawn(&meter, || {
            options(cfg.clone(), Tags::new()).clock(clock.clone())
        })
        .await;
        let recorder = Recorder::start(&meter);
        let hour = Duration::from_secs(3600);
        sleep(ms(700)).await;
        clock.rewind(hour);
        sleep(ms(1200)).await;
        clock.advance(2 * hour);
        sleep(ms(1100)).await;
        clock.rewind(hour);
        sleep(ms(800)).await;
        let recorded = recorder.stop();
        let stats = reporter.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.pending(), 0, "{stats:?}");
        assert_eq!(delivered(&sink), recorded, "{:?}", sink.summary());
        let windows = accepted(&sink);
        assert_tiles(&windows);
        // A backlog may go out merged: every closed window is delivered,
        // in as many reports or fewer.
        assert_eq!(stats.windows_sent, stats.windows_closed, "{stats:?}");
        assert!(windows.len() as u64 <= stats.windows_closed, "{stats:?}");
        // The jumps did happen: windows nudged by 1 ms while the clock was
        // behind, and one long window over the forward jump.
        let span = |w: &Accepted| w.to - w.from;
        assert!(
            windows
                .iter()
                .any(|w| span(w) == TimeDelta::milliseconds(1)),
            "{windows:?}"
        );
        assert!(
            windows.iter().any(|w| span(w) >= TimeDelta::minutes(50)),
            "{windows:?}"
        );
        sink.shutdown().await;
    });
}

/// While the wall clock is behind the open window's start (it jumped back),
/// the open window must still be checkpointed: a crash then loses at most
/// one checkpoint interval of counts, not everything since the last close.
#[test]
fn clock_behind_still_checkpoints_so_a_crash_loses_at_most_one_interval() {
    let (rt, _logs) = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // Offline: windows are only spooled; interval 60 s, started 1 s after
        // a boundary, so no window closes during the test (only the
        // checkpoint can save the counts).
        let cfg = builder("http://127.0.0.1:9/", dir.path(), Duration::from_secs(60))
            .offline(true)
            .build()
            .unwrap();
        let start: DateTime<Utc> = "2025-01-06T09:00:01Z".parse().unwrap();
        let ticking = TickingClock::start(start);
        let clock = ticking.clock.clone();
        let meter = Meter::new();
        let opts = || options(cfg.clone(), Tags::new()).clock(clock.clone());
        let reporter = spawn(&meter, opts).await;
        let recorder = Recorder::start(&meter);
        sleep(ms(300)).await;
        clock.rewind(Duration::from_secs(3600));
        sleep(ms(600)).await;
        let recorded = recorder.stop();
        // Several checkpoint intervals after the last record, then a crash.
        sleep(ms(700)).await;
        assert_eq!(reporter.stats().windows_closed, 0);
        drop(reporter);
        // The dropped reporter's aborted tasks release its slot a moment
        // later (a process that dies frees it at once); a reporter started
        // before that would claim another slot.
        let slot0 = dir.path().join("slot-0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Spool::open(&slot0, Default::default()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the dropped reporter never released its slot"
            );
            sleep(ms(20)).await;
        }

        // A new process: the crashed one's meter is gone with it.
        let restarted = spawn(&Meter::new(), opts).await;
        // `Drop` spooled the open window: nothing is left to recover.
        assert_eq!(restarted.stats().recovered_on_start, 0);
        let stats = restarted.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.unspooled, 0, "{stats:?}");
        assert_eq!(
            spooled(dir.path()),
            recorded,
            "counts recorded while the clock was behind were lost in the crash"
        );
    });
}

// ---------------------------------------------------------------------------
// 3. a server that never answers
// ---------------------------------------------------------------------------

/// The Beacon accepts TCP connections and never answers: requests time out
/// and are retried, and `shutdown` still returns by its deadline, leaving
/// every window spooled.
#[test]
fn silent_server_times_out_and_shutdown_meets_its_deadline() {
    let (rt, _logs) = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let held = held.clone();
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    held.lock().push(socket); // never read, never answered
                }
            })
        };
        let dir = tempfile::tempdir().unwrap();
        let cfg = builder(&format!("http://{addr}/"), dir.path(), ms(300))
            .timeout(ms(400))
            .build()
            .unwrap();
        let meter = Meter::new();
        let reporter = spawn(&meter, || options(cfg.clone(), Tags::new())).await;
        let recorder = Recorder::start(&meter);
        assert!(
            eventually(Duration::from_secs(4), || reporter.stats().retries >= 2).await,
            "{:?}",
            reporter.stats()
        );
        let running = reporter.stats();
        let last_error = running.last_error().unwrap_or_default().to_owned();
        assert!(last_error.contains("timed out"), "{running:?}");
        assert_eq!(running.windows_sent, 0);
        let recorded = recorder.stop();

        let deadline = ms(1500);
        let started = Instant::now();
        let stats = reporter.shutdown(deadline).await;
        let took = started.elapsed();
        assert!(
            took <= deadline + ms(400),
            "shutdown took {took:?} with a deadline of {deadline:?}"
        );
        assert!(stats.pending() >= 1, "{stats:?}");
        assert_eq!(stats.windows_sent, 0);
        assert!(!held.lock().is_empty());
        assert_eq!(
            spooled(dir.path()),
            recorded,
            "the windows are not all spooled"
        );
        acceptor.abort();
    });
}

// ---------------------------------------------------------------------------
// 4. panics in user callbacks
// ---------------------------------------------------------------------------

/// A gauge and a dynamic tag that panic on every other call: the reporter
/// keeps closing and delivering windows, each without the value that
/// panicked, and the counts are exact.
#[test]
fn panicking_gauge_and_dynamic_tag_neither_stop_the_reporter_nor_lose_a_window() {
    let (rt, logs) = runtime();
    rt.block_on(async {
        let sink = SinkConfig::ephemeral().start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(sink.base_url().as_str(), dir.path(), ms(250));
        // Both callbacks fail in alternate 300 ms slots (out of step with
        // the 250 ms windows, so some windows get a value and some do not;
        // counting calls would not do, as checkpoints call them too).
        let t0 = Instant::now();
        let odd_slot = move || (t0.elapsed().as_millis() / 300) % 2 == 1;
        let gauge_calls = Arc::new(AtomicU64::new(0));
        let mut b = Meter::builder();
        {
            let calls = gauge_calls.clone();
            b.gauge("test.flaky_gauge", move || {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                if odd_slot() {
                    panic!("gauge callback failure #{n} (injected by the test)");
                }
                42
            })
            .unwrap();
        }
        let meter = b.build();
        let reporter = spawn(&meter, || {
            let tags = Tags::new()
                .dynamic("test.flaky_tag", move || {
                    if !odd_slot() {
                        std::panic::panic_any(7u32); // a non-string payload
                    }
                    "ok".to_owned()
                })
                .unwrap();
            options(cfg.clone(), tags)
        })
        .await;
        let recorder = Recorder::start(&meter);
        // At least 5 windows (1.25 s of 250 ms windows) must close while
        // the callbacks fail; a loaded machine may take longer than that.
        let deadline = Instant::now() + Duration::from_secs(20);
        while reporter.stats().windows_closed < 5 && Instant::now() < deadline {
            sleep(ms(50)).await;
        }
        let recorded = recorder.stop();
        let running = reporter.stats();
        assert!(running.windows_closed >= 5, "{running:?}");
        let stats = reporter.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.pending(), 0, "{stats:?}");
        assert_eq!(delivered(&sink), recorded, "{:?}", sink.summary());
        let windows = accepted(&sink);
        assert_tiles(&windows);
        // A backlog (a sender slowed by a loaded machine) may go out merged:
        // every closed window is delivered, in as many reports or fewer.
        assert_eq!(stats.windows_sent, stats.windows_closed, "{stats:?}");
        assert!(windows.len() as u64 <= stats.windows_closed, "{stats:?}");
        let with_gauge = windows
            .iter()
            .filter(|w| w.measures.get("test.flaky_gauge") == Some(&42))
            .count();
        let with_tag = windows
            .iter()
            .filter(|w| w.tags.get("test.flaky_tag").map(String::as_str) == Some("ok"))
            .count();
        assert!(
            with_gauge > 0 && with_gauge < windows.len(),
            "{with_gauge} of {} windows carry the gauge",
            windows.len()
        );
        assert!(
            with_tag > 0 && with_tag < windows.len(),
            "{with_tag} of {} windows carry the tag",
            windows.len()
        );
        assert!(gauge_calls.load(Ordering::Relaxed) >= 4);
        let text = logs.text();
        assert!(text.contains("a gauge callback panicked"), "{text}");
        assert!(text.contains("a dynamic tag failed"), "{text}");
        sink.shutdown().await;
    });
}
