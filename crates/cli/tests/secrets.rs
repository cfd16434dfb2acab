//! Nothing the project writes holds a credential, except the report bodies
//! POSTed to the server (which must carry it):
//!
//! * (a) every log line, at TRACE for every crate (the `log` records of
//!   reqwest and hyper included), of reporters running against in-process
//!   sinks with both a license and an API key, through injected faults,
//!   `401`s, `422`s, a sink that refuses both keys, and shutdowns;
//! * (b) every file under the spool directories those runs leave behind
//!   (pending and rejected windows, answers, the checkpoint, the lock), and
//!   their modes: files 0600, directories 0700;
//! * (c) `Display` and `Debug` of every error and outcome type that can be
//!   provoked: `ConfigError`, `ClientError`, `LicenseError`, `ApiKeyError`,
//!   `SpoolError`, `ReporterError`, `SinkError`, `SubmitOutcome`,
//!   and the reporter's stats;
//! * (d) the stdout and stderr, at `-vvv`, of the real binary: `check`,
//!   `preview`, `spool list/show/export`, `sink --license --api-key` and
//!   `demo --endpoint`.
//!
//! "Holds a credential" means: either key, or any 8 consecutive characters
//! of its secret part (what follows `lcl_` / `lsv2_`), in any letter case.
//! The secret parts are letters without digit runs, so that no timestamp,
//! UUID or port number can match them by chance. A raw TCP relay in front
//! of the sink proves that the keys did travel where they must.
#![cfg(unix)]

use beacon_meter::client::{
    ApiKeyVerifier, ClientSettings, HttpClient, LicenseSettings, LicenseVerifier,
};
use beacon_meter::config::Config;
use beacon_meter::meter::Meter;
use beacon_meter::oplog::{LogBuffer, LogBufferLayer};
use beacon_meter::reporter::{Reporter, ReporterOptions, RetryPolicy};
use beacon_meter::secret::Secret;
use beacon_meter::spool::{Destination, Spool, SpoolLimits, SpooledWindow};
use beacon_meter::wire::{Credential, Dialect, ReportBody, Tags};
use beacon_meter_sink::{Faults, SinkConfig};
use chrono::{TimeZone, Utc};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LICENSE: &str = "lcl_SECRETLICENSEqxzjvkwpmbtrdn";
const API_KEY: &str = "lsv2_SECRETAPIKEYzqjxvwkgmhpfcs";
/// The path of the binary under test (built by cargo for this test).
const BIN: &str = env!("CARGO_BIN_EXE_beacon-meter");

// ---------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------

/// The credential fragments in `text`, if any.
fn leaks(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    for key in [LICENSE, API_KEY] {
        let secret = &key[key.find('_').unwrap() + 1..];
        for w in secret.as_bytes().windows(8) {
            let w = std::str::from_utf8(w).unwrap().to_ascii_lowercase();
            if lower.contains(&w) {
                found.push(w);
            }
        }
    }
    found
}

#[track_caller]
fn assert_secret_free(what: &str, text: &str) {
    let found = leaks(text);
    if !found.is_empty() {
        let lower = text.to_ascii_lowercase();
        let at = lower.find(&found[0]).unwrap();
        let mut start = at.saturating_sub(300);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (at + 300).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        panic!(
            "{what}: credential fragment {:?} found, around:\n{}",
            found[0],
            &text[start..end]
        );
    }
}

// ---------------------------------------------------------------------------
// Logging: one global subscriber for this test binary, at TRACE
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Logging {
    text: Captured,
    /// The operational log records the reporters send in their reports
    /// (and so keep in their spool files).
    buffer: Arc<LogBuffer>,
}

fn logging() -> &'static Logging {
    static LOGGING: OnceLock<Logging> = OnceLock::new();
    LOGGING.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let text = Captured::default();
        let buffer = Arc::new(LogBuffer::new(256));
        let writer = text.clone();
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            )
            // As an application would wire it, without `scrubbing`: what
            // reaches it must already be free of keys.
            .with(LogBufferLayer::new(buffer.clone()))
            .try_init()
            .expect("the only subscriber of this test binary");
        Logging { text, buffer }
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&logging().text.0.lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------
// A relay in front of a sink that records what the client sent
// ---------------------------------------------------------------------------

