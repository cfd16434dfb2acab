//! `beacon-meter preview`: renders the next usage report(s) this
//! configuration would send ([`crate::doctor::preview`]), exactly as
//! they would be POSTed but with the credential redacted. An offline
//! deployment is previewed too, marked as not sent.

use super::args::PreviewArgs;
use super::term::Term;
use crate::doctor::preview::{MetricsPreview, Preview, Previews, build};
use anyhow::Context as _;
use beacon_meter::config::{Config, ENV_LICENSE_KEY, ENV_WIRE};
use beacon_meter::spool::Spool;
use beacon_meter::wire::{Credential, format_timestamp};
use chrono::Utc;
use std::io::{self, Write};

/// Reads the environment and the spool and prints the reports.
/// A bad environment is returned as its `ConfigError` or `TagError`
/// (exit status 2).
pub fn run(args: &PreviewArgs, term: Term, out: &mut dyn Write) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let tags = beacon_meter::config::tags_from_env()?;
    let spool_dir = config
        .spool_dir()
        .map_or_else(Spool::default_dir, ToOwned::to_owned);
    let previews = build(&config, &tags, &spool_dir, Utc::now());
    let written = if args.json {
        let reports: Vec<serde_json::Value> =
            previews.reports.iter().map(Preview::wire_json).collect();
        let text = serde_json::to_string_pretty(&reports).map_err(io::Error::other)?;
        writeln!(out, "{text}")
    } else {
        render(&previews, term, out)
    };
    written.context("could not write the output")
}

fn render(p: &Previews, term: Term, out: &mut dyn Write) -> io::Result<()> {
    if p.reports.is_empty() {
        writeln!(
            out,
            "No credential is set, so no report would be sent: set {ENV_LICENSE_KEY} (enterprise \
             license) or {} (LangSmith API key).",
            beacon_meter::config::API_KEY_VARS.join(" / ")
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
        let (who, to) = match &r.report.credential {
            Credential::License(_) => ("license", "Beacon"),
            Credential::ApiKey(_) => ("API key", "auth endpoint"),
        };
        let url = &r.submit_url;
        let whereto = if p.offline.is_some() {
            format!("would NOT be sent (offline); online it goes to {url}")
        } else {
            format!("would be POSTed to {url}")
        };
        let title = term.bold(&format!("Report {} of {total} to the {to}", i + 1));
        writeln!(out, "{title} ({who} {}): {whereto}", r.key)?;
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
        writeln!(out, "  counts: {}", r.counts)?;
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
    if let Some(m) = &p.metrics {
        render_metrics(m, term, out)?;
    }
    Ok(())
}

/// The second channel: where, how often, and the first export's points.
fn render_metrics(m: &MetricsPreview, term: Term, out: &mut dyn Write) -> io::Result<()> {
    let title = term.bold("Operational metrics (OTLP/HTTP protobuf)");
    let whereto = match &m.withheld {
        Some(why) => format!("NOT exported: {why}; it would go to {}", m.url),
        None => format!("POSTed to {} every {:?}", m.url, m.interval),
    };
    writeln!(out, "\n{title}: {whereto}")?;
    writeln!(
        out,
        "  headers: Content-Type: application/x-protobuf, {}: (the license key)",
        beacon_meter::wire::METRICS_LICENSE_HEADER
    )?;
    writeln!(out, "  the first export, {} bytes, decoded:", m.bytes)?;
    for p in &m.points {
        writeln!(out, "    {p}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_meter::config::ENV_API_KEY;
    use beacon_meter::spool::Destination;
    use std::path::Path;

    const LICENSE: &str = "lcl_0123456789abcdef9f2a";
    const API_KEY: &str = "lsv2_pt_0123456789abcdef_77";

    /// The previews of the configuration `pairs` (with no spool), and
    /// their rendering.
    fn preview(pairs: &[(&str, &str)]) -> (Previews, String) {
        let c = Config::from_pairs(pairs).unwrap();
        let p = build(
            &c,
            &beacon_meter::wire::Tags::new(),
            Path::new("/nonexistent/spool"),
            Utc::now(),
        );
        let mut out = Vec::new();
        render(&p, Term::plain(), &mut out).unwrap();
        (p, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_langgraph_api_dialect_changes_the_license_path_and_field_only() {
        let (p, text) = preview(&[
            (ENV_LICENSE_KEY, LICENSE),
            (ENV_API_KEY, API_KEY),
            (ENV_WIRE, "langgraph-api"),
            ("LANGSMITH_AUTH_ENDPOINT", "https://cp.example.com/api/v1"),
        ]);
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
        assert!(
            text.contains("wire dialect: langgraph-api (BEACON_WIRE; the credential travels in \"license_key\")"),
            "{text}"
        );
        assert!(text.contains("\"license_key\": \"lcl_…9f2a\""), "{text}");
        assert!(!text.contains(LICENSE) && !text.contains(API_KEY));
    }

    #[test]
    fn an_offline_license_beside_an_api_key_is_never_previewed_as_sent() {
        let (p, text) = preview(&[
            (ENV_LICENSE_KEY, "offline-0123456789abcdef"),
            (ENV_API_KEY, API_KEY),
        ]);
        assert_eq!(p.offline, None);
        assert_eq!(p.reports.len(), 1);
        assert_eq!(p.reports[0].destination, Destination::Auth);
        assert!(
            p.withheld.as_deref().unwrap().contains("never sent"),
            "{p:?}"
        );
        assert!(!text.contains("offline-0123456789abcdef"), "{text}");
        assert!(!text.contains("\"license"), "{text}");
    }

    #[test]
    fn rendering_names_the_url_and_never_the_key() {
        let (_, text) = preview(&[(ENV_LICENSE_KEY, LICENSE)]);
        assert!(
            text.contains("would be POSTed to https://beacon.langchain.com/v1/metadata/submit"),
            "{text}"
        );
        assert!(text.contains("\"license\": \"lcl_…9f2a\""), "{text}");
        assert!(text.contains("(license lcl_…9f2a)"), "{text}");
        assert!(!text.contains(LICENSE));
    }

    #[test]
    fn the_metrics_channel_is_previewed_with_its_url_and_exact_points() {
        use beacon_meter::config::{ENV_HOSTNAME, ENV_METRICS_ENABLED, ENV_METRICS_ENDPOINT};
        let metrics = [
            (ENV_METRICS_ENABLED, "true"),
            (ENV_METRICS_ENDPOINT, "https://collector.example/v1/metrics"),
            (ENV_HOSTNAME, "pod-9"),
        ];
        let (p, text) = preview(&[&metrics[..], &[(ENV_LICENSE_KEY, LICENSE)]].concat());
        let m = p.metrics.expect("previewed");
        assert!(m.withheld.is_none() && m.bytes > 0, "{m:?}");
        assert!(
            text.contains("POSTed to https://collector.example/v1/metrics every 60s"),
            "{text}"
        );
        assert!(
            text.contains(
                "beacon_meter_windows_pending{destination=beacon, instance_id=pod-9} = 0 (gauge, 1)"
            ),
            "{text}"
        );
        assert!(!text.contains(LICENSE), "{text}");
        // An API key only: shown, and said not to be exported.
        let (p, text) = preview(&[&metrics[..], &[(ENV_API_KEY, API_KEY)]].concat());
        assert!(p.metrics.unwrap().withheld.is_some());
        assert!(text.contains("NOT exported"), "{text}");
        // Off: no section.
        let (p, _) = preview(&[(ENV_LICENSE_KEY, LICENSE)]);
        assert!(p.metrics.is_none());
    }
}
