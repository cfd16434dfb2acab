//! Soak test: the metering core, the reporter and the spool for minutes on
//! end, against a chaotic Beacon, through repeated hard crashes.
//!
//! ```sh
//! cargo run --release --example soak -- --minutes 10
//! cargo run --release --example soak -- --seconds 60 --crash-every 20
//! ```
//!
//! This process (the driver) runs a local Beacon sink in chaos mode (30% of
//! submits fail: 15% answered 503, 7.5% dropped without an answer, 7.5%
//! accepted and then dropped, so the retry is a duplicate) and starts a
//! *child process* that runs the synthetic executor on every core with a
//! reporter (1-second windows, 1-second checkpoints) on a spool directory.
//! Every `--crash-every` seconds (default 60; up to 1 s earlier, at random,
//! so kills hit every phase of the child's 1 s close / checkpoint cycle) the
//! driver SIGKILLs the child and starts a new one on the same spool, which recovers the crashed run's
//! checkpoint and delivers what it left. At the end the last child is shut
//! down gracefully.
//!
//! Each child tags its reports `soak.incarnation=<n>` and prints its live
//! totals every 20 ms, so the driver knows what each child recorded and what
//! of it the Beacon counted. A killed child may lose what it counted since
//! its last checkpoint (at most one checkpoint interval, 1 s); the driver
//! prints that loss and checks it. While a child runs, the driver samples
//! its RSS (`VmRSS`, `VmHWM`) and open file descriptors from `/proc` every
//! second, and checks they stay flat within each child and across children.
//!
//! Exits non-zero if a check fails. Linux only (`/proc`).

use beacon_meter::Meter;
use beacon_meter::config::Config;
use beacon_meter::meter::{NODES, RUNS};
use beacon_meter::reporter::{Reporter, ReporterOptions, RetryPolicy};
use beacon_meter::spool::{Destination, Spool};
use beacon_meter::wire::{Plan, Tags};
use beacon_meter_cli::demo::executor::{BLOCK_RUNS, Live, run_executor};
use beacon_meter_sink::{Faults, SinkConfig};
use clap::Parser;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The tag that tells which child recorded a window.
const INCARNATION_TAG: &str = "soak.incarnation";
const LICENSE: &str = "lcl_soak_0123456789abcdef0123456789";
/// `BEACON_CHECKPOINT_SECS` of the children: the most a crash may lose.
const CHECKPOINT: Duration = Duration::from_secs(1);
/// Allowed on top of one checkpoint interval: the checkpoint write itself
/// and scheduling delays on a machine whose cores all run the executor.
const CHECKPOINT_SLACK: Duration = Duration::from_millis(500);
/// How often a child prints its live totals.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);
/// How often the driver samples a child's RSS and descriptors.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Samples before this age of a child are start-up, not steady state.
const WARM_UP: Duration = Duration::from_secs(5);
/// How long a child's graceful shutdown may deliver what is pending.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(
    about = "Soak test: reporter + executor in a child process, SIGKILLed and restarted \
                   periodically, against a chaotic local Beacon"
)]
struct Args {
    /// Total duration in minutes (default 10).
    #[arg(long, conflicts_with = "seconds")]
    minutes: Option<u64>,
    /// Total duration in seconds, for short runs.
    #[arg(long)]
    seconds: Option<u64>,
    /// SIGKILL the child and restart it every this many seconds.
    #[arg(long, default_value_t = 60)]
    crash_every: u64,
    /// Executor threads per child (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Share of submits the Beacon fails (split 2:1:1 into 503s, dropped
    /// connections and answers lost after accepting).
    #[arg(long, default_value_t = 0.30)]
    fault_rate: f64,
    /// Keep the work directory (spool, child logs) even when all is well.
    #[arg(long)]
    keep: bool,