struct Relay {
    addr: std::net::SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let s = sent.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let sent = s.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    sent.lock().unwrap().extend_from_slice(&buf[..n]);
                                    if sw.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Relay { addr, sent, task }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }
}

// ---------------------------------------------------------------------------
// Reporter runs
// ---------------------------------------------------------------------------

fn env_config(pairs: &[(&str, String)]) -> Config {
    let map: BTreeMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).unwrap()
}

fn reporter_config(url: &str, spool: &Path) -> Config {
    env_config(&[
        ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.into()),
        ("LANGSMITH_API_KEY", API_KEY.into()),
        ("BEACON_URL", url.into()),
        ("LANGSMITH_AUTH_ENDPOINT", url.into()),
        ("BEACON_INTERVAL_SECS", "1".into()),
        ("BEACON_CHECKPOINT_SECS", "1".into()),
        ("BEACON_TIMEOUT_SECS", "2".into()),
        ("BEACON_SPOOL_DIR", spool.display().to_string()),
    ])
}

fn options(config: Config) -> ReporterOptions {
    ReporterOptions::new(config, Tags::new())
        .logs(logging().buffer.clone())
        .retry(RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(300),
            credential_backoff: Duration::from_millis(300),
        })
}

fn accepting_sink() -> SinkConfig {
    SinkConfig::ephemeral()
        .licenses(vec![Secret::new(LICENSE)])
        .api_keys(vec![Secret::new(API_KEY)])
}

