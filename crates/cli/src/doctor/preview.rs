//! The next usage report(s) this configuration would send, exactly as
//! they would be POSTed but with the credential redacted (`beacon-meter
//! preview`, and the bodies `check` shows).
//!
//! * One report per destination ([`Config::credentials`]): an online
//!   license key's goes to the Beacon, the API key's to the auth endpoint,
//!   each in the wire dialect of `BEACON_WIRE`. An offline license is never
//!   sent, and is said so.
//! * Counts: the running reporter's open window, from the checkpoint in
//!   the spool ([`Spool::peek_checkpoint`], no lock taken); without a
//!   checkpoint, a window from the last interval boundary to now with zero
//!   runs and nodes.
//! * Tags: the platform tags of this environment and the plan; `logs` is
//!   empty.
//! * The window ends now (`to_timestamp`); the reporter will close it at the
//!   next interval boundary, with the counts it has then.

use beacon_meter::config::Endpoint as Target;
use beacon_meter::config::{Config, ENV_LICENSE_KEY, ENV_OFFLINE};
use beacon_meter::meter::{NODES, RUNS};
use beacon_meter::secret::Secret;
use beacon_meter::spool::{
    Checkpoint, CheckpointPeek, Destination, FORMAT_VERSION, Spool, SpoolError, merge, slots,
};
use beacon_meter::wire::{
    Dialect, Plan, ReportBody, Tags, UsageReport, WindowClock, encode_report_in,
};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use url::Url;

/// One report as it would be sent.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Where it goes.
    pub destination: Destination,
    /// The URL it would be POSTed to.
    pub submit_url: Url,
    /// The wire dialect it would be sent in.
    pub dialect: Dialect,
    /// The report, with the credential field holding the redacted key.
    pub report: UsageReport,
    /// The key, redacted (as in the report).
    pub key: String,
    /// Where the counts come from, in words.
    pub counts: String,
    /// When the reporter will close this window (the next interval
    /// boundary after its start).
    pub closes_at: DateTime<Utc>,
}

impl Preview {
    /// The report exactly as it would travel (in its dialect), redacted.
    pub fn wire_json(&self) -> serde_json::Value {
        let bytes = encode_report_in(self.dialect, &self.report.credential, &self.report.body);
        serde_json::from_slice(&bytes).expect("a report encodes as a JSON object")
    }
}

/// Everything `preview` shows.
#[derive(Debug, Clone)]
pub struct Previews {
    /// One per destination, license first.
    pub reports: Vec<Preview>,
    /// Why nothing would be sent, if the deployment is offline.
    pub offline: Option<String>,
    /// Why the license is not sent although the API key is, if so.
    pub withheld: Option<String>,
    /// The operational metrics export, if the configuration turns it on.
    pub metrics: Option<MetricsPreview>,
}

/// The second channel (OTLP/HTTP operational metrics), as `preview` shows it.
#[derive(Debug, Clone)]
pub struct MetricsPreview {
    /// Where it is posted, safe to show.
    pub url: String,
    /// How often.
    pub interval: std::time::Duration,
    /// Why nothing is exported although it is turned on (offline, no
    /// license key), if so.
    pub withheld: Option<String>,
    /// The size of the first export's protobuf body, in bytes.
    pub bytes: usize,
    /// Its points, one line each, decoded from that exact body.
    pub points: Vec<String>,
}

/// The metrics export of `config` at `now`, if it is turned on.
pub fn metrics_preview(config: &Config, now: DateTime<Utc>) -> Option<MetricsPreview> {
    use beacon_meter::config::{ENV_LICENSE_KEY, ENV_METRICS_ENABLED};
    let export = config.metrics_export()?;
    let withheld = if config.is_offline() {
        Some("the deployment is offline, so no metrics are exported either".to_owned())
    } else if config.license_key().is_none() {
        Some(format!(
            "{ENV_METRICS_ENABLED} is on, but metrics are exported only with a license key \
             ({ENV_LICENSE_KEY}), as the platform's are"
        ))
    } else {
        None
    };
    // Offline or without a key, what it would send online with one.
    let body = beacon_meter::otlp::sample(config, now).unwrap_or_default();
    let points = beacon_meter::otlp::describe(&body).unwrap_or_default();
    Some(MetricsPreview {
        url: export.endpoint.to_string(),
        interval: export.interval,
        withheld,
        bytes: body.len(),
        points,
    })
}

