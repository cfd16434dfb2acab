//! Delivers one destination's spooled windows, oldest first, one at a time.

use super::pacing::{self, Pacer};
use super::{Phase, RetryPolicy, Route, Shared};
use crate::client::{HttpClient, SubmitOutcome};
use crate::spool::{Destination, SpooledWindow};
use crate::wire::{Credential, Dialect, encode_report_in};
use chrono::Utc;
use reqwest::Url;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Shortest wait between attempts, so a zero `Retry-After` or a tiny jitter
/// never turns into a busy loop.
const MIN_WAIT: Duration = Duration::from_millis(50);
/// Consecutive failures after which a retry is logged as a warning.
const WARN_AFTER_FAILURES: u32 = 3;
/// How often an idle sender looks at the spool even without a wake-up (a
/// window requeued by an operator, say).
const IDLE_POLL: Duration = Duration::from_secs(5);

pub(crate) struct Sender {
    shared: Arc<Shared>,
    dest: Destination,
    url: Url,
    dialect: Dialect,
    credential: Credential,
    /// What to do when [`SubmitOutcome::NoReportPath`] comes back.
    no_path_hint: String,
    http: HttpClient,
    retry: RetryPolicy,
    /// Consecutive failures (drives the backoff).
    failures: u32,
    /// A window the server accepted but that could not be removed from the
    /// spool (read-only or broken filesystem): it is not sent again, only
    /// its removal is retried, with backoff.
    undeleted: Option<uuid::Uuid>,
    rng: u64,
    /// Paces a backlog (see [`pacing`]).
    pacer: Pacer,
    /// Subscribed when the sender is made, not when its task first runs,
    /// so that a change in between is not missed.
    phase: watch::Receiver<Phase>,
    windows: watch::Receiver<u64>,
    retry_now: watch::Receiver<u64>,
}

/// What to do after an attempt.
enum Next {
    /// Send the next window now.
    Continue,
    /// Wait this long (cut by `retry_now` or shutdown), then try again.
    Wait(Duration),
}

