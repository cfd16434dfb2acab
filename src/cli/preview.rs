//! `beacon-meter preview`: the next usage report(s) this configuration would
//! send, exactly as they would be POSTed but with the credential redacted.
//!
//! * One report per destination ([`Config::credentials`]): an online
//!   license key's goes to the Beacon, the API key's to the auth endpoint,
//!   each in the wire dialect of `BEACON_WIRE`, shown with its exact URL and
//!   body. An offline license is never sent, and is said so.
//! * Counts: the running reporter's open window, from `checkpoint.json` in
//!   the spool, read without taking the lock; without a checkpoint, a window
//!   from the last interval boundary to now with zero runs and nodes.
//! * Tags: the platform tags of this environment ([`Tags::from_env`]) and the
//!   plan; `logs` is empty.
//! * The window ends now (`to_timestamp`); the reporter will close it at the
//!   next interval boundary, with the counts it has then.
//!
//! An offline deployment is previewed too, marked as not sent.

use super::args::PreviewArgs;
use super::exit;
use super::term::Term;
use crate::config::{Config, ConfigError, ENV_LICENSE_KEY, ENV_OFFLINE, ENV_WIRE};
use crate::meter::{NODES, RUNS};
use crate::secret::Secret;
use crate::spool::{Checkpoint, Destination, FORMAT_VERSION, Spool, SpoolError, merge, slots};
use crate::wire::{
    Credential, Dialect, Plan, ReportBody, TagError, Tags, UsageReport, WindowClock,
    encode_report_in, format_timestamp,
};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Url;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The checkpoint's file name in the spool directory.
const CHECKPOINT_FILE: &str = "checkpoint.json";

/// Why `preview` failed.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// A configuration variable is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A tag variable is invalid.
    #[error(transparent)]
    Tags(#[from] TagError),
    /// The reports could not be written as JSON.
    #[error("could not write the reports as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing to stdout failed.
    #[error("could not write the output: {0}")]
    Output(#[from] io::Error),
}

impl PreviewError {
    /// [`exit::CONFIG`] for a bad environment, else [`exit::FAILURE`].
    pub fn exit_status(&self) -> u8 {
        match self {
            PreviewError::Config(_) | PreviewError::Tags(_) => exit::CONFIG,
            _ => exit::FAILURE,
        }
    }
}

/// Where a preview's counts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counts {
    /// The running reporter's checkpoint, saved at this time.
    Checkpoint {
        /// When the reporter saved it.
        saved_at: DateTime<Utc>,
    },
    /// The checkpoint holds no open window for this destination.
    NotInCheckpoint,
    /// The spool has no checkpoint (no reporter is running, or it has not
    /// saved one yet).
    NoCheckpoint,
    /// There is no spool directory yet.
    NoSpool,
    /// The checkpoint could not be read.
    Unreadable {
        /// Why.
        reason: String,
    },
}

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
    /// Where the counts come from.
    pub counts: Counts,
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
    /// The spool directory the checkpoint was looked for in.
    pub spool_dir: PathBuf,
}

/// Reads the environment and the spool and prints the reports.
pub fn run(args: &PreviewArgs, term: Term, out: &mut dyn Write) -> Result<(), PreviewError> {
    let config = Config::from_env()?;
    let tags = Tags::from_env()?;
    let spool_dir = config.spool_dir.clone().unwrap_or_else(Spool::default_dir);
    let previews = build(&config, &tags, &spool_dir, Utc::now());
    if args.json {
        let reports: Vec<serde_json::Value> =
            previews.reports.iter().map(Preview::wire_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&reports)?)?;
    } else {
        render(&previews, &config, term, Utc::now(), out)?;
    }
    Ok(())
}