    // ---- the child's side (set by the driver) ----
    /// Run as the child.
    #[arg(long, hide = true)]
    child: bool,
    /// Child: deliver what is spooled, run no executor.
    #[arg(long, hide = true)]
    drain: bool,
    /// Child: the Beacon URL.
    #[arg(long, hide = true)]
    url: Option<String>,
    /// Child: the spool directory.
    #[arg(long, hide = true)]
    spool: Option<PathBuf>,
    /// Child: its number.
    #[arg(long, hide = true, default_value_t = 0)]
    incarnation: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.child {
        child(&args)
    } else {
        driver(&args)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

// ===========================================================================
// child
// ===========================================================================

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn child(args: &Args) -> anyhow::Result<bool> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();
    let url = args.url.clone().expect("--url is set by the driver");
    let spool = args.spool.clone().expect("--spool is set by the driver");
    let threads = args.threads.unwrap_or_else(cores);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let checkpoint = CHECKPOINT.as_secs().to_string();
        let config = Config::from_pairs(&[
            ("BEACON_URL", &url),
            ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE),
            ("BEACON_INTERVAL_SECS", "1"),
            ("BEACON_TIMEOUT_SECS", "2"),
            ("BEACON_CHECKPOINT_SECS", &checkpoint),
            (
                "BEACON_SPOOL_DIR",
                spool.to_str().expect("a UTF-8 spool path"),
            ),
        ])?;
        let tags = Tags::new()
            .plan(Plan::Enterprise)
            .custom(INCARNATION_TAG, args.incarnation.to_string())?;
        let options = ReporterOptions::new(config, tags).retry(RetryPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
            credential_backoff: Duration::from_secs(5),
        });
        let meter = Meter::new();
        let reporter = Reporter::spawn(meter.clone(), options).await?;
        say(&format!(
            "started recovered={}",
            reporter.stats().recovered_on_start
        ));

        if args.drain {
            let end = Instant::now() + Duration::from_secs(120);
            while Instant::now() < end {
                let s = reporter.stats();
                if s.pending() == 0 && s.unspooled == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            let live = Arc::new(Live::default());
            let stop = Arc::new(AtomicBool::new(false));
            let executor = {
                let (meter, live, stop) = (meter.clone(), live.clone(), stop.clone());
                std::thread::spawn(move || run_executor(meter, threads, live, stop))
            };
            let publisher = {
                let (live, stop) = (live.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        say(&format!(
                            "live {} {}",
                            live.runs.load(Ordering::Relaxed),
                            live.nodes.load(Ordering::Relaxed)
                        ));
                        std::thread::sleep(PUBLISH_EVERY);
                    }
                })
            };
            // Stdin closed (or "stop"): shut down gracefully.
            tokio::task::spawn_blocking(|| {
                for line in std::io::stdin().lock().lines() {
                    match line {
                        Ok(l) if l.trim() == "stop" => break,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            })
            .await?;
            stop.store(true, Ordering::Relaxed);
            let totals = tokio::task::spawn_blocking(move || executor.join())
                .await?
                .map_err(|_| anyhow::anyhow!("an executor thread panicked"))?;
            let _ = publisher.join();
            say(&format!("final {} {}", totals.runs_on, totals.nodes_on));
        }
        let stats = reporter.shutdown(SHUTDOWN_DEADLINE).await;
        say(&format!(
            "done pending={} unspooled={} sent={} retries={}",
            stats.pending(),
            stats.unspooled,
            stats.windows_sent,
            stats.retries
        ));
        Ok(true)
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

// ===========================================================================
// driver
// ===========================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Killed,
    Shutdown,
    Drained,
    Exited(Option<i32>),
}

impl Ended {
    fn label(self) -> String {
        match self {
            Ended::Killed => "SIGKILL".into(),
            Ended::Shutdown => "shutdown".into(),
            Ended::Drained => "drain".into(),
            Ended::Exited(c) => format!("exited {c:?}"),
        }
    }
}

/// What a child printed.
#[derive(Debug, Default)]
struct ChildOutput {
    /// (when, runs, nodes) of each `live` line.
    live: Vec<(Instant, u64, u64)>,
    final_totals: Option<(u64, u64)>,
    recovered: Option<usize>,
    done: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    age: Duration,
    rss_kb: u64,
    hwm_kb: u64,
    fds: usize,
}

struct ChildRun {
    n: u32,
    pid: u32,
    started_at: Duration,
    lived: Duration,
    ended: Ended,
    out: ChildOutput,
    samples: Vec<Sample>,
    log: PathBuf,
}

