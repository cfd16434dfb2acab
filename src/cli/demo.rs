//! `beacon-meter demo`: the whole pipeline in one command.
//!
//! A synthetic graph executor records runs and nodes into a [`Meter`]; the
//! [`Reporter`] cuts 1-second windows and delivers them to an embedded local
//! Beacon ([`crate::sink`]) that injects faults (503s, dropped connections,
//! answers lost after acceptance), so retries and deduplication are visible.
//! At the end the reporter shuts down gracefully and a reconciliation table
//! compares what was recorded with what the Beacon counted.
//!
//! The executor alternates short blocks of runs with metering on and off on
//! every worker, so the overhead of metering is measured side by side, in the
//! same run, under the same load.

use super::Term;
use super::args::DemoArgs;
use super::executor::{ExecutorTotals, Live, run_executor};
use crate::config::Config;
use crate::meter::{Meter, NODES, RUNS};
use crate::reporter::{Reporter, ReporterOptions, ReporterStats, RetryPolicy};
use crate::sink::{Faults, Sink, SinkConfig, SinkHandle, Summary};
use crate::spool::{Destination, SpoolLimits, slots};
use crate::wire::{Plan, Tags};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long shutdown may take to deliver what is pending.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// Why the demo could not run or did not reconcile.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded Beacon could not start.
    #[error("could not start the embedded Beacon: {0}")]
    Sink(#[from] crate::sink::SinkError),
    /// The configuration built for the demo is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The reporter could not start (e.g. the spool is locked).
    #[error(transparent)]
    Reporter(#[from] crate::reporter::ReporterError),
    /// The spool given with --spool could not be read.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// Writing output failed.
    #[error("could not write the output: {0}")]
    Io(#[from] std::io::Error),
    /// The counts delivered differ from those recorded.
    #[error(
        "delivered counts differ from recorded counts (see the table above); \
         {pending} window(s) are still spooled in {spool}: run `beacon-meter spool list --dir {spool}`"
    )]
    Mismatch {
        /// Windows left in the spool.
        pending: usize,
        /// The spool directory.
        spool: String,
    },
}

/// The `--summary-json` document.
#[derive(Debug, Serialize)]
struct SummaryJson {
    recorded: BTreeMap<String, u64>,
    delivered: BTreeMap<String, u64>,
    windows_delivered: u64,
    pending: usize,
    retries: u64,
    finished: bool,
}

/// Runs the demo. Returns an error if delivered ≠ recorded.
pub async fn run(args: &DemoArgs, term: Term, out: &mut dyn Write) -> Result<(), DemoError> {
    let (spool_dir, own_spool) = match &args.spool {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("beacon-meter-demo-{}", uuid::Uuid::new_v4())),
            true,
        ),
    };
    let carried = carried_over(&spool_dir)?;

    let sink = match &args.endpoint {
        Some(_) => None,
        None => Some(Sink::start(demo_sink_config()).await?),
    };
    let endpoint = match (&args.endpoint, &sink) {
        (Some(url), _) => url.clone(),
        (None, Some(s)) => s.base_url().to_string(),
        (None, None) => unreachable!("a sink is started when no endpoint is given"),
    };
    let license = std::env::var("LANGGRAPH_CLOUD_LICENSE_KEY")
        .ok()
        .filter(|k| args.endpoint.is_some() && !k.trim().is_empty())
        .unwrap_or_else(|| format!("lcl_demo_{}", uuid::Uuid::new_v4().simple()));
    let config = demo_config(&endpoint, &license, args.interval, &spool_dir)?;
    let summary_path = args.summary_json.clone();

    let meter = Meter::new();
    let mut options = ReporterOptions::new(config, Tags::new().plan(Plan::Enterprise));
    // Snappier than production (1 s .. 5 min, 15 min after a refused key),
    // so a 10-second demo shows retries and recovers within it.
    options.retry = RetryPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(2),
        credential_backoff: Duration::from_secs(5),
    };
    let reporter = Reporter::spawn(meter.clone(), options).await?;

    let threads = args.threads.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let duration = Duration::from_secs(args.duration);
    if !args.json {
        writeln!(
            out,
            "beacon-meter demo: {threads} worker threads for {}s, {}s windows, reporting to {}{}",
            args.duration,
            args.interval,
            if sink.is_some() {
                "an embedded Beacon at "
            } else {
                ""
            },
            endpoint
        )?;
        if sink.is_some() {
            writeln!(
                out,
                "  the embedded Beacon answers 15% of reports 503, drops 5% of connections, and loses 5% of answers after accepting"
            )?;
        }
        writeln!(out, "  spool: {}", spool_dir.display())?;
    }

    let live = Arc::new(Live::default());
    let stop = Arc::new(AtomicBool::new(false));
    let executor = {
        let meter = meter.clone();
        let live = live.clone();
        let stop = stop.clone();
        std::thread::spawn(move || run_executor(meter, threads, live, stop))
    };

    let bar = progress(term, args.json, args.duration);
    let started = Instant::now();
    let mut last_write = Instant::now() - Duration::from_secs(2);
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = reporter.stats();
        let delivered = delivered(sink.as_ref(), &stats);
        if let Some(bar) = &bar {
            bar.set_position(started.elapsed().as_secs().min(args.duration));
            bar.set_message(format!(
                "runs recorded {:>9}  windows delivered {:>3}  pending {:>2}  retries {:>3}",
                live.runs.load(Ordering::Relaxed),
                stats.windows_sent,
                stats.pending(),
                stats.retries
            ));
        }
        if let Some(path) = &summary_path
            && last_write.elapsed() >= Duration::from_millis(500)
        {
            write_summary(path, &live, &carried, &delivered, &stats, false)?;
            last_write = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let totals = tokio::task::spawn_blocking(move || executor.join())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .map_err(|_| std::io::Error::other("an executor thread panicked"))?;
    if let Some(bar) = &bar {
        bar.set_message("shutting down: delivering what is pending");
    }
    let stats = reporter.shutdown(SHUTDOWN_DEADLINE).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = sink.as_ref().map(SinkHandle::summary);
    let delivered = delivered(sink.as_ref(), &stats);
    if let Some(path) = &summary_path {
        write_summary(path, &live, &carried, &delivered, &stats, true)?;
    }

    let recorded = recorded(&live);
    let expected = expected(&live, &carried);
    let ok = [RUNS, NODES]
        .iter()
        .all(|m| expected.get(*m) == delivered.get(*m));

    print_table(
        out,
        term,
        args.json,
        &recorded,
        &carried,
        &delivered,
        &stats,
        summary.as_ref(),
        &totals,
        ok,
    )?;
    if let Some(s) = sink {
        s.shutdown().await;
    }
    if !ok {
        return Err(DemoError::Mismatch {
            pending: stats.pending(),
            spool: spool_dir.display().to_string(),
        });
    }
    if own_spool && stats.pending() == 0 {
        let _ = std::fs::remove_dir_all(&spool_dir);
    }
    Ok(())
}

