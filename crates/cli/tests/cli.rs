//! The `beacon-meter` binary, run for real: help texts, `sink` as a child
//! process, `check` against in-process sinks and listeners, `preview` of a
//! checkpoint made through the spool API, and the `spool` subcommands.
//!
//! Every command runs with a cleared environment plus exactly the variables
//! the test sets, so nothing from the machine (proxies, keys) leaks in.

use assert_cmd::Command;
use beacon_meter::config::{Config, ENV_BEACON_URL};
use beacon_meter::secret::Secret;
use beacon_meter::spool::{
    Checkpoint, Destination, EXPORT_FORMAT, Spool, SpoolExport, SpoolLimits, SpooledWindow,
};
use beacon_meter::wire::{Dialect, ReportBody};
use beacon_meter_sink::{SinkConfig, SinkHandle};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const LICENSE: &str = "lcl_cli_test_0123456789abcdef9f2a";
const OTHER_LICENSE: &str = "lcl_cli_other_0123456789abcdef77";
const API_KEY: &str = "lsv2_pt_cli_0123456789abcdef_42";
const RUNS: &str = "langgraph.platform.runs";
const NODES: &str = "langgraph.platform.nodes";

/// The binary with an empty environment.
fn bin() -> Command {
    let mut c = Command::cargo_bin("beacon-meter").expect("the beacon-meter binary is built");
    c.env_clear().timeout(Duration::from_secs(30));
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_secret(output: &str) {
    for s in [LICENSE, OTHER_LICENSE, API_KEY, "0123456789abcdef"] {
        assert!(!output.contains(s), "secret {s:?} leaked:\n{output}");
    }
}

use beacon_meter_testkit::runtime;

fn start_sink(rt: &tokio::runtime::Runtime, config: SinkConfig) -> SinkHandle {
    rt.block_on(config.start()).expect("sink starts")
}

// ---------------------------------------------------------------------------
// help
// ---------------------------------------------------------------------------

#[test]
fn every_subcommand_has_help_with_examples() {
    for args in [
        &["--help"][..],
        &["demo", "--help"],
        &["sink", "--help"],
        &["check", "--help"],
        &["preview", "--help"],
        &["spool", "--help"],
        &["spool", "list", "--help"],
        &["spool", "show", "--help"],
        &["spool", "export", "--help"],
        &["spool", "requeue", "--help"],
    ] {
        let out = bin().args(args).assert().success().get_output().clone();
        let help = text(&out.stdout);
        assert!(help.contains("Usage: beacon-meter"), "{args:?}:\n{help}");
        assert!(help.contains("Examples:"), "{args:?}:\n{help}");
    }
    let check = text(&bin().args(["check", "--help"]).output().unwrap().stdout);
    for needle in [
        "Exit status",
        "2  configuration error",
        "3  unreachable",
        "4  a credential was rejected",
    ] {
        assert!(check.contains(needle), "{needle}:\n{check}");
    }
    let sink = text(&bin().args(["sink", "--help"]).output().unwrap().stdout);
    for flag in [
        "--bind",
        "--token-lifetime",
        "--license",
        "--api-key",
        "--org-id",
        "--jsonl",
        "--failure-rate",
        "--drop-rate",
        "--accept-then-drop-rate",
        "--latency-ms",
        "--force-status",
        "--seed",
    ] {
        assert!(sink.contains(flag), "{flag}:\n{sink}");
    }
}

#[test]
fn sink_json_lines_stop_on_sigterm_and_a_busy_port_names_the_fix() {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("beacon-meter"))
        .env_clear()
        .args([
            "sink",
            "--json",
            "--bind",
            "127.0.0.1:0",
            "--force-status",
            "503",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sink starts");
    let mut running = Running(Some(child));
    let child = running.0.as_mut().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let v: Value = serde_json::from_str(&first).expect("the first line is JSON");
    assert_eq!(v["event"], "listening");
    let addr: std::net::SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(v["url"], format!("http://{addr}"));

    // The port is taken now: a second sink says how to pick another.
    let out = bin()
        .args(["sink", "--bind", &addr.to_string()])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("could not listen on {addr}")),
        "{err}"
    );
    assert!(err.contains("--bind 127.0.0.1:0"), "{err}");

    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    running.0 = None;
    assert!(status.success(), "{status:?}");
    let v: Value = serde_json::from_str(rest.trim()).expect("one JSON summary line");
    assert_eq!(v["event"], "summary");
    assert_eq!(v["signal"], "SIGTERM");
    assert_eq!(v["summary"]["reports"], 0);
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let out = bin()
        .args(["sink", "--failure-rate", "2"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let err = text(&out.stderr);
    assert!(
        err.contains("--failure-rate") && err.contains("between 0 and 1"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// sink, as a child process
// ---------------------------------------------------------------------------

/// Kills the child if the test fails before it is stopped.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn sink_runs_until_interrupted_and_prints_totals() {
    let jsonl_dir = tempfile::tempdir().unwrap();
    let jsonl = jsonl_dir.path().join("reports.jsonl");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("beacon-meter"))
        .env_clear()
        .args(["sink", "--bind", "127.0.0.1:0", "--license", LICENSE])
        .args(["--api-key", API_KEY, "--jsonl"])
        .arg(&jsonl)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sink starts");
    let mut running = Running(Some(child));
    let child = running.0.as_mut().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("Listening on ")
        .unwrap_or_else(|| panic!("first line names the address: {first:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "the actual port is printed: {url}");

    // Talk to it like the library does, at the URLs the configuration gives.
    let config = Config::from_pairs(&[(ENV_BEACON_URL, &url)]).unwrap();
    let rt = runtime();
    rt.block_on(async {
        use beacon_meter::client::{
            ClientSettings, HttpClient, LicenseSettings, LicenseVerifier, SubmitOutcome,
        };
        use beacon_meter::wire::Credential;
        let license = config.endpoint(Credential::License(Secret::new(LICENSE)));
        let http = HttpClient::new(ClientSettings::default()).unwrap();
        let verifier = LicenseVerifier::new(
            http.clone(),
            &license.verify_url,
            Secret::new(LICENSE),
            LicenseSettings::default(),
        )
        .unwrap();
        assert!(verifier.verify().await.is_ok());
        let body = ReportBody {
            from_timestamp: Utc.timestamp_opt(1_736_154_000, 0).unwrap(),
            to_timestamp: Utc.timestamp_opt(1_736_154_300, 0).unwrap(),
            tags: BTreeMap::new(),
            measures: BTreeMap::from([(RUNS.to_owned(), 5), (NODES.to_owned(), 17)]),
            logs: vec![],
        };
        let outcome = http
            .submit(
                &license.submit_url,
                Dialect::Published,
                &license.credential,
                &body,
                Uuid::new_v4(),
            )
            .await
            .unwrap();
        assert_eq!(outcome, SubmitOutcome::Accepted { status: 204 });
    });

    // Ctrl-C: graceful stop, totals printed.
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the sink did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    running.0 = None;
    let all = format!("{first}{rest}");
    assert!(all.contains(&format!("export BEACON_URL={url}")), "{all}");
    assert!(all.contains("lcl_…9f2a"), "keys are shown redacted: {all}");
    assert!(all.contains("Stopping (Ctrl-C)"), "{all}");
    let accepted = all
        .lines()
        .find(|l| l.trim_start().starts_with("reports accepted"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(accepted.trim_end().ends_with(" 1"), "{accepted}");
    assert!(
        all.lines()
            .any(|l| l.contains(RUNS) && l.trim_end().ends_with(" 5")),
        "{all}"
    );
    assert_no_secret(&all);
    assert_no_secret(&err);
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert_no_secret(&lines);
}

// ---------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------

#[test]
fn check_passes_against_a_local_sink_without_showing_keys() {
    let rt = runtime();
    let sink = start_sink(
        &rt,
        SinkConfig::ephemeral().api_keys(vec![Secret::new(API_KEY)]),
    );
    let url = format!("http://127.0.0.1:{}", sink.addr().port());
    let out = bin()
        .arg("check")
        .env("BEACON_URL", &url)
        .env("LANGSMITH_AUTH_ENDPOINT", &url)
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .env("LANGCHAIN_API_KEY", API_KEY) // the legacy name, still read
        .env("BEACON_TIMEOUT_SECS", "5")
        .assert()
        .code(0)
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    let all = format!("{stdout}{}", text(&out.stderr));
    assert_no_secret(&all);
    assert!(
        stdout.contains(&format!("127.0.0.1:{}", sink.addr().port())),
        "{stdout}"
    );
    assert!(stdout.contains("Egress allowlist"), "{stdout}");
    assert!(stdout.contains("lcl_…9f2a"), "{stdout}");
    assert!(stdout.contains("token is used until"), "{stdout}");
    assert!(
        stdout.contains(&beacon_meter_sink::DEFAULT_ORG_ID.to_string()),
        "{stdout}"
    );
    assert!(stdout.contains("Result: all good"), "{stdout}");
    // Which variable each value came from.
    assert!(
        stdout.contains("LANGCHAIN_API_KEY") && stdout.contains("so read from LANGCHAIN_API_KEY"),
        "{stdout}"
    );
    // The dialect, the exact report URLs and bodies, and the path probes.
    assert!(
        stdout.contains(&format!(
            "Reports by license: POST {url}/v1/metadata/submit (published dialect"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Reports by API key: POST {url}/v1/metadata/submit"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("\"license\": \"lcl_…9f2a\""), "{stdout}");
    assert!(
        stdout.contains("HTTP 405 to GET: the path exists"),
        "{stdout}"
    );
    let summary = sink.summary();
    assert_eq!((summary.verifications, summary.auths), (1, 1));
    assert_eq!(
        summary.reports, 0,
        "a path probe must not count as a report"
    );

    // The same as JSON.
    let out = bin()
        .args(["check", "--json"])
        .env("BEACON_URL", &url)
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .env("BEACON_TIMEOUT_SECS", "5")
        .assert()
        .code(0)
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["egress"][0]["host"], "127.0.0.1");
    assert_eq!(v["egress"][0]["port"], sink.addr().port());
    assert_eq!(v["credentials"][0]["outcome"], "valid");
    assert!(v["credentials"][0]["expires_at"].is_string());
    let steps: Vec<&str> = v["hosts"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["ok", "ok", "skipped", "ok"]);
    assert_no_secret(&text(&out.stdout));
    rt.block_on(sink.shutdown());
}

#[test]
fn check_with_a_bad_variable_exits_2_naming_it() {
    let out = bin()
        .arg("check")
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .env("BEACON_INTERVAL_SECS", "5 minutes")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("BEACON_INTERVAL_SECS"), "{stdout}");
    assert!(stdout.contains("whole number of seconds"), "{stdout}");
    assert_no_secret(&stdout);

    let out = bin()
        .args(["check", "--json"])
        .env("BEACON_URL", "http://beacon.example.com")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config_error"]["variable"], "BEACON_URL");
    assert!(
        v["config_error"]["message"]
            .as_str()
            .unwrap()
            .contains("use https")
    );

    // No credential at all: nothing would be reported.
    let out = bin().arg("check").assert().code(2).get_output().clone();
    assert!(
        text(&out.stdout).contains("LANGGRAPH_CLOUD_LICENSE_KEY"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_with_a_rejected_license_exits_4() {
    let rt = runtime();
    let sink = start_sink(
        &rt,
        SinkConfig::ephemeral().licenses(vec![Secret::new(OTHER_LICENSE)]),
    );
    let out = bin()
        .args(["-vvv", "check"])
        .env("BEACON_URL", sink.base_url().as_str())
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .env("BEACON_TIMEOUT_SECS", "5")
        .assert()
        .code(4)
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("rejected the license key (HTTP 403)"),
        "{stdout}"
    );
    assert!(stdout.contains("credential rejected (exit 4)"), "{stdout}");
    assert_no_secret(&stdout);
    // Trace logging shows no key either.
    assert_no_secret(&text(&out.stderr));
    rt.block_on(sink.shutdown());
}

#[test]
fn check_with_nothing_listening_exits_3() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = bin()
        .arg("check")
        .env("BEACON_URL", format!("http://127.0.0.1:{port}"))
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .env("BEACON_TIMEOUT_SECS", "3")
        .assert()
        .code(3)
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("cannot connect to 127.0.0.1 port {port}")),
        "{stdout}"
    );
    assert!(stdout.contains("firewall"), "the fix is named: {stdout}");
    assert_no_secret(&stdout);
}

#[test]
fn check_offline_makes_no_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // BEACON_OFFLINE wins over any credential; an offline license is
    // offline only without an API key (the platform's rule: with one, the
    // API key reports alone).
    for env in [
        &[
            ("BEACON_OFFLINE", "true"),
            ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE),
            ("LANGSMITH_API_KEY", API_KEY),
        ][..],
        &[(
            "LANGGRAPH_CLOUD_LICENSE_KEY",
            "offline-license-0123456789abcdef",
        )][..],
    ] {
        let mut cmd = bin();
        cmd.arg("check")
            .env("BEACON_URL", &url)
            .env("LANGSMITH_AUTH_ENDPOINT", &url);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.assert().code(0).get_output().clone();
        let stdout = text(&out.stdout);
        assert!(stdout.contains("offline"), "{stdout}");
        assert!(stdout.contains("no network call"), "{stdout}");
        assert_no_secret(&stdout);
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("an offline check connected: {other:?}"),
        }
    }
}

#[test]
fn check_with_an_offline_license_and_an_api_key_never_sends_the_license() {
    // The platform's rule: the API key is checked and its report path
    // probed; the offline license goes nowhere. Both endpoints point at one
    // server that records every request.
    let rt = runtime();
    let (url, seen) = rt.block_on(beacon_meter_testkit::recording_server());
    let offline = "offline-license-0123456789abcdef";
    let out = bin()
        .arg("check")
        .env("BEACON_URL", &url)
        .env("LANGSMITH_AUTH_ENDPOINT", &url)
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", offline)
        .env("LANGSMITH_CONTROL_PLANE_API_KEY", API_KEY)
        .env("BEACON_TIMEOUT_SECS", "5")
        .assert()
        .code(0)
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("never sent"), "{stdout}");
    assert!(
        stdout.contains("LANGSMITH_CONTROL_PLANE_API_KEY"),
        "{stdout}"
    );
    assert!(stdout.contains("Result: all good"), "{stdout}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|r| r.starts_with("POST /auth\n")),
        "{seen:#?}"
    );
    for r in &seen {
        assert!(!r.contains(offline), "the offline license was sent: {r}");
        assert!(
            r.starts_with("POST /auth\n")
                || r.starts_with("GET /v1/metadata/submit\n")
                || r.starts_with("GET /\n"),
            "a request beyond the API-key destination: {r}"
        );
    }
}

/// A TLS front for a sink: terminates TLS with the test certificate for
/// `localhost` (signed by `tests/fixtures/ca.pem`) and relays to the sink.
async fn tls_front(sink: std::net::SocketAddr) -> std::net::SocketAddr {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![
        CertificateDer::from_pem_slice(include_bytes!("../../../tests/fixtures/server.pem"))
            .unwrap(),
    ];
    let key =
        PrivateKeyDer::from_pem_slice(include_bytes!("../../../tests/fixtures/server_key.pem"))
            .unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(sink).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            });
        }
    });
    addr
}

