//! The command line, and only the command line: every flag, its help text
//! and its examples. Nothing here does any work; [`super::main`] hands the
//! parsed values to the subcommand modules.
//!
//! Credentials given as flags (`sink --license`, `sink --api-key`) are parsed
//! straight into [`Secret`]s, so no `Debug` output of these types can show
//! them.

use beacon_meter::secret::Secret;
use beacon_meter_sink::{DEFAULT_ORG_ID, Faults};
use clap::{ArgAction, Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use uuid::Uuid;

const MAIN_AFTER_HELP: &str = "\
Examples:
  beacon-meter demo                       the whole pipeline on an embedded Beacon
  beacon-meter check                      is this deployment ready to report?
  beacon-meter preview                    the next report, credential redacted
  beacon-meter sink                       a local Beacon on 127.0.0.1:8787
  beacon-meter spool list                 windows waiting to be sent

Configuration comes from the environment, as for the library:
LANGGRAPH_CLOUD_LICENSE_KEY, LANGSMITH_API_KEY, BEACON_URL,
LANGSMITH_AUTH_ENDPOINT, BEACON_OFFLINE, BEACON_SPOOL_DIR, BEACON_CA_CERT, ...
(`beacon-meter check` shows them all).

Exit status: 0 success, 1 failure, 2 configuration or usage error
(`check` also uses 3 and 4, see `beacon-meter check --help`).
Logs go to stderr: -v, -vv, -vvv or RUST_LOG (e.g. RUST_LOG=beacon_meter=debug).";

const DEMO_AFTER_HELP: &str = "\
Examples:
  beacon-meter demo
      10 s on all cores against an embedded Beacon that injects faults
  beacon-meter demo --threads 8 --duration 30 --summary-json /tmp/demo.json
  beacon-meter demo --endpoint http://127.0.0.1:8787
      ship to a running `beacon-meter sink` (or a real Beacon; the license
      comes from LANGGRAPH_CLOUD_LICENSE_KEY, else a demo key)
  beacon-meter demo --spool ./spool
      keep the spool; windows an earlier run left there are delivered too

A synthetic executor (runs of 1-20 nodes, a few microseconds of work per
node) records into the meter; the reporter cuts windows and delivers them
through injected 503s, dropped connections and answers lost after acceptance.
At the end: recorded vs delivered per measure (as counted by the Beacon,
deduplicated), windows delivered, retries, duplicates suppressed, and the
executor's throughput with metering on vs off, measured side by side.
Exits 1 if delivered != recorded.";

const SINK_AFTER_HELP: &str = "\
Examples:
  beacon-meter sink
      a Beacon on http://127.0.0.1:8787 that accepts any lcl_ license
  BEACON_URL=http://127.0.0.1:8787 LANGGRAPH_CLOUD_LICENSE_KEY=lcl_demo_0123456789 my-platform
      point the library (or any platform embedding it) at the sink
  beacon-meter sink --bind 127.0.0.1:0
      any free port; the first line of output names the one chosen
  beacon-meter sink --api-key lsv2_local_key --jsonl reports.jsonl
      also accept this API key (LANGSMITH_AUTH_ENDPOINT=http://127.0.0.1:8787)
      and append every accepted report to reports.jsonl
  beacon-meter sink --failure-rate 0.3 --accept-then-drop-rate 0.1 --seed 7
      answer 30% of reports 503 and drop 10% of answers after accepting
  beacon-meter sink --db beacon.db
      keep accepted reports and idempotency keys in beacon.db (SQLite), so
      that a restarted sink still counts every report once
  beacon-meter sink --bind 0.0.0.0:8443 --db beacon.db --tls-cert cert.pem \\
      --tls-key key.pem --admin-token-file admin.token
      serve HTTPS to other hosts; /v1/summary and /v1/reports need
      `Authorization: Bearer <token>`
  beacon-meter sink usage --db beacon.db --by hour --since 2026-11-30
  beacon-meter sink metrics --db beacon.db --name beacon_meter_windows_pending
      totals per hour, host, tenant and destination, read from beacon.db

The first line of output is `Listening on http://ADDR` (with --json, a JSON
object with \"url\"). Stop with Ctrl-C (or SIGTERM): requests in flight get
2 s to finish, then the totals are printed. Keys given as flags are shown
redacted, but other local users can read a process's command line: prefer a
throwaway key for the sink.";

const CHECK_AFTER_HELP: &str = "\
Examples:
  beacon-meter check
  beacon-meter check --json | jq .egress
  LANGGRAPH_CLOUD_LICENSE_KEY=lcl_... BEACON_URL=http://127.0.0.1:8787 beacon-meter check

Reads the same environment as the library and, for every host the
configuration needs: DNS, TCP connect, TLS handshake (and which CA verified
it), and whether it answers HTTP at all. Then verifies the license key
(token expiry) and the API key (organization id). An offline deployment
(BEACON_OFFLINE=true, or a license key without the lcl_ prefix) makes no
network call at all. Secrets are shown redacted.

Exit status:
  0  all good (or offline: nothing to reach)
  2  configuration error: a variable is invalid, or no credential is set
  3  unreachable: a host cannot be resolved, connected to, or does not
     answer (or answers unlike a Beacon / auth service)
  4  a credential was rejected
When a credential is rejected and a host is unreachable, the status is 4.";

const PREVIEW_AFTER_HELP: &str = "\
Examples:
  beacon-meter preview
  beacon-meter preview --json | jq '.[0].measures'

One report per destination: the license key's goes to {BEACON_URL}/v1/metadata/submit,
the API key's to {LANGSMITH_AUTH_ENDPOINT}/v1/metadata/submit. The counts are
those of the running reporter's open window, read from checkpoint.json in the
spool (BEACON_SPOOL_DIR or the default spool directory; read-only, the lock is
not taken); without a checkpoint the window runs from the last interval
boundary to now with zero counts. Tags come from this environment; tags the
embedding application sets itself (versions, user_app flags) show their
defaults. With --json the output is only a JSON array of the report objects,
in destination order (license first), each exactly as it would be POSTed but
with the credential redacted; [] when no credential is set.";

const SPOOL_AFTER_HELP: &str = "\
Examples:
  beacon-meter spool list
  beacon-meter spool list --json
  beacon-meter spool show 3f1c9a52-6c1e-4b7b-9d59-0a4c1f0e2d11
  beacon-meter spool export /media/usb/usage-export.json
  beacon-meter spool --dir /var/lib/beacon/spool requeue

The spool directory is --dir, else BEACON_SPOOL_DIR, else the default
(~/.local/state/beacon-meter/spool). list, show and export only read, so they
work while a reporter runs; requeue changes the spool and needs the reporter
stopped.";

/// Usage metering for graph executors: check a deployment, preview its
/// reports, inspect its spool, or run a local Beacon.
#[derive(Debug, Parser)]
#[command(name = "beacon-meter", version, after_help = MAIN_AFTER_HELP)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG
    /// takes precedence.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each variant is handled by the module of the same name
/// under `src/cli/`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline on an embedded local Beacon and reconcile.
    #[command(after_help = DEMO_AFTER_HELP)]
    Demo(DemoArgs),
    /// Run a local Beacon (verify, auth and report endpoints) until Ctrl-C.
    #[command(after_help = SINK_AFTER_HELP, args_conflicts_with_subcommands = true)]
    Sink(Box<SinkArgs>),
    /// Check this deployment's configuration, network path and credentials.
    #[command(after_help = CHECK_AFTER_HELP)]
    Check(CheckArgs),
    /// Print the next usage report(s) this configuration would send.
    #[command(after_help = PREVIEW_AFTER_HELP)]
    Preview(PreviewArgs),
    /// Inspect and manage the spool of unsent usage windows.
    #[command(after_help = SPOOL_AFTER_HELP)]
    Spool(SpoolArgs),
}

/// `beacon-meter demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Worker threads of the synthetic executor (default: available cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    /// How long the executor runs, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,

    /// Window length, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,

    /// Ship to this Beacon base URL instead of the embedded one (https, or
    /// http to loopback).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// Spool directory (default: a fresh temporary directory, removed at
    /// the end if everything was delivered).
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,

    /// Rewrite a JSON summary here at least once a second and at exit.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,

    /// Print the final summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `beacon-meter sink`.
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Address to listen on. Port 0 picks a free port. A non-loopback
    /// address exposes the sink (plain HTTP, no TLS) to the network.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    pub bind: SocketAddr,

    /// Lifetime of the license tokens the sink issues, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub token_lifetime: u64,

    /// Accept only this license key (repeatable). Default: any key that
    /// starts with lcl_.
    #[arg(long = "license", value_name = "KEY", value_parser = parse_secret)]
    pub licenses: Vec<Secret>,

    /// Accept this API key at /auth and in reports (repeatable). Default:
    /// none.
    #[arg(long = "api-key", value_name = "KEY", value_parser = parse_secret)]
    pub api_keys: Vec<Secret>,

    /// The organization id /auth answers with.
    #[arg(long, value_name = "UUID", default_value_t = DEFAULT_ORG_ID)]
    pub org_id: Uuid,

    /// Read a sink database instead of serving (`sink usage`).
    #[command(subcommand)]
    pub action: Option<SinkAction>,

    /// Keep accepted reports, idempotency keys and totals in this SQLite
    /// file (created if missing). Default: in memory, lost at exit.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Also export every accepted report to this file, one JSON line each
    /// (credential redacted).
    #[arg(long, value_name = "PATH")]
    pub jsonl: Option<PathBuf>,

    /// A file holding the bearer token that GET /v1/summary and
    /// /v1/reports require. Without it, they answer 401 unless the sink
    /// listens on loopback only.
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,

    /// The most connections served at once; at the limit a new one closes
    /// the oldest idle one. Default: 1024, or the open-file limit
    /// (`ulimit -n`) less 64 if that is lower.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Share of reports answered 503 Service Unavailable (0 to 1).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_rate)]
    pub failure_rate: f64,

    /// Share of reports whose connection is closed without an answer, the
    /// report not accepted (0 to 1).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_rate)]
    pub drop_rate: f64,

    /// Share of accepted reports whose connection is then closed without an
    /// answer: the timeout-after-accept case (0 to 1).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_rate)]
    pub accept_then_drop_rate: f64,

    /// Delay before every answer, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,

    /// Answer every report with this HTTP status (200 to 599), without
    /// looking at it.
    #[arg(long, value_name = "CODE",
          value_parser = clap::value_parser!(u16).range(200..=599))]
    pub force_status: Option<u16>,

    /// Seed of the fault-injection random generator (same seed, same
    /// requests: same faults).
    #[arg(long, value_name = "N", default_value_t = Faults::default().seed)]
    pub seed: u64,

    /// Machine output: one JSON object per line (the listening address
    /// first, the totals at exit).
    #[arg(long)]
    pub json: bool,
}

