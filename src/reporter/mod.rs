//! The reporter: closes windows on aligned boundaries and delivers each one
//! exactly once, through outages, restarts, crashes and shutdowns.
//!
//! ```text
//!  Meter ──rotate()──▶ closer ──push──▶ Spool (disk) ──oldest──▶ sender (one per destination) ──▶ Beacon
//!                        │  every few seconds: checkpoint of the open window
//! ```
//!
//! * **Write ahead.** A closed window is written to the [`Spool`] before any
//!   send, and removed only after a `2xx`. Windows go out oldest first and,
//!   after an outage, back to back.
//! * **Idempotency.** Each window's id, fixed when it opens, travels as the
//!   `Idempotency-Key` header on every attempt, so a server drops a
//!   duplicate (e.g. after a timeout where it had in fact accepted).
//! * **Retries.** Network errors, timeouts, `408`, `429` and `5xx` back off
//!   exponentially with full jitter (1 s up to 5 min), honouring
//!   `Retry-After`. `401`/`403` keep the windows and back off long (15 min)
//!   with a loud error. Any other `4xx` moves that window to `rejected/`.
//! * **Destinations.** A license key reports to the Beacon, an API key to
//!   the auth endpoint; with both, each destination has its own queue and
//!   sender, and one failing never holds up the other.
//! * **Offline.** No network call of any kind; windows are still spooled
//!   for `beacon-meter spool export`.
//! * **Crashes.** The open window is checkpointed every few seconds (with
//!   the id it will carry); a restart turns the checkpoint into a closed
//!   window. A hard crash loses at most one checkpoint interval of counts
//!   (while the spool can be written; see below).
//! * **Shutdown.** [`Reporter::shutdown`] closes the open window, spools it,
//!   and delivers what it can before the deadline. The rest stays spooled.
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

pub use stats::{DestinationStats, ReporterStats};

use crate::client::{ApiKeyVerifier, ClientError, ClientSettings, HttpClient, LicenseSettings};
use crate::client::{LicenseVerifier, RefreshGuard, Verification};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::meter::{AttachError, Meter};
use crate::oplog::LogBuffer;
use crate::spool::{Destination, Spool, SpoolError, SpoolLimits, slots};
use crate::wire::{ClockError, Credential, Tags, WindowClock};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff ceiling (default 1 s); doubles per consecutive failure.
    pub base: Duration,
    /// Largest backoff (default 5 min). Also caps a server's `Retry-After`.
    pub cap: Duration,
    /// Wait after `401`/`403`, when the credential was refused, and after
    /// `404`/`405`, when nothing takes reports at the URL (wrong
    /// `BEACON_WIRE` or base URL); default 15 min. The windows stay
    /// spooled; [`Reporter::retry_now`] cuts it.
    pub credential_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            credential_backoff: Duration::from_secs(900),
        }
    }
}

/// Everything the reporter runs with. Start from
/// [`ReporterOptions::new`] and adjust fields.
pub struct ReporterOptions {
    /// Credentials, endpoints, interval, timeouts, spool directory.
    pub config: Config,
    /// Tags of every report (platform tags, flags, custom and dynamic tags).
    pub tags: Tags,
    /// Operational log records drained into each report's `logs`.
    pub logs: Option<Arc<LogBuffer>>,
    /// Bound of the spool (per destination).
    pub spool_limits: SpoolLimits,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// The wall clock windows are cut by (injectable for tests).
    pub clock: Arc<dyn Clock>,
    /// Largest number of closed windows kept in memory while the spool
    /// cannot be written (disk full, read-only). Past it, the oldest two
    /// are merged (counts summed), so memory stays bounded and no count is
    /// dropped. Default 1024.
    pub memory_backlog: usize,
}

impl ReporterOptions {
    /// Options for `config`, with the tags from the environment left to the
    /// caller (`tags`), default limits, retry policy and the system clock.
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

    /// The spool directory: `config.spool_dir`, else [`Spool::default_dir`].
    pub fn spool_dir(&self) -> PathBuf {
        self.config
            .spool_dir
            .clone()
            .unwrap_or_else(Spool::default_dir)
    }
}

