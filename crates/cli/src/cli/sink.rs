//! `beacon-meter sink`: a local Beacon ([`beacon_meter_sink`]) in the foreground.
//!
//! Prints where it listens (always the first line of output) and how to
//! point the library at it, runs until Ctrl-C or SIGTERM, then shuts down
//! gracefully and prints the totals. Credentials given as flags are only
//! ever printed redacted.

use super::args::{MetricsArgs, SinkArgs, UsageArgs};
use super::exit;
use super::term::Term;
use beacon_meter::secret::Secret;
use beacon_meter_sink::{
    Faults, MIN_ADMIN_TOKEN_CHARS, Series, SinkConfig, SinkError, SinkHandle, StoreError, Summary,
    TlsFiles, UsageRow,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why `beacon-meter sink` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SinkCommandError {
    /// A `--license` or `--api-key` value that cannot be a key.
    #[error(
        "{flag} value number {index} is empty or contains whitespace or control characters; \
         pass the key exactly as issued (the value is not shown because it is a secret)"
    )]
    BadKey {
        /// The flag (`--license`, `--api-key`).
        flag: &'static str,
        /// Which occurrence of the flag, from 1.
        index: usize,
    },
    /// The `--admin-token-file` could not be used.
    #[error(
        "the admin token file {}: {reason}; put a long random string in it (e.g. `openssl rand -hex 32`)",
        path.display()
    )]
    AdminToken {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the token).
        reason: String,
    },
    /// The listening address could not be bound.
    #[error(
        "could not listen on {addr}: {source}; pass --bind with a free address and port \
         (--bind 127.0.0.1:0 picks any free port)"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The sink could not start (JSONL file, configuration, ...).
    #[error(transparent)]
    Start(SinkError),
    /// The Ctrl-C / SIGTERM handlers could not be installed.
    #[error(
        "could not listen for Ctrl-C and SIGTERM: {0}; run the sink in a normal terminal or under a process manager"
    )]
    Signal(#[source] io::Error),
    /// `sink usage` could not read the database.
    #[error(transparent)]
    Usage(#[from] StoreError),
    /// Writing to stdout failed.
    #[error("could not write the output: {0}")]
    Output(#[from] io::Error),
}

impl From<SinkError> for SinkCommandError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Bind { addr, source } => SinkCommandError::Bind { addr, source },
            other => SinkCommandError::Start(other),
        }
    }
}

impl SinkCommandError {
    /// [`exit::CONFIG`] for a bad flag value, else [`exit::FAILURE`].
    pub fn exit_status(&self) -> u8 {
        match self {
            SinkCommandError::BadKey { .. }
            | SinkCommandError::AdminToken { .. }
            | SinkCommandError::Start(
                SinkError::InvalidConfig(_)
                | SinkError::BadKey { .. }
                | SinkError::WeakAdminToken
                | SinkError::Tls { .. },
            ) => exit::CONFIG,
            _ => exit::FAILURE,
        }
    }
}

/// The sink's configuration from the command line, checked by
/// [`SinkConfig::validate`]; a bad key or admin token is named by its flag.
pub fn sink_config(args: &SinkArgs) -> Result<SinkConfig, SinkCommandError> {
    let token_file = args.admin_token_file.as_deref();
    let tls = args
        .tls_cert
        .clone()
        .zip(args.tls_key.clone())
        .map(|(cert, key)| TlsFiles { cert, key });
    let config = SinkConfig::default()
        .bind(args.bind)
        .token_lifetime(Duration::from_secs(args.token_lifetime))
        .licenses_opt((!args.licenses.is_empty()).then(|| args.licenses.clone()))
        .api_keys(args.api_keys.clone())
        .org_id(args.org_id)
        .db_opt(args.db.clone())
        .jsonl_opt(args.jsonl.clone())
        .max_connections_opt(args.max_connections)
        .admin_token_opt(token_file.map(admin_token).transpose()?)
        .tls_opt(tls)
        .faults(Faults {
            failure_rate: args.failure_rate,
            drop_rate: args.drop_rate,
            accept_then_drop_rate: args.accept_then_drop_rate,
            latency: Duration::from_millis(args.latency_ms),
            forced_status: args.force_status,
            seed: args.seed,
            ..Faults::default()
        });
    match config.validate() {
        Ok(()) => Ok(config),
        Err(SinkError::BadKey { field, index }) => Err(SinkCommandError::BadKey {
            flag: if field == "licenses" {
                "--license"
            } else {
                "--api-key"
            },
            index,
        }),
        Err(SinkError::WeakAdminToken) => Err(SinkCommandError::AdminToken {
            path: token_file.map(Path::to_path_buf).unwrap_or_default(),
            reason: format!(
                "must hold one token of at least {MIN_ADMIN_TOKEN_CHARS} characters, without spaces"
            ),
        }),
        Err(other) => Err(other.into()),
    }
}

