//! What the spool stores: windows, the checkpoint, and their on-disk form.

use crate::wire::ReportBody;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Largest file the spool reads or writes (a window is normally ~1 KiB; merged
/// windows keep their logs bounded, see [`MAX_MERGED_LOGS`](super::MAX_MERGED_LOGS)).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Where a window is sent. Each destination has its own queue, its own
/// directory (`beacon/`, `auth/`) and its own bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    /// The Beacon service (`{beacon}/v1/metadata/submit`, license key).
    Beacon,
    /// The auth endpoint (`{auth}/v1/metadata/submit`, API key).
    Auth,
}

impl Destination {
    /// Both destinations, in directory order.
    pub const ALL: [Destination; 2] = [Destination::Beacon, Destination::Auth];

    /// The serde name, which is also the directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Beacon => "beacon",
            Destination::Auth => "auth",
        }
    }

    /// Its position in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a destination's pending queue may hold before the oldest
/// mergeable windows are merged (never dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Pending windows per destination (default 10 000: about 35 days of
    /// 5-minute windows before any merging).
    pub max_windows: usize,
    /// Pending bytes on disk per destination (default 64 MiB).
    pub max_bytes: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_windows: 10_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl SpoolLimits {
    /// True if `windows` windows of `bytes` bytes in all are more than one
    /// destination may hold.
    pub(crate) fn exceeded_by(&self, windows: usize, bytes: u64) -> bool {
        windows > self.max_windows || bytes > self.max_bytes
    }
}

/// One closed usage window, as stored in its spool file (pretty JSON,
/// readable with `cat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpooledWindow {
    /// Format version, [`FORMAT_VERSION`]. A file with a later version is not
    /// read as this one: it is moved to `corrupt/` untouched (see the module
    /// docs).
    pub version: u32,
    /// The `Idempotency-Key`: fixed when the window closes and reused on
    /// every retry of this window.
    pub id: Uuid,
    /// Where the window goes.
    pub destination: Destination,
    /// When the window was closed (or, for a merged window, the later close).
    pub closed_at: DateTime<Utc>,
    /// Send attempts so far.
    pub attempts: u32,
    /// An attempt may have been accepted (e.g. a timeout after the request
    /// was sent). Such a window is only ever retried under its own id and is
    /// never merged; once set the spool keeps it set.
    pub in_doubt: bool,
    /// Which measure names are gauges (a value at the end of the window,
    /// not a count within it). Merging takes a gauge's later value and sums
    /// everything else.
    pub gauges: Vec<String>,
    /// How many original windows this one covers (1 unless merged).
    pub merged: u32,
    /// Exactly what will be sent, minus the credential (added at send time).
    pub report: ReportBody,
}

impl SpooledWindow {
    /// A freshly closed window: version 1, no attempts, not in doubt,
    /// `merged == 1`.
    pub fn new(
        id: Uuid,
        destination: Destination,
        closed_at: DateTime<Utc>,
        gauges: Vec<String>,
        report: ReportBody,
    ) -> Self {
        SpooledWindow {
            version: FORMAT_VERSION,
            id,
            destination,
            closed_at,
            attempts: 0,
            in_doubt: false,
            gauges,
            merged: 1,
            report,
        }
    }

    /// True if `name` is listed as a gauge.
    pub fn is_gauge(&self, name: &str) -> bool {
        self.gauges.iter().any(|g| g == name)
    }

    /// The spool file name: `<from, UTC, compact, ns>_<id>.json`. Names sort
    /// in `from_timestamp` order.
    pub fn file_name(&self) -> String {
        file_name(&self.report.from_timestamp, &self.id)
    }

    /// Checks the rules a stored window must follow; `Err` says which one
    /// is broken. `allow_empty_span` admits `from == to` (a checkpoint's
    /// open window saved right after a rotation).
    pub(crate) fn check(&self, allow_empty_span: bool) -> Result<(), String> {
        if self.version != FORMAT_VERSION {
            return Err(format!(
                "format version {} (this build reads and writes version {FORMAT_VERSION})",
                self.version
            ));
        }
        let (from, to) = (self.report.from_timestamp, self.report.to_timestamp);
        if from > to || (from == to && !allow_empty_span) {
            return Err(format!(
                "window ends before it starts (from_timestamp {from} >= to_timestamp {to})"
            ));
        }
        if self.merged == 0 {
            return Err("`merged` is 0 (a window covers at least itself)".to_owned());
        }
        Ok(())
    }
}

