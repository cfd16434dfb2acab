//! `beacon-meter demo`: the whole pipeline in one command
//! ([`crate::demo`]), with a progress bar while it runs and a
//! reconciliation table (or `--json`) at the end.
//!
//! The executor alternates short blocks of runs with metering on and off on
//! every worker, so the overhead of metering is measured side by side, in the
//! same run, under the same load.

use super::Term;
use super::args::DemoArgs;
use crate::demo::{Demo, DemoError, DemoOptions, DemoOutcome, Progress};
use beacon_meter::meter::{NODES, RUNS};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::time::Duration;

/// Runs the demo. Returns an error if delivered ≠ recorded.
pub async fn run(args: &DemoArgs, term: Term, out: &mut dyn Write) -> Result<(), DemoError> {
    let demo = Demo::start(DemoOptions {
        threads: args.threads.map(usize::from),
        interval: args.interval,
        endpoint: args.endpoint.clone(),
        spool: args.spool.clone(),
        summary_json: args.summary_json.clone(),
    })
    .await?;
    if !args.json {
        print_header(&demo, args, out)?;
    }
    let bar = progress_bar(term, args.json, args.duration);
    let outcome = demo
        .run(Duration::from_secs(args.duration), &mut |p| match p {
            Progress::Running {
                elapsed,
                runs,
                stats,
            } => {
                bar.set_position(elapsed.as_secs().min(args.duration));
                bar.set_message(format!(
                    "runs recorded {runs:>9}  windows delivered {:>3}  pending {:>2}  \
                         retries {:>3}",
                    stats.windows_sent,
                    stats.pending(),
                    stats.retries
                ));
            }
            Progress::ShuttingDown => bar.set_message("shutting down: delivering what is pending"),
        })
        .await?;
    bar.finish_and_clear();
    if args.json {
        print_json(&outcome, out)?;
    } else {
        print_table(&outcome, term, out)?;
    }
    outcome.check()
}

fn print_header(demo: &Demo, args: &DemoArgs, out: &mut dyn Write) -> std::io::Result<()> {
    let embedded = if demo.embedded() {
        "an embedded Beacon at "
    } else {
        ""
    };
    writeln!(
        out,
        "beacon-meter demo: {} worker threads for {}s, {}s windows, reporting to {embedded}{}",
        demo.threads, args.duration, args.interval, demo.endpoint
    )?;
    if demo.embedded() {
        writeln!(
            out,
            "  the embedded Beacon answers 15% of reports 503, drops 5% of connections, and loses 5% of answers after accepting"
        )?;
    }
    writeln!(out, "  spool: {}", demo.spool_dir.display())
}

/// A bar for `secs` seconds on stderr, hidden unless interactive and not
/// `json`.
fn progress_bar(term: Term, json: bool, secs: u64) -> ProgressBar {
    if json || !term.interactive {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(secs);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos:>2}/{len}s {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Nanoseconds per run of the metered and the unmetered blocks, and the
/// overhead of metering in percent.
fn per_run(o: &DemoOutcome) -> (f64, f64, f64) {
    let per_run = |nanos: u128, runs: u64| nanos as f64 / runs.max(1) as f64;
    let on = per_run(o.totals.nanos_on, o.totals.runs_on);
    let off = per_run(o.totals.nanos_off, o.totals.runs_off);
    (on, off, (on / off - 1.0) * 100.0)
}

fn print_json(o: &DemoOutcome, out: &mut dyn Write) -> std::io::Result<()> {
    let (on, off, overhead) = per_run(o);
    let doc = serde_json::json!({
        "recorded": o.recorded,
        "carried_over": o.carried,
        "delivered": o.delivered,
        "reconciled": o.reconciled,
        "windows_delivered": o.stats.windows_sent,
        "pending": o.stats.pending(),
        "retries": o.stats.retries,
        "duplicates_suppressed": o.duplicates,
        "executor": {
            "runs_metered": o.totals.runs_on,
            "runs_unmetered": o.totals.runs_off,
            "us_per_run_metered": on / 1000.0,
            "us_per_run_unmetered": off / 1000.0,
            "overhead_percent": overhead,
        },
    });
    let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")
}

fn print_table(o: &DemoOutcome, term: Term, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "{}", term.bold("Reconciliation"))?;
    let (m, r, c, d) = ("measure", "recorded", "earlier runs", "delivered");
    writeln!(out, "  {m:<28} {r:>14} {c:>14} {d:>14}")?;
    for m in [RUNS, NODES] {
        let get = |counts: &crate::demo::Counts| counts.get(m).copied().unwrap_or(0);
        let (r, c, d) = (get(&o.recorded), get(&o.carried), get(&o.delivered));
        let mark = if r + c == d {
            term.good("ok")
        } else {
            term.bad("MISMATCH")
        };
        writeln!(out, "  {m:<28} {r:>14} {c:>14} {d:>14}  {mark}")?;
    }
    writeln!(out)?;
    writeln!(out, "  windows delivered       {:>8}", o.stats.windows_sent)?;
    writeln!(out, "  windows still pending   {:>8}", o.stats.pending())?;
    writeln!(out, "  retries                 {:>8}", o.stats.retries)?;
    let duplicates = match o.duplicates {
        Some(d) => format!("{d:>8}  (by Idempotency-Key, at the Beacon)"),
        None => "     n/a  (external endpoint)".to_owned(),
    };
    writeln!(out, "  duplicates suppressed   {duplicates}")?;
    print_overhead(o, term, out)?;
    writeln!(out)?;
    if o.reconciled {
        let ok = term.good("delivered = recorded: every count arrived exactly once");
        writeln!(out, "{ok}")
    } else {
        writeln!(out, "{}", term.bad("delivered != recorded"))
    }
}

fn print_overhead(o: &DemoOutcome, term: Term, out: &mut dyn Write) -> std::io::Result<()> {
    let (on, off, overhead) = per_run(o);
    writeln!(out)?;
    let title = "Executor throughput, metering on vs off (same run, interleaved blocks)";
    writeln!(out, "{}", term.bold(title))?;
    let (runs_on, runs_off) = (o.totals.runs_on, o.totals.runs_off);
    let (on, off) = (on / 1000.0, off / 1000.0);
    writeln!(out, "  metering on   {runs_on:>10} runs  {on:>8.2} µs/run")?;
    writeln!(
        out,
        "  metering off  {runs_off:>10} runs  {off:>8.2} µs/run"
    )?;
    writeln!(
        out,
        "  overhead      {overhead:>+9.3} %   (a record costs nanoseconds; a run costs microseconds, so this is mostly noise)"
    )
}