#[test]
fn check_says_which_ca_verified_the_tls_certificate() {
    let rt = runtime();
    let sink = start_sink(&rt, SinkConfig::ephemeral());
    let front = rt.block_on(tls_front(sink.addr()));
    let url = format!("https://localhost:{}", front.port());
    let ca = beacon_meter_testkit::fixture("ca.pem");

    let out = bin()
        .arg("check")
        .env("BEACON_URL", &url)
        .env("BEACON_CA_CERT", &ca)
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .env("BEACON_TIMEOUT_SECS", "5")
        .assert()
        .code(0)
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("verified by BEACON_CA_CERT {}", ca.display())),
        "{stdout}"
    );
    assert!(stdout.contains("not by the built-in roots"), "{stdout}");
    assert!(stdout.contains("https  localhost:"), "{stdout}");
    assert_no_secret(&stdout);

    // Without the CA: the handshake fails, the fix is named, exit 3.
    let out = bin()
        .arg("check")
        .env("BEACON_URL", &url)
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .env("BEACON_TIMEOUT_SECS", "5")
        .assert()
        .code(3)
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("handshake with localhost failed"),
        "{stdout}"
    );
    assert!(stdout.contains("set BEACON_CA_CERT"), "{stdout}");
    assert_eq!(
        sink.summary().verifications,
        1,
        "only the trusting run verified"
    );
    rt.block_on(sink.shutdown());
}