/// The most bytes an admin token file may hold: a token is one line.
const MAX_ADMIN_TOKEN_FILE_BYTES: u64 = 4096;

/// The token in `path`, surrounding whitespace removed. `path` must be a
/// regular file (a FIFO would block the start, a device never end) of at
/// most [`MAX_ADMIN_TOKEN_FILE_BYTES`]; one that other users may read or
/// write is accepted with a warning, since they could read or replace the
/// token.
fn admin_token(path: &Path) -> Result<Secret, SinkCommandError> {
    use std::io::Read as _;
    let bad = |reason: String| SinkCommandError::AdminToken {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.len() > MAX_ADMIN_TOKEN_FILE_BYTES {
        return Err(bad(format!(
            "is {} bytes; a token file holds one token, at most {MAX_ADMIN_TOKEN_FILE_BYTES} bytes",
            meta.len()
        )));
    }
    beacon_meter_sink::warn_if_shared(
        path,
        &meta,
        "admin token file (whoever reads it can read every tenant's usage)",
    );
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_ADMIN_TOKEN_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| bad(format!("cannot be read ({e})")))?;
    Ok(Secret::new(text.trim()))
}

/// Runs the sink until Ctrl-C or SIGTERM and returns its totals (also
/// printed). The first line written to `out` names the address listened on.
pub async fn run(
    args: &SinkArgs,
    term: Term,
    out: &mut dyn Write,
) -> Result<Summary, SinkCommandError> {
    let config = sink_config(args)?;
    // Installed before anything is printed, so a signal sent as soon as the
    // address appears is caught.
    let signal = stop_signal().map_err(SinkCommandError::Signal)?;
    let handle = config.start().await?;
    let addr = handle.addr();
    let scheme = args.tls_cert.as_ref().map_or("http", |_| "https");
    let url = format!("{scheme}://{addr}");
    let client_url = format!("{scheme}://{}", client_addr(addr));

    if args.json {
        let addr = addr.to_string();
        let event =
            json!({ "event": "listening", "url": url, "addr": addr, "beacon_url": client_url });
        writeln!(out, "{event}")?;
    } else {
        print_banner(args, term, out, &url, &client_url)?;
    }
    out.flush()?;
    if !addr.ip().is_loopback() {
        warn_exposed(args, term, addr);
    }

    let signal = wait(&handle, signal, term, args.json).await;
    let summary = handle.summary();
    if !args.json {
        writeln!(
            out,
            "\nStopping ({signal}): letting requests in flight finish..."
        )?;
        out.flush()?;
    }
    handle.shutdown().await;

    if args.json {
        let event = json!({ "event": "summary", "signal": signal, "summary": summary });
        writeln!(out, "{event}")?;
    } else {
        print_summary(term, out, &summary)?;
    }
    out.flush()?;
    Ok(summary)
}

/// What a sink listening beyond loopback exposes, on stderr.
fn warn_exposed(args: &SinkArgs, term: Term, addr: SocketAddr) {
    let anyone = args.licenses.is_empty().then_some(" for any lcl_ license");
    let anyone = anyone.unwrap_or_default();
    eprintln!(
        "{} the sink listens on {addr}, not only on loopback: anyone who can reach it can \
         submit reports and get tokens{anyone}. Use --bind 127.0.0.1:PORT to keep it local.",
        term.warn("warning:"),
    );
    if args.tls_cert.is_none() {
        eprintln!(
            "{} it speaks plain HTTP, which beacon-meter clients accept only to loopback \
             addresses; pass --tls-cert and --tls-key to serve HTTPS.",
            term.warn("warning:"),
        );
    }
    if args.admin_token_file.is_none() {
        eprintln!(
            "{} GET /v1/summary and /v1/reports answer 401 (they would reveal every tenant's \
             usage); pass --admin-token-file to read them over the network.",
            term.warn("note:"),
        );
    }
}

