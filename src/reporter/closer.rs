//! Closes windows on aligned boundaries, spools them, and checkpoints the
//! open window; and, when a [`super::Reporter`] is dropped without
//! `shutdown`, closes the open window at once ([`CloserCore::save_on_drop`]).
//!
//! # Sharing the open window with `Drop`
//!
//! The closer task and the reporter's `Drop` both close windows, so what a
//! close needs ([`Open`]: the meter's attachment, the open window's ids, the
//! window clock, the windows not yet spooled) sits behind one mutex in
//! [`CloserCore`]. The rules that keep every record in exactly one window:
//!
//! * A close (rotate, make the reports, queue them in `backlog`) and a
//!   checkpoint's peek happen in one critical section each, so `Drop` sees
//!   a window either before it was rotated or queued after.
//! * No critical section of the closer spans an `.await`. A spool write of
//!   the closer's takes the mutex on its blocking thread, and skips the
//!   write if `meter` is gone, so a write that was in flight when the
//!   reporter was dropped cannot overwrite what `Drop` saved (a checkpoint
//!   older than the window `Drop` pushed).
//! * `meter` is taken exactly once, by whoever hands the windows over for
//!   good: the closer when its task ends, or `Drop`. Whoever finds it gone
//!   does nothing more. `Drop` rotates before it lets go, so the meter is
//!   free for a new owner and holds only counts that no one has.
//! * A window pushed twice (by the closer's write in flight and by `Drop`)
//!   has one id: the spool replaces it, and its `Idempotency-Key` makes the
//!   Beacon count it once. Pushing a window drops its open copy from the
//!   checkpoint, and recovery skips a checkpoint window already spooled, so
//!   a checkpoint left behind never counts twice.

use super::{Phase, ReporterOptions, ReporterState};
use crate::clock::Clock;
use crate::meter::{Attachment, MeasureKind, Window};
use crate::oplog::LogBuffer;
use crate::spool::{Checkpoint, Destination, Spool, SpoolError, SpooledWindow, merge};
use crate::wire::logs::{DEFAULT_MAX_REPORT_BYTES, fit_report};
use crate::wire::tags::TENANT_ID;
use crate::wire::{ReportBody, Tags, WindowClock};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// At shutdown, how often writing the windows held in memory is retried
/// while the spool cannot be written.
const SHUTDOWN_FLUSH_RETRY: Duration = Duration::from_millis(250);

/// What a close needs, shared by the closer task and the reporter's `Drop`
/// (see the module docs for the rules).
pub(crate) struct Open {
    /// `None` once the windows were handed over for good.
    meter: Option<Attachment>,
    /// The destinations, with the id the open window will carry to each.
    /// Invariant: the same ids are in the checkpoint of the open window.
    ids: Vec<(Destination, Uuid)>,
    wc: WindowClock,
    /// Closed windows the spool could not take yet (disk full, read-only),
    /// oldest first. Bounded by `max_backlog` by merging.
    backlog: VecDeque<SpooledWindow>,
}

/// The closer's state that outlives its task: see the module docs.
pub(crate) struct CloserCore {
    shared: Arc<ReporterState>,
    clock: Arc<dyn Clock>,
    tags: Tags,
    logs: Option<Arc<LogBuffer>>,
    open: Mutex<Open>,
}

pub(crate) struct Closer {
    core: Arc<CloserCore>,
    checkpoint_interval: Duration,
    max_backlog: usize,
    /// Subscribed when the closer is made, not when its task first runs,
    /// so that a shutdown started in between is not missed.
    phase: watch::Receiver<Phase>,
}

impl Closer {
    pub(crate) fn new(
        shared: Arc<ReporterState>,
        meter: Attachment,
        dests: Vec<Destination>,
        wc: WindowClock,
        options: ReporterOptions,
    ) -> Closer {
        let open = Open {
            meter: Some(meter),
            ids: dests.into_iter().map(|d| (d, Uuid::new_v4())).collect(),
            wc,
            backlog: VecDeque::new(),
        };
        Closer {
            phase: shared.phase.subscribe(),
            core: Arc::new(CloserCore {
                shared,
                clock: options.clock,
                tags: options.tags,
                logs: options.logs,
                open: Mutex::new(open),
            }),
            checkpoint_interval: options.config.checkpoint_interval(),
            max_backlog: options.memory_backlog.max(2),
        }
    }