// ---------------------------------------------------------------------------
// preview
// ---------------------------------------------------------------------------

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn window(dest: Destination, from: &str, to: &str, runs: u64, nodes: u64) -> SpooledWindow {
    SpooledWindow::new(
        Uuid::new_v4(),
        dest,
        ts(to),
        vec![],
        ReportBody {
            from_timestamp: ts(from),
            to_timestamp: ts(to),
            tags: BTreeMap::new(),
            measures: BTreeMap::from([(RUNS.to_owned(), runs), (NODES.to_owned(), nodes)]),
            logs: vec![],
        },
    )
}

#[test]
fn preview_shows_the_checkpoint_window_with_the_key_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let from = now - chrono::TimeDelta::seconds(40);
    let from_s = beacon_meter::wire::format_timestamp(&from);
    let saved_s = beacon_meter::wire::format_timestamp(&(now - chrono::TimeDelta::seconds(1)));
    // A "running reporter": holds the lock and has saved a checkpoint.
    let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
    spool
        .save_checkpoint(&Checkpoint::new(
            ts(&saved_s),
            vec![window(Destination::Beacon, &from_s, &saved_s, 42, 99)],
        ))
        .unwrap();

    let out = bin()
        .args(["preview", "--json"])
        .env("BEACON_SPOOL_DIR", dir.path())
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .env("LANGSMITH_API_KEY", API_KEY)
        .env(
            "LANGSMITH_TENANT_ID",
            "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1",
        )
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    assert_no_secret(&stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let reports = v.as_array().expect("an array of reports");
    assert_eq!(reports.len(), 2, "{stdout}");
    let beacon = &reports[0];
    assert_eq!(beacon["license"], "lcl_…9f2a");
    assert!(beacon.get("api_key").is_none());
    assert_eq!(beacon["measures"][RUNS], 42);
    assert_eq!(beacon["measures"][NODES], 99);
    assert_eq!(beacon["from_timestamp"], from_s.as_str());
    assert_eq!(beacon["logs"], serde_json::json!([]));
    assert_eq!(beacon["tags"]["langgraph.platform.plan"], "enterprise");
    assert_eq!(
        beacon["tags"]["langgraph.platform.tenant_id"],
        "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1"
    );
    // Every key of the wire format, and no other.
    let keys: Vec<&str> = beacon
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "from_timestamp",
            "license",
            "logs",
            "measures",
            "tags",
            "to_timestamp"
        ]
    );
    let auth = &reports[1];
    assert_eq!(auth["api_key"], "lsv2…f_42");
    assert_eq!(auth["measures"][RUNS], 0, "no open auth window");

    // In words: where each goes, and where the counts come from.
    let out = bin()
        .arg("preview")
        .env("BEACON_SPOOL_DIR", dir.path())
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("would be POSTed to https://beacon.langchain.com/v1/metadata/submit"),
        "{stdout}"
    );
    assert!(stdout.contains("open window, saved"), "{stdout}");
    assert!(stdout.contains("(license lcl_…9f2a)"), "{stdout}");
    assert!(
        stdout.contains("\"langgraph.platform.runs\": 42"),
        "{stdout}"
    );
    assert_no_secret(&stdout);
    drop(spool);
}