/// Counter totals of the windows already pending in `dir` (from an earlier
/// run, including a crashed run's open window, recovered here exactly as the
/// reporter would): the demo delivers them too, so they are expected at the
/// Beacon. The spool is locked only for this and released before the
/// reporter starts.
fn carried_over(dir: &Path) -> Result<BTreeMap<String, u64>, DemoError> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    // The slot the reporter will claim next, with what stopped processes
    // left in the others adopted into it.
    let spool = slots::claim(dir, SpoolLimits::default())?.spool;
    spool.recover_checkpoint()?;
    for w in spool.pending(Destination::Beacon)? {
        for (k, v) in &w.report.measures {
            if !w.is_gauge(k) {
                *out.entry(k.clone()).or_default() += v;
            }
        }
    }
    Ok(out)
}

fn demo_sink_config() -> SinkConfig {
    SinkConfig {
        faults: Faults {
            failure_rate: 0.15,
            retry_after_secs: 1,
            drop_rate: 0.05,
            accept_then_drop_rate: 0.05,
            seed: uuid::Uuid::new_v4().as_u128() as u64,
            ..Faults::default()
        },
        ..SinkConfig::ephemeral()
    }
}

/// The demo's configuration: the process environment with the endpoint,
/// license, interval and spool of this demo laid over it.
fn demo_config(
    endpoint: &str,
    license: &str,
    interval: u64,
    spool: &Path,
) -> Result<Config, crate::config::ConfigError> {
    let overrides: BTreeMap<&str, OsString> = [
        ("BEACON_URL", endpoint.into()),
        ("LANGGRAPH_CLOUD_LICENSE_KEY", license.into()),
        ("BEACON_INTERVAL_SECS", interval.to_string().into()),
        ("BEACON_TIMEOUT_SECS", "2".into()),
        ("BEACON_CHECKPOINT_SECS", "1".into()),
        ("BEACON_SPOOL_DIR", spool.as_os_str().to_owned()),
        ("BEACON_OFFLINE", "false".into()),
    ]
    .into_iter()
    .collect();
    Config::from_lookup(|k| {
        if k == "LANGSMITH_API_KEY" {
            // The demo reports with a license only.
            return None;
        }
        overrides.get(k).cloned().or_else(|| std::env::var_os(k))
    })
}

fn recorded(live: &Live) -> BTreeMap<String, u64> {
    BTreeMap::from([
        (RUNS.to_owned(), live.runs.load(Ordering::Relaxed)),
        (NODES.to_owned(), live.nodes.load(Ordering::Relaxed)),
    ])
}

