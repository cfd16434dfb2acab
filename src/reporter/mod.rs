//! The reporter: closes windows on aligned boundaries and delivers each one
//! exactly once, through outages, restarts, crashes and shutdowns.
//! May import: the meter, `config`, `client`, `spool`, `wire`, `clock`,
//! `oplog`, tokio. Must not import: the sink or the CLI.
//!
//! ```text
//!  Meter ──rotate()──▶ closer ──push──▶ Spool (disk) ──next──▶ sender (one per destination) ──▶ Beacon
//!                        │  every few seconds: checkpoint of the open window
//! ```
//!
//! * **Write ahead.** A closed window is written to the [`Spool`] before any
//!   send, and removed only after a `2xx`. Windows go out oldest first;
//!   after an outage the backlog is merged into spans and paced (see
//!   `reporter/pacing.rs`).
//! * **Idempotency.** Each window's id, fixed when it opens, travels as the
//!   `Idempotency-Key` header on every attempt, so a server drops a
//!   duplicate (e.g. after a timeout where it had in fact accepted).
//! * **Retries.** Each answer is sorted by the client's status table and
//!   waited on by its [`RetryPolicy`]; a window the server refuses (another
//!   `4xx`) moves to `rejected/`, a refused credential keeps every window.
//! * **Destinations.** A license key reports to the Beacon, an API key to
//!   the auth endpoint; with both, each destination has its own queue and
//!   sender, and one failing never holds up the other.
//! * **Offline.** No network call of any kind; windows are still spooled
//!   for `beacon-meter spool export`.
//! * **Crashes.** The open window is checkpointed every few seconds (with
//!   the id it will carry); a restart turns the checkpoint into a closed
//!   window. A hard crash loses at most one checkpoint interval of counts,
//!   plus the time the last checkpoint write took to reach the disk (its
//!   `fsync`, milliseconds normally, seconds on a disk saturated by other
//!   writers), while the spool can be written (see below).
//! * **Shutdown.** [`Reporter::shutdown`] closes the open window, spools it,
//!   and delivers what it can before the deadline. The rest stays spooled.
//!   A reporter dropped without it closes and spools the open window in
//!   `Drop` (see `reporter/closer.rs`), so only a crash, which runs no
//!   `Drop`, falls back on the checkpoint.
//! * **Clock jumps.** Windows are cut by the wall clock
//!   ([`ReporterOptions::clock`]) but timed by a monotonic clock, so they
//!   keep closing every interval whatever the wall clock does, and never
//!   overlap or go backwards (see [`WindowClock`]): after a jump back, each
//!   window is 1 ms long until the wall clock catches up; a jump forward
//!   closes one long window. The open window is checkpointed either way.
//! * **Hanging server.** Every request has the configured timeout; a
//!   timed-out attempt is retried under the same key, and shutdown is never
//!   held past its deadline by a request in flight.
//! * **Panicking callbacks.** A gauge ([`crate::MeterBuilder::gauge`]) or
//!   dynamic tag ([`Tags::dynamic`]) that panics is left out of that one
//!   report (with a warning); the window itself is delivered as usual.
//!
//! # When the spool cannot be written
//!
//! Disk full, a filesystem remounted read-only, a spool directory that was
//! removed: recording is unaffected (the hot path never touches the disk)
//! and windows keep closing on time. A closed window the spool does not take
//! is kept in memory, oldest first, and counted in
//! [`ReporterStats::unspooled`]; every failed write is logged at `ERROR`
//! (`CANNOT WRITE THE SPOOL`, with the path and the cause). Each close and
//! each checkpoint (every `BEACON_CHECKPOINT_SECS`) tries again, oldest
//! first, so once the disk recovers the windows reach the spool, and then
//! the Beacon, in order, within one checkpoint interval.
//!
//! * **The bound.** At most [`ReporterOptions::memory_backlog`] windows
//!   (default 1024: three and a half days of 5-minute windows) are held,
//!   over all destinations. At the bound, the two oldest windows of a
//!   destination are merged into one wider window: counters summed, the
//!   later gauge values, the span of both. No count is dropped; only
//!   resolution in time is lost. If their tags differ (a dynamic tag whose
//!   value changed), they are merged under the later window's tags, with a
//!   warning, so the bound holds whatever the tags do. A window is at most
//!   64 KiB of JSON (the report size limit, logs included), so the backlog
//!   stays within about `memory_backlog` × 64 KiB (64 MiB by default) in the
//!   worst case, and is far smaller with few logs.
//! * **Crashes.** Checkpoints cannot be written either: a crash while the
//!   spool is unwritable loses the windows held in memory and the open
//!   window (the last checkpoint written before the fault is recovered).
//! * **Delivery** of windows already spooled goes on (reading and deleting
//!   need no free space). If a delivered window cannot be deleted
//!   (read-only filesystem), it is not sent again: its removal is retried
//!   with backoff, and later windows wait behind it.
//! * **Shutdown** keeps retrying the write until its deadline. Windows still
//!   in memory then are lost, and an `ERROR` says how many.