/// The open (not yet closed) window of each destination, saved periodically
/// so a crash loses at most one checkpoint interval of usage. Each window
/// carries its pre-assigned id (the id it will have when it closes) and
/// `report.to_timestamp == saved_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version, [`FORMAT_VERSION`].
    pub version: u32,
    /// When the checkpoint was taken.
    pub saved_at: DateTime<Utc>,
    /// One open window per destination.
    pub windows: Vec<SpooledWindow>,
}

impl Checkpoint {
    /// A version-1 checkpoint.
    pub fn new(saved_at: DateTime<Utc>, windows: Vec<SpooledWindow>) -> Self {
        Checkpoint {
            version: FORMAT_VERSION,
            saved_at,
            windows,
        }
    }

    /// Checks its version and windows; `Err` names the window (nil: the
    /// checkpoint itself) and the rule broken.
    pub(crate) fn check(&self) -> Result<(), (Uuid, String)> {
        if self.version != FORMAT_VERSION {
            let why = format!(
                "checkpoint version {} is not {FORMAT_VERSION}",
                self.version
            );
            return Err((Uuid::nil(), why));
        }
        let mut windows = self.windows.iter();
        windows.try_for_each(|w| w.check(true).map_err(|why| (w.id, why)))
    }
}

/// The file form of a window: its fields plus, for a merged window, the ids
/// it `replaces` (so that a crash between writing a merged window and
/// deleting its originals never counts twice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct WindowFile {
    #[serde(flatten)]
    pub window: SpooledWindow,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<Uuid>,
}

impl WindowFile {
    /// Its bytes on disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_pretty(self)
    }
}

/// Pretty JSON with a trailing newline.
pub(crate) fn to_pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out =
        serde_json::to_vec_pretty(v).expect("spool records are strings, integers and JSON maps");
    out.push(b'\n');
    out
}

/// Why a file is not a readable window or checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unreadable {
    /// Written by a later version of beacon-meter.
    #[error(
        "written by a newer beacon-meter (format version {0}; this build reads version \
         {FORMAT_VERSION}). The file is kept untouched: move it back after upgrading"
    )]
    Future(u64),
    /// Anything else: empty, truncated, not ours, breaks a rule.
    #[error("{0}")]
    Invalid(String),
}

/// Checks the `version` field before anything else, so a file from a later
/// version is never misread as this one.
fn check_version(bytes: &[u8]) -> Result<serde_json::Value, Unreadable> {
    let invalid = |why: &str| Unreadable::Invalid(why.to_owned());
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("empty file (a write was cut short?)"));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| match e.is_eof() {
        true => invalid(&format!("truncated JSON ({e})")),
        false => invalid(&format!("not valid JSON ({e})")),
    })?;
    let Some(obj) = value.as_object() else {
        return Err(invalid("not a spool record (the JSON is not an object)"));
    };
    match obj.get("version").and_then(serde_json::Value::as_u64) {
        None => Err(invalid("not a spool record (no numeric \"version\" field)")),
        Some(v) if v > u64::from(FORMAT_VERSION) => Err(Unreadable::Future(v)),
        Some(v) if v != u64::from(FORMAT_VERSION) => {
            Err(invalid(&format!("unknown format version {v}")))
        }
        Some(_) => Ok(value),
    }
}

/// Parses and validates a window file.
pub(crate) fn parse_window_file(bytes: &[u8]) -> Result<WindowFile, Unreadable> {
    let mut value = check_version(bytes)?;
    let invalid =
        |e: serde_json::Error| Unreadable::Invalid(format!("not a valid spooled window: {e}"));
    let replaces = match value.as_object_mut().and_then(|o| o.remove("replaces")) {
        Some(r) => serde_json::from_value(r).map_err(invalid)?,
        None => Vec::new(),
    };
    let window: SpooledWindow = serde_json::from_value(value).map_err(invalid)?;
    window.check(false).map_err(Unreadable::Invalid)?;
    Ok(WindowFile { window, replaces })
}

/// Parses and validates a checkpoint file.
pub(crate) fn parse_checkpoint(bytes: &[u8]) -> Result<Checkpoint, Unreadable> {
    let value = check_version(bytes)?;
    let cp: Checkpoint = serde_json::from_value(value)
        .map_err(|e| Unreadable::Invalid(format!("not a valid checkpoint: {e}")))?;
    cp.check()
        .map_err(|(id, why)| Unreadable::Invalid(format!("checkpoint window {id}: {why}")))?;
    Ok(cp)
}