/// What the Beacon counted: the embedded sink's deduplicated totals, or,
/// against an external endpoint, the totals of the windows it acknowledged.
fn delivered(sink: Option<&SinkHandle>, stats: &ReporterStats) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = match sink {
        Some(s) => s.summary().measures,
        None => stats.delivered(),
    };
    for m in [RUNS, NODES] {
        out.entry(m.to_owned()).or_default();
    }
    out
}

/// What the Beacon should count: this run's records plus the windows
/// carried over from an earlier run.
fn expected(live: &Live, carried: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = recorded(live);
    for (k, v) in carried {
        *out.entry(k.clone()).or_default() += v;
    }
    out
}

fn write_summary(
    path: &Path,
    live: &Live,
    carried: &BTreeMap<String, u64>,
    delivered: &BTreeMap<String, u64>,
    stats: &ReporterStats,
    finished: bool,
) -> std::io::Result<()> {
    let doc = SummaryJson {
        recorded: expected(live, carried),
        delivered: delivered.clone(),
        windows_delivered: stats.windows_sent,
        pending: stats.pending(),
        retries: stats.retries,
        finished,
    };
    let tmp: PathBuf = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

fn progress(term: Term, json: bool, secs: u64) -> Option<ProgressBar> {
    if json || !term.interactive {
        return None;
    }
    let bar = ProgressBar::new(secs);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos:>2}/{len}s {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

#[allow(clippy::too_many_arguments)]
fn print_table(
    out: &mut dyn Write,
    term: Term,
    json: bool,
    recorded: &BTreeMap<String, u64>,
    carried: &BTreeMap<String, u64>,
    delivered: &BTreeMap<String, u64>,
    stats: &ReporterStats,
    summary: Option<&Summary>,
    totals: &ExecutorTotals,
    ok: bool,
) -> std::io::Result<()> {
    let per_run = |nanos: u128, runs: u64| nanos as f64 / runs.max(1) as f64;
    let on = per_run(totals.nanos_on, totals.runs_on);
    let off = per_run(totals.nanos_off, totals.runs_off);
    let overhead = (on / off - 1.0) * 100.0;
    let duplicates = summary.map(|s| s.duplicates);
    if json {
        let doc = serde_json::json!({
            "recorded": recorded,
            "carried_over": carried,
            "delivered": delivered,
            "reconciled": ok,
            "windows_delivered": stats.windows_sent,
            "pending": stats.pending(),
            "retries": stats.retries,
            "duplicates_suppressed": duplicates,
            "executor": {
                "runs_metered": totals.runs_on,
                "runs_unmetered": totals.runs_off,
                "us_per_run_metered": on / 1000.0,
                "us_per_run_unmetered": off / 1000.0,
                "overhead_percent": overhead,
            },
        });
        return writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?
        );
    }
    writeln!(out)?;
    writeln!(out, "{}", term.bold("Reconciliation"))?;
    writeln!(
        out,
        "  {:<28} {:>14} {:>14} {:>14}",
        "measure", "recorded", "earlier runs", "delivered"
    )?;
    for m in [RUNS, NODES] {
        let r = recorded.get(m).copied().unwrap_or(0);
        let c = carried.get(m).copied().unwrap_or(0);
        let d = delivered.get(m).copied().unwrap_or(0);
        let mark = if r + c == d {
            term.good("ok")
        } else {
            term.bad("MISMATCH")
        };
        writeln!(out, "  {m:<28} {r:>14} {c:>14} {d:>14}  {mark}")?;
    }
    writeln!(out)?;
    writeln!(out, "  windows delivered       {:>8}", stats.windows_sent)?;
    writeln!(out, "  windows still pending   {:>8}", stats.pending())?;
    writeln!(out, "  retries                 {:>8}", stats.retries)?;
    match duplicates {
        Some(d) => writeln!(
            out,
            "  duplicates suppressed   {d:>8}  (by Idempotency-Key, at the Beacon)"
        )?,
        None => writeln!(
            out,
            "  duplicates suppressed        n/a  (external endpoint)"
        )?,
    }
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        term.bold("Executor throughput, metering on vs off (same run, interleaved blocks)")
    )?;
    writeln!(
        out,
        "  metering on   {:>10} runs  {:>8.2} µs/run",
        totals.runs_on,
        on / 1000.0
    )?;
    writeln!(
        out,
        "  metering off  {:>10} runs  {:>8.2} µs/run",
        totals.runs_off,
        off / 1000.0
    )?;
    writeln!(
        out,
        "  overhead      {overhead:>+9.3} %   (a record costs nanoseconds; a run costs microseconds, so this is mostly noise)"
    )?;
    writeln!(out)?;
    if ok {
        writeln!(
            out,
            "{}",
            term.good("delivered = recorded: every count arrived exactly once")
        )?;
    } else {
        writeln!(out, "{}", term.bad("delivered != recorded"))?;
    }
    Ok(())
}
