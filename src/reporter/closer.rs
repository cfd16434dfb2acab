//! Closes windows on aligned boundaries, spools them, and checkpoints the
//! open window.

use super::{Phase, ReporterOptions, ReporterState};
use crate::clock::Clock;
use crate::meter::{Attachment, MeasureKind, Window};
use crate::oplog::LogBuffer;
use crate::spool::{Checkpoint, Destination, SpooledWindow, merge};
use crate::wire::logs::{DEFAULT_MAX_REPORT_BYTES, fit_report};
use crate::wire::tags::TENANT_ID;
use crate::wire::{ReportBody, Tags, WindowClock};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// At shutdown, how often writing the windows held in memory is retried
/// while the spool cannot be written.
const SHUTDOWN_FLUSH_RETRY: Duration = Duration::from_millis(250);

pub(crate) struct Closer {
    shared: Arc<ReporterState>,
    /// Checkpoints peek and closes rotate through it, so that a reporter
    /// dropped between the two leaves the meter refused to the next one.
    meter: Attachment,
    /// The destinations, with the id the open window will carry to each.
    /// Invariant: the same ids are in the checkpoint of the open window.
    open: Vec<(Destination, Uuid)>,
    wc: WindowClock,
    clock: Arc<dyn Clock>,
    tags: Tags,
    logs: Option<Arc<LogBuffer>>,
    checkpoint_interval: Duration,
    /// Closed windows the spool could not take yet (disk full, read-only),
    /// oldest first. Bounded by `max_backlog` by merging.
    backlog: VecDeque<SpooledWindow>,
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
        Closer {
            phase: shared.phase.subscribe(),
            shared,
            meter,
            open: dests.into_iter().map(|d| (d, Uuid::new_v4())).collect(),
            wc,
            clock: options.clock,
            tags: options.tags,
            logs: options.logs,
            checkpoint_interval: options.config.checkpoint_interval(),
            backlog: VecDeque::new(),
            max_backlog: options.memory_backlog.max(2),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut phase = self.phase.clone();
        let mut close_at = Instant::now() + self.wc.wait(self.clock.now());
        let mut checkpoint_at = Instant::now() + self.checkpoint_interval;
        loop {
            // Re-read the wall clock each turn: if it jumped forward, close
            // sooner; if it jumped back, `wait` is capped at one interval,
            // so windows keep closing (see `WindowClock::advance`).
            close_at = close_at.min(Instant::now() + self.wc.wait(self.clock.now()));
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
                    return;
                }
                Phase::Stopped => return,
            }
            let now = Instant::now();
            if now >= close_at {
                self.close().await;
                close_at = Instant::now() + self.wc.wait(self.clock.now());
            }
            if now >= checkpoint_at {
                self.checkpoint().await;
                checkpoint_at = Instant::now() + self.checkpoint_interval;
            }
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

    /// One report body per open destination, for `window` over `[from, to)`.
    fn windows(
        &self,
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
        self.open
            .iter()
            .map(|&(dest, id)| {
                SpooledWindow::new(id, dest, closed_at, gauges.clone(), body.clone())
            })
            .collect()
    }

    /// Closes the open window and spools it (or keeps it in memory while the
    /// spool cannot be written).
    async fn close(&mut self) {
        let now = self.clock.now();
        let window = self.meter.rotate();
        let (from, to) = self.wc.advance(now);
        for g in window.gauge_failures() {
            tracing::warn!(
                gauge = g,
                "a gauge callback panicked; it is left out of this report"
            );
        }
        let logs = self.logs.as_ref().map(|l| l.drain()).unwrap_or_default();
        let closed = self.windows(&window, from, to, now, logs);
        tracing::debug!(%from, %to, runs = window.runs(), nodes = window.nodes(), "window closed");
        self.backlog.extend(closed);
        for (_, id) in &mut self.open {
            *id = Uuid::new_v4();
        }
        self.shared.stats.lock().windows_closed += 1;
        self.flush().await;
    }

    /// At shutdown: keeps trying to write the windows held in memory until
    /// the spool takes them or the deadline passes (phase `Stopped`).
    async fn drain_backlog(&mut self, phase: &mut watch::Receiver<Phase>) {
        while !self.backlog.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(SHUTDOWN_FLUSH_RETRY) => {}
                _ = phase.changed() => {}
            }
            if *phase.borrow_and_update() == Phase::Stopped {
                tracing::error!(
                    windows = self.backlog.len(),
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
        while let Some(w) = self.backlog.front().cloned() {
            let dest = w.destination;
            match self.shared.spool(move |s| s.push(&w)).await {
                Ok(()) => {
                    self.backlog.pop_front();
                    self.shared.refresh_pending(dest).await;
                    wrote = true;
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        in_memory = self.backlog.len(),
                        "CANNOT WRITE THE SPOOL: closed windows are kept in memory and written once it recovers"
                    );
                    break;
                }
            }
        }
        while self.backlog.len() > self.max_backlog {
            if !self.merge_oldest() {
                break;
            }
        }
        self.shared.stats.lock().unspooled = self.backlog.len();
        if wrote {
            self.shared.new_window.send_modify(|n| *n += 1);
        }
    }

    /// Merges the oldest mergeable pair of the backlog (same destination).
    /// If no pair can be merged because their tags differ (a dynamic tag
    /// whose value changes, a tag callback that panicked in one window),
    /// merges the oldest pair anyway under the newer window's tags: the
    /// memory bound holds, and counts stay exact.
    fn merge_oldest(&mut self) -> bool {
        self.merge_pair(false) || self.merge_pair(true)
    }

    fn merge_pair(&mut self, retag: bool) -> bool {
        for i in 0..self.backlog.len() {
            let a = &self.backlog[i];
            let Some(j) =
                (i + 1..self.backlog.len()).find(|&j| self.backlog[j].destination == a.destination)
            else {
                continue;
            };
            let b = &self.backlog[j];
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
                self.backlog[i] = m;
                self.backlog.remove(j);
                return true;
            }
        }
        false
    }

    /// Saves the open window (with the ids it will close with) so a crash
    /// loses at most one checkpoint interval of counts.
    async fn checkpoint(&mut self) {
        if !self.backlog.is_empty() {
            self.flush().await;
        }
        let from = self.wc.current_start();
        // If the wall clock jumped back behind the open window's start, the
        // window is saved as `[from, from)`: recovery stretches a
        // zero-length window that counted to 1 ms. (Skipping the checkpoint
        // would lose everything counted since the last close in a crash.)
        let now = self.clock.now().max(from);
        let window = self.meter.peek();
        let windows = self.windows(&window, from, now, now, Vec::new());
        let cp = Checkpoint::new(now, windows);
        if let Err(e) = self.shared.spool(move |s| s.save_checkpoint(&cp)).await {
            tracing::warn!(error = %e, "could not save the checkpoint of the open window");
        }
    }
}