/// `beacon-meter check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print one JSON object (configuration, egress allowlist, probes,
    /// credentials, exit_code) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `beacon-meter preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Print only a JSON array of the reports (credential redacted).
    #[arg(long)]
    pub json: bool,
}

/// `beacon-meter spool`.
#[derive(Debug, Args)]
pub struct SpoolArgs {
    /// The spool directory. Default: BEACON_SPOOL_DIR, else
    /// ~/.local/state/beacon-meter/spool.
    #[arg(long, value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,

    /// What to do with the spool.
    #[command(subcommand)]
    pub action: SpoolAction,
}

/// The `spool` subcommands.
#[derive(Debug, Subcommand)]
pub enum SpoolAction {
    /// Pending windows per destination, rejected windows and corrupt files.
    #[command(
        after_help = "Examples:\n  beacon-meter spool list\n  beacon-meter spool list --json | jq '.pending.beacon | length'"
    )]
    List {
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one spool file: a window by id, or a file name or path from
    /// `spool list`.
    #[command(
        after_help = "Examples:\n  beacon-meter spool show 3f1c9a52-6c1e-4b7b-9d59-0a4c1f0e2d11\n  beacon-meter spool show beacon/rejected/20250106T090000.000000000Z_3f1c9a52-6c1e-4b7b-9d59-0a4c1f0e2d11.answer.txt"
    )]
    Show {
        /// A window id, or a file name or relative path as `spool list`
        /// prints it.
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Write every pending window into one JSON file, for reporting by hand
    /// from a site without egress. The windows stay pending.
    #[command(
        after_help = "Examples:\n  beacon-meter spool export usage-2025-01.json\n\nEach entry of the file holds the exact report body to send (add the\ncredential) and the id to send it with as its Idempotency-Key."
    )]
    Export {
        /// The file to write (replaced if it exists).
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Print {"count": N, "path": ...} instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Move every rejected window back to pending, to be sent again. Needs
    /// the spool's lock: stop the reporter first.
    #[command(
        after_help = "Examples:\n  beacon-meter spool requeue\n\nRun it after fixing what made the server refuse the windows (see the\n.answer.txt files that `spool list` names)."
    )]
    Requeue {
        /// Print {"requeued": N} instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Any text becomes a [`Secret`]; checking it is left to the command, so
/// that a bad key is never echoed in clap's error message.
fn parse_secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

/// What `beacon-meter sink` does instead of serving.
#[derive(Debug, Subcommand)]
pub enum SinkAction {
    /// Print usage totals per period, host, tenant and destination from a
    /// sink database.
    Usage(UsageArgs),
    /// Print the OTLP metrics a sink stored (POST /v1/metrics): per metric,
    /// instance and attributes, the latest value and a per-period summary.
    Metrics(MetricsArgs),
}

/// `beacon-meter sink metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The sink database (as given to `sink --db`).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,

    /// Only this metric (e.g. beacon_meter_windows_pending).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Only points at or after this instant: RFC 3339
    /// (2026-11-30T09:00:00Z) or a date (2026-11-30, midnight UTC).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,

    /// One summary per hour or per day (UTC) of the points' times.
    #[arg(long, value_name = "PERIOD", value_enum, default_value_t = UsagePeriod::Hour)]
    pub by: UsagePeriod,

    /// Machine output: a JSON array of series.
    #[arg(long)]
    pub json: bool,
}