mod closer;
mod pacing;
mod sender;
mod stats;

pub use crate::client::RetryPolicy;
pub use stats::{DestinationStats, MetricsExportStats, ReporterStats};

use crate::client::{
    ApiKeyError, ApiKeyVerifier, Backoff, ClientError, ClientSettings, LicenseError,
};
use crate::client::{HttpClient, LicenseSettings, LicenseVerifier, RefreshGuard, RetryNow};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Endpoint};
use crate::meter::{AttachError, Meter};
use crate::oplog::LogBuffer;
use crate::spool::{Destination, Spool, SpoolError, SpoolLimits, slots};
use crate::wire::{ClockError, Credential, Tags, WindowClock};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Everything the reporter runs with: a [`Config`] and [`Tags`], and
/// defaults for the rest that a setter each can change.
///
/// ```
/// # use beacon_meter::{config::Config, reporter::ReporterOptions, wire::Tags};
/// let options = ReporterOptions::new(Config::builder().offline(true).build()?, Tags::new())
///     .memory_backlog(64);
/// # Ok::<(), beacon_meter::config::ConfigError>(())
/// ```
pub struct ReporterOptions {
    /// Credentials, endpoints, interval, timeouts, spool directory.
    config: Config,
    /// Tags of every report (platform tags, flags, custom and dynamic tags).
    tags: Tags,
    /// Operational log records drained into each report's `logs`.
    logs: Option<Arc<LogBuffer>>,
    /// Bound of the spool (per destination).
    spool_limits: SpoolLimits,
    retry: RetryPolicy,
    /// The wall clock windows are cut by.
    clock: Arc<dyn Clock>,
    memory_backlog: usize,
}

impl ReporterOptions {
    /// Options for `config` and `tags` (the tags from the environment are
    /// [`crate::config::tags_from_env`]), with no log buffer, the default
    /// spool limits and retry policy, the system clock, and a memory
    /// backlog of 1024 windows.
    pub fn new(config: Config, tags: Tags) -> ReporterOptions {
        ReporterOptions {
            config,
            tags,
            logs: None,
            spool_limits: SpoolLimits::default(),
            retry: RetryPolicy::default(),
            clock: Arc::new(SystemClock),
            memory_backlog: 1024,
        }
    }

    /// Drains the operational log records of `buffer` into each report's
    /// `logs` (see [`crate::oplog`]).
    pub fn logs(mut self, buffer: Arc<LogBuffer>) -> Self {
        self.logs = Some(buffer);
        self
    }

    /// The bound of the spool, per destination.
    pub fn spool_limits(mut self, limits: SpoolLimits) -> Self {
        self.spool_limits = limits;
        self
    }

    /// The retry policy of delivery and credential checks.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The wall clock windows are cut by (a [`crate::clock::ManualClock`]
    /// in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The largest number of closed windows kept in memory while the spool
    /// cannot be written (disk full, read-only); less than 2 counts as 2
    /// (merging needs two). Past it, the
    /// oldest two are merged (counts summed), so memory stays bounded and
    /// no count is dropped.
    pub fn memory_backlog(mut self, windows: usize) -> Self {
        self.memory_backlog = windows;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The spool directory: [`Config::spool_dir`], else [`Spool::default_dir`].
    pub fn spool_dir(&self) -> PathBuf {
        self.config
            .spool_dir()
            .map_or_else(Spool::default_dir, ToOwned::to_owned)
    }
}

/// Why the reporter could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReporterError {
    /// The spool could not be opened (locked by another process, not
    /// writable, ...). The message names the directory and the fix.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The HTTP client could not be built (bad CA file, insecure URL).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The report interval is not usable (a [`Config`] from its builder
    /// always has a usable one, so this is a bug if it is ever seen).
    #[error("the report interval: {0}")]
    Clock(#[from] ClockError),
    /// A blocking task (claiming the spool, recovering its checkpoint)
    /// panicked or was cancelled.
    #[error("the reporter's background task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The meter already has a reporter ([`AttachError::Attached`]), or an
    /// owner other than a reporter abandoned it ([`AttachError::Abandoned`],
    /// see [`Meter::attach`]).
    #[error("cannot start a reporter on this meter: {0}")]
    Meter(#[from] AttachError),
}

/// One destination: where its windows go and with which credential.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) dest: Destination,
    /// Where and how its windows are sent; `None` offline: spool only.
    pub(crate) send: Option<Endpoint>,
}

/// Lifecycle, watched by every task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Shutting down: the closer closes the open window and spools it
    /// (retrying while the spool cannot be written, until the deadline);
    /// senders go on delivering (their backoff waits cut short).
    Closing,
    /// The final window is spooled (or the closer ran out of time): senders
    /// deliver until their queue is empty, then exit.
    Draining,
    /// Deadline passed: stop at once, leaving the rest spooled.
    Stopped,
}