/// The reports `config` would send at `now`, with tags from `tags` (plus the
/// plan) and counts from the checkpoint in `spool_dir`.
pub fn build(config: &Config, tags: &Tags, spool_dir: &Path, now: DateTime<Utc>) -> Previews {
    let plan = Plan::for_license(config.license_key.is_some());
    let tags = tags.clone().plan(plan).evaluate().tags;
    let checkpoint = read_checkpoint(spool_dir);
    let now = truncate_ms(now);

    // Offline, every credential's report is shown as it would look (the
    // spool keeps them for export); online, those that are sent.
    let destinations = if config.is_offline() {
        config.every_endpoint()
    } else {
        config.credentials()
    };
    // The report carries the redacted form in place of the key.
    let wanted = destinations.into_iter().map(|d| {
        let key = d.credential.secret().redacted();
        let credential = match &d.credential {
            Credential::License(_) => Credential::License(Secret::new(&key)),
            Credential::ApiKey(_) => Credential::ApiKey(Secret::new(&key)),
        };
        (d.destination(), key, credential, d.submit_url, d.dialect)
    });

    let reports = wanted
        .into_iter()
        .map(|(destination, key, credential, submit_url, dialect)| {
            let open = match &checkpoint {
                Ok(cp) => cp.windows.iter().find(|w| w.destination == destination),
                Err(_) => None,
            };
            let (from, mut measures, counts) = match (open, &checkpoint) {
                (Some(w), Ok(cp)) => (
                    w.report.from_timestamp,
                    w.report.measures.clone(),
                    Counts::Checkpoint {
                        saved_at: cp.saved_at,
                    },
                ),
                (_, found) => (
                    boundary_at_or_before(config, now),
                    Default::default(),
                    match found {
                        Ok(_) => Counts::NotInCheckpoint,
                        Err(c) => c.clone(),
                    },
                ),
            };
            measures.entry(RUNS.to_owned()).or_insert(0);
            measures.entry(NODES.to_owned()).or_insert(0);
            let to = if now > from {
                now
            } else {
                from + TimeDelta::milliseconds(1)
            };
            let closes_at = WindowClock::new(config.interval, from)
                .map(|c| c.next_boundary())
                .unwrap_or(to);
            Preview {
                destination,
                key,
                submit_url,
                dialect,
                report: UsageReport {
                    credential,
                    body: ReportBody {
                        from_timestamp: from,
                        to_timestamp: to,
                        tags: tags.clone(),
                        measures,
                        logs: Vec::new(),
                    },
                },
                counts,
                closes_at,
            }
        })
        .collect();

    Previews {
        reports,
        offline: offline_reason(config),
        withheld: withheld_license(config),
        spool_dir: spool_dir.to_path_buf(),
    }
}