/// `beacon-meter sink usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The sink database (as given to `sink --db`).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,

    /// One row per hour or per day (UTC) in which report windows start.
    #[arg(long, value_name = "PERIOD", value_enum, default_value_t = UsagePeriod::Day)]
    pub by: UsagePeriod,

    /// Only reports whose window starts at or after this instant: RFC 3339
    /// (2026-11-30T09:00:00Z) or a date (2026-11-30, midnight UTC).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,

    /// Machine output: a JSON array of rows.
    #[arg(long)]
    pub json: bool,
}

/// The values of `sink usage --by`, one per [`beacon_meter_sink::Period`]
/// (the variants carry no doc comment: clap would print it in `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[allow(missing_docs)]
pub enum UsagePeriod {
    Hour,
    Day,
}

impl From<UsagePeriod> for beacon_meter_sink::Period {
    fn from(p: UsagePeriod) -> Self {
        match p {
            UsagePeriod::Hour => beacon_meter_sink::Period::Hour,
            UsagePeriod::Day => beacon_meter_sink::Period::Day,
        }
    }
}

fn parse_since(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let value = value.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| "expected RFC 3339 like 2026-11-30T09:00:00Z or a date like 2026-11-30".into())
}

/// A share between 0 and 1.
fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value
        .trim()
        .parse()
        .map_err(|_| "expected a number between 0 and 1, like 0.25".to_owned())?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("a share must be between 0 and 1, like 0.25".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sink_defaults_and_flags() {
        let cli = Cli::try_parse_from(["beacon-meter", "sink"]).unwrap();
        let Command::Sink(s) = cli.command else {
            panic!("not sink")
        };
        assert_eq!(s.bind.to_string(), "127.0.0.1:8787");
        assert_eq!(s.token_lifetime, 3600);
        assert!(s.licenses.is_empty() && s.api_keys.is_empty());
        assert_eq!(s.org_id, DEFAULT_ORG_ID);
        assert_eq!(s.seed, Faults::default().seed);

        let cli = Cli::try_parse_from([
            "beacon-meter",
            "-vv",
            "sink",
            "--license",
            "lcl_0123456789abcdef9f2a",
            "--license",
            "lcl_other_0123456789",
            "--failure-rate",
            "0.5",
            "--force-status",
            "503",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 2);
        let Command::Sink(s) = cli.command else {
            panic!("not sink")
        };
        assert_eq!(s.licenses.len(), 2);
        assert_eq!(s.failure_rate, 0.5);
        assert_eq!(s.force_status, Some(503));
        let shown = format!("{s:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn bad_flag_values_are_refused_with_the_fix() {
        for args in [
            &["beacon-meter", "sink", "--failure-rate", "1.5"][..],
            &["beacon-meter", "sink", "--drop-rate", "x"][..],
            &["beacon-meter", "sink", "--force-status", "42"][..],
            &["beacon-meter", "sink", "--bind", "localhost"][..],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        let err = Cli::try_parse_from(["beacon-meter", "sink", "--failure-rate", "1.5"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("between 0 and 1"), "{err}");
    }

    #[test]
    fn spool_dir_goes_before_or_after_the_action() {
        for args in [
            &["beacon-meter", "spool", "--dir", "/x", "list"][..],
            &["beacon-meter", "spool", "list", "--dir", "/x"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Spool(s) = cli.command else {
                panic!("not spool")
            };
            assert_eq!(s.dir.as_deref(), Some(std::path::Path::new("/x")));
            assert!(matches!(s.action, SpoolAction::List { json: false }));
        }
    }
}