/// The reports `config` would send at `now`, with tags from `tags` (plus the
/// plan) and counts from the checkpoint in `spool_dir`.
pub fn build(config: &Config, tags: &Tags, spool_dir: &Path, now: DateTime<Utc>) -> Previews {
    let plan = Plan::for_license(config.license_key().is_some());
    let tags = tags.clone().plan(plan).evaluate().tags;
    let checkpoint = read_checkpoint(spool_dir);
    let file = Spool::checkpoint_file(spool_dir);
    let now = beacon_meter::wire::tiling::truncate(now);
    // Offline, every credential's report is shown as it would look (the
    // spool keeps them for export); online, those that are sent.
    let destinations = if config.is_offline() {
        config.every_endpoint()
    } else {
        config.credentials()
    };
    let reports = destinations
        .into_iter()
        .map(|d| preview_one(config, d, &tags, (&checkpoint, &file), now))
        .collect();
    Previews {
        reports,
        offline: offline_reason(config),
        withheld: withheld_license(config),
        metrics: metrics_preview(config, now),
    }
}

/// The report to `target` at `now`: its open window in `checkpoint` (read
/// from `file`), or an empty one from the last boundary.
fn preview_one(
    config: &Config,
    target: Target,
    tags: &BTreeMap<String, String>,
    (checkpoint, file): (&Result<Checkpoint, String>, &Path),
    now: DateTime<Utc>,
) -> Preview {
    // The report carries the redacted form in place of the key.
    let key = target.credential.secret().redacted();
    let destination = target.destination();
    let credential = target.credential.with_secret(Secret::new(&key));
    let open = checkpoint.as_ref().ok().and_then(|cp| {
        let w = cp.windows.iter().find(|w| w.destination == destination)?;
        Some((w, cp.saved_at))
    });
    let file = file.display();
    let (from, mut measures, counts) = match (open, checkpoint) {
        (Some((w, saved_at)), _) => {
            let counts = saved_counts(config, &file, saved_at, now);
            (w.report.from_timestamp, w.report.measures.clone(), counts)
        }
        (None, found) => (
            beacon_meter::wire::tiling::boundary_at_or_before(now, config.interval()),
            BTreeMap::new(),
            found.as_ref().err().cloned().unwrap_or_else(|| {
                format!("zero: the checkpoint ({file}) holds no open window for this destination")
            }),
        ),
    };
    measures.entry(RUNS.to_owned()).or_insert(0);
    measures.entry(NODES.to_owned()).or_insert(0);
    let to = if now > from {
        now
    } else {
        from + TimeDelta::milliseconds(1)
    };
    let closes_at = WindowClock::new(config.interval(), from)
        .map(|c| c.next_boundary())
        .unwrap_or(to);
    let body = ReportBody {
        from_timestamp: from,
        to_timestamp: to,
        tags: tags.clone(),
        measures,
        logs: Vec::new(),
    };
    Preview {
        destination,
        key,
        submit_url: target.submit_url,
        dialect: target.dialect,
        report: UsageReport { credential, body },
        counts,
        closes_at,
    }
}

