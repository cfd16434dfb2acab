//! What `list` and `export` hand back.

use super::{Destination, SpooledWindow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use uuid::Uuid;

/// One window in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowSummary {
    /// Path relative to the spool directory (`beacon/pending/<name>.json`).
    pub file: String,
    /// The window's id (its `Idempotency-Key`).
    pub id: Uuid,
    /// Where it goes.
    pub destination: Destination,
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end.
    pub to: DateTime<Utc>,
    /// Send attempts so far.
    pub attempts: u32,
    /// An attempt may have been accepted.
    pub in_doubt: bool,
    /// Original windows covered.
    pub merged: u32,
    /// The measures.
    pub measures: BTreeMap<String, u64>,
    /// Size on disk.
    pub bytes: u64,
}

impl WindowSummary {
    pub(crate) fn new(file: String, w: &SpooledWindow, bytes: u64) -> Self {
        WindowSummary {
            file,
            id: w.id,
            destination: w.destination,
            from: w.report.from_timestamp,
            to: w.report.to_timestamp,
            attempts: w.attempts,
            in_doubt: w.in_doubt,
            merged: w.merged,
            measures: w.report.measures.clone(),
            bytes,
        }
    }
}

/// A window the server refused, kept in `<dest>/rejected/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedSummary {
    /// The window.
    pub window: WindowSummary,
    /// The HTTP status of the refusal, if the answer file records it.
    pub status: Option<u16>,
    /// The answer file (relative path), if present.
    pub answer_file: Option<String>,
}

/// A file moved to `corrupt/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorruptSummary {
    /// Path relative to the spool directory.
    pub file: String,
    /// Size on disk (of the link itself, for a symbolic link).
    pub bytes: u64,
    /// Why it was moved, from its `.reason.txt` sibling.
    pub reason: Option<String>,
}

/// Everything in a spool, for `spool list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolListing {
    /// The spool directory.
    pub dir: PathBuf,
    /// Pending windows per destination, oldest first.
    pub pending: BTreeMap<Destination, Vec<WindowSummary>>,
    /// Rejected windows of both destinations.
    pub rejected: Vec<RejectedSummary>,
    /// Files that could not be read as windows.
    pub corrupt: Vec<CorruptSummary>,
    /// Whether a checkpoint (the open windows of a stopped or running
    /// process) is present.
    pub checkpoint: bool,
}

impl SpoolListing {
    /// Adds the listing of a spool inside this one (a slot), its paths
    /// prefixed with `prefix` (`slot-1/`). Pending windows stay oldest
    /// first.
    pub(crate) fn absorb(&mut self, other: SpoolListing, prefix: &str) {
        let moved = |w: &mut WindowSummary| w.file = format!("{prefix}{}", w.file);
        for (dest, mut windows) in other.pending {
            windows.iter_mut().for_each(moved);
            let all = self.pending.entry(dest).or_default();
            all.extend(windows);
            all.sort_by_key(|w| (w.from, w.id));
        }
        for mut r in other.rejected {
            moved(&mut r.window);
            r.answer_file = r.answer_file.map(|a| format!("{prefix}{a}"));
            self.rejected.push(r);
        }
        for mut c in other.corrupt {
            c.file = format!("{prefix}{}", c.file);
            self.corrupt.push(c);
        }
        self.checkpoint |= other.checkpoint;
    }
}

impl fmt::Display for WindowSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ts = crate::wire::format_timestamp;
        let (from, to) = (ts(&self.from), ts(&self.to));
        write!(f, "{}  {from} .. {to}  attempts={}", self.id, self.attempts)?;
        if self.in_doubt {
            f.write_str(" IN-DOUBT")?;
        }
        if self.merged > 1 {
            write!(f, " merged={}", self.merged)?;
        }
        let measures: Vec<String> = self
            .measures
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "  {}", measures.join(" "))
    }
}

impl fmt::Display for SpoolListing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "spool {}", self.dir.display())?;
        for (dest, windows) in &self.pending {
            let bytes: u64 = windows.iter().map(|w| w.bytes).sum();
            writeln!(f, "{dest}: {} pending ({bytes} bytes)", windows.len())?;
            windows.iter().try_for_each(|w| writeln!(f, "  {w}"))?;
        }
        writeln!(f, "rejected: {}", self.rejected.len())?;
        for r in &self.rejected {
            let status = r.status.map(|s| format!("HTTP {s} ")).unwrap_or_default();
            writeln!(f, "  [{}] {status}  {}", r.window.destination, r.window)?;
        }
        writeln!(f, "corrupt: {}", self.corrupt.len())?;
        for c in &self.corrupt {
            let reason = c.reason.as_deref().map(|r| r.lines().next().unwrap_or(""));
            let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
            writeln!(f, "  {} ({} bytes){reason}", c.file, c.bytes)?;
        }
        if self.checkpoint {
            writeln!(f, "checkpoint: present (open windows of the last run)")?;
        }
        Ok(())
    }
}

/// The format name of an export bundle.
pub const EXPORT_FORMAT: &str = "beacon-meter-spool-export";

/// An export bundle: every pending window, for reporting by hand from a
/// site without egress. Each entry's `report` is exactly the body to send
/// (add the credential), and its `id` the `Idempotency-Key` to send it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolExport {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// Bundle format version (1).
    pub version: u32,
    /// When the bundle was written.
    pub exported_at: DateTime<Utc>,
    /// The windows, Beacon's first, each oldest first.
    pub windows: Vec<SpooledWindow>,
}