/// Records runs into `meter` until `stop`.
fn keep_recording(meter: &Meter, stop: Arc<std::sync::atomic::AtomicBool>) {
    let meter = meter.clone();
    std::thread::spawn(move || {
        let local = meter.local();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            local.record_run(3);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
}

/// What the reporter runs left behind.
struct RunResult {
    spools: Vec<PathBuf>,
    stats: Vec<String>,
    wire: String,
}

/// Reporter 1 against a sink that accepts both keys, through 503s, dropped
/// connections, answers lost after acceptance, then a phase of forced
/// `401`s, one of forced `422`s (windows go to `rejected/`) and one of
/// `503`s with a short shutdown deadline (windows stay pending).
/// Reporter 2 against a sink that refuses both keys (`403` at verify,
/// `401` at auth and submit).
async fn reporter_runs(tmp: &Path) -> RunResult {
    logging();
    let sink = accepting_sink()
        .faults(Faults {
            failure_rate: 0.2,
            drop_rate: 0.1,
            accept_then_drop_rate: 0.1,
            retry_after_secs: 0,
            seed: 7,
            ..Faults::none()
        })
        .start()
        .await
        .unwrap();
    let relay = Relay::start(sink.addr()).await;
    let spool1 = tmp.join("spool-1");
    let meter = Meter::new();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    keep_recording(&meter, stop.clone());
    let reporter = Reporter::spawn(
        meter.clone(),
        options(reporter_config(&relay.url(), &spool1)),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    sink.set_forced_status(Some(401));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    sink.set_forced_status(Some(422));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    sink.set_forced_status(Some(503));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stats1 = reporter.shutdown(Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let summary = sink.summary();
    assert!(
        summary
            .by_credential
            .keys()
            .any(|k| k.starts_with("license:"))
            && summary
                .by_credential
                .keys()
                .any(|k| k.starts_with("api_key:")),
        "both credentials must have delivered: {summary:?}"
    );
    assert!(stats1.rejected > 0, "no window was refused: {stats1:?}");
    assert!(stats1.pending() > 0, "no window left pending: {stats1:?}");

    // Reporter 2: both keys refused.
    let refusing = SinkConfig::ephemeral()
        .licenses(vec![Secret::new("lcl_someone_else_entirely")])
        .api_keys(vec![])
        .start()
        .await
        .unwrap();
    let relay2 = Relay::start(refusing.addr()).await;
    let spool2 = tmp.join("spool-2");
    let meter2 = Meter::new();
    meter2.local().record_run(5);
    let reporter2 = Reporter::spawn(
        meter2.clone(),
        options(reporter_config(&relay2.url(), &spool2)),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    meter2.local().record_run(5);
    let stats2 = reporter2.shutdown(Duration::from_millis(300)).await;
    assert!(
        stats2
            .license
            .as_deref()
            .is_some_and(|l| l.contains("rejected")),
        "{stats2:?}"
    );
    assert!(
        stats2.destinations.iter().any(|d| d.credential_rejected),
        "{stats2:?}"
    );

    // The keys did go on the wire: in the body, and in X-Api-Key.
    let wire = format!("{}{}", relay.sent(), relay2.sent());
    assert!(
        wire.contains(&format!("\"license\":\"{LICENSE}\"")),
        "license not sent"
    );
    assert!(
        wire.contains(&format!("\"api_key\":\"{API_KEY}\"")),
        "api_key not sent"
    );
    assert!(
        wire.to_ascii_lowercase()
            .contains(&format!("x-api-key: {}", API_KEY.to_ascii_lowercase())),
        "X-Api-Key not sent"
    );

    let stats = vec![
        format!("{stats1:?}"),
        format!("{stats2:?}"),
        format!("{:?} {:?}", sink.summary(), refusing.summary()),
        format!("{:?} {:?}", sink.reports(), sink.requests()),
        format!("{:?}", refusing.requests()),
        format!("{sink:?} {refusing:?}"),
    ];
    sink.shutdown().await;
    refusing.shutdown().await;
    RunResult {
        spools: vec![spool1, spool2],
        stats,
        wire,
    }
}

/// Every file under `dir` (links not followed), with its mode, and every
/// directory's mode.
fn walk(dir: &Path, files: &mut Vec<(PathBuf, u32)>, dirs: &mut Vec<(PathBuf, u32)>) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    dirs.push((dir.to_path_buf(), meta.permissions().mode() & 0o7777));
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            walk(&p, files, dirs);
        } else {
            files.push((p, m.permissions().mode() & 0o7777));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporter_logs_spool_files_and_stats_hold_no_key() {
    let tmp = tempfile::tempdir().unwrap();
    let run = reporter_runs(tmp.path()).await;

    // (a) The log, at TRACE.
    let log = log_text();
    for expected in [
        "REFUSED THE CREDENTIAL",
        "the server refused this window",
        "delivery failed",
        "the Beacon REFUSED the license key",
        "the auth endpoint REFUSED the API key",
    ] {
        assert!(log.contains(expected), "the runs never logged {expected:?}");
    }
    // TRACE lines come from the HTTP stack (the crate's own go to DEBUG).
    assert!(log.contains(" TRACE "), "no TRACE line captured");
    assert_secret_free("the TRACE log", &log);

    // (b) The spool files, and their modes.
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for s in &run.spools {
        walk(s, &mut files, &mut dirs);
    }
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(
        names.iter().any(|n| n.contains("/pending/")),
        "no pending window left: {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.contains("/rejected/") && n.ends_with(".answer.txt")),
        "no rejected window left: {names:?}"
    );
    let mut all = String::new();
    for (path, mode) in &files {
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        assert_secret_free(&path.display().to_string(), &text);
        assert_eq!(*mode, 0o600, "{} has mode {mode:o}", path.display());
        all.push_str(&text);
    }
    for (path, mode) in &dirs {
        assert_eq!(*mode, 0o700, "{} has mode {mode:o}", path.display());
    }
    // The spooled reports carry the reporter's own warnings in `logs`.
    assert!(all.contains("\"logs\""), "no report in the spool");

    // (c) The reporter's stats and the sinks' views.
    for s in &run.stats {
        assert_secret_free("stats", s);
    }
    assert!(!run.wire.is_empty());
}

// ---------------------------------------------------------------------------
// (c) Errors and outcomes
// ---------------------------------------------------------------------------

/// A server that answers every request with `status` and a JSON body that
/// echoes the whole request (head and body) in every field a client reads:
/// `detail`, `token`, `org_config`.
async fn echoing(status: u16) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                // The head, then `content-length` bytes of body.
                let mut request = Vec::new();
                let mut buf = vec![0u8; 65536];
                loop {
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + len {
                            break;
                        }
                    }
                    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                let echo = String::from_utf8_lossy(&request).into_owned();
                let body = serde_json::json!({
                    "detail": format!("bad request: {echo}"),
                    "token": echo,
                    "org_config": { "org_id": echo, "echo": echo },
                })
                .to_string();
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (url, task)
}

fn report() -> ReportBody {
    ReportBody {
        from_timestamp: Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap(),
        to_timestamp: Utc.with_ymd_and_hms(2025, 1, 6, 10, 0, 0).unwrap(),
        tags: BTreeMap::new(),
        measures: BTreeMap::from([("langgraph.platform.runs".to_owned(), 1)]),
        logs: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_and_outcome_text_is_free_of_keys() {
    logging();
    let mut shown: Vec<String> = Vec::new();
    let mut push = |d: String, s: String| {
        shown.push(d);
        shown.push(s);
    };
    let tmp = tempfile::tempdir().unwrap();

    // ConfigError, with both keys set, bad in themselves or beside a bad value.
    let bad_envs: Vec<Vec<(&str, String)>> = vec![
        vec![("LANGGRAPH_CLOUD_LICENSE_KEY", format!("{LICENSE} x"))],
        vec![("LANGSMITH_API_KEY", format!("{API_KEY}\u{7}"))],
        vec![("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.repeat(40))],
        vec![
            ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.into()),
            ("LANGSMITH_API_KEY", API_KEY.into()),
            ("BEACON_URL", format!("http://{LICENSE}.example.com")),
        ],
        vec![
            ("LANGSMITH_API_KEY", API_KEY.into()),
            (
                "LANGSMITH_AUTH_ENDPOINT",
                format!("https://user:{API_KEY}@h.example"),
            ),
        ],
        vec![
            ("LANGSMITH_API_KEY", API_KEY.into()),
            (
                "LANGSMITH_AUTH_ENDPOINT",
                format!("https:user:{API_KEY}@h.example"),
            ),
        ],
        vec![
            ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.into()),
            (
                "BEACON_URL",
                format!("https://h.example/?license={LICENSE}"),
            ),
        ],
        vec![
            ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.into()),
            ("BEACON_OFFLINE", "maybe".into()),
            ("BEACON_CA_CERT", "/nonexistent/ca.pem".into()),
        ],
        // The platform's other names, bad or carrying a key elsewhere.
        vec![("LANGSMITH_CONTROL_PLANE_API_KEY", format!("{API_KEY} x"))],
        vec![("LANGCHAIN_API_KEY", format!("\t{API_KEY}\u{0}"))],
        vec![
            ("LANGCHAIN_API_KEY", API_KEY.into()),
            (
                "LANGCHAIN_ENDPOINT",
                format!("https://user:{API_KEY}@h.example"),
            ),
        ],
        vec![
            ("LANGSMITH_CONTROL_PLANE_API_KEY", API_KEY.into()),
            (
                "LANGSMITH_ENDPOINT",
                format!("http://{API_KEY}.example.com"),
            ),
        ],
        vec![
            ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.into()),
            ("BEACON_WIRE", LICENSE.into()),
        ],
    ];
    let mut config_errors = 0;
    for env in bad_envs {
        let map: BTreeMap<&str, OsString> =
            env.iter().map(|(k, v)| (*k, OsString::from(v))).collect();
        if let Err(e) = Config::from_lookup(|k| map.get(k).cloned()) {
            config_errors += 1;
            push(format!("{e:?}"), e.to_string());
        }
    }
    assert!(config_errors >= 11, "{config_errors}");
    let good = reporter_config("http://127.0.0.1:1/", &tmp.path().join("s"));
    push(format!("{good:?}"), format!("{:?}", good.credentials()));

    // ClientError.
    let e = HttpClient::new(
        ClientSettings::default().ca_cert_pem(
            format!("-----BEGIN CERTIFICATE-----\n{LICENSE}\n-----END CERTIFICATE-----\n")
                .into_bytes()
                .into(),
        ),
    )
    .unwrap_err();
    push(format!("{e:?}"), e.to_string());
    let http = HttpClient::new(ClientSettings::default().timeout(Duration::from_secs(2))).unwrap();
    let insecure = reqwest::Url::parse("http://beacon.example.com/").unwrap();
    let e = LicenseVerifier::new(
        http.clone(),
        &insecure,
        Secret::new(LICENSE),
        LicenseSettings::default(),
    )
    .unwrap_err();
    push(format!("{e:?}"), e.to_string());
    let e = LicenseVerifier::new(
        http.clone(),
        &reqwest::Url::parse("http://127.0.0.1:1/").unwrap(),
        Secret::new(LICENSE),
        LicenseSettings {
            public_key_pem: Some(LICENSE.as_bytes().to_vec().into()),
            ..LicenseSettings::default()
        },
    )
    .unwrap_err();
    push(format!("{e:?}"), e.to_string());
    let license = Credential::License(Secret::new(LICENSE));
    let api = Credential::ApiKey(Secret::new(API_KEY));
    let e = http
        .submit(
            &insecure,
            Dialect::Published,
            &license,
            &report(),
            uuid::Uuid::new_v4(),
        )
        .await
        .unwrap_err();
    push(format!("{e:?}"), e.to_string());

    // SubmitOutcome, LicenseError, ApiKeyError: against a sink
    // forcing statuses, a refusing sink, a closed port, and echoing servers.
    let sink = accepting_sink().start().await.unwrap();
    let refusing = SinkConfig::ephemeral().start().await.unwrap();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        url
    };
    let mut servers = Vec::new();
    let mut urls = vec![
        sink.base_url().to_string(),
        refusing.base_url().to_string(),
        closed,
    ];
    for status in [200, 400, 401, 403, 422, 500, 503] {
        let (url, task) = echoing(status).await;
        urls.push(url);
        servers.push(task);
    }
    for status in [None, Some(401), Some(403), Some(422), Some(429), Some(503)] {
        sink.set_forced_status(status);
        // The forced status changes the accepting sink's answers only.
        let urls = if status.is_none() {
            &urls[..]
        } else {
            &urls[..1]
        };
        for url in urls {
            let base = reqwest::Url::parse(url).unwrap();
            // Both dialects' paths: a server that knows only one answers
            // the other with 404, whose outcome quotes the URL and answer.
            for dialect in Dialect::ALL {
                let url = base.join(&dialect.license_report_path().join("/")).unwrap();
                for credential in [&license, &api] {
                    let o = http
                        .submit(&url, dialect, credential, &report(), uuid::Uuid::new_v4())
                        .await
                        .unwrap();
                    push(format!("{o:?}"), String::new());
                }
            }
            let v = LicenseVerifier::new(
                http.clone(),
                &base.join("v1/beacon/verify").unwrap(),
                Secret::new(LICENSE),
                LicenseSettings::default(),
            )
            .unwrap();
            push(format!("{:?}", v.verify().await), format!("{v:?}"));
            if let Err(e) = v.token().await {
                push(format!("{e:?}"), e.to_string());
            }
            let auth = base.join("auth").unwrap();
            let a = ApiKeyVerifier::new(http.clone(), &auth, Secret::new(API_KEY)).unwrap();
            match a.verify().await {
                Ok(org) => push(format!("{org:?}"), format!("{a:?}")),
                Err(e) => push(format!("{e:?}"), e.to_string()),
            }
        }
    }
    let bad_header = ApiKeyVerifier::new(
        http.clone(),
        &sink.base_url().join("auth").unwrap(),
        Secret::new(format!("{API_KEY}\n")),
    )
    .unwrap();
    let e = bad_header.verify().await.unwrap_err();
    push(format!("{e:?}"), e.to_string());

    // SpoolError.
    let dir = tmp.path().join("spool");
    let spool = Spool::open(&dir, SpoolLimits::default()).unwrap();
    let e = Spool::open(&dir, SpoolLimits::default()).unwrap_err();
    push(format!("{e:?}"), e.to_string());
    let e = spool
        .remove(Destination::Beacon, uuid::Uuid::new_v4())
        .unwrap_err();
    push(format!("{e:?}"), e.to_string());
    let mut w = SpooledWindow::new(
        uuid::Uuid::new_v4(),
        Destination::Beacon,
        Utc::now(),
        vec![],
        report(),
    );
    w.report.to_timestamp = w.report.from_timestamp;
    let e = spool.push(&w).unwrap_err();
    push(format!("{e:?}"), e.to_string());
    let e = Spool::open_read_only(&dir).unwrap().push(&w).unwrap_err();
    push(format!("{e:?}"), e.to_string());
    let e = spool.show("no-such-window").unwrap_err();
    push(format!("{e:?}"), e.to_string());

    // ReporterError: the spool root cannot be created (a process only meets
    // a locked spool no more: it claims a slot of its own); a CA file the
    // client rejects.
    let file = tmp.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let locked = Reporter::spawn(
        Meter::new(),
        options(reporter_config(
            sink.base_url().as_str(),
            &file.join("spool"),
        )),
    )
    .await
    .err()
    .expect("the spool cannot be created");
    push(format!("{locked:?}"), locked.to_string());
    let ca = tmp.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Fm\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let config = env_config(&[
        ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.into()),
        ("LANGSMITH_API_KEY", API_KEY.into()),
        ("BEACON_URL", sink.base_url().to_string()),
        ("LANGSMITH_AUTH_ENDPOINT", sink.base_url().to_string()),
        ("BEACON_CA_CERT", ca.display().to_string()),
        (
            "BEACON_SPOOL_DIR",
            tmp.path().join("spool-ca").display().to_string(),
        ),
    ]);
    match Reporter::spawn(Meter::new(), options(config)).await {
        Err(e) => push(format!("{e:?}"), e.to_string()),
        Ok(r) => {
            let stats = r.shutdown(Duration::from_millis(100)).await;
            push(format!("{stats:?}"), String::new());
        }
    }

    // SinkError.
    let e = accepting_sink()
        .bind(sink.addr())
        .start()
        .await
        .unwrap_err();
    push(format!("{e:?}"), e.to_string());
    push(format!("{:?}", accepting_sink()), String::new());

    sink.shutdown().await;
    refusing.shutdown().await;
    drop(servers);

    assert!(shown.len() > 100, "{}", shown.len());
    for text in &shown {
        assert_secret_free("an error or outcome", text);
    }
    assert_secret_free("the TRACE log", &log_text());
}

// ---------------------------------------------------------------------------
// (d) The command line
// ---------------------------------------------------------------------------

/// The binary with a clean, known environment.
fn cli(envs: &[(&str, String)]) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    for var in [
        "LANGGRAPH_CLOUD_LICENSE_KEY",
        "LANGSMITH_CONTROL_PLANE_API_KEY",
        "LANGSMITH_API_KEY",
        "LANGCHAIN_API_KEY",
        "LANGSMITH_AUTH_ENDPOINT",
        "LANGCHAIN_ENDPOINT",
        "LANGSMITH_ENDPOINT",
        "BEACON_WIRE",
        "BEACON_URL",
        "BEACON_SPOOL_DIR",
        "BEACON_OFFLINE",
        "BEACON_CA_CERT",
        "RUST_LOG",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
    ] {
        c.env_remove(var);
    }
    c.env("NO_COLOR", "1");
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

/// Runs to completion (at most `limit`), returning stdout + stderr.
fn run_cli(what: &str, mut c: std::process::Command, limit: Duration) -> (String, Option<i32>) {
    let child = c
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run {BIN}: {e}"));
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(limit) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("{what}: still running after {limit:?}");
        }
    };
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (text, output.status.code())
}