/// The counts' source when they come from a checkpoint (in `file`) saved
/// at `saved_at`, with a warning when it is too old for a running reporter.
fn saved_counts(
    config: &Config,
    file: &dyn Display,
    saved_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> String {
    let age = (now - saved_at).num_seconds().max(0);
    let stale = TimeDelta::from_std(config.checkpoint_interval() * 3)
        .unwrap_or(TimeDelta::MAX)
        .max(TimeDelta::seconds(30));
    let mut text = format!("the running reporter's open window, saved {age} s ago ({file})");
    if now - saved_at > stale {
        text.push_str(
            "; that is old: is the reporter running? A stopped reporter's open window is \
             turned into a pending window when it starts again",
        );
    }
    text
}

/// Why `config` sends nothing, if it is offline.
pub fn offline_reason(config: &Config) -> Option<String> {
    if config.offline_flag() {
        Some(format!("{ENV_OFFLINE} is true"))
    } else if config.is_offline() {
        Some(format!(
            "{ENV_LICENSE_KEY} is an offline (air-gapped) license: it does not start with lcl_, \
             and no API key is set"
        ))
    } else {
        None
    }
}

/// Why the license is not sent while the API key reports, if that is so.
pub fn withheld_license(config: &Config) -> Option<String> {
    (!config.is_offline() && config.has_offline_license()).then(|| {
        format!(
            "{ENV_LICENSE_KEY} is an offline (air-gapped) license (no lcl_ prefix): it is never \
             sent anywhere; reports go to the API-key destination only"
        )
    })
}

/// The open windows of every process on the spool root `dir` (its slots,
/// and the root itself for a spool written before slots), as one
/// checkpoint: each destination's windows merged (counters summed), or why
/// there is none to read, as the counts' source. Never takes a lock and
/// never changes the spool.
fn read_checkpoint(dir: &Path) -> Result<Checkpoint, String> {
    let unreadable = |why: String| Err(format!("zero: the checkpoint could not be read: {why}"));
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(
        slots::slot_dirs(dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, d)| d),
    );
    let mut all: Option<Checkpoint> = None;
    for d in dirs {
        let cp = match Spool::peek_checkpoint(&d) {
            Ok(CheckpointPeek::Found(cp)) => cp,
            Ok(CheckpointPeek::Absent) => continue,
            Ok(CheckpointPeek::Newer(v)) => {
                return unreadable(format!(
                    "format version {v} (this build reads version {FORMAT_VERSION}); upgrade \
                     beacon-meter to preview it"
                ));
            }
            Ok(CheckpointPeek::Unreadable(why)) => {
                return unreadable(format!("not a checkpoint: {why}"));
            }
            Err(SpoolError::NoSpool { .. }) => {
                return Err(format!(
                    "zero: no spool at {} yet (set BEACON_SPOOL_DIR if the reporter uses another \
                     one)",
                    dir.display()
                ));
            }
            Err(e) => return unreadable(e.to_string()),
        };
        let Some(acc) = &mut all else {
            all = Some(cp);
            continue;
        };
        acc.saved_at = acc.saved_at.max(cp.saved_at);
        for w in cp.windows {
            match acc
                .windows
                .iter_mut()
                .find(|a| a.destination == w.destination)
            {
                Some(a) => *a = merge(a, &w, a.id).unwrap_or(w),
                None => acc.windows.push(w),
            }
        }
    }
    all.ok_or_else(|| {
        format!(
            "zero: no checkpoint at {} (no reporter is running with this spool, or it has not \
             saved one yet)",
            Spool::checkpoint_file(dir).display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::tests::{API_KEY, LICENSE, config};
    use beacon_meter::config::ENV_API_KEY;
    use beacon_meter::spool::{SpoolLimits, SpooledWindow};
    use beacon_meter::wire::Credential;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    fn without_spool(c: &Config) -> Previews {
        build(c, &Tags::new(), Path::new("/nonexistent/spool"), Utc::now())
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn without_checkpoint_the_window_starts_at_the_boundary_with_zero_counts() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(&[(ENV_LICENSE_KEY, LICENSE), (ENV_API_KEY, API_KEY)]);
        let now = at("2025-01-06T09:07:12.345678Z");
        let p = build(&c, &Tags::new(), &dir.path().join("none"), now);
        assert_eq!(p.reports.len(), 2);
        assert_eq!(p.offline, None);
        let r = &p.reports[0];
        assert_eq!(r.destination, Destination::Beacon);
        assert_eq!(
            r.submit_url.as_str(),
            "https://beacon.langchain.com/v1/metadata/submit"
        );
        assert!(r.counts.starts_with("zero: no spool at "), "{}", r.counts);
        assert_eq!(r.report.body.from_timestamp, at("2025-01-06T09:05:00Z"));
        assert_eq!(r.report.body.to_timestamp, at("2025-01-06T09:07:12.345Z"));
        assert_eq!(r.closes_at, at("2025-01-06T09:10:00Z"));
        assert_eq!(
            r.report.body.measures,
            BTreeMap::from([(RUNS.to_owned(), 0), (NODES.to_owned(), 0)])
        );
        assert_eq!(r.report.body.tags["langgraph.platform.plan"], "enterprise");
        assert_eq!(r.dialect, Dialect::Published);
        assert_eq!(r.wire_json()["license"], "lcl_…9f2a");
        let json = String::from_utf8(r.report.encode()).unwrap();
        assert!(json.starts_with(r#"{"license":"lcl_…9f2a","#), "{json}");
        assert!(!json.contains(LICENSE));
        let auth = &p.reports[1];
        assert_eq!(auth.destination, Destination::Auth);
        assert_eq!(
            auth.submit_url.as_str(),
            "https://api.smith.langchain.com/v1/metadata/submit"
        );
        assert!(matches!(auth.report.credential, Credential::ApiKey(_)));
        assert!(
            !String::from_utf8(auth.report.encode())
                .unwrap()
                .contains(API_KEY)
        );
    }

    /// Saves into `spool` a checkpoint holding an open Beacon window from
    /// `from` with 7 runs and 21 nodes, saved at `saved`.
    fn save_open_window(spool: &Spool, from: DateTime<Utc>, saved: DateTime<Utc>) {
        let w = SpooledWindow::new(
            uuid::Uuid::new_v4(),
            Destination::Beacon,
            saved,
            vec![],
            ReportBody {
                from_timestamp: from,
                to_timestamp: saved,
                tags: BTreeMap::new(),
                measures: BTreeMap::from([(RUNS.to_owned(), 7), (NODES.to_owned(), 21)]),
                logs: vec![],
            },
        );
        spool
            .save_checkpoint(&Checkpoint::new(saved, vec![w]))
            .unwrap();
    }

    #[test]
    fn the_checkpoint_supplies_the_open_window() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        let from = Utc.with_ymd_and_hms(2025, 1, 6, 9, 5, 0).unwrap();
        let saved = at("2025-01-06T09:06:30Z");
        save_open_window(&spool, from, saved);
        // The reporter holds the lock: preview must still read it.
        let c = config(&[(ENV_LICENSE_KEY, LICENSE), (ENV_API_KEY, API_KEY)]);
        let p = build(&c, &Tags::new(), dir.path(), at("2025-01-06T09:06:31Z"));
        let file = Spool::checkpoint_file(dir.path()).display().to_string();
        assert_eq!(
            p.reports[0].counts,
            format!("the running reporter's open window, saved 1 s ago ({file})")
        );
        assert_eq!(p.reports[0].report.body.from_timestamp, from);
        assert_eq!(p.reports[0].report.body.measures[RUNS], 7);
        assert_eq!(p.reports[0].report.body.measures[NODES], 21);
        // no open auth window in the checkpoint
        assert_eq!(
            p.reports[1].counts,
            format!("zero: the checkpoint ({file}) holds no open window for this destination")
        );
        assert_eq!(p.reports[1].report.body.measures[RUNS], 0);
        drop(spool);
    }

    #[test]
    fn a_slot_checkpoint_is_counted_once() {
        // Reading the root with `Spool::show` also found the slot's
        // checkpoint, which was then read again from the slot: twice the
        // counts.
        let dir = tempfile::tempdir().unwrap();
        let claimed = slots::claim(dir.path(), SpoolLimits::default()).unwrap();
        let from = Utc.with_ymd_and_hms(2025, 1, 6, 9, 5, 0).unwrap();
        save_open_window(&claimed.spool, from, at("2025-01-06T09:06:30Z"));
        let c = config(&[(ENV_LICENSE_KEY, LICENSE)]);
        let p = build(&c, &Tags::new(), dir.path(), at("2025-01-06T09:06:31Z"));
        assert_eq!(p.reports[0].report.body.measures[RUNS], 7);
        assert_eq!(p.reports[0].report.body.measures[NODES], 21);
    }

    #[test]
    fn offline_is_previewed_and_marked() {
        let c = config(&[(ENV_LICENSE_KEY, "offline-0123456789abcdef")]);
        let p = without_spool(&c);
        assert_eq!(p.reports.len(), 1);
        assert!(p.offline.as_deref().unwrap().contains("offline"), "{p:?}");
        let c = config(&[(ENV_OFFLINE, "yes"), (ENV_API_KEY, API_KEY)]);
        let p = without_spool(&c);
        assert_eq!(p.reports.len(), 1);
        assert_eq!(p.offline.as_deref(), Some("BEACON_OFFLINE is true"));
        assert_eq!(
            p.reports[0].report.body.tags["langgraph.platform.plan"],
            "developer"
        );
    }
}