/// `<from>_<id>.json` with `from` as `YYYYMMDDTHHMMSS.nnnnnnnnnZ` (fixed
/// width, so names sort in time order).
pub(crate) fn file_name(from: &DateTime<Utc>, id: &Uuid) -> String {
    format!("{}_{}.json", from.format("%Y%m%dT%H%M%S%.9fZ"), id)
}

/// The id in a canonical file name, if the name has that shape.
pub(crate) fn id_from_file_name(name: &str) -> Option<Uuid> {
    let stem = name.strip_suffix(".json")?;
    let (ts, id) = stem.rsplit_once('_')?;
    if ts.len() != 26 || !ts.ends_with('Z') {
        return None;
    }
    let id = Uuid::parse_str(id).ok()?;
    // Only the hyphenated form is canonical.
    (id.hyphenated().to_string() == stem[ts.len() + 1..]).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    fn report(from_s: i64, to_s: i64) -> ReportBody {
        ReportBody {
            from_timestamp: Utc.timestamp_opt(from_s, 0).unwrap(),
            to_timestamp: Utc.timestamp_opt(to_s, 0).unwrap(),
            tags: BTreeMap::new(),
            measures: BTreeMap::from([("langgraph.platform.runs".to_owned(), 3)]),
            logs: vec![],
        }
    }

    #[test]
    fn file_names_sort_by_time_and_carry_the_id() {
        let id = Uuid::new_v4();
        let a = file_name(&Utc.timestamp_opt(1_736_154_000, 5).unwrap(), &id);
        let b = file_name(&Utc.timestamp_opt(1_736_154_000, 40).unwrap(), &id);
        let c = file_name(&Utc.timestamp_opt(1_736_154_001, 0).unwrap(), &id);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(a.starts_with("20250106T090000.000000005Z_"), "{a}");
        assert_eq!(id_from_file_name(&a), Some(id));
        assert_eq!(id_from_file_name("x.json"), None);
        assert_eq!(id_from_file_name(&a.replace(".json", ".txt")), None);
        let simple = format!("20250106T090000.000000005Z_{}.json", id.simple());
        assert_eq!(id_from_file_name(&simple), None);
        // The time part must be 26 characters *and* end in `Z`.
        assert_eq!(id_from_file_name(&format!("2025Z_{id}.json")), None);
        let no_z = format!("20250106T090000.0000000050_{id}.json");
        assert_eq!(id_from_file_name(&no_z), None);
    }

    #[test]
    fn parse_rejects_what_is_not_a_v1_window() {
        let w = SpooledWindow::new(
            Uuid::new_v4(),
            Destination::Beacon,
            Utc::now(),
            vec![],
            report(0, 300),
        );
        let good = WindowFile {
            window: w.clone(),
            replaces: vec![],
        }
        .to_bytes();
        assert_eq!(parse_window_file(&good).unwrap().window, w);

        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "empty"),
            (b"  \n".to_vec(), "empty"),
            (good[..good.len() / 2].to_vec(), "truncated"),
            (b"[1,2]".to_vec(), "not an object"),
            (b"{\"hello\":1}".to_vec(), "no numeric"),
            (b"{\"version\":0}".to_vec(), "unknown format version 0"),
            (b"{\"version\":1}".to_vec(), "missing field"),
            (
                String::from_utf8(good.clone())
                    .unwrap()
                    .replace(": 3", ": -3")
                    .into_bytes(),
                "not a valid spooled window",
            ),
            (
                String::from_utf8(good.clone())
                    .unwrap()
                    .replace("1970-01-01T00:05:00Z", "1970-01-01T00:00:00Z")
                    .into_bytes(),
                "ends before it starts",
            ),
        ];
        for (bytes, want) in cases {
            match parse_window_file(&bytes) {
                Err(Unreadable::Invalid(why)) => assert!(why.contains(want), "{want}: {why}"),
                other => panic!("{want}: {other:?}"),
            }
        }
        let future = String::from_utf8(good)
            .unwrap()
            .replace("\"version\": 1", "\"version\": 2");
        assert_eq!(
            parse_window_file(future.as_bytes()).unwrap_err(),
            Unreadable::Future(2)
        );
    }

    #[test]
    fn destination_names() {
        for d in Destination::ALL {
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                format!("\"{}\"", d.as_str())
            );
        }
    }
}