/// The state every task of one reporter shares.
pub(crate) struct ReporterState {
    pub(crate) spool: Arc<Spool>,
    pub(crate) stats: Mutex<ReporterStats>,
    /// Counts windows spooled; senders watch it to wake when idle.
    pub(crate) new_window: watch::Sender<u64>,
    /// Triggered by [`Reporter::retry_now`]: cuts senders' backoff waits.
    pub(crate) retry_now: RetryNow,
    pub(crate) phase: watch::Sender<Phase>,
    /// The org id from API-key verification, used as `tenant_id` when none
    /// is configured.
    pub(crate) org_id: Mutex<Option<uuid::Uuid>>,
    /// The license verifier, whose token (refreshed in the background)
    /// [`ReporterState::stats`] reads the expiry of.
    pub(crate) license: Mutex<Option<LicenseVerifier>>,
}

impl ReporterState {
    /// Runs a spool operation on a blocking thread.
    pub(crate) async fn spool<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Spool) -> Result<T, SpoolError> + Send + 'static,
    ) -> Result<T, SpoolError> {
        let spool = self.spool.clone();
        match tokio::task::spawn_blocking(move || f(&spool)).await {
            Ok(r) => r,
            Err(e) => Err(SpoolError::Io {
                path: self.spool.dir().to_owned(),
                action: "run a spool operation",
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// A snapshot of the stats, with the license token's current expiry.
    pub(crate) fn stats(&self) -> ReporterStats {
        let expiry = self
            .license
            .lock()
            .as_ref()
            .and_then(LicenseVerifier::cached);
        let mut stats = self.stats.lock().clone();
        stats.license_expires_at = expiry.map(|t| t.expires_at());
        stats
    }

    /// Re-reads a destination's pending count and size into the stats.
    pub(crate) async fn refresh_pending(self: &Arc<Self>, dest: Destination) {
        if let Ok((count, bytes)) = self.spool(move |s| s.stats(dest)).await {
            let mut st = self.stats.lock();
            let d = st.destination_mut(dest);
            d.pending = count;
            d.pending_bytes = bytes;
        }
    }
}

/// A running reporter.
///
/// Stop it with [`shutdown`](Self::shutdown): the final window is closed,
/// spooled and delivered within the deadline, and the meter is handed back
/// for the next reporter. Dropping it without `shutdown` stops its tasks
/// at once, closes the open window and writes it to the spool on the
/// dropping thread (a few small synchronous writes), warns, and frees the
/// meter: nothing is lost, and the next reporter on that spool (in this
/// process or the next) delivers it. A meter has one reporter at a time
/// ([`AttachError::Attached`]); see [`Meter::attach`].
pub struct Reporter {
    shared: Arc<ReporterState>,
    closer: Option<JoinHandle<()>>,
    /// What `Drop` closes the open window with (`None` only while
    /// [`Reporter::spawn`] builds the reporter).
    open: Option<Arc<closer::CloserCore>>,
    /// Dropping a `JoinSet` aborts its tasks.
    senders: JoinSet<()>,
    /// The credential checks; aborted with the reporter.
    verifiers: JoinSet<()>,
    /// The license token's refresh task, stopped when dropped.
    refresh: Option<RefreshGuard>,
    /// The operational metrics exporter (aborted with the reporter), and
    /// what tells it to make its last export.
    exporter: JoinSet<()>,
    last_export: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Reporter {
    /// Claims a slot of the spool root ([`slots::claim`]: one slot per live
    /// process, adopting what stopped processes left), recovers the slot's
    /// checkpoint, starts credential verification in the background, and
    /// starts closing windows of `meter` on the configured interval and
    /// delivering them.
    ///
    /// Must be called inside a tokio runtime. Fails with
    /// [`ReporterError::Meter`] if `meter` already has a reporter or lost
    /// its last one without `shutdown`.
    pub async fn spawn(meter: Meter, options: ReporterOptions) -> Result<Reporter, ReporterError> {
        // First: a refused meter must not open (and lock) the spool. If a
        // later step fails, the attachment drops unused and frees the meter.
        let meter = meter.attach()?;
        let (spool, recovered) = open_spool(&options).await?;
        let config = &options.config;
        let offline = config.is_offline();
        let routes = routes(config);
        let dests: Vec<Destination> = routes.iter().map(|r| r.dest).collect();
        let shared = Arc::new(ReporterState {
            spool,
            stats: Mutex::new(ReporterStats::new(
                offline,
                dests.iter().copied(),
                recovered,
            )),
            new_window: watch::channel(0).0,
            retry_now: RetryNow::new(),
            phase: watch::channel(Phase::Running).0,
            org_id: Mutex::new(None),
            license: Mutex::new(None),
        });
        for &d in &dests {
            shared.refresh_pending(d).await;
        }
        let mut reporter = Reporter {
            shared,
            closer: None,
            open: None,
            senders: JoinSet::new(),
            verifiers: JoinSet::new(),
            refresh: None,
            exporter: JoinSet::new(),
            last_export: None,
        };
        if !offline && routes.iter().any(|r| r.send.is_some()) {
            reporter.start_delivery(&options, routes)?;
        } else if !offline {
            // Not offline and no route sends: `routes` found no credential
            // (an offline license without an API key is offline). Said
            // once, at start: without it a reporter would spool forever in
            // silence.
            tracing::warn!(
                spool = %reporter.shared.spool.dir().display(),
                "beacon-meter reporter has no credential: windows are spooled and never \
                 sent; set {} (an online lcl_ license) or {}, or set BEACON_OFFLINE=true \
                 if spooling for export is what you want",
                crate::config::ENV_LICENSE_KEY,
                crate::config::API_KEY_VARS[0],
            );
        }
        reporter.start_metrics_export(&options)?;
        let window_clock = WindowClock::new(options.config.interval(), options.clock.now())?;
        let shared = reporter.shared.clone();
        let closer = closer::Closer::new(shared.clone(), meter, dests, window_clock, options);
        reporter.open = Some(closer.core());
        reporter.closer = Some(tokio::spawn(closer.run()));
        // Read before the event: a guard inside the macro would be held
        // while a subscriber (the Python binding's hands records to
        // Python, under the GIL) handles it.
        let destinations = shared.stats.lock().destinations.len();
        tracing::info!(
            offline,
            destinations,
            spool = %shared.spool.dir().display(),
            "beacon-meter reporter started"
        );
        Ok(reporter)
    }

    /// Starts the credential checks and a sender per online route.
    fn start_delivery(
        &mut self,
        options: &ReporterOptions,
        routes: Vec<Route>,
    ) -> Result<(), ReporterError> {
        let config = &options.config;
        let http = http_client(config)?;
        let shared = &self.shared;
        for route in routes {
            let Some(endpoint) = &route.send else {
                continue;
            };
            match &endpoint.credential {
                // Only a license that is sent is verified: an offline
                // license (reporting by API key alone) never leaves the
                // process.
                Credential::License(key) => {
                    let settings = LicenseSettings {
                        retry: options.retry,
                        ..LicenseSettings::default()
                    };
                    let v = LicenseVerifier::new(
                        http.clone(),
                        &endpoint.verify_url,
                        key.clone(),
                        settings,
                    )?;
                    self.refresh = Some(v.spawn_refresh());
                    *shared.license.lock() = Some(v.clone());
                    self.verifiers.spawn(verify_license(v, shared.clone()));
                }
                Credential::ApiKey(key) => {
                    let v = ApiKeyVerifier::new(http.clone(), &endpoint.verify_url, key.clone())?;
                    let backoff = Backoff::new(options.retry, &shared.retry_now);
                    self.verifiers
                        .spawn(verify_api_key(v, shared.clone(), backoff));
                }
            }
            let sender = sender::Sender::new(shared.clone(), route, http.clone(), options.retry);
            self.senders.spawn(sender.run());
        }
        Ok(())
    }

    /// Starts the operational metrics export if the configuration turns it
    /// on, by the platform's rules: never offline, only with a license key
    /// (a warning otherwise). See [`crate::otlp`].
    fn start_metrics_export(&mut self, options: &ReporterOptions) -> Result<(), ReporterError> {
        let config = &options.config;
        let Some(export) = config.metrics_export() else {
            return Ok(());
        };
        if config.is_offline() {
            return Ok(());
        }
        let Some(license) = config.license_key() else {
            tracing::warn!(
                "{} is on, but operational metrics need a license key ({}), as the \
                 platform's do: none are exported",
                crate::config::ENV_METRICS_ENABLED,
                crate::config::ENV_LICENSE_KEY,
            );
            return Ok(());
        };
        #[cfg(feature = "otlp")]
        {
            let http = http_client(config)?;
            let endpoint = crate::urls::display(&export.endpoint);
            self.shared.stats.lock().metrics_export = Some(MetricsExportStats::new(endpoint));
            let exporter = crate::otlp::export::Exporter {
                shared: self.shared.clone(),
                http,
                url: export.endpoint.clone(),
                license: license.clone(),
                interval: export.interval,
                instance_id: export.instance_id.clone(),
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.last_export = Some(tx);
            self.exporter.spawn(exporter.run(rx));
        }
        #[cfg(not(feature = "otlp"))]
        {
            let _ = (export, license);
            tracing::warn!(
                "{} is on, but this build of beacon-meter has no `otlp` feature: no \
                 operational metrics are exported",
                crate::config::ENV_METRICS_ENABLED,
            );
        }
        Ok(())
    }

    /// A snapshot of the reporter's counters. Cheap; no I/O.
    pub fn stats(&self) -> ReporterStats {
        self.shared.stats()
    }

    /// The spool directory in use: this process's slot (`<root>/slot-N`).
    pub fn spool_dir(&self) -> PathBuf {
        self.shared.spool.dir().to_owned()
    }

    /// Cuts every backoff wait short (senders, the API-key check and the
    /// license refresh), e.g. after an operator fixed a refused credential
    /// on the server side.
    pub fn retry_now(&self) {
        self.shared.retry_now.trigger();
        if let Some(r) = &self.refresh {
            r.retry_now();
        }
    }

    /// Closes the open window now, spools it, and delivers pending windows
    /// until the spool is empty or `deadline` has passed. Whatever is left
    /// stays spooled for the next start; nothing is lost. Returns the final
    /// stats.
    pub async fn shutdown(mut self, deadline: Duration) -> ReporterStats {
        let end = tokio::time::Instant::now() + deadline;
        self.shared.phase.send_replace(Phase::Closing);
        let mut closer = self.closer.take();
        if let Some(c) = &mut closer {
            // The closer's last act is spooling the final window; give it
            // the whole deadline (it only does local disk I/O, but retries
            // while the spool cannot be written).
            if tokio::time::timeout_at(end, c).await.is_ok() {
                closer = None;
            }
        }
        // Only now may a sender that finds its queue empty stop: before the
        // final window is spooled, an empty queue does not mean done.
        self.shared.phase.send_replace(Phase::Draining);
        self.shared.new_window.send_modify(|n| *n += 1);
        let senders = &mut self.senders;
        let drained =
            tokio::time::timeout_at(end, async { while senders.join_next().await.is_some() {} });
        let drained = drained.await.is_ok();
        self.shared.phase.send_replace(Phase::Stopped);
        if !drained {
            // Give the senders a moment to record an interrupted attempt.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(c) = closer {
            // Past the deadline with windows the spool would not take: the
            // closer logs what it could not write, and ends.
            let _ = tokio::time::timeout(Duration::from_millis(500), c).await;
        }
        // Collected first: a guard in the `for` expression would live through
        // the loop, and `refresh_pending` locks the stats again.
        let dests: Vec<Destination> = {
            let stats = self.shared.stats.lock();
            stats.destinations.iter().map(|d| d.destination).collect()
        };
        for d in dests {
            self.shared.refresh_pending(d).await;
        }
        if let Some(last) = self.last_export.take() {
            // After the final window's delivery, so that the last export
            // carries the final stats.
            let _ = last.send(());
            #[cfg(feature = "otlp")]
            let wait = crate::otlp::FINAL_EXPORT_TIMEOUT + Duration::from_millis(100);
            #[cfg(not(feature = "otlp"))]
            let wait = Duration::ZERO;
            let _ = tokio::time::timeout(wait, self.exporter.join_next()).await;
        }
        let stats = self.stats();
        tracing::info!(
            sent = stats.windows_sent,
            pending = stats.pending(),
            "beacon-meter reporter stopped"
        );
        stats
    }
}

impl Drop for Reporter {
    /// Stops every task (the `JoinSet`s and the refresh guard abort theirs
    /// as they drop) and, if [`Reporter::shutdown`] did not hand the
    /// windows over, closes the open window and spools it on this thread,
    /// warning that it was dropped (`CloserCore::save_on_drop` in
    /// `reporter/closer.rs`).
    fn drop(&mut self) {
        // First: the closer's next step then finds the windows handed over.
        if let Some(open) = &self.open {
            open.save_on_drop();
        }
        self.shared.phase.send_replace(Phase::Stopped);
        if let Some(c) = &self.closer {
            c.abort();
        }
    }
}

/// The HTTP client of `config`'s requests: its timeout (connecting within
/// at most 10 s of it) and extra CA certificates.
fn http_client(config: &Config) -> Result<HttpClient, ClientError> {
    HttpClient::new(
        ClientSettings::default()
            .timeout(config.timeout())
            .connect_timeout(config.timeout().min(Duration::from_secs(10)))
            .ca_cert_pem_opt(config.ca_cert().map(|c| c.pem.clone())),
    )
}

/// Claims a slot of the spool root and recovers its checkpoint: the spool
/// and how many windows were recovered.
async fn open_spool(options: &ReporterOptions) -> Result<(Arc<Spool>, usize), ReporterError> {
    let (dir, limits) = (options.spool_dir(), options.spool_limits);
    let claim = tokio::task::spawn_blocking(move || slots::claim(&dir, limits));
    let spool = Arc::new(claim.await.map_err(ReporterError::Task)??.spool);
    let s = spool.clone();
    let recovered = tokio::task::spawn_blocking(move || s.recover_checkpoint());
    let recovered = recovered.await.map_err(ReporterError::Task)??;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            spool = %spool.dir().display(),
            "recovered the open window of a run that ended without shutdown; it will be delivered"
        );
    }
    Ok((spool, recovered))
}

/// The destinations `config` reports to. Offline, windows are still
/// spooled for export: under the credential's destination, or the Beacon's
/// if there is none.
pub(crate) fn routes(config: &Config) -> Vec<Route> {
    let online = config.credentials();
    let send = !online.is_empty();
    let endpoints = if send {
        online
    } else {
        config.every_endpoint()
    };
    let mut routes: Vec<Route> = endpoints
        .into_iter()
        .map(|e| Route {
            dest: e.destination(),
            send: send.then_some(e),
        })
        .collect();
    if routes.is_empty() {
        routes.push(Route {
            dest: Destination::Beacon,
            send: None,
        });
    }
    routes
}

async fn verify_license(v: LicenseVerifier, shared: Arc<ReporterState>) {
    let text = match v.verify().await {
        Ok(token) => {
            let expires_at = token.expires_at();
            tracing::info!(%expires_at, "license verified");
            format!("valid until {expires_at}")
        }
        Err(e @ LicenseError::Rejected { .. }) => {
            tracing::error!(error = %e, "the Beacon REFUSED the license key: usage is still spooled; fix LANGGRAPH_CLOUD_LICENSE_KEY and restart");
            e.to_string()
        }
        Err(e) => {
            tracing::warn!(error = %e, "license verification failed; the refresh task retries");
            e.to_string()
        }
    };
    shared.stats.lock().license = Some(text);
}

/// Verifies the API key until it is verified or rejected, retrying with
/// `backoff` (cut short by `retry_now`).
async fn verify_api_key(v: ApiKeyVerifier, shared: Arc<ReporterState>, mut backoff: Backoff) {
    loop {
        backoff.attempting();
        let e = match v.verify().await {
            Ok(org) => {
                tracing::info!(org_id = %org.org_id, "API key verified");
                *shared.org_id.lock() = Some(org.org_id);
                shared.stats.lock().api_key = Some(format!("valid, org {}", org.org_id));
                return;
            }
            Err(e) => e,
        };
        shared.stats.lock().api_key = Some(e.to_string());
        if matches!(e, ApiKeyError::Rejected { .. }) {
            tracing::error!(error = %e, "the auth endpoint REFUSED the API key: usage is still spooled; fix LANGSMITH_API_KEY and restart");
            return;
        }
        let wait = backoff.retry(e.retry_after());
        tracing::warn!(error = %e, retry_in = ?wait, "API-key verification failed; will retry");
        backoff.sleep(wait, std::future::pending::<()>()).await;
    }
}