impl Sender {
    pub(crate) fn new(
        shared: Arc<Shared>,
        route: Route,
        http: HttpClient,
        retry: RetryPolicy,
    ) -> Self {
        let target = route.send.expect("senders exist only for online routes");
        let no_path_hint = target.no_report_path_hint();
        Sender {
            phase: shared.phase.subscribe(),
            windows: shared.new_window.subscribe(),
            retry_now: shared.retry_now.subscribe(),
            shared,
            dest: route.dest,
            url: target.submit_url,
            dialect: target.dialect,
            credential: target.credential,
            no_path_hint,
            http,
            retry,
            failures: 0,
            undeleted: None,
            rng: (uuid::Uuid::new_v4().as_u128() as u64) | 1,
            pacer: Pacer::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut phase = self.phase.clone();
        let mut windows = self.windows.clone();
        let mut retry_now = self.retry_now.clone();
        loop {
            if *phase.borrow() == Phase::Stopped {
                return;
            }
            let dest = self.dest;
            // A window the server accepted but the spool could not delete
            // is the oldest, and must never be merged (it would count
            // twice): while one is held, take the oldest as it is.
            let merge = self.undeleted.is_none();
            let next = self.shared.spool(move |s| match merge {
                true => s.next_to_send(dest, pacing::CATCH_UP_SPAN, pacing::CATCH_UP_WINDOWS),
                false => s.oldest(dest),
            });
            let next = match next.await {
                Ok(Some(w)) => w,
                Ok(None) => {
                    if *phase.borrow() == Phase::Draining {
                        return;
                    }
                    tokio::select! {
                        _ = windows.changed() => {}
                        _ = phase.changed() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(destination = %dest, error = %e, "cannot read the spool; retrying");
                    self.wait(&mut phase, &mut retry_now, Duration::from_secs(1))
                        .await;
                    continue;
                }
            };
            if self.undeleted == Some(next.id) {
                let wait = self.retry_removal(next.id).await;
                if let Some(d) = wait {
                    self.wait(&mut phase, &mut retry_now, d).await;
                }
                continue;
            }
            let pace = self.pacer.take(std::time::Instant::now());
            if !pace.is_zero() && *phase.borrow() == Phase::Running {
                self.wait(&mut phase, &mut retry_now, pace).await;
            }
            // A `retry_now` from here on cuts the wait after this attempt;
            // one from before is answered by this attempt.
            retry_now.mark_unchanged();
            let outcome = tokio::select! {
                o = self.http.submit(&self.url, self.dialect, &self.credential, &next.report, next.id) => o,
                _ = stopped(&mut phase) => {
                    // Interrupted mid-request at the shutdown deadline: the
                    // server may have taken it. It stays pending (and, being
                    // the oldest, is never merged) and is resent with the
                    // same key by the next start.
                    self.mark_in_doubt(next).await;
                    return;
                }
            };
            match self.handle(next, outcome).await {
                Next::Continue => {}
                Next::Wait(d) => self.wait(&mut phase, &mut retry_now, d).await,
            }
        }
    }

    async fn handle(
        &mut self,
        mut w: SpooledWindow,
        outcome: Result<SubmitOutcome, crate::client::ClientError>,
    ) -> Next {
        let dest = self.dest;
        let id = w.id;
        match outcome {
            Ok(SubmitOutcome::Accepted { status }) => {
                let bytes =
                    encode_report_in(self.dialect, &self.credential, &w.report).len() as u64;
                self.failures = 0;
                if let Err(e) = self.shared.spool(move |s| s.remove(dest, id)).await {
                    tracing::error!(destination = %dest, %id, error = %e, "delivered, but could not remove the window from the spool; it is not sent again, its removal is retried (after a restart it is resent with the same key and deduplicated)");
                    self.undeleted = Some(id);
                    self.failures = 1;
                }
                {
                    let mut st = self.shared.stats.lock();
                    // A merged report delivers every window it covers.
                    let windows = u64::from(w.merged.max(1));
                    st.windows_sent += windows;
                    st.bytes_sent += bytes;
                    let d = st.destination_mut(dest);
                    d.sent += windows;
                    d.bytes_sent += bytes;
                    d.last_success = Some(Utc::now());
                    d.credential_rejected = false;
                    for (name, v) in &w.report.measures {
                        if !w.is_gauge(name) {
                            let total = d.delivered.entry(name.clone()).or_default();
                            *total = total.saturating_add(*v);
                        }
                    }
                }
                tracing::debug!(destination = %dest, %id, status, from = %w.report.from_timestamp, "window delivered");
                self.shared.refresh_pending(dest).await;
                if self.undeleted == Some(id) {
                    return Next::Wait(self.backoff());
                }
                Next::Continue
            }
            Ok(SubmitOutcome::Retry {
                reason,
                retry_after,
                in_doubt,
            }) => {
                self.failures = self.failures.saturating_add(1);
                let wait = match retry_after {
                    Some(d) => d.min(self.retry.cap).max(MIN_WAIT),
                    None => self.backoff(),
                };
                // A lone failure is routine (the retry fixes it); several in
                // a row are worth an operator's attention.
                if self.failures >= WARN_AFTER_FAILURES {
                    tracing::warn!(destination = %dest, %id, attempt = w.attempts + 1, failures_in_a_row = self.failures, %reason, retry_in = ?wait, "delivery keeps failing; will retry");
                } else {
                    tracing::info!(destination = %dest, %id, attempt = w.attempts + 1, %reason, retry_in = ?wait, "delivery failed; will retry");
                }
                w.attempts = w.attempts.saturating_add(1);
                w.in_doubt |= in_doubt;
                self.record_failure(w, reason, false).await;
                Next::Wait(wait)
            }
            Ok(SubmitOutcome::CredentialRejected { status, message }) => {
                self.failures = self.failures.saturating_add(1);
                tracing::error!(
                    destination = %dest,
                    status,
                    %message,
                    retry_in = ?self.retry.credential_backoff,
                    "THE SERVER REFUSED THE CREDENTIAL: usage stays spooled and nothing is lost; \
                     fix the key (LANGGRAPH_CLOUD_LICENSE_KEY, or the API key in \
                     LANGSMITH_CONTROL_PLANE_API_KEY / LANGSMITH_API_KEY / LANGCHAIN_API_KEY) and restart"
                );
                w.attempts = w.attempts.saturating_add(1);
                let reason = format!("credential refused (HTTP {status}): {message}");
                self.record_failure(w, reason, true).await;
                Next::Wait(self.retry.credential_backoff)
            }
            Ok(SubmitOutcome::NoReportPath {
                status,
                url,
                message,
            }) => {
                // Not the window's fault: the URL is wrong for every window,
                // so they all stay, on hold like a refused credential.
                self.failures = self.failures.saturating_add(1);
                tracing::error!(
                    destination = %dest,
                    status,
                    %url,
                    dialect = %self.dialect,
                    %message,
                    retry_in = ?self.retry.credential_backoff,
                    "NOTHING TAKES REPORTS AT {url} (HTTP {status}): usage stays spooled and \
                     nothing is lost; {}",
                    self.no_path_hint
                );
                w.attempts = w.attempts.saturating_add(1);
                let reason = format!(
                    "no report path at {url} (HTTP {status}): {message}; {}",
                    self.no_path_hint
                );
                self.record_failure(w, reason, false).await;
                Next::Wait(self.retry.credential_backoff)
            }
            Ok(SubmitOutcome::PayloadRejected { status, answer }) => {
                tracing::error!(destination = %dest, %id, status, %answer, "the server refused this window; it is moved to rejected/ and not resent (see `beacon-meter spool list`)");
                let a = answer.clone();
                if let Err(e) = self
                    .shared
                    .spool(move |s| s.reject(dest, id, status, &a))
                    .await
                {
                    tracing::error!(destination = %dest, %id, error = %e, "could not move the refused window to rejected/");
                    return Next::Wait(self.backoff());
                }
                {
                    let mut st = self.shared.stats.lock();
                    st.rejected += 1;
                    let d = st.destination_mut(dest);
                    d.rejected += 1;
                    d.last_error = Some(format!("window refused (HTTP {status}): {answer}"));
                }
                self.shared.refresh_pending(dest).await;
                Next::Continue
            }
            Err(e) => {
                // The URL was validated at start; this means a setup error
                // that retrying quickly will not fix.
                self.failures = self.failures.saturating_add(1);
                tracing::error!(destination = %dest, error = %e, "cannot send to this destination");
                let reason = e.to_string();
                self.record_failure(w, reason, false).await;
                Next::Wait(self.retry.credential_backoff)
            }
        }
    }

    /// Retries removing a delivered window; `Some(wait)` if it failed again.
    async fn retry_removal(&mut self, id: uuid::Uuid) -> Option<Duration> {
        let dest = self.dest;
        match self.shared.spool(move |s| s.remove(dest, id)).await {
            Ok(()) => {
                tracing::info!(destination = %dest, %id, "removed a delivered window from the spool");
                self.undeleted = None;
                self.failures = 0;
                self.shared.refresh_pending(dest).await;
                None
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let wait = self.backoff();
                tracing::warn!(destination = %dest, %id, error = %e, retry_in = ?wait, "still cannot remove a delivered window from the spool; it is not sent again");
                Some(wait)
            }
        }
    }

    async fn record_failure(&self, w: SpooledWindow, reason: String, credential: bool) {
        let dest = self.dest;
        {
            let mut st = self.shared.stats.lock();
            st.retries += 1;
            let d = st.destination_mut(dest);
            d.retries += 1;
            d.last_error = Some(reason);
            d.credential_rejected = credential;
        }
        if let Err(e) = self.shared.spool(move |s| s.update(&w)).await {
            tracing::warn!(destination = %dest, error = %e, "could not record the attempt in the spool");
        }
    }

    async fn mark_in_doubt(&self, mut w: SpooledWindow) {
        w.in_doubt = true;
        let _ = self.shared.spool(move |s| s.update(&w)).await;
    }

    /// Exponential backoff with full jitter: uniform in
    /// `[0, min(cap, base * 2^(failures-1))]`, at least [`MIN_WAIT`].
    fn backoff(&mut self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(30);
        let ceiling = self
            .retry
            .base
            .saturating_mul(1u32 << exp)
            .min(self.retry.cap);
        // xorshift64*: jitter needs no cryptographic randomness.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let frac = (r >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(frac).max(MIN_WAIT)
    }

    /// Waits `d`, cut short by `retry_now`, a shutdown, or a drain start.
    async fn wait(
        &self,
        phase: &mut watch::Receiver<Phase>,
        retry_now: &mut watch::Receiver<u64>,
        d: Duration,
    ) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = retry_now.changed() => {}
            _ = phase.changed() => {}
        }
    }
}

/// Resolves once the reporter is stopped (deadline passed).
async fn stopped(phase: &mut watch::Receiver<Phase>) {
    loop {
        if *phase.borrow_and_update() == Phase::Stopped {
            return;
        }
        if phase.changed().await.is_err() {
            return;
        }
    }
}