    /// The state the reporter's `Drop` closes the open window with.
    pub(crate) fn core(&self) -> Arc<CloserCore> {
        self.core.clone()
    }

    /// Closes windows until shutdown; then hands the meter back (rotated
    /// last, so free for a new owner). Stopped any other way (the reporter
    /// was dropped), it leaves the meter to `Drop`, which closes the open
    /// window first.
    pub(crate) async fn run(mut self) {
        if self.serve().await {
            drop(self.core.open.lock().meter.take());
        }
    }

    /// True once the final window is closed at shutdown.
    async fn serve(&mut self) -> bool {
        let mut phase = self.phase.clone();
        let wait = |core: &CloserCore| core.open.lock().wc.wait(core.clock.now());
        let mut close_at = Instant::now() + wait(&self.core);
        let mut checkpoint_at = Instant::now() + self.checkpoint_interval;
        loop {
            // Re-read the wall clock each turn: if it jumped forward, close
            // sooner; if it jumped back, `wait` is capped at one interval,
            // so windows keep closing (see `WindowClock::advance`).
            close_at = close_at.min(Instant::now() + wait(&self.core));
            let wake = close_at.min(checkpoint_at);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = phase.changed() => {}
            }
            let current = *phase.borrow_and_update();
            match current {
                Phase::Running => {}
                Phase::Closing | Phase::Draining => {
                    self.close().await;
                    self.drain_backlog(&mut phase).await;
                    return true;
                }
                Phase::Stopped => return false,
            }
            let now = Instant::now();
            if now >= close_at {
                self.close().await;
                close_at = Instant::now() + wait(&self.core);
            }
            if now >= checkpoint_at {
                self.checkpoint().await;
                checkpoint_at = Instant::now() + self.checkpoint_interval;
            }
        }
    }

    /// Closes the open window and spools it (or keeps it in memory while the
    /// spool cannot be written).
    async fn close(&mut self) {
        let closed = {
            let mut open = self.core.open.lock();
            self.core.close_into_backlog(&mut open)
        };
        if closed.is_some() {
            self.flush().await;
        }
    }

    /// At shutdown: keeps trying to write the windows held in memory until
    /// the spool takes them or the deadline passes (phase `Stopped`).
    async fn drain_backlog(&mut self, phase: &mut watch::Receiver<Phase>) {
        while !self.core.open.lock().backlog.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(SHUTDOWN_FLUSH_RETRY) => {}
                _ = phase.changed() => {}
            }
            if *phase.borrow_and_update() == Phase::Stopped {
                // Read before the event, not under the lock in it.
                let windows = self.core.open.lock().backlog.len();
                tracing::error!(
                    windows,
                    "shutdown deadline passed with windows that could not be written to the \
                     spool; their counts are lost: free space in the spool directory"
                );
                return;
            }
            self.flush().await;
        }
    }

    /// Writes the in-memory backlog to the spool, oldest first, and keeps
    /// the backlog within its bound by merging (never dropping).
    async fn flush(&mut self) {
        let mut wrote = false;
        loop {
            let front = {
                let open = self.core.open.lock();
                if open.meter.is_none() {
                    return;
                }
                open.backlog.front().cloned()
            };
            let Some(w) = front else { break };
            let (dest, id) = (w.destination, w.id);
            match self.core.spool_if_held(move |s| s.push(&w)).await {
                Ok(Some(())) => {
                    {
                        let mut open = self.core.open.lock();
                        if open.backlog.front().is_some_and(|f| f.id == id) {
                            open.backlog.pop_front();
                        }
                    }
                    self.core.shared.refresh_pending(dest).await;
                    wrote = true;
                }
                Ok(None) => return,
                Err(e) => {
                    let in_memory = self.core.open.lock().backlog.len();
                    tracing::error!(
                        error = %e,
                        in_memory,
                        "CANNOT WRITE THE SPOOL: closed windows are kept in memory and written once it recovers"
                    );
                    break;
                }
            }
        }
        let unspooled = {
            let mut open = self.core.open.lock();
            while open.backlog.len() > self.max_backlog {
                if !merge_oldest(&mut open.backlog) {
                    break;
                }
            }
            open.backlog.len()
        };
        self.core.shared.stats.lock().unspooled = unspooled;
        if wrote {
            self.core.shared.new_window.send_modify(|n| *n += 1);
        }
    }

    /// Saves the open window (with the ids it will close with) so a crash
    /// loses at most one checkpoint interval of counts.
    async fn checkpoint(&mut self) {
        if !self.core.open.lock().backlog.is_empty() {
            self.flush().await;
        }
        let cp = {
            let mut open = self.core.open.lock();
            let from = open.wc.current_start();
            // If the wall clock jumped back behind the open window's start,
            // the window is saved as `[from, from)`: recovery stretches a
            // zero-length window that counted to 1 ms. (Skipping the
            // checkpoint would lose everything counted since the last close
            // in a crash.)
            let now = self.core.clock.now().max(from);
            let Some(meter) = open.meter.as_mut() else {
                return;
            };
            let window = meter.peek();
            let windows = self
                .core
                .windows(&open.ids, &window, from, now, now, Vec::new());
            Checkpoint::new(now, windows)
        };
        if let Err(e) = self
            .core
            .spool_if_held(move |s| s.save_checkpoint(&cp))
            .await
        {
            tracing::warn!(error = %e, "could not save the checkpoint of the open window");
        }
    }
}

