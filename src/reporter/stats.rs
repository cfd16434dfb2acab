//! What the reporter has done, for `Reporter::stats()`.

use crate::spool::Destination;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Counters of one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DestinationStats {
    /// Which destination.
    pub destination: Destination,
    /// Windows delivered (a `2xx`); a merged report counts every window it
    /// covers.
    pub sent: u64,
    /// Spool files waiting (a merged one covers several windows).
    pub pending: usize,
    /// Bytes of the pending windows on disk.
    pub pending_bytes: u64,
    /// Windows the server refused and that were moved to `rejected/`.
    pub rejected: u64,
    /// Failed attempts that will be retried.
    pub retries: u64,
    /// Report bytes delivered.
    pub bytes_sent: u64,
    /// When the last delivery succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// The last error, if any (never contains a credential).
    pub last_error: Option<String>,
    /// True while the server refuses the credential (`401`/`403`).
    pub credential_rejected: bool,
    /// Counter totals of the windows delivered (gauges left out).
    pub delivered: BTreeMap<String, u64>,
    /// Failed attempts by kind ([`crate::client::FailureKind::as_str`]:
    /// `network`, `timeout`, `5xx`, `429`, `credential_refused`,
    /// `no_report_path`, `other`); they add up to [`Self::retries`].
    pub failures: BTreeMap<String, u64>,
}

/// The operational metrics export ([`crate::config::Config::metrics_export`]),
/// when it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MetricsExportStats {
    /// Where metrics are posted, safe to show.
    pub endpoint: String,
    /// Exports the collector took (a `2xx`).
    pub exports: u64,
    /// Exports that failed (each is best effort; the next one carries the
    /// totals).
    pub failures: u64,
    /// When the last export succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// The last failure, if any (never contains a credential).
    pub last_error: Option<String>,
}

#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
impl MetricsExportStats {
    pub(crate) fn new(endpoint: String) -> Self {
        MetricsExportStats {
            endpoint,
            exports: 0,
            failures: 0,
            last_success: None,
            last_error: None,
        }
    }
}

/// A snapshot of the reporter's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReporterStats {
    /// True if nothing is sent (offline license or `BEACON_OFFLINE`).
    pub offline: bool,
    /// Windows closed by this process.
    pub windows_closed: u64,
    /// Windows delivered, over all destinations.
    pub windows_sent: u64,
    /// Windows refused by a server, over all destinations.
    pub rejected: u64,
    /// Failed attempts that will be retried, over all destinations.
    pub retries: u64,
    /// Report bytes delivered, over all destinations.
    pub bytes_sent: u64,
    /// Windows recovered at start from a run that ended without shutdown.
    pub recovered_on_start: usize,
    /// Closed windows held in memory because the spool could not be
    /// written (disk full or read-only). Written out once the disk recovers.
    pub unspooled: usize,
    /// The last license verification outcome.
    pub license: Option<String>,
    /// The last API-key verification outcome.
    pub api_key: Option<String>,
    /// Per destination.
    pub destinations: Vec<DestinationStats>,
    /// When this reporter started: the start of the cumulative totals
    /// below (and of the operational metrics' sums).
    pub started_at: Option<DateTime<Utc>>,
    /// Counter totals of the windows this process closed (gauges left
    /// out): what was recorded, delivered or not.
    pub measures: BTreeMap<String, u64>,
    /// Each gauge's value in the last window closed.
    pub gauges: BTreeMap<String, u64>,
    /// When the license token held now expires (refreshed before that),
    /// if a license was verified.
    pub license_expires_at: Option<DateTime<Utc>>,
    /// The operational metrics export, if it runs.
    pub metrics_export: Option<MetricsExportStats>,
}

impl ReporterStats {
    pub(crate) fn new(
        offline: bool,
        dests: impl Iterator<Item = Destination>,
        recovered_on_start: usize,
    ) -> Self {
        ReporterStats {
            offline,
            recovered_on_start,
            destinations: dests
                .map(|destination| DestinationStats {
                    destination,
                    sent: 0,
                    pending: 0,
                    pending_bytes: 0,
                    rejected: 0,
                    retries: 0,
                    bytes_sent: 0,
                    last_success: None,
                    last_error: None,
                    credential_rejected: false,
                    delivered: BTreeMap::new(),
                    failures: BTreeMap::new(),
                })
                .collect(),
            started_at: Some(Utc::now()),
            ..ReporterStats::default()
        }
    }

    /// Windows waiting in the spool, over all destinations.
    pub fn pending(&self) -> usize {
        self.destinations.iter().map(|d| d.pending).sum()
    }

    /// Counter totals of the windows delivered, over all destinations.
    pub fn delivered(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for d in &self.destinations {
            for (k, v) in &d.delivered {
                *out.entry(k.clone()).or_default() += v;
            }
        }
        out
    }

    /// The most recent error of any destination.
    pub fn last_error(&self) -> Option<&str> {
        self.destinations
            .iter()
            .find_map(|d| d.last_error.as_deref())
    }

    pub(crate) fn destination_mut(&mut self, dest: Destination) -> &mut DestinationStats {
        let i = self
            .destinations
            .iter()
            .position(|d| d.destination == dest)
            .expect("stats exist for every route");
        &mut self.destinations[i]
    }
}