impl ChildRun {
    /// What the child recorded: its final totals, or the last it published
    /// before it was killed.
    fn recorded(&self) -> (u64, u64) {
        self.out
            .final_totals
            .or_else(|| self.out.live.last().map(|&(_, r, n)| (r, n)))
            .unwrap_or((0, 0))
    }

    /// Runs and nodes per second over the last 3 s it published.
    fn rates(&self) -> (f64, f64) {
        let Some(&(t1, r1, n1)) = self.out.live.last() else {
            return (0.0, 0.0);
        };
        let (t0, r0, n0) = self
            .out
            .live
            .iter()
            .find(|(t, _, _)| t1.duration_since(*t) <= Duration::from_secs(3))
            .copied()
            .unwrap_or((t1, r1, n1));
        let dt = t1.duration_since(t0).as_secs_f64();
        if dt < 0.5 {
            return (0.0, 0.0);
        }
        ((r1 - r0) as f64 / dt, (n1 - n0) as f64 / dt)
    }

    fn steady(&self) -> Option<(Sample, Sample)> {
        let steady: Vec<Sample> = self
            .samples
            .iter()
            .filter(|s| s.age >= WARM_UP)
            .copied()
            .collect();
        let pool = if steady.len() >= 2 {
            steady
        } else {
            self.samples.clone()
        };
        Some((*pool.first()?, *pool.last()?))
    }
}

fn spawn_child(
    args: &Args,
    n: u32,
    url: &str,
    spool: &Path,
    log: &Path,
    drain: bool,
) -> anyhow::Result<(Child, ChildStdin, std::thread::JoinHandle<ChildOutput>)> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--child")
        .arg("--url")
        .arg(url)
        .arg("--spool")
        .arg(spool)
        .arg("--incarnation")
        .arg(n.to_string())
        .arg("--threads")
        .arg(args.threads.unwrap_or_else(cores).to_string());
    if drain {
        cmd.arg("--drain");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = ChildOutput::default();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            match words.next() {
                Some("live") => {
                    let r = words.next().and_then(|w| w.parse().ok());
                    let n = words.next().and_then(|w| w.parse().ok());
                    if let (Some(r), Some(n)) = (r, n) {
                        out.live.push((Instant::now(), r, n));
                    }
                }
                Some("final") => {
                    let r = words.next().and_then(|w| w.parse().ok());
                    let n = words.next().and_then(|w| w.parse().ok());
                    if let (Some(r), Some(n)) = (r, n) {
                        out.final_totals = Some((r, n));
                    }
                }
                Some("started") => {
                    out.recovered = words
                        .next()
                        .and_then(|w| w.strip_prefix("recovered="))
                        .and_then(|v| v.parse().ok());
                }
                Some("done") => out.done = Some(line.trim_start_matches("done ").to_owned()),
                _ => {}
            }
        }
        out
    });
    Ok((child, stdin, reader))
}

/// RSS, peak RSS (kB) and open descriptors of `pid`, from `/proc`.
fn sample(pid: u32) -> Option<(u64, u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((field("VmRSS:")?, field("VmHWM:")?, fds))
}

/// Waits up to `limit` for `child` to exit by itself.
fn wait_for(
    child: &mut Child,
    limit: Duration,
) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(None)
}