impl CloserCore {
    /// Runs `f` on the spool on a blocking thread, holding [`Open`] while
    /// it runs: `Ok(None)`, without running it, once the windows were
    /// handed over (see the module docs).
    async fn spool_if_held<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Spool) -> Result<T, SpoolError> + Send + 'static,
    ) -> Result<Option<T>, SpoolError> {
        let core = self.clone();
        self.shared
            .spool(move |s| {
                let open = core.open.lock();
                if open.meter.is_none() {
                    return Ok(None);
                }
                let out = f(s).map(Some);
                drop(open);
                out
            })
            .await
    }

    /// Rotates the meter and queues the closed window's reports in the
    /// backlog, with fresh ids for the next window: the runs and nodes of
    /// the window, or `None` if the windows were handed over already.
    fn close_into_backlog(&self, open: &mut Open) -> Option<(u64, u64)> {
        let now = self.clock.now();
        let window = open.meter.as_mut()?.rotate();
        let (from, to) = open.wc.advance(now);
        for g in window.gauge_failures() {
            tracing::warn!(
                gauge = g,
                "a gauge callback panicked; it is left out of this report"
            );
        }
        let logs = self.logs.as_ref().map(|l| l.drain()).unwrap_or_default();
        let closed = self.windows(&open.ids, &window, from, to, now, logs);
        tracing::debug!(%from, %to, runs = window.runs(), nodes = window.nodes(), "window closed");
        open.backlog.extend(closed);
        for (_, id) in &mut open.ids {
            *id = Uuid::new_v4();
        }
        {
            let mut st = self.shared.stats.lock();
            st.windows_closed += 1;
            for (name, value, kind) in window.measures() {
                match kind {
                    MeasureKind::Gauge => {
                        st.gauges.insert(name.to_owned(), value);
                    }
                    _ => *st.measures.entry(name.to_owned()).or_default() += value,
                }
            }
        }
        Some((window.runs(), window.nodes()))
    }

    /// The reporter was dropped without `shutdown`: closes the open window
    /// now and writes it, with anything else held in memory, to the spool,
    /// on this thread (a few small synchronous writes), then frees the
    /// meter. Nothing to do if the closer handed the windows over already.
    pub(crate) fn save_on_drop(&self) {
        let mut open = self.open.lock();
        let Some((runs, nodes)) = self.close_into_backlog(&mut open) else {
            return;
        };
        // Rotated: the meter holds only counts recorded from now on, which
        // no one has; a new owner may take it.
        drop(open.meter.take());
        let mut lost = 0;
        while let Some(w) = open.backlog.pop_front() {
            if let Err(e) = self.shared.spool.push(&w) {
                tracing::error!(error = %e, id = %w.id, "the reporter was dropped and could not write a window to the spool; its counts are lost");
                lost += 1;
            }
        }
        drop(open);
        if lost == 0 {
            tracing::warn!(
                runs,
                nodes,
                spool = %self.shared.spool.dir().display(),
                "beacon-meter reporter dropped without shutdown: its open window was closed \
                 and spooled, and is delivered by the next reporter on this spool; call \
                 Reporter::shutdown to deliver it before exit"
            );
        }
    }

    /// The tags of a report closing now.
    fn tags(&self) -> BTreeMap<String, String> {
        let evaluated = self.tags.evaluate();
        for e in &evaluated.errors {
            tracing::warn!(error = %e, "a dynamic tag failed and is left out of this report");
        }
        let mut tags = evaluated.tags;
        if tags.get(TENANT_ID).is_none_or(|t| t.is_empty())
            && let Some(org) = *self.shared.org_id.lock()
        {
            tags.insert(TENANT_ID.to_owned(), org.to_string());
        }
        tags
    }

    /// One report body per destination in `ids`, for `window` over
    /// `[from, to)`.
    fn windows(
        &self,
        ids: &[(Destination, Uuid)],
        window: &Window,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        closed_at: DateTime<Utc>,
        logs: Vec<serde_json::Map<String, serde_json::Value>>,
    ) -> Vec<SpooledWindow> {
        let tags = self.tags();
        let gauges: Vec<String> = window
            .measures()
            .filter(|m| m.2 == MeasureKind::Gauge)
            .map(|m| m.0.to_owned())
            .collect();
        let mut body = ReportBody::from_window(window, from, to, tags, logs);
        if let Err(e) = fit_report(&mut body, DEFAULT_MAX_REPORT_BYTES) {
            tracing::warn!(error = %e, "the report is larger than the protocol's 64 KiB even without logs");
        }
        ids.iter()
            .map(|&(dest, id)| {
                SpooledWindow::new(id, dest, closed_at, gauges.clone(), body.clone())
            })
            .collect()
    }
}

