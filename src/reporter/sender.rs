//! Delivers one destination's spooled windows, oldest first, one at a time.

use super::pacing::{self, Pacer};
use super::{Phase, ReporterState, RetryPolicy, Route};
use crate::client::{Backoff, ClientError, FailureKind, HttpClient, SubmitOutcome};
use crate::config::Endpoint;
use crate::spool::{Destination, SpooledWindow};
use crate::wire::encode_report_in;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Consecutive failures after which a retry is logged as a warning.
const WARN_AFTER_FAILURES: u32 = 3;
/// How often an idle sender looks at the spool even without a wake-up (a
/// window requeued by an operator, say).
const IDLE_POLL: Duration = Duration::from_secs(5);
/// Wait before reading a spool that could not be read again.
const SPOOL_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct Sender {
    shared: Arc<ReporterState>,
    dest: Destination,
    /// Where, in which dialect and with which credential.
    to: Endpoint,
    http: HttpClient,
    backoff: Backoff,
    /// A window the server accepted but that could not be removed from the
    /// spool (read-only or broken filesystem): it is not sent again, only
    /// its removal is retried, with backoff.
    undeleted: Option<uuid::Uuid>,
    /// Paces a backlog (see [`pacing`]).
    pacer: Pacer,
    /// Subscribed when the sender is made, not when its task first runs,
    /// so that a change in between is not missed.
    phase: watch::Receiver<Phase>,
    windows: watch::Receiver<u64>,
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
        shared: Arc<ReporterState>,
        route: Route,
        http: HttpClient,
        retry: RetryPolicy,
    ) -> Self {
        let target = route.send.expect("senders exist only for online routes");
        Sender {
            phase: shared.phase.subscribe(),
            windows: shared.new_window.subscribe(),
            backoff: Backoff::new(retry, &shared.retry_now),
            shared,
            dest: route.dest,
            to: target,
            http,
            undeleted: None,
            pacer: Pacer::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut phase = self.phase.clone();
        loop {
            if *phase.borrow() == Phase::Stopped {
                return;
            }
            let next = match self.next_window().await {
                Ok(Some(w)) => w,
                Ok(None) if *phase.borrow() == Phase::Draining => return,
                Ok(None) => {
                    tokio::select! {
                        _ = self.windows.changed() => {}
                        _ = phase.changed() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(destination = %self.dest, error = %e, "cannot read the spool; retrying");
                    self.wait(&mut phase, SPOOL_RETRY).await;
                    continue;
                }
            };
            if self.undeleted == Some(next.id) {
                if let Some(d) = self.retry_removal(next.id).await {
                    self.wait(&mut phase, d).await;
                }
                continue;
            }
            let pace = self.pacer.take(std::time::Instant::now());
            if !pace.is_zero() && *phase.borrow() == Phase::Running {
                self.wait(&mut phase, pace).await;
            }
            self.backoff.attempting();
            let submit = self.http.submit(
                &self.to.submit_url,
                self.to.dialect,
                &self.to.credential,
                &next.report,
                next.id,
            );
            let outcome = tokio::select! {
                o = submit => o,
                _ = stopped(&mut phase) => {
                    // Interrupted mid-request at the shutdown deadline: the
                    // server may have taken it. It stays pending (and, being
                    // the oldest, is never merged) and is resent with the
                    // same key by the next start.
                    self.mark_in_doubt(next).await;
                    return;
                }
            };
            if let Next::Wait(d) = self.handle(next, outcome).await {
                self.wait(&mut phase, d).await;
            }
        }
    }

    /// The next window to send. A window the server accepted but the spool
    /// could not delete is the oldest, and must never be merged (it would
    /// count twice): while one is held, the oldest is taken as it is.
    async fn next_window(&self) -> Result<Option<SpooledWindow>, crate::spool::SpoolError> {
        let dest = self.dest;
        let merge = self.undeleted.is_none();
        self.shared
            .spool(move |s| match merge {
                true => s.next_to_send(dest, pacing::CATCH_UP_SPAN, pacing::CATCH_UP_WINDOWS),
                false => s.oldest(dest),
            })
            .await
    }

    async fn handle(
        &mut self,
        mut w: SpooledWindow,
        outcome: Result<SubmitOutcome, ClientError>,
    ) -> Next {
        let dest = self.dest;
        if let Ok(o) = &outcome
            && !matches!(
                o,
                SubmitOutcome::Accepted { .. } | SubmitOutcome::PayloadRejected { .. }
            )
        {
            w.attempts = w.attempts.saturating_add(1);
        }
        let (wait, reason, kind) = match outcome {
            Ok(SubmitOutcome::Accepted { status }) => return self.delivered(w, status).await,
            Ok(SubmitOutcome::PayloadRejected { status, answer }) => {
                return self.rejected(w.id, status, answer).await;
            }
            Err(e) => {
                // The URL was validated at start; this means a setup error
                // that retrying quickly will not fix.
                tracing::error!(destination = %dest, error = %e, "cannot send to this destination");
                (self.backoff.hold(), e.to_string(), FailureKind::Other)
            }
            Ok(SubmitOutcome::Retry {
                reason,
                retry_after,
                in_doubt,
                kind,
            }) => {
                let wait = self.backoff.retry(retry_after);
                let failures = self.backoff.failures();
                // A lone failure is routine (the retry fixes it); several in
                // a row are worth an operator's attention.
                if failures >= WARN_AFTER_FAILURES {
                    tracing::warn!(destination = %dest, id = %w.id, attempt = w.attempts, failures_in_a_row = failures, %reason, retry_in = ?wait, "delivery keeps failing; will retry");
                } else {
                    tracing::info!(destination = %dest, id = %w.id, attempt = w.attempts, %reason, retry_in = ?wait, "delivery failed; will retry");
                }
                w.in_doubt |= in_doubt;
                (wait, reason, kind)
            }
            Ok(SubmitOutcome::CredentialRejected { status, message }) => {
                let wait = self.backoff.hold();
                tracing::error!(
                    destination = %dest,
                    status,
                    %message,
                    retry_in = ?wait,
                    "THE SERVER REFUSED THE CREDENTIAL: usage stays spooled and nothing is lost; \
                     fix the key (LANGGRAPH_CLOUD_LICENSE_KEY, or the API key in \
                     LANGSMITH_CONTROL_PLANE_API_KEY / LANGSMITH_API_KEY / LANGCHAIN_API_KEY) and restart"
                );
                let reason = format!("credential refused (HTTP {status}): {message}");
                (wait, reason, FailureKind::CredentialRefused)
            }
            Ok(SubmitOutcome::NoReportPath {
                status,
                url,
                message,
            }) => {
                // Not the window's fault: the URL is wrong for every window,
                // so they all stay, on hold like a refused credential.
                let (wait, hint) = (self.backoff.hold(), self.to.no_report_path_hint());
                tracing::error!(
                    destination = %dest, status, %url, dialect = %self.to.dialect, %message, retry_in = ?wait,
                    "NOTHING TAKES REPORTS AT {url} (HTTP {status}): usage stays spooled and \
                     nothing is lost; {hint}"
                );
                let reason = format!("no report path at {url} (HTTP {status}): {message}; {hint}");
                (wait, reason, FailureKind::NoReportPath)
            }
        };
        self.record_failure(w, reason, kind).await;
        Next::Wait(wait)
    }

    /// A `2xx`: the window leaves the spool and the stats count it.
    async fn delivered(&mut self, w: SpooledWindow, status: u16) -> Next {
        let (dest, id) = (self.dest, w.id);
        let bytes = encode_report_in(self.to.dialect, &self.to.credential, &w.report).len() as u64;
        self.backoff.reset();
        let removed = self.shared.spool(move |s| s.remove(dest, id)).await;
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
            for (name, v) in w.report.measures.iter().filter(|(n, _)| !w.is_gauge(n)) {
                let total = d.delivered.entry(name.clone()).or_default();
                *total = total.saturating_add(*v);
            }
        }
        tracing::debug!(destination = %dest, %id, status, from = %w.report.from_timestamp, "window delivered");
        self.shared.refresh_pending(dest).await;
        match removed {
            Ok(()) => Next::Continue,
            Err(e) => {
                tracing::error!(destination = %dest, %id, error = %e, "delivered, but could not remove the window from the spool; it is not sent again, its removal is retried (after a restart it is resent with the same key and deduplicated)");
                self.undeleted = Some(id);
                Next::Wait(self.backoff.retry(None))
            }
        }
    }

    /// Any other `4xx`: the window moves to `rejected/`.
    async fn rejected(&mut self, id: uuid::Uuid, status: u16, answer: String) -> Next {
        let dest = self.dest;
        tracing::error!(destination = %dest, %id, status, %answer, "the server refused this window; it is moved to rejected/ and not resent (see `beacon-meter spool list`)");
        let a = answer.clone();
        if let Err(e) = self
            .shared
            .spool(move |s| s.reject(dest, id, status, &a))
            .await
        {
            tracing::error!(destination = %dest, %id, error = %e, "could not move the refused window to rejected/");
            return Next::Wait(self.backoff.retry(None));
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

    /// Retries removing a delivered window; `Some(wait)` if it failed again.
    async fn retry_removal(&mut self, id: uuid::Uuid) -> Option<Duration> {
        let dest = self.dest;
        match self.shared.spool(move |s| s.remove(dest, id)).await {
            Ok(()) => {
                tracing::info!(destination = %dest, %id, "removed a delivered window from the spool");
                self.undeleted = None;
                self.backoff.reset();
                self.shared.refresh_pending(dest).await;
                None
            }
            Err(e) => {
                let wait = self.backoff.retry(None);
                tracing::warn!(destination = %dest, %id, error = %e, retry_in = ?wait, "still cannot remove a delivered window from the spool; it is not sent again");
                Some(wait)
            }
        }
    }

    async fn record_failure(&self, w: SpooledWindow, reason: String, kind: FailureKind) {
        let dest = self.dest;
        {
            let mut st = self.shared.stats.lock();
            st.retries += 1;
            let d = st.destination_mut(dest);
            d.retries += 1;
            d.last_error = Some(reason);
            d.credential_rejected = kind == FailureKind::CredentialRefused;
            *d.failures.entry(kind.as_str().to_owned()).or_default() += 1;
        }
        if let Err(e) = self.shared.spool(move |s| s.update(&w)).await {
            tracing::warn!(destination = %dest, error = %e, "could not record the attempt in the spool");
        }
    }

    async fn mark_in_doubt(&self, mut w: SpooledWindow) {
        w.in_doubt = true;
        let _ = self.shared.spool(move |s| s.update(&w)).await;
    }

    /// Waits `d`, cut short by `retry_now`, a shutdown, or a drain start.
    async fn wait(&mut self, phase: &mut watch::Receiver<Phase>, d: Duration) {
        self.backoff.sleep(d, phase.changed()).await;
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