/// The address a client on this machine uses: loopback of the same family
/// when the sink listens on all interfaces.
fn client_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn print_banner(
    args: &SinkArgs,
    term: Term,
    out: &mut dyn Write,
    url: &str,
    client_url: &str,
) -> io::Result<()> {
    writeln!(out, "Listening on {url}")?;
    writeln!(out)?;
    writeln!(out, "{}", term.bold("Point the library at it:"))?;
    writeln!(out, "  export BEACON_URL={client_url}")?;
    if !args.api_keys.is_empty() {
        writeln!(out, "  export LANGSMITH_AUTH_ENDPOINT={client_url}")?;
    }
    writeln!(out)?;
    let shown = |keys: &[Secret], none: &str| match keys {
        [] => none.to_owned(),
        _ => keys
            .iter()
            .map(Secret::redacted)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let licenses = shown(&args.licenses, "any key starting with lcl_");
    writeln!(out, "Licenses accepted: {licenses}")?;
    let keys = shown(&args.api_keys, "none (add --api-key KEY)");
    writeln!(out, "API keys accepted: {keys} (org id {})", args.org_id)?;
    writeln!(out, "Token lifetime: {} s", args.token_lifetime)?;
    if args.admin_token_file.is_some() {
        writeln!(
            out,
            "GET /v1/summary and /v1/reports need Authorization: Bearer <admin token>"
        )?;
    }
    match &args.db {
        Some(path) => writeln!(out, "Accepted reports stored in {}", path.display())?,
        None => writeln!(
            out,
            "Accepted reports kept in memory only (add --db PATH to keep them)"
        )?,
    }
    if let Some(path) = &args.jsonl {
        writeln!(out, "Accepted reports exported to {}", path.display())?;
    }
    let mut faults = Vec::new();
    if let Some(s) = args.force_status {
        faults.push(format!("every report answered {s}"));
    }
    for (name, rate) in [
        ("503", args.failure_rate),
        ("dropped unanswered", args.drop_rate),
        ("accepted then dropped", args.accept_then_drop_rate),
    ] {
        if rate > 0.0 {
            faults.push(format!("{:.0}% {name}", rate * 100.0));
        }
    }
    if args.latency_ms > 0 {
        faults.push(format!("{} ms latency", args.latency_ms));
    }
    if !faults.is_empty() {
        writeln!(
            out,
            "{} {} (seed {})",
            term.warn("Faults:"),
            faults.join(", "),
            args.seed
        )?;
    }
    writeln!(out, "Stop with Ctrl-C; the totals are printed then.")
}

/// Waits for the stop `signal`, showing live totals when interactive.
/// Returns the signal's name.
async fn wait(
    handle: &SinkHandle,
    signal: impl Future<Output = &'static str>,
    term: Term,
    json: bool,
) -> &'static str {
    let spinner = term.spinner(!json, "waiting for requests");
    if spinner.is_hidden() {
        return signal.await;
    }
    tokio::pin!(signal);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            s = &mut signal => return s,
            _ = tick.tick() => spinner.set_message(live_line(&handle.summary())),
        }
    }
}

fn live_line(s: &Summary) -> String {
    let get = |k: &str| s.measures.get(k).copied().unwrap_or(0);
    format!(
        "{} reports · runs {} · nodes {} · {} dup · {} refused · {} faults",
        s.reports,
        get(beacon_meter::meter::RUNS),
        get(beacon_meter::meter::NODES),
        s.duplicates,
        s.rejects,
        s.faults_injected
    )
}

fn print_summary(term: Term, out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    writeln!(out, "{}", term.bold("Totals"))?;
    for (label, value) in [
        ("reports accepted", s.reports),
        ("duplicates (retries not counted again)", s.duplicates),
        ("reports refused", s.rejects),
        ("faults injected", s.faults_injected),
        ("license verifications", s.verifications),
        ("API-key checks", s.auths),
        (
            "accepted without Idempotency-Key",
            s.without_idempotency_key,
        ),
    ] {
        writeln!(out, "  {label:<40} {value}")?;
    }
    listing(out, "measures", &s.measures)?;
    listing(out, "reports by credential", &s.by_credential)
}

/// The most entries of one listing the exit summary prints: a sink may
/// hold thousands of measure names, and the rest are one `sink usage` or
/// `GET /v1/summary` away.
const LISTED: usize = 20;

/// `title:` and the first [`LISTED`] entries of `entries`, then how many
/// were left out; nothing if `entries` is empty.
fn listing(out: &mut dyn Write, title: &str, entries: &BTreeMap<String, u64>) -> io::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    writeln!(out, "  {title}:")?;
    for (k, v) in entries.iter().take(LISTED) {
        writeln!(out, "    {k:<38} {v}")?;
    }
    if entries.len() > LISTED {
        writeln!(
            out,
            "    … and {} more (GET /v1/summary lists them all)",
            entries.len() - LISTED
        )?;
    }
    Ok(())
}