/// Why `config` sends nothing, if it is offline.
pub(crate) fn offline_reason(config: &Config) -> Option<String> {
    if config.offline {
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
pub(crate) fn withheld_license(config: &Config) -> Option<String> {
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
/// there is none to read. Never takes a lock and never changes the spool.
fn read_checkpoint(dir: &Path) -> Result<Checkpoint, Counts> {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(
        slots::slot_dirs(dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, d)| d),
    );
    let mut all: Option<Checkpoint> = None;
    for d in dirs {
        let cp = match read_one_checkpoint(&d) {
            Ok(cp) => cp,
            Err(Counts::NoCheckpoint) => continue,
            Err(e) => return Err(e),
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
    all.ok_or(Counts::NoCheckpoint)
}

/// The checkpoint of one spool directory, or why there is none to read.
fn read_one_checkpoint(dir: &Path) -> Result<Checkpoint, Counts> {
    let spool = match Spool::open_read_only(dir) {
        Ok(s) => s,
        Err(SpoolError::NoSpool { .. }) => return Err(Counts::NoSpool),
        Err(e) => {
            return Err(Counts::Unreadable {
                reason: e.to_string(),
            });
        }
    };
    let text = match spool.show(CHECKPOINT_FILE) {
        Ok(t) => t,
        Err(SpoolError::NoSuchEntry { .. }) => return Err(Counts::NoCheckpoint),
        Err(e) => {
            return Err(Counts::Unreadable {
                reason: e.to_string(),
            });
        }
    };
    match serde_json::from_str::<Checkpoint>(&text) {
        Ok(cp) if cp.version == FORMAT_VERSION => Ok(cp),
        Ok(cp) => Err(Counts::Unreadable {
            reason: format!(
                "format version {} (this build reads version {FORMAT_VERSION}); upgrade \
                 beacon-meter to preview it",
                cp.version
            ),
        }),
        Err(e) => Err(Counts::Unreadable {
            reason: format!("not a checkpoint: {e}"),
        }),
    }
}

fn render(
    p: &Previews,
    config: &Config,
    term: Term,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> io::Result<()> {
    if p.reports.is_empty() {
        writeln!(
            out,
            "No credential is set, so no report would be sent: set {ENV_LICENSE_KEY} (enterprise \
             license) or {} (LangSmith API key).",
            crate::config::API_KEY_VARS.join(" / ")
        )?;
        return Ok(());
    }
    if let Some(why) = &p.withheld {
        writeln!(out, "{} {why}.\n", term.warn("Note:"))?;
    }
    if let Some(why) = &p.offline {
        writeln!(
            out,
            "{} {why}: nothing is sent. These are the reports as they would look.\n",
            term.warn("Offline:")
        )?;
    }
    let total = p.reports.len();
    for (i, r) in p.reports.iter().enumerate() {
        let who = match &r.report.credential {
            Credential::License(_) => format!("license {}", r.key),
            Credential::ApiKey(_) => format!("API key {}", r.key),
        };
        let whereto = if p.offline.is_some() {
            format!(
                "would NOT be sent (offline); online it goes to {}",
                r.submit_url
            )
        } else {
            format!("would be POSTed to {}", r.submit_url)
        };
        writeln!(
            out,
            "{} ({who}): {whereto}",
            term.bold(&format!(
                "Report {} of {total} to the {}",
                i + 1,
                match r.destination {
                    Destination::Beacon => "Beacon",
                    Destination::Auth => "auth endpoint",
                }
            ))
        )?;
        writeln!(
            out,
            "  window: {} to now; the reporter closes it at {}",
            format_timestamp(&r.report.body.from_timestamp),
            format_timestamp(&r.closes_at)
        )?;
        writeln!(
            out,
            "  wire dialect: {} ({ENV_WIRE}; the credential travels in \"{}\")",
            r.dialect,
            r.report.credential.field_in(r.dialect)
        )?;
        writeln!(out, "  counts: {}", counts_text(&r.counts, p, config, now))?;
        writeln!(
            out,
            "  tags: from this environment; tags the application sets itself (versions, \
             user_app flags) show their defaults"
        )?;
        let json = serde_json::to_string_pretty(&r.wire_json()).map_err(io::Error::other)?;
        writeln!(out, "{json}")?;
        if i + 1 < total {
            writeln!(out)?;
        }
    }
    Ok(())
}

fn counts_text(c: &Counts, p: &Previews, config: &Config, now: DateTime<Utc>) -> String {
    let checkpoint = p.spool_dir.join(CHECKPOINT_FILE);
    match c {
        Counts::Checkpoint { saved_at } => {
            let age = (now - *saved_at).num_seconds().max(0);
            let stale = TimeDelta::from_std(config.checkpoint_interval * 3)
                .unwrap_or(TimeDelta::MAX)
                .max(TimeDelta::seconds(30));
            let mut text = format!(
                "the running reporter's open window, saved {age} s ago ({})",
                checkpoint.display()
            );
            if now - *saved_at > stale {
                text.push_str(
                    "; that is old: is the reporter running? A stopped reporter's open window \
                     is turned into a pending window when it starts again",
                );
            }
            text
        }
        Counts::NotInCheckpoint => format!(
            "zero: the checkpoint ({}) holds no open window for this destination",
            checkpoint.display()
        ),
        Counts::NoCheckpoint => format!(
            "zero: no checkpoint at {} (no reporter is running with this spool, or it has not \
             saved one yet)",
            checkpoint.display()
        ),
        Counts::NoSpool => format!(
            "zero: no spool at {} yet (set BEACON_SPOOL_DIR if the reporter uses another one)",
            p.spool_dir.display()
        ),
        Counts::Unreadable { reason } => {
            format!("zero: the checkpoint could not be read: {reason}")
        }
    }
}

/// The last UTC multiple of the report interval at or before `now`.
fn boundary_at_or_before(config: &Config, now: DateTime<Utc>) -> DateTime<Utc> {
    let interval = i64::try_from(config.interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let ms = now.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(interval)).unwrap_or(now)
}

fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ENV_API_KEY;
    use crate::spool::{SpoolLimits, SpooledWindow};
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    const LICENSE: &str = "lcl_0123456789abcdef9f2a";
    const API_KEY: &str = "lsv2_pt_0123456789abcdef_77";

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs).unwrap()
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
        assert_eq!(r.counts, Counts::NoSpool);
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

    #[test]
    fn the_checkpoint_supplies_the_open_window() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        let from = Utc.with_ymd_and_hms(2025, 1, 6, 9, 5, 0).unwrap();
        let saved = at("2025-01-06T09:06:30Z");
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
        // The reporter holds the lock: preview must still read it.
        let c = config(&[(ENV_LICENSE_KEY, LICENSE), (ENV_API_KEY, API_KEY)]);
        let p = build(&c, &Tags::new(), dir.path(), at("2025-01-06T09:06:31Z"));
        assert_eq!(p.reports[0].counts, Counts::Checkpoint { saved_at: saved });
        assert_eq!(p.reports[0].report.body.from_timestamp, from);
        assert_eq!(p.reports[0].report.body.measures[RUNS], 7);
        assert_eq!(p.reports[0].report.body.measures[NODES], 21);
        // no open auth window in the checkpoint
        assert_eq!(p.reports[1].counts, Counts::NotInCheckpoint);
        assert_eq!(p.reports[1].report.body.measures[RUNS], 0);
        drop(spool);
    }

    #[test]
    fn offline_is_previewed_and_marked() {
        let c = config(&[(ENV_LICENSE_KEY, "offline-0123456789abcdef")]);
        let p = build(
            &c,
            &Tags::new(),
            Path::new("/nonexistent/spool"),
            Utc::now(),
        );
        assert_eq!(p.reports.len(), 1);
        assert!(p.offline.as_deref().unwrap().contains("offline"), "{p:?}");
        let c = config(&[(ENV_OFFLINE, "yes"), (ENV_API_KEY, API_KEY)]);
        let p = build(
            &c,
            &Tags::new(),
            Path::new("/nonexistent/spool"),
            Utc::now(),
        );
        assert_eq!(p.reports.len(), 1);
        assert_eq!(p.offline.as_deref(), Some("BEACON_OFFLINE is true"));
        assert_eq!(
            p.reports[0].report.body.tags["langgraph.platform.plan"],
            "developer"
        );
    }

    #[test]
    fn the_langgraph_api_dialect_changes_the_license_path_and_field_only() {
        let c = config(&[
            (ENV_LICENSE_KEY, LICENSE),
            (ENV_API_KEY, API_KEY),
            (ENV_WIRE, "langgraph-api"),
            ("LANGSMITH_AUTH_ENDPOINT", "https://cp.example.com/api/v1"),
        ]);
        let p = build(
            &c,
            &Tags::new(),
            Path::new("/nonexistent/spool"),
            Utc::now(),
        );
        let (license, auth) = (&p.reports[0], &p.reports[1]);
        assert_eq!(
            license.submit_url.as_str(),
            "https://beacon.langchain.com/v1/beacon/metadata/submit"
        );
        let body = license.wire_json();
        assert_eq!(body["license_key"], "lcl_…9f2a");
        assert!(body.get("license").is_none(), "{body}");
        assert_eq!(
            auth.submit_url.as_str(),
            "https://cp.example.com/api/v1/metadata/submit"
        );
        assert_eq!(auth.wire_json()["api_key"], "lsv2…f_77");
        let mut out = Vec::new();
        render(&p, &c, Term::plain(), Utc::now(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("wire dialect: langgraph-api (BEACON_WIRE; the credential travels in \"license_key\")"),
            "{text}"
        );
        assert!(text.contains("\"license_key\": \"lcl_…9f2a\""), "{text}");
        assert!(!text.contains(LICENSE) && !text.contains(API_KEY));
    }

    #[test]
    fn an_offline_license_beside_an_api_key_is_never_previewed_as_sent() {
        let c = config(&[
            (ENV_LICENSE_KEY, "offline-0123456789abcdef"),
            (ENV_API_KEY, API_KEY),
        ]);
        let p = build(
            &c,
            &Tags::new(),
            Path::new("/nonexistent/spool"),
            Utc::now(),
        );
        assert_eq!(p.offline, None);
        assert_eq!(p.reports.len(), 1);
        assert_eq!(p.reports[0].destination, Destination::Auth);
        assert!(
            p.withheld.as_deref().unwrap().contains("never sent"),
            "{p:?}"
        );
        let mut out = Vec::new();
        render(&p, &c, Term::plain(), Utc::now(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("offline-0123456789abcdef"), "{text}");
        assert!(!text.contains("\"license"), "{text}");
    }

    #[test]
    fn rendering_names_the_url_and_never_the_key() {
        let c = config(&[(ENV_LICENSE_KEY, LICENSE)]);
        let p = build(
            &c,
            &Tags::new(),
            Path::new("/nonexistent/spool"),
            Utc::now(),
        );
        let mut out = Vec::new();
        render(&p, &c, Term::plain(), Utc::now(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("would be POSTed to https://beacon.langchain.com/v1/metadata/submit"),
            "{text}"
        );
        assert!(text.contains("\"license\": \"lcl_…9f2a\""), "{text}");
        assert!(text.contains("(license lcl_…9f2a)"), "{text}");
        assert!(!text.contains(LICENSE));
    }
}