/// Why the reporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReporterError {
    /// The spool could not be opened (locked by another process, not
    /// writable, ...). The message names the directory and the fix.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The HTTP client could not be built (bad CA file, insecure URL).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The report interval is not usable.
    #[error("BEACON_INTERVAL_SECS: {0}")]
    Clock(#[from] ClockError),
    /// A blocking task failed to run.
    #[error("the reporter's background task failed: {0}")]
    Task(String),
    /// The meter already has a reporter, or its last one was dropped
    /// without [`Reporter::shutdown`] (see [`Reporter`]).
    #[error("cannot start a reporter on this meter: {0}")]
    Meter(#[from] AttachError),
}

/// One destination: where its windows go and with which credential.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) dest: Destination,
    /// Where and how its windows are sent; `None` offline: spool only.
    pub(crate) send: Option<crate::config::Destination>,
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

/// State shared by the reporter's tasks.
pub(crate) struct Shared {
    pub(crate) spool: Arc<Spool>,
    pub(crate) stats: Mutex<ReporterStats>,
    /// Counts windows spooled; senders watch it to wake when idle.
    pub(crate) new_window: watch::Sender<u64>,
    /// Bumped by [`Reporter::retry_now`]: cuts senders' backoff waits. A
    /// watch, not a `Notify`, so that a call while a sender is busy with an
    /// attempt (not yet waiting) still cuts the wait that follows it.
    pub(crate) retry_now: watch::Sender<u64>,
    pub(crate) phase: watch::Sender<Phase>,
    /// The org id from API-key verification, used as `tenant_id` when none
    /// is configured.
    pub(crate) org_id: Mutex<Option<uuid::Uuid>>,
}

impl Shared {
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
/// Dropping it without [`shutdown`](Self::shutdown) stops its tasks as a
/// crash would: what was spooled is delivered by the next start, and the
/// open window survives only as its last checkpoint. The counts recorded
/// since that window opened are then in the checkpoint *and* still in the
/// meter, so [`spawn`](Self::spawn) refuses that meter from then on
/// ([`ReporterError::Meter`] with [`AttachError::Abandoned`]): start the
/// next reporter with a new meter, as a restarted process does, or call
/// `shutdown` to hand a meter over. A meter has one reporter at a time
/// ([`AttachError::Attached`]); see [`Meter::attach`].
pub struct Reporter {
    shared: Arc<Shared>,
    closer: Option<JoinHandle<()>>,
    senders: Vec<JoinHandle<()>>,
    _verifiers: Vec<JoinHandle<()>>,
    _refresh: Option<RefreshGuard>,
}

impl Reporter {
    /// Claims a slot of the spool root ([`slots::claim`]: one slot per live
    /// process, adopting what stopped processes left), recovers the slot's
    /// checkpoint, starts
    /// credential verification in the background, and starts closing
    /// windows of `meter` on the configured interval and delivering them.
    ///
    /// Must be called inside a tokio runtime. Fails with
    /// [`ReporterError::Meter`] if `meter` already has a reporter or lost
    /// its last one without `shutdown`.
    pub async fn spawn(meter: Meter, options: ReporterOptions) -> Result<Reporter, ReporterError> {
        // First: a refused meter must not open (and lock) the spool. If a
        // later step fails, the attachment drops unused and frees the meter.
        let meter = meter.attach()?;
        let dir = options.spool_dir();
        let limits = options.spool_limits;
        let claim = tokio::task::spawn_blocking(move || slots::claim(&dir, limits))
            .await
            .map_err(|e| ReporterError::Task(e.to_string()))??;
        let spool = Arc::new(claim.spool);
        let recovered = {
            let s = spool.clone();
            tokio::task::spawn_blocking(move || s.recover_checkpoint())
                .await
                .map_err(|e| ReporterError::Task(e.to_string()))??
        };
        if recovered > 0 {
            tracing::warn!(
                recovered,
                spool = %spool.dir().display(),
                "recovered the open window of a run that ended without shutdown; it will be delivered"
            );
        }

        let config = &options.config;
        let offline = config.is_offline();
        let routes = routes(config);
        let (phase, _) = watch::channel(Phase::Running);
        let shared = Arc::new(Shared {
            spool,
            stats: Mutex::new(ReporterStats::new(
                offline,
                routes.iter().map(|r| r.dest),
                recovered,
            )),
            new_window: watch::channel(0).0,
            retry_now: watch::channel(0).0,
            phase,
            org_id: Mutex::new(None),
        });
        for r in &routes {
            shared.refresh_pending(r.dest).await;
        }

        let mut verifiers = Vec::new();
        let mut refresh = None;
        let mut senders = Vec::new();
        if !offline && routes.iter().any(|r| r.send.is_some()) {
            let http = HttpClient::new(ClientSettings {
                timeout: config.timeout,
                connect_timeout: config.timeout.min(Duration::from_secs(10)),
                ca_cert_pem: config.ca_cert.as_ref().map(|c| c.pem.clone()),
                ..ClientSettings::default()
            })?;
            // Only a license that is sent is verified: an offline license
            // (reporting by API key alone) never leaves the process.
            let sent_license = routes.iter().find_map(|r| match &r.send {
                Some(d) => match &d.credential {
                    Credential::License(key) => Some(key),
                    Credential::ApiKey(_) => None,
                },
                None => None,
            });
            if let Some(key) = sent_license {
                let v = LicenseVerifier::new(
                    http.clone(),
                    &config.beacon_url,
                    key.clone(),
                    LicenseSettings::default(),
                )?;
                refresh = Some(v.spawn_refresh());
                verifiers.push(tokio::spawn(verify_license(v, shared.clone())));
            }
            if let Some(key) = &config.api_key {
                let v = ApiKeyVerifier::new(http.clone(), &config.auth_endpoint, key.clone())?;
                verifiers.push(tokio::spawn(verify_api_key(v, shared.clone())));
            }
            for route in routes.iter().filter(|r| r.send.is_some()) {
                senders.push(tokio::spawn(
                    sender::Sender::new(shared.clone(), route.clone(), http.clone(), options.retry)
                        .run(),
                ));
            }
        }

        let clock = options.clock.clone();
        let window_clock = WindowClock::new(config.interval, clock.now())?;
        let closer = closer::Closer::new(
            shared.clone(),
            meter,
            routes.iter().map(|r| r.dest).collect(),
            window_clock,
            options,
        );
        tracing::info!(
            offline,
            destinations = routes.len(),
            spool = %shared.spool.dir().display(),
            "beacon-meter reporter started"
        );
        Ok(Reporter {
            shared,
            closer: Some(tokio::spawn(closer.run())),
            senders,
            _verifiers: verifiers,
            _refresh: refresh,
        })
    }

    /// A snapshot of the reporter's counters. Cheap; no I/O.
    pub fn stats(&self) -> ReporterStats {
        self.shared.stats.lock().clone()
    }

    /// The spool directory in use: this process's slot (`<root>/slot-N`).
    pub fn spool_dir(&self) -> PathBuf {
        self.shared.spool.dir().to_owned()
    }

    /// Cuts every sender's backoff wait short, e.g. after an operator fixed
    /// a refused credential on the server side.
    pub fn retry_now(&self) {
        self.shared.retry_now.send_modify(|n| *n += 1);
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
        let senders = std::mem::take(&mut self.senders);
        let all = futures_join_all(senders);
        if tokio::time::timeout_at(end, all).await.is_err() {
            self.shared.phase.send_replace(Phase::Stopped);
            // Give the senders a moment to record an interrupted attempt.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.shared.phase.send_replace(Phase::Stopped);
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
    fn drop(&mut self) {
        self.shared.phase.send_replace(Phase::Stopped);
        if let Some(c) = &self.closer {
            c.abort();
        }
        for s in &self.senders {
            s.abort();
        }
        for v in &self._verifiers {
            v.abort();
        }
    }
}

/// Waits for every handle.
async fn futures_join_all(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// The destinations `config` reports to. Offline, windows are still
/// spooled for export: under the credential's destination, or the Beacon's
/// if there is none.
pub(crate) fn routes(config: &Config) -> Vec<Route> {
    let online = config.credentials();
    if !online.is_empty() {
        return online
            .into_iter()
            .map(|d| Route {
                dest: match &d.credential {
                    Credential::License(_) => Destination::Beacon,
                    Credential::ApiKey(_) => Destination::Auth,
                },
                send: Some(d),
            })
            .collect();
    }
    let mut out = Vec::new();
    if config.license_key.is_some() || config.api_key.is_none() {
        out.push(Route {
            dest: Destination::Beacon,
            send: None,
        });
    }
    if config.api_key.is_some() {
        out.push(Route {
            dest: Destination::Auth,
            send: None,
        });
    }
    out
}

async fn verify_license(v: LicenseVerifier, shared: Arc<Shared>) {
    let outcome = v.verify().await;
    let text = match &outcome {
        Verification::Valid { expires_at, .. } => {
            tracing::info!(%expires_at, "license verified");
            format!("valid until {expires_at}")
        }
        Verification::Rejected { status, message } => {
            tracing::error!(status, %message, "the Beacon REFUSED the license key: usage is still spooled; fix LANGGRAPH_CLOUD_LICENSE_KEY and restart");
            format!("rejected ({status}): {message}")
        }
        Verification::Unreachable { reason } => {
            tracing::warn!(%reason, "license verification could not reach the Beacon; will retry");
            format!("unreachable: {reason}")
        }
        Verification::Malformed { reason } => {
            tracing::warn!(%reason, "license verification answer was malformed");
            format!("malformed answer: {reason}")
        }
    };
    shared.stats.lock().license = Some(text);
}

async fn verify_api_key(v: ApiKeyVerifier, shared: Arc<Shared>) {
    let mut delay = Duration::from_secs(1);
    loop {
        match v.verify().await {
            Ok(org) => {
                tracing::info!(org_id = %org.org_id, "API key verified");
                *shared.org_id.lock() = Some(org.org_id);
                shared.stats.lock().api_key = Some(format!("valid, org {}", org.org_id));
                return;
            }
            Err(e) => {
                let rejected = matches!(e, crate::client::ApiKeyError::Rejected { .. });
                if rejected {
                    tracing::error!(error = %e, "the auth endpoint REFUSED the API key: usage is still spooled; fix LANGSMITH_API_KEY and restart");
                } else {
                    tracing::warn!(error = %e, "API-key verification failed; will retry");
                }
                shared.stats.lock().api_key = Some(e.to_string());
                if rejected {
                    return;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(300));
    }
}