/// `beacon-meter sink usage`: the totals of a sink database, as a table or
/// (`--json`) a JSON array of [`UsageRow`]s.
pub fn usage(args: &UsageArgs, term: Term, out: &mut dyn Write) -> Result<(), SinkCommandError> {
    let rows = beacon_meter_sink::usage(&args.db, args.by.into(), args.since)?;
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&rows).map_err(io::Error::other)?
        )?;
    } else {
        print_usage(term, out, &rows)?;
    }
    out.flush()?;
    Ok(())
}

fn print_usage(term: Term, out: &mut dyn Write, rows: &[UsageRow]) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "No reports in this period.");
    }
    let get = |r: &UsageRow, k: &str| r.measures.get(k).copied().unwrap_or(0);
    let header = format!(
        "{:<13} {:<12} {:<36} {:<11} {:>8} {:>12} {:>12}",
        "period", "host", "tenant", "destination", "reports", "runs", "nodes"
    );
    writeln!(out, "{}", term.bold(&header))?;
    for r in rows {
        let shown = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        writeln!(
            out,
            "{:<13} {:<12} {:<36} {:<11} {:>8} {:>12} {:>12}",
            r.period,
            shown(&r.host),
            shown(&r.tenant),
            r.destination,
            r.reports,
            get(r, beacon_meter::meter::RUNS),
            get(r, beacon_meter::meter::NODES)
        )?;
    }
    let total = |f: &dyn Fn(&UsageRow) -> u64| rows.iter().map(f).fold(0u64, u64::saturating_add);
    writeln!(
        out,
        "{:<13} {:<12} {:<36} {:<11} {:>8} {:>12} {:>12}",
        "total",
        "",
        "",
        "",
        total(&|r| r.reports),
        total(&|r| get(r, beacon_meter::meter::RUNS)),
        total(&|r| get(r, beacon_meter::meter::NODES))
    )
}

/// `beacon-meter sink metrics`: the OTLP metrics of a sink database, as a
/// table or (`--json`) a JSON array of [`Series`].
pub fn metrics(
    args: &MetricsArgs,
    term: Term,
    out: &mut dyn Write,
) -> Result<(), SinkCommandError> {
    let series =
        beacon_meter_sink::metrics(&args.db, args.name.as_deref(), args.since, args.by.into())?;
    if args.json {
        let text = serde_json::to_string_pretty(&series).map_err(io::Error::other)?;
        writeln!(out, "{text}")?;
    } else {
        print_metrics(term, out, &series)?;
    }
    out.flush()?;
    Ok(())
}

fn print_metrics(term: Term, out: &mut dyn Write, series: &[Series]) -> io::Result<()> {
    if series.is_empty() {
        return writeln!(out, "No metrics stored in this period.");
    }
    for s in series {
        let attrs = match &s.attributes {
            serde_json::Value::Object(m) if !m.is_empty() => {
                let pairs: Vec<String> =
                    m.iter().map(|(k, v)| format!("{k}={}", plain(v))).collect();
                format!(" {{{}}}", pairs.join(", "))
            }
            _ => String::new(),
        };
        let instance = if s.instance.is_empty() {
            "-"
        } else {
            &s.instance
        };
        let head = format!(
            "{}{attrs} ({}, {})",
            s.name,
            s.kind,
            if s.unit.is_empty() { "1" } else { &s.unit }
        );
        writeln!(out, "{}", term.bold(&head))?;
        writeln!(
            out,
            "  instance {instance}, service {}: latest {} at {}",
            s.service,
            number(s.latest),
            s.latest_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )?;
        for p in &s.periods {
            writeln!(
                out,
                "  {:<13} {:>6} points  min {:>12}  max {:>12}  last {:>12}",
                p.period,
                p.points,
                number(p.min),
                number(p.max),
                number(p.last)
            )?;
        }
    }
    Ok(())
}