#[test]
fn preview_without_checkpoint_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("preview")
        .env("BEACON_SPOOL_DIR", dir.path().join("absent"))
        .env("BEACON_OFFLINE", "true")
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Offline:"), "{stdout}");
    assert!(stdout.contains("would NOT be sent"), "{stdout}");
    assert!(stdout.contains("no spool at"), "{stdout}");
    assert!(
        stdout.contains("\"langgraph.platform.runs\": 0"),
        "{stdout}"
    );
    assert_no_secret(&stdout);

    let out = bin()
        .args(["preview", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(text(&out.stdout).trim(), "[]");

    let out = bin()
        .arg("preview")
        .env("LANGSMITH_TENANT_ID", "not-a-uuid")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("LANGSMITH_TENANT_ID"), "{stderr}");
}

// ---------------------------------------------------------------------------
// spool
// ---------------------------------------------------------------------------

#[test]
fn spool_list_show_export_and_requeue() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    let d = root.to_str().unwrap();
    let w1 = window(
        Destination::Beacon,
        "2025-01-06T09:00:00Z",
        "2025-01-06T09:05:00Z",
        3,
        9,
    );
    let w2 = window(
        Destination::Beacon,
        "2025-01-06T09:05:00Z",
        "2025-01-06T09:10:00Z",
        4,
        12,
    );
    let w3 = window(
        Destination::Auth,
        "2025-01-06T09:00:00Z",
        "2025-01-06T09:05:00Z",
        1,
        2,
    );
    let spool = Spool::open(&root, SpoolLimits::default()).unwrap();
    for w in [&w1, &w2, &w3] {
        spool.push(w).unwrap();
    }
    spool
        .reject(Destination::Beacon, w2.id, 422, "measures must be integers")
        .unwrap();

    // Read-only commands work while the "reporter" holds the lock.
    let out = bin()
        .args(["spool", "list", "--dir", d])
        .assert()
        .success()
        .get_output()
        .clone();
    let listing = text(&out.stdout);
    assert!(listing.contains("beacon: 1 pending"), "{listing}");
    assert!(listing.contains("auth: 1 pending"), "{listing}");
    assert!(listing.contains("rejected: 1"), "{listing}");
    assert!(listing.contains("HTTP 422"), "{listing}");
    assert!(listing.contains(&w1.id.to_string()), "{listing}");
    assert!(
        listing.contains("spool requeue"),
        "the way out is named: {listing}"
    );

    let out = bin()
        .args(["spool", "--dir", d, "list", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pending"]["beacon"][0]["id"], w1.id.to_string());
    assert_eq!(v["pending"]["auth"][0]["measures"][RUNS], 1);
    assert_eq!(v["rejected"][0]["status"], 422);

    let out = bin()
        .args(["spool", "--dir", d, "show", &w3.id.to_string()])
        .assert()
        .success()
        .get_output()
        .clone();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id"], w3.id.to_string());
    assert_eq!(shown["destination"], "auth");

    let out = bin()
        .args(["spool", "--dir", d, "show", &Uuid::new_v4().to_string()])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(
        text(&out.stderr).contains("spool list"),
        "{}",
        text(&out.stderr)
    );

    let bundle = dir.path().join("export.json");
    let out = bin()
        .args(["spool", "--dir", d, "export"])
        .arg(&bundle)
        .assert()
        .success()
        .get_output()
        .clone();
    let said = text(&out.stdout);
    assert!(said.contains("Exported 2 pending window(s)"), "{said}");
    assert!(said.contains(&bundle.display().to_string()), "{said}");
    let export: SpoolExport = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(export.format, EXPORT_FORMAT);
    let ids: Vec<Uuid> = export.windows.iter().map(|w| w.id).collect();
    assert_eq!(ids, [w1.id, w3.id]);
    // A bare file name is written in the working directory.
    bin()
        .current_dir(dir.path())
        .args(["spool", "--dir", d, "export", "bare.json"])
        .assert()
        .success();
    let bare = std::fs::read(dir.path().join("bare.json")).unwrap();
    let bare: SpoolExport = serde_json::from_slice(&bare).unwrap();
    assert_eq!(bare.windows.len(), 2);

    // requeue needs the lock: a clear error naming the holder.
    let out = bin()
        .args(["spool", "--dir", d, "requeue"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = text(&out.stderr);
    assert!(err.contains("locked by"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "names the holder: {err}"
    );
    assert!(err.contains("stop that reporter first"), "{err}");

    drop(spool);
    let out = bin()
        .args(["spool", "--dir", d, "requeue", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["requeued"], 1);
    let spool = Spool::open_read_only(&root).unwrap();
    assert_eq!(spool.pending(Destination::Beacon).unwrap().len(), 2);
    assert!(spool.list().unwrap().rejected.is_empty());

    // A spool that does not exist is named, not created.
    let missing = dir.path().join("nope");
    for action in ["list", "requeue"] {
        let out = bin()
            .args(["spool", "--dir", missing.to_str().unwrap(), action])
            .assert()
            .code(1)
            .get_output()
            .clone();
        assert!(
            text(&out.stderr).contains("no spool at"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(!missing.exists());
}

// ---------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------

fn summary_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("summary written")).expect("summary is JSON")
}

#[test]
fn demo_reconciles_on_the_embedded_faulty_beacon() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let spool = dir.path().join("spool");
    let out = bin()
        .args(["demo", "--duration", "3", "--threads", "2", "--json"])
        .arg("--summary-json")
        .arg(&summary)
        .arg("--spool")
        .arg(&spool)
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(doc["reconciled"], true, "{stdout}");
    assert!(doc["recorded"][RUNS].as_u64().unwrap() > 0, "{stdout}");
    assert_eq!(doc["recorded"][RUNS], doc["delivered"][RUNS], "{stdout}");
    assert_eq!(doc["recorded"][NODES], doc["delivered"][NODES], "{stdout}");
    assert!(doc["windows_delivered"].as_u64().unwrap() >= 3, "{stdout}");
    assert_eq!(doc["pending"], 0, "{stdout}");
    assert!(doc["executor"]["overhead_percent"].is_number(), "{stdout}");

    let s = summary_json(&summary);
    assert_eq!(s["finished"], true);
    assert_eq!(s["recorded"], s["delivered"]);
    assert_eq!(s["recorded"][RUNS], doc["recorded"][RUNS]);
    for key in ["windows_delivered", "pending", "retries"] {
        assert!(s[key].is_u64(), "{key}: {s}");
    }
}

#[test]
fn demo_delivers_windows_left_by_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    {
        let spool = Spool::open(&spool_dir, SpoolLimits::default()).unwrap();
        spool
            .push(&window(
                Destination::Beacon,
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:05:00Z",
                7,
                70,
            ))
            .unwrap();
    }
    let out = bin()
        .args([
            "demo",
            "--duration",
            "2",
            "--threads",
            "1",
            "--json",
            "--spool",
        ])
        .arg(&spool_dir)
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["carried_over"][RUNS], 7);
    assert_eq!(doc["carried_over"][NODES], 70);
    assert_eq!(
        doc["delivered"][RUNS].as_u64().unwrap(),
        doc["recorded"][RUNS].as_u64().unwrap() + 7
    );
    assert_eq!(
        doc["delivered"][NODES].as_u64().unwrap(),
        doc["recorded"][NODES].as_u64().unwrap() + 70
    );
}

#[test]
fn demo_ships_to_an_external_sink_with_the_license_from_the_environment() {
    let rt = runtime();
    let sink = start_sink(&rt, SinkConfig::ephemeral());
    let out = bin()
        .args(["demo", "--duration", "2", "--threads", "1"])
        .arg("--endpoint")
        .arg(sink.base_url().as_str())
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .clone();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_no_secret(&all);
    assert!(all.contains("delivered = recorded"), "{all}");
    let summary = sink.summary();
    assert!(summary.measures[RUNS] > 0);
    assert!(
        summary.by_credential.keys().any(|k| k.contains("lcl_")),
        "the reports carried the license from the environment: {:?}",
        summary.by_credential
    );
    rt.block_on(sink.shutdown());
}

/// What a client sent reaches the terminal escaped, never raw: a tag and a
/// measure name that would clear the screen, color it and retitle it are
/// shown as text by `sink usage`, in its table and in its `--json`.
#[test]
fn client_supplied_control_characters_are_shown_not_sent() {
    let attack = "\x1b[2J\x1b[31mPWNED\x1b]0;title\x07\u{9b}";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sink.db");
    runtime().block_on(async {
        let sink = SinkConfig::ephemeral().db(&db).start().await.unwrap();
        let body = serde_json::json!({
            "license": LICENSE,
            "from_timestamp": "2025-01-06T09:00:00Z",
            "to_timestamp": "2025-01-06T10:00:00Z",
            "tags": {"langgraph.platform.host": attack},
            "measures": {RUNS: 1, NODES: 3, format!("custom{attack}"): 2},
            "logs": []
        });
        let url = sink.base_url().join("/v1/metadata/submit").unwrap();
        let client = beacon_meter_testkit::http_client();
        let answer = beacon_meter_testkit::post_json(&client, url, body.to_string())
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
        sink.shutdown().await;
    });
    let db = db.to_str().unwrap();
    for args in [
        &["sink", "usage", "--db", db][..],
        &["sink", "usage", "--db", db, "--json"],
    ] {
        let out = bin()
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let shown = text(&out);
        assert!(
            !out.iter().any(|&b| b == 0x1b || b == 0x07) && !shown.contains('\u{9b}'),
            "{args:?} sent a control character:\n{shown:?}"
        );
        assert!(
            shown.contains(r"\u001b[2J\u001b[31mPWNED\u001b]0;title\u0007\u009b"),
            "{args:?}:\n{shown}"
        );
    }
}