/// Merges the oldest mergeable pair of `backlog` (same destination). If no
/// pair can be merged because their tags differ (a dynamic tag whose value
/// changes, a tag callback that panicked in one window), merges the oldest
/// pair anyway under the newer window's tags: the memory bound holds, and
/// counts stay exact.
fn merge_oldest(backlog: &mut VecDeque<SpooledWindow>) -> bool {
    merge_pair(backlog, false) || merge_pair(backlog, true)
}

fn merge_pair(backlog: &mut VecDeque<SpooledWindow>, retag: bool) -> bool {
    for i in 0..backlog.len() {
        let a = &backlog[i];
        let Some(j) = (i + 1..backlog.len()).find(|&j| backlog[j].destination == a.destination)
        else {
            continue;
        };
        let b = &backlog[j];
        let merged = if retag {
            let mut a = a.clone();
            a.report.tags.clone_from(&b.report.tags);
            merge(&a, b, Uuid::new_v4())
        } else {
            merge(a, b, Uuid::new_v4())
        };
        if let Some(m) = merged {
            if retag {
                tracing::warn!(
                    from = %m.report.from_timestamp,
                    to = %m.report.to_timestamp,
                    "memory backlog full: merged two windows with different tags under the later tags"
                );
            }
            backlog[i] = m;
            backlog.remove(j);
            return true;
        }
    }
    false
}