/// A JSON attribute value as text: strings without their quotes.
fn plain(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// A value as an integer when it is one.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// The name of the first stop signal to come, Ctrl-C (SIGINT) or SIGTERM.
/// The handlers are registered by this call, not when the future is first
/// polled.
fn stop_signal() -> io::Result<impl Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => "Ctrl-C",
                _ = terminate.recv() => "SIGTERM",
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> SinkArgs {
        let mut argv = vec!["beacon-meter", "sink"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Sink(a) => *a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_map_to_the_sink_config() {
        let c = sink_config(&args(&[
            "--bind",
            "127.0.0.1:0",
            "--license",
            "lcl_0123456789abcdef9f2a",
            "--api-key",
            "lsv2_0123456789abcdef_77",
            "--token-lifetime",
            "60",
            "--drop-rate",
            "0.25",
            "--latency-ms",
            "15",
            "--seed",
            "9",
        ]))
        .unwrap();
        let want = SinkConfig::default()
            .bind("127.0.0.1:0".parse().unwrap())
            .licenses(vec![Secret::new("lcl_0123456789abcdef9f2a")])
            .api_keys(vec![Secret::new("lsv2_0123456789abcdef_77")])
            .token_lifetime(Duration::from_secs(60))
            .faults(Faults {
                drop_rate: 0.25,
                latency: Duration::from_millis(15),
                seed: 9,
                ..Faults::default()
            });
        assert_eq!(c, want);
        // No --license: any online license, as the default.
        assert_eq!(sink_config(&args(&[])).unwrap(), SinkConfig::default());
    }

    #[test]
    fn an_admin_token_file_must_be_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |path: &Path| match admin_token(path) {
            Err(SinkCommandError::AdminToken { reason, .. }) => reason,
            other => panic!("{} gave {other:?}", path.display()),
        };
        // A FIFO would block the start; a device would be read forever.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(refused(&fifo), "is not a regular file");
        assert_eq!(refused(Path::new("/dev/zero")), "is not a regular file");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 4097]).unwrap();
        assert!(refused(&big).starts_with("is 4097 bytes; a token file holds one token"));
        let good = dir.path().join("good");
        std::fs::write(&good, "0123456789abcdef-admin\n").unwrap();
        assert_eq!(
            admin_token(&good).unwrap().expose(),
            "0123456789abcdef-admin"
        );
    }

    #[test]
    fn storage_tls_and_admin_flags_map_to_the_config() {
        let dir = std::env::temp_dir().join(format!("bm-sink-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "  0123456789abcdef-admin\n").unwrap();
        let t = token.to_str().unwrap();
        let c = sink_config(&args(&[
            "--db",
            "x.db",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--admin-token-file",
            t,
        ]))
        .unwrap();
        let want = SinkConfig::default()
            .db("x.db")
            .tls(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            })
            .admin_token(Secret::new("0123456789abcdef-admin"));
        assert_eq!(c, want);
        std::fs::write(&token, "short-secret\n").unwrap();
        let err = sink_config(&args(&["--admin-token-file", t])).unwrap_err();
        assert_eq!(err.exit_status(), exit::CONFIG);
        assert!(!err.to_string().contains("short-secret"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(Cli::try_parse_from(["beacon-meter", "sink", "--tls-cert", "c.pem"]).is_err());
    }

    #[test]
    fn blank_keys_are_refused_without_echo() {
        let err = sink_config(&args(&[
            "--license",
            "lcl_ok_0123456789",
            "--license",
            "a b",
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            SinkCommandError::BadKey {
                flag: "--license",
                index: 2
            }
        ));
        assert_eq!(err.exit_status(), exit::CONFIG);
        assert!(!err.to_string().contains("a b"));
    }

    #[test]
    fn unspecified_binds_suggest_loopback() {
        assert_eq!(
            client_addr("0.0.0.0:8787".parse().unwrap()).to_string(),
            "127.0.0.1:8787"
        );
        assert_eq!(
            client_addr("[::]:1".parse().unwrap()).to_string(),
            "[::1]:1"
        );
        assert_eq!(
            client_addr("10.1.2.3:5".parse().unwrap()).to_string(),
            "10.1.2.3:5"
        );
    }

    #[test]
    fn banner_shows_keys_redacted() {
        let a = args(&[
            "--license",
            "lcl_0123456789abcdef9f2a",
            "--api-key",
            "lsv2_0123456789abcdef_77",
            "--failure-rate",
            "0.5",
        ]);
        let mut out = Vec::new();
        print_banner(
            &a,
            Term::plain(),
            &mut out,
            "http://127.0.0.1:1",
            "http://127.0.0.1:1",
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("Listening on http://127.0.0.1:1\n"),
            "{text}"
        );
        assert!(
            text.contains("lcl_…9f2a") && text.contains("lsv2…f_77"),
            "{text}"
        );
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(text.contains("LANGSMITH_AUTH_ENDPOINT=http://127.0.0.1:1"));
        assert!(text.contains("50% 503"), "{text}");
    }
}