fn sink_env(url: &str, spool: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.into()),
        ("LANGSMITH_API_KEY", API_KEY.into()),
        ("BEACON_URL", url.into()),
        ("LANGSMITH_AUTH_ENDPOINT", url.into()),
        ("BEACON_TIMEOUT_SECS", "5".into()),
        ("BEACON_SPOOL_DIR", spool.display().to_string()),
    ]
}

/// Starts `beacon-meter sink` and returns it with its base URL (read from
/// its first lines of output).
fn start_cli_sink(args: &[&str]) -> (std::process::Child, String, Arc<Mutex<String>>) {
    let mut child = cli(&[])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("beacon-meter sink starts");
    let captured = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let c = captured.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut c = c.lock().unwrap();
            c.push_str(&line);
            c.push('\n');
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let c = captured.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && let Some(at) = line.find("http://127.0.0.1:") {
                let url: String = line[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c))
                    .collect();
                let _ = tx.send(url);
                sent = true;
            }
            let mut c = c.lock().unwrap();
            c.push_str(&line);
            c.push('\n');
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the sink prints its URL");
    (child, url, captured)
}

fn interrupt(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the sink did not stop on SIGINT");
}

#[test]
fn the_command_line_never_prints_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = beacon_meter_testkit::runtime();
    // A spool with pending and rejected windows, from a reporter run.
    let run = rt.block_on(reporter_runs(tmp.path()));
    let spool = run.spools[0].clone();
    let listing = Spool::open_read_only(&spool).unwrap().list().unwrap();
    let pending_id = listing.pending.values().flatten().next().unwrap().id;
    let rejected = listing.rejected.first().expect("a rejected window").clone();

    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, (text, code): (String, Option<i32>)| {
        assert!(code.is_some(), "{what}: killed by a signal:\n{text}");
        outputs.push((what.to_owned(), text));
    };

    // `sink` with --license and --api-key, fed requests carrying both keys
    // (accepted and refused ones), stopped with SIGINT.
    for json in [true, false] {
        let mut args = vec![
            "-vvv",
            "sink",
            "--bind",
            "127.0.0.1:0",
            "--license",
            LICENSE,
            "--api-key",
            API_KEY,
        ];
        if json {
            args.push("--json");
        }
        let (mut child, url, captured) = start_cli_sink(&args);
        rt.block_on(async {
            let c = reqwest::Client::builder().no_proxy().build().unwrap();
            let base = reqwest::Url::parse(&url).unwrap();
            let http = HttpClient::new(ClientSettings::default()).unwrap();
            for license in [LICENSE, &format!("{LICENSE}x")] {
                let v = LicenseVerifier::new(
                    http.clone(),
                    &base.join("v1/beacon/verify").unwrap(),
                    Secret::new(license),
                    LicenseSettings::default(),
                )
                .unwrap();
                let _ = v.verify().await;
                let o = http
                    .submit(
                        &base.join("v1/metadata/submit").unwrap(),
                        Dialect::Published,
                        &Credential::License(Secret::new(license)),
                        &report(),
                        uuid::Uuid::new_v4(),
                    )
                    .await
                    .unwrap();
                let _ = o;
            }
            for key in [API_KEY, &format!("{API_KEY}x")] {
                let auth = base.join("auth").unwrap();
                let a = ApiKeyVerifier::new(http.clone(), &auth, Secret::new(key)).unwrap();
                let _ = a.verify().await;
                let _ = http
                    .submit(
                        &base.join("v1/metadata/submit").unwrap(),
                        Dialect::Published,
                        &Credential::ApiKey(Secret::new(key)),
                        &report(),
                        uuid::Uuid::new_v4(),
                    )
                    .await
                    .unwrap();
            }
            // The key in a field where the sink quotes it back.
            let mut bad = serde_json::json!({
                "license": LICENSE,
                "from_timestamp": LICENSE,
                "to_timestamp": "2025-01-06T10:00:00Z",
                "tags": {}, "measures": {}, "logs": []
            });
            let r = c
                .post(base.join("v1/metadata/submit").unwrap())
                .header("content-type", "application/json")
                .body(bad.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 422);
            let answer = r.text().await.unwrap();
            assert_secret_free("the sink's 422 answer", &answer);
            bad["from_timestamp"] = serde_json::json!(API_KEY);
            let r = c
                .post(base.join("v1/metadata/submit").unwrap())
                .header("content-type", "application/json")
                .body(bad.to_string())
                .send()
                .await
                .unwrap();
            assert_secret_free("the sink's 422 answer", &r.text().await.unwrap());
            for path in ["v1/summary", "v1/reports"] {
                let r = c.get(base.join(path).unwrap()).send().await.unwrap();
                assert_secret_free(path, &r.text().await.unwrap());
            }
        });
        interrupt(&mut child);
        std::thread::sleep(Duration::from_millis(200));
        let text = captured.lock().unwrap().clone();
        assert!(
            text.contains("summary") || text.contains("Stopping"),
            "sink output incomplete:\n{text}"
        );
        record(&format!("sink (json: {json})"), (text, Some(0)));
    }

    // `check`, `preview` and `spool` against a sink that accepts both keys,
    // and one that refuses both.
    let accepting = rt.block_on(accepting_sink().start()).unwrap();
    let refusing = rt.block_on(SinkConfig::ephemeral().start()).unwrap();
    for (name, sink) in [("accepting", &accepting), ("refusing", &refusing)] {
        let url = sink.base_url().to_string();
        // The platform's names for the API key and the auth endpoint, and
        // the other dialect.
        let platform_env: Vec<(&str, String)> = vec![
            ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.into()),
            ("LANGSMITH_CONTROL_PLANE_API_KEY", API_KEY.into()),
            ("LANGCHAIN_API_KEY", format!("{API_KEY}x")),
            ("LANGCHAIN_ENDPOINT", url.clone()),
            ("BEACON_URL", url.clone()),
            ("BEACON_WIRE", "langgraph-api".into()),
            ("BEACON_TIMEOUT_SECS", "5".into()),
            ("BEACON_SPOOL_DIR", spool.display().to_string()),
        ];
        for (env, args) in [
            (sink_env(&url, &spool), &["-vvv", "check"][..]),
            (sink_env(&url, &spool), &["-vvv", "check", "--json"]),
            (sink_env(&url, &spool), &["-vvv", "preview"]),
            (sink_env(&url, &spool), &["-vvv", "preview", "--json"]),
            (platform_env.clone(), &["-vvv", "check"]),
            (platform_env.clone(), &["-vvv", "preview", "--json"]),
        ] {
            let mut c = cli(&env);
            c.args(args);
            record(
                &format!("{args:?} ({name}, {} variables)", env.len()),
                run_cli(&format!("{args:?}"), c, Duration::from_secs(60)),
            );
        }
    }
    let env = sink_env(accepting.base_url().as_str(), &spool);
    let export = tmp.path().join("export.json");
    let spool_s = spool.display().to_string();
    let export_s = export.display().to_string();
    let pending_s = pending_id.to_string();
    let rejected_id = rejected.window.id.to_string();
    let answer_file = rejected.answer_file.clone().unwrap_or_default();
    let commands: Vec<Vec<&str>> = vec![
        vec!["-vvv", "spool", "--dir", &spool_s, "list"],
        vec!["-vvv", "spool", "--dir", &spool_s, "list", "--json"],
        vec!["-vvv", "spool", "--dir", &spool_s, "show", &pending_s],
        vec!["-vvv", "spool", "--dir", &spool_s, "show", &rejected_id],
        vec!["-vvv", "spool", "--dir", &spool_s, "show", &answer_file],
        vec![
            "-vvv",
            "spool",
            "--dir",
            &spool_s,
            "show",
            "checkpoint.json",
        ],
        vec!["-vvv", "spool", "--dir", &spool_s, "export", &export_s],
    ];
    for args in &commands {
        let mut c = cli(&env);
        c.args(args);
        record(
            &format!("{args:?}"),
            run_cli(&format!("{args:?}"), c, Duration::from_secs(60)),
        );
    }
    let exported = std::fs::read_to_string(&export).expect("spool export wrote its file");
    assert!(exported.contains("\"windows\""), "{exported}");
    assert_secret_free("the export file", &exported);

    // `demo` shipping to an in-process sink, with the license from the
    // environment.
    let demo_sink = rt.block_on(accepting_sink().start()).unwrap();
    let mut c = cli(&[("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE.into())]);
    c.args([
        "-vvv",
        "demo",
        "--duration",
        "2",
        "--threads",
        "1",
        "--endpoint",
        demo_sink.base_url().as_str(),
        "--spool",
        &tmp.path().join("demo-spool").display().to_string(),
    ]);
    record("demo", run_cli("demo", c, Duration::from_secs(120)));
    let summary = demo_sink.summary();
    assert!(
        summary
            .by_credential
            .keys()
            .any(|k| k.starts_with("license:lcl_")),
        "the demo did not report with the license: {summary:?}"
    );
    rt.block_on(async {
        accepting.shutdown().await;
        refusing.shutdown().await;
        demo_sink.shutdown().await;
    });

    for (what, text) in &outputs {
        assert_secret_free(what, text);
    }
    let all: String = outputs.iter().map(|(_, t)| t.as_str()).collect();
    // Not vacuous: the commands ran, logged (the crate has no TRACE events;
    // -vvv shows its DEBUG ones) and showed the keys in their redacted form.
    assert!(all.contains("DEBUG"), "no -vvv output");
    assert!(
        all.contains("lcl_…") && all.contains("lsv2…"),
        "keys never shown redacted"
    );
    assert!(
        all.contains(&pending_s),
        "spool list/show did not show the window"
    );
}