fn log_counts(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let warn = text.lines().filter(|l| l.contains(" WARN ")).count();
    let error = text.lines().filter(|l| l.contains(" ERROR ")).count();
    (warn, error)
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// RSS stays flat: grows by at most 10% or 4 MiB, whichever is more.
fn rss_flat(first_kb: u64, last_kb: u64) -> bool {
    last_kb <= first_kb + (first_kb / 10).max(4 * 1024)
}

/// Descriptors stay flat: at most 4 more (pooled HTTP connections come and
/// go with the injected faults).
fn fds_flat(first: usize, last: usize) -> bool {
    last <= first + 4
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

fn driver(args: &Args) -> anyhow::Result<bool> {
    let total = match (args.minutes, args.seconds) {
        (_, Some(s)) => Duration::from_secs(s),
        (Some(m), None) => Duration::from_secs(m * 60),
        (None, None) => Duration::from_secs(600),
    };
    let crash_every = Duration::from_secs(args.crash_every.max(1));
    let threads = args.threads.unwrap_or_else(cores);
    let rate = args.fault_rate.clamp(0.0, 1.0);
    let seed = uuid::Uuid::new_v4().as_u128() as u64;
    let faults = Faults {
        failure_rate: rate / 2.0,
        drop_rate: rate / 4.0,
        accept_then_drop_rate: rate / 4.0,
        retry_after_secs: 1,
        seed,
        ..Faults::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let sink = rt.block_on(SinkConfig::ephemeral().faults(faults.clone()).start())?;
    let url = sink.base_url().to_string();
    let work = std::env::temp_dir().join(format!("beacon-meter-soak-{}", uuid::Uuid::new_v4()));
    let spool = work.join("spool");
    std::fs::create_dir_all(&work)?;

    println!(
        "beacon-meter soak: {} s, SIGKILL + restart every {} s, {threads} executor threads per child, \
         1 s windows, {} s checkpoints",
        total.as_secs(),
        crash_every.as_secs(),
        CHECKPOINT.as_secs()
    );
    println!(
        "  Beacon faults: {:.1}% 503, {:.1}% dropped connections, {:.1}% answers lost after accepting (seed {seed:#x})",
        faults.failure_rate * 100.0,
        faults.drop_rate * 100.0,
        faults.accept_then_drop_rate * 100.0
    );
    println!("  work dir: {}", work.display());

    let soak_start = Instant::now();
    let mut runs: Vec<ChildRun> = Vec::new();
    let mut n = 0;
    loop {
        n += 1;
        let log = work.join(format!("child-{n}.log"));
        let (mut child, stdin, reader) = spawn_child(args, n, &url, &spool, &log, false)?;
        let pid = child.id();
        let started = Instant::now();
        let started_at = started - soak_start;
        let mut samples = Vec::new();
        let mut next_sample = started;
        let mut stdin = Some(stdin);
        // Up to 1 s early, at random: a kill at a fixed age would always hit
        // the same phase of the child's 1 s close / checkpoint cycle.
        let jitter = Duration::from_millis(uuid::Uuid::new_v4().as_u128() as u64 % 1000);
        let kill_at = crash_every
            .saturating_sub(jitter)
            .max(Duration::from_millis(500));
        let ended = loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = Instant::now();
            if now >= next_sample {
                if let Some((rss_kb, hwm_kb, fds)) = sample(pid) {
                    samples.push(Sample {
                        age: now - started,
                        rss_kb,
                        hwm_kb,
                        fds,
                    });
                }
                next_sample += SAMPLE_EVERY;
            }
            if let Some(status) = child.try_wait()? {
                break Ended::Exited(status.code());
            }
            if soak_start.elapsed() >= total {
                drop(stdin.take()); // EOF: shut down gracefully
                match wait_for(&mut child, SHUTDOWN_DEADLINE + Duration::from_secs(30))? {
                    Some(s) if s.success() => break Ended::Shutdown,
                    Some(s) => break Ended::Exited(s.code()),
                    None => {
                        child.kill()?;
                        child.wait()?;
                        break Ended::Exited(None);
                    }
                }
            }
            if now - started >= kill_at {
                child.kill()?; // SIGKILL
                child.wait()?;
                break Ended::Killed;
            }
        };
        let lived = started.elapsed();
        drop(stdin);
        let out = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))?;
        let run = ChildRun {
            n,
            pid,
            started_at,
            lived,
            ended,
            out,
            samples,
            log,
        };
        let (r, _) = run.recorded();
        eprintln!(
            "[{:>5.1}s] child {n} (pid {pid}) {} after {:.1} s: recorded {r} runs, recovered {} window(s) at start",
            soak_start.elapsed().as_secs_f64(),
            ended.label(),
            lived.as_secs_f64(),
            run.out.recovered.unwrap_or(0)
        );
        let again = ended == Ended::Killed;
        runs.push(run);
        if !again {
            break;
        }
    }

    // Anything left (the last shutdown hit its deadline): deliver it.
    let left = Spool::open_read_only(&spool)
        .and_then(|s| s.pending(Destination::Beacon))
        .map_or(0, |p| p.len());
    if left > 0 {
        n += 1;
        let log = work.join(format!("child-{n}-drain.log"));
        let (mut child, stdin, reader) = spawn_child(args, n, &url, &spool, &log, true)?;
        let pid = child.id();
        let started = Instant::now();
        let status = wait_for(&mut child, Duration::from_secs(180))?;
        if status.is_none() {
            child.kill()?;
            child.wait()?;
        }
        drop(stdin);
        let out = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))?;
        runs.push(ChildRun {
            n,
            pid,
            started_at: started - soak_start,
            lived: started.elapsed(),
            ended: if status.is_some_and(|s| s.success()) {
                Ended::Drained
            } else {
                Ended::Exited(status.and_then(|s| s.code()))
            },
            out,
            samples: Vec::new(),
            log,
        });
    }
    let elapsed = soak_start.elapsed();

    // ---- accounting -------------------------------------------------------
    let summary = sink.summary();
    let mut delivered_by: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for r in sink.reports() {
        let n: u32 = r["tags"][INCARNATION_TAG]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let e = delivered_by.entry(n).or_default();
        e.0 += r["measures"][RUNS].as_u64().unwrap_or(0);
        e.1 += r["measures"][NODES].as_u64().unwrap_or(0);
    }
    let pending_left = Spool::open_read_only(&spool)
        .and_then(|s| s.pending(Destination::Beacon))
        .map_or(usize::MAX, |p| p.len());
    let mut ok = true;

    println!();
    println!("Per child (recorded = its final totals, or the last it published before SIGKILL)");
    println!(
        "  {:>2} {:>8} {:>9} {:>8} {:>8} {:>13} {:>13} {:>9} {:>11} {:>7}  ok",
        "#",
        "pid",
        "ended",
        "at",
        "lived",
        "recorded runs",
        "delivered",
        "lost",
        "lost time",
        "bound"
    );
    let (mut rec_runs, mut rec_nodes) = (0u64, 0u64);
    let mut crashes = 0;
    let mut lost_total = 0i64;
    let mut crashes_ok = true;
    for run in &runs {
        let (r, nodes) = run.recorded();
        rec_runs += r;
        rec_nodes += nodes;
        let (d, dn) = delivered_by.get(&run.n).copied().unwrap_or((0, 0));
        let lost = r as i64 - d as i64;
        let lost_nodes = nodes as i64 - dn as i64;
        let (rate, node_rate) = run.rates();
        let (lost_time, bound, good) = match run.ended {
            Ended::Killed => {
                crashes += 1;
                lost_total += lost;
                // `recorded` lags the child's meter by at most one publish
                // period plus one block per worker.
                let lag = rate * (PUBLISH_EVERY.as_secs_f64() * 2.0)
                    + (threads as u64 * BLOCK_RUNS) as f64;
                let node_lag = node_rate * (PUBLISH_EVERY.as_secs_f64() * 2.0)
                    + (threads as u64 * BLOCK_RUNS * 20) as f64;
                let bound = (CHECKPOINT + CHECKPOINT_SLACK).as_secs_f64();
                let secs = if rate > 0.0 { lost as f64 / rate } else { 0.0 };
                let good = rate > 0.0
                    && lost as f64 >= -lag
                    && lost as f64 + lag <= rate * bound
                    && lost_nodes as f64 >= -node_lag
                    && lost_nodes as f64 + node_lag <= node_rate * bound;
                crashes_ok &= good;
                (format!("{secs:.2} s"), format!("{bound:.1} s"), good)
            }
            Ended::Shutdown | Ended::Drained => {
                let clean = run
                    .out
                    .done
                    .as_deref()
                    .is_some_and(|d| d.starts_with("pending=0 unspooled=0"));
                (
                    "exact".into(),
                    "0".into(),
                    lost == 0 && lost_nodes == 0 && clean,
                )
            }
            Ended::Exited(_) => ("-".into(), "-".into(), false),
        };
        ok &= good;
        println!(
            "  {:>2} {:>8} {:>9} {:>7.1}s {:>7.1}s {:>13} {:>13} {:>9} {:>11} {:>7}  {}",
            run.n,
            run.pid,
            run.ended.label(),
            run.started_at.as_secs_f64(),
            run.lived.as_secs_f64(),
            r,
            d,
            lost,
            lost_time,
            bound,
            yes(good)
        );
    }
    let delivered_runs = summary.measures.get(RUNS).copied().unwrap_or(0);
    let delivered_nodes = summary.measures.get(NODES).copied().unwrap_or(0);
    let by_tag: u64 = delivered_by.values().map(|v| v.0).sum();
    ok &= by_tag == delivered_runs && pending_left == 0;

    println!();
    println!(
        "Totals over {:.0} s, {} children, {crashes} SIGKILLs",
        elapsed.as_secs_f64(),
        runs.len()
    );
    println!(
        "  runs   recorded {rec_runs:>13}  delivered {delivered_runs:>13}  lost {:>9}",
        rec_runs as i64 - delivered_runs as i64
    );
    println!(
        "  nodes  recorded {rec_nodes:>13}  delivered {delivered_nodes:>13}  lost {:>9}",
        rec_nodes as i64 - delivered_nodes as i64
    );
    println!(
        "  loss only in crashes: {lost_total} runs in {crashes} SIGKILLs (each within one {} s checkpoint interval + {} ms slack: {})",
        CHECKPOINT.as_secs(),
        CHECKPOINT_SLACK.as_millis(),
        yes(crashes_ok)
    );
    println!(
        "  windows accepted {}  duplicates suppressed {}  faults injected {}  refused {}  still spooled {}",
        summary.reports, summary.duplicates, summary.faults_injected, summary.rejects, pending_left
    );

    println!();
    println!(
        "Reporter child resources (sampled every {} s; steady = from {} s of age)",
        SAMPLE_EVERY.as_secs(),
        WARM_UP.as_secs()
    );
    println!(
        "  {:>2} {:>7} {:>22} {:>10} {:>16} {:>8} {:>10} {:>6}",
        "#",
        "samples",
        "RSS steady first→last",
        "peak HWM",
        "fds first→last",
        "fds max",
        "WARN/ERROR",
        "flat"
    );
    let mut lasts: Vec<(u32, Sample)> = Vec::new();
    let mut peak_hwm = 0;
    for run in runs.iter().filter(|r| !r.samples.is_empty()) {
        let (first, last) = run.steady().expect("samples");
        let hwm = run.samples.iter().map(|s| s.hwm_kb).max().unwrap_or(0);
        let fd_max = run.samples.iter().map(|s| s.fds).max().unwrap_or(0);
        peak_hwm = peak_hwm.max(hwm);
        let flat = rss_flat(first.rss_kb, last.rss_kb) && fds_flat(first.fds, last.fds);
        ok &= flat;
        let (warn, error) = log_counts(&run.log);
        println!(
            "  {:>2} {:>7} {:>9.1} → {:>6.1} MiB {:>6.1} MiB {:>8} → {:>5} {:>8} {:>5}/{:<4} {:>6}",
            run.n,
            run.samples.len(),
            mib(first.rss_kb),
            mib(last.rss_kb),
            mib(hwm),
            first.fds,
            last.fds,
            fd_max,
            warn,
            error,
            yes(flat)
        );
        lasts.push((run.n, last));
    }
    if let Some(&(_, base)) = lasts.first() {
        let across = lasts
            .iter()
            .all(|(_, s)| rss_flat(base.rss_kb, s.rss_kb) && fds_flat(base.fds, s.fds));
        ok &= across;
        println!(
            "  across children (last samples): RSS {} MiB; fds {}: flat {}",
            lasts
                .iter()
                .map(|(_, s)| format!("{:.1}", mib(s.rss_kb)))
                .collect::<Vec<_>>()
                .join(", "),
            lasts
                .iter()
                .map(|(_, s)| s.fds.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            yes(across)
        );
    }
    println!(
        "  peak RSS (VmHWM) of any reporter child: {:.1} MiB; flat = grows by at most max(10%, 4 MiB), fds by at most 4",
        mib(peak_hwm)
    );
    println!();
    println!("{}", if ok { "SOAK PASSED" } else { "SOAK FAILED" });

    rt.block_on(sink.shutdown());
    if ok && !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("  spool and child logs kept in {}", work.display());
    }
    Ok(ok)
}
