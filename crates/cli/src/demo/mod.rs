//! The whole pipeline in one call, behind `beacon-meter demo` and the soak
//! test: a synthetic graph executor ([`executor`]) records runs and nodes
//! into a [`Meter`]; the [`Reporter`] cuts windows and delivers them to an
//! embedded local Beacon ([`beacon_meter_sink`]) that injects faults (503s,
//! dropped connections, answers lost after acceptance), or to an external
//! endpoint. At the end the reporter shuts down gracefully and the
//! [`DemoOutcome`] reconciles what was recorded with what the Beacon
//! counted. Rendering it is the CLI's job.

pub mod executor;

use beacon_meter::config::Config;
use beacon_meter::meter::{Meter, NODES, RUNS};
use beacon_meter::reporter::{Reporter, ReporterOptions, ReporterStats, RetryPolicy};
use beacon_meter::spool::{Destination, SpoolLimits, slots};
use beacon_meter::wire::{Plan, Tags};
use beacon_meter_sink::{Faults, SinkConfig, SinkHandle};
use executor::{ExecutorTotals, Live, run_executor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long shutdown may take to deliver what is pending.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// Counts per measure name.
pub type Counts = BTreeMap<String, u64>;

/// Why the demo could not run or did not reconcile.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded Beacon could not start.
    #[error("could not start the embedded Beacon: {0}")]
    Sink(#[from] beacon_meter_sink::SinkError),
    /// The configuration built for the demo is invalid.
    #[error(transparent)]
    Config(#[from] beacon_meter::config::ConfigError),
    /// The reporter could not start (e.g. the spool is locked).
    #[error(transparent)]
    Reporter(#[from] beacon_meter::reporter::ReporterError),
    /// The spool given with --spool could not be read.
    #[error(transparent)]
    Spool(#[from] beacon_meter::spool::SpoolError),
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

/// How to run the demo.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Worker threads (default: the available parallelism).
    pub threads: Option<usize>,
    /// The report interval, in seconds.
    pub interval: u64,
    /// An external Beacon base URL instead of the embedded one.
    pub endpoint: Option<String>,
    /// The spool directory (default: a fresh temporary one, removed at the
    /// end if everything was delivered).
    pub spool: Option<PathBuf>,
    /// Rewrite a JSON summary here at least once a second and at exit.
    pub summary_json: Option<PathBuf>,
}

/// Where the demo stands, told every 100 ms while it runs.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// The executor runs: `elapsed` so far, `runs` recorded, and the
    /// reporter's state.
    Running {
        /// Time since the executor started.
        elapsed: Duration,
        /// Runs recorded so far.
        runs: u64,
        /// The reporter's state.
        stats: &'a ReporterStats,
    },
    /// The executor stopped; the reporter delivers what is pending.
    ShuttingDown,
}

/// A started demo: the Beacon (embedded or not), the reporter and its
/// spool, ready to [`run`](Demo::run).
pub struct Demo {
    /// The worker threads the executor will run.
    pub threads: usize,
    /// The Beacon base URL reports go to.
    pub endpoint: String,
    /// The spool directory.
    pub spool_dir: PathBuf,
    own_spool: bool,
    carried: Counts,
    summary_json: Option<PathBuf>,
    sink: Option<SinkHandle>,
    meter: Meter,
    reporter: Reporter,
}

/// What the demo found.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// What this run recorded.
    pub recorded: Counts,
    /// What earlier runs left pending in the spool (delivered now).
    pub carried: Counts,
    /// What the Beacon counted.
    pub delivered: Counts,
    /// True if delivered = recorded + carried, for runs and nodes.
    pub reconciled: bool,
    /// The reporter's final state.
    pub stats: ReporterStats,
    /// Duplicates the embedded Beacon suppressed (`None` for an external
    /// endpoint).
    pub duplicates: Option<u64>,
    /// What the executor did, metered and not.
    pub totals: ExecutorTotals,
    /// The spool directory.
    pub spool_dir: PathBuf,
}

impl DemoOutcome {
    /// [`DemoError::Mismatch`] unless the counts reconcile.
    pub fn check(&self) -> Result<(), DemoError> {
        if self.reconciled {
            return Ok(());
        }
        Err(DemoError::Mismatch {
            pending: self.stats.pending(),
            spool: self.spool_dir.display().to_string(),
        })
    }
}

impl Demo {
    /// Starts the Beacon (unless `endpoint` names one) and the reporter.
    pub async fn start(options: DemoOptions) -> Result<Demo, DemoError> {
        let (spool_dir, own_spool) = match options.spool {
            Some(d) => (d, false),
            None => {
                let name = format!("beacon-meter-demo-{}", uuid::Uuid::new_v4());
                (std::env::temp_dir().join(name), true)
            }
        };
        let carried = carried_over(&spool_dir)?;
        let (sink, endpoint) = match options.endpoint {
            Some(url) => (None, url),
            None => {
                let sink = demo_sink_config().start().await?;
                let url = sink.base_url().to_string();
                (Some(sink), url)
            }
        };
        let license = std::env::var("LANGGRAPH_CLOUD_LICENSE_KEY")
            .ok()
            .filter(|k| sink.is_none() && !k.trim().is_empty())
            .unwrap_or_else(|| format!("lcl_demo_{}", uuid::Uuid::new_v4().simple()));
        let config = demo_config(&endpoint, &license, options.interval, &spool_dir)?;
        let meter = Meter::new();
        // Snappier than production (1 s .. 5 min, 15 min after a refused key),
        // so a 10-second demo shows retries and recovers within it.
        let reporter_options = ReporterOptions::new(config, Tags::new().plan(Plan::Enterprise))
            .retry(RetryPolicy {
                base: Duration::from_millis(200),
                cap: Duration::from_secs(2),
                credential_backoff: Duration::from_secs(5),
            });
        let reporter = Reporter::spawn(meter.clone(), reporter_options).await?;
        let threads = options
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        Ok(Demo {
            threads,
            endpoint,
            spool_dir,
            own_spool,
            carried,
            summary_json: options.summary_json,
            sink,
            meter,
            reporter,
        })
    }

    /// True if the Beacon is the embedded one (with its faults).
    pub fn embedded(&self) -> bool {
        self.sink.is_some()
    }

    /// Runs the executor for `duration`, then shuts the reporter down and
    /// reconciles; `progress` is told where the demo stands.
    pub async fn run(
        self,
        duration: Duration,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<DemoOutcome, DemoError> {
        let live = Arc::new(Live::default());
        let stop = Arc::new(AtomicBool::new(false));
        let executor = {
            let (meter, live, stop) = (self.meter.clone(), live.clone(), stop.clone());
            let threads = self.threads;
            std::thread::spawn(move || run_executor(meter, threads, live, stop))
        };
        let started = Instant::now();
        let mut last_write = Instant::now() - Duration::from_secs(2);
        while started.elapsed() < duration {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let stats = self.reporter.stats();
            progress(Progress::Running {
                elapsed: started.elapsed(),
                runs: live.runs.load(Ordering::Relaxed),
                stats: &stats,
            });
            if last_write.elapsed() >= Duration::from_millis(500) {
                let (path, sink) = (self.summary_json.as_deref(), self.sink.as_ref());
                write_summary(path, &self.carried, sink, &live, &stats, false)?;
                last_write = Instant::now();
            }
        }
        stop.store(true, Ordering::Relaxed);
        let totals = tokio::task::spawn_blocking(move || executor.join())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .map_err(|_| std::io::Error::other("an executor thread panicked"))?;
        progress(Progress::ShuttingDown);
        self.finish(&live, totals).await
    }

    /// Shuts the reporter down, writes the last summary, reconciles, stops
    /// the sink and removes a spool of its own that is empty.
    async fn finish(self, live: &Live, totals: ExecutorTotals) -> Result<DemoOutcome, DemoError> {
        let stats = self.reporter.shutdown(SHUTDOWN_DEADLINE).await;
        let duplicates = self.sink.as_ref().map(|s| s.summary().duplicates);
        let delivered = delivered(self.sink.as_ref(), &stats);
        let (path, sink) = (self.summary_json.as_deref(), self.sink.as_ref());
        write_summary(path, &self.carried, sink, live, &stats, true)?;
        let expected = sum(recorded(live), &self.carried);
        let reconciled = [RUNS, NODES]
            .iter()
            .all(|m| expected.get(*m) == delivered.get(*m));
        if let Some(s) = self.sink {
            s.shutdown().await;
        }
        if reconciled && self.own_spool && stats.pending() == 0 {
            let _ = std::fs::remove_dir_all(&self.spool_dir);
        }
        Ok(DemoOutcome {
            recorded: recorded(live),
            carried: self.carried,
            delivered,
            reconciled,
            stats,
            duplicates,
            totals,
            spool_dir: self.spool_dir,
        })
    }
}

/// Rewrites the `--summary-json` file at `path`, if one is wanted: what was
/// recorded (with what was `carried` over), delivered and is pending.
fn write_summary(
    path: Option<&Path>,
    carried: &Counts,
    sink: Option<&SinkHandle>,
    live: &Live,
    stats: &ReporterStats,
    finished: bool,
) -> std::io::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let doc = SummaryJson {
        recorded: sum(recorded(live), carried),
        delivered: delivered(sink, stats),
        windows_delivered: stats.windows_sent,
        pending: stats.pending(),
        retries: stats.retries,
        finished,
    };
    let tmp: PathBuf = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The `--summary-json` document.
#[derive(Debug, Serialize)]
struct SummaryJson {
    recorded: Counts,
    delivered: Counts,
    windows_delivered: u64,
    pending: usize,
    retries: u64,
    finished: bool,
}

/// Counter totals of the windows already pending in `dir` (from an earlier
/// run, including a crashed run's open window, recovered here exactly as the
/// reporter would): the demo delivers them too, so they are expected at the
/// Beacon. The spool is locked only for this and released before the
/// reporter starts.
fn carried_over(dir: &Path) -> Result<Counts, DemoError> {
    let mut out = Counts::new();
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
    SinkConfig::ephemeral().faults(Faults {
        failure_rate: 0.15,
        retry_after_secs: 1,
        drop_rate: 0.05,
        accept_then_drop_rate: 0.05,
        seed: uuid::Uuid::new_v4().as_u128() as u64,
        ..Faults::default()
    })
}

/// The demo's configuration: the process environment with the endpoint,
/// license, interval and spool of this demo laid over it.
fn demo_config(
    endpoint: &str,
    license: &str,
    interval: u64,
    spool: &Path,
) -> Result<Config, beacon_meter::config::ConfigError> {
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

fn recorded(live: &Live) -> Counts {
    BTreeMap::from([
        (RUNS.to_owned(), live.runs.load(Ordering::Relaxed)),
        (NODES.to_owned(), live.nodes.load(Ordering::Relaxed)),
    ])
}

/// What the Beacon counted: the embedded sink's deduplicated totals, or,
/// against an external endpoint, the totals of the windows it acknowledged.
fn delivered(sink: Option<&SinkHandle>, stats: &ReporterStats) -> Counts {
    let mut out = match sink {
        Some(s) => s.summary().measures,
        None => stats.delivered(),
    };
    for m in [RUNS, NODES] {
        out.entry(m.to_owned()).or_default();
    }
    out
}

/// `a` plus `b`, per measure.
fn sum(mut a: Counts, b: &Counts) -> Counts {
    for (k, v) in b {
        *a.entry(k.clone()).or_default() += v;
    }
    a
}
