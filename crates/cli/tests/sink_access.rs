//! Who may read a sink, and over what: the admin token on the read
//! endpoints, and HTTPS end to end (the `beacon-meter sink` binary with
//! `--tls-cert`/`--tls-key`, fed by the `beacon-meter demo` reporter that
//! trusts the private test CA through `BEACON_CA_CERT`).
#![cfg(unix)]

use beacon_meter::secret::Secret;
use beacon_meter_sink::{SinkConfig, SinkHandle, TlsFiles};
use serde_json::{Value, json};
use std::net::SocketAddr;

use std::process::{Command, Stdio};

use crate::common::Running;
use std::time::Duration;

const LICENSE: &str = "lcl_access_test_0123456789";
const TOKEN: &str = "admin-token-0123456789abcdef";

use beacon_meter_testkit::http_client as client;

fn report() -> Value {
    json!({
        "license": LICENSE,
        "from_timestamp": "2025-01-06T09:00:00Z",
        "to_timestamp": "2025-01-06T10:00:00Z",
        "tags": {},
        "measures": {"langgraph.platform.runs": 7},
        "logs": []
    })
}

/// GET `path` on the sink at `addr` (always through 127.0.0.1) with this
/// `Authorization` header; the status.
async fn read(addr: SocketAddr, path: &str, authorization: Option<&str>) -> u16 {
    let mut request = client().get(format!("http://127.0.0.1:{}/{path}", addr.port()));
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn submit(addr: SocketAddr) -> u16 {
    client()
        .post(format!(
            "http://127.0.0.1:{}/v1/metadata/submit",
            addr.port()
        ))
        .header("content-type", "application/json")
        .body(report().to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn start(config: SinkConfig) -> SinkHandle {
    config.start().await.expect("the sink starts")
}

#[tokio::test]
async fn read_endpoints_need_the_admin_token_beyond_loopback() {
    // All interfaces, no token: reports are taken, reads refused.
    let open = start(SinkConfig::ephemeral().bind("0.0.0.0:0".parse().unwrap())).await;
    assert_eq!(submit(open.addr()).await, 204);
    for path in ["v1/summary", "v1/reports"] {
        assert_eq!(read(open.addr(), path, None).await, 401, "{path}");
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(read(open.addr(), path, Some(&bearer)).await, 401, "{path}");
    }
    assert_eq!(open.summary().reports, 1);
    open.shutdown().await;

    // Loopback, no token: open, as before.
    let local = start(SinkConfig::ephemeral()).await;
    assert_eq!(read(local.addr(), "v1/summary", None).await, 200);
    local.shutdown().await;

    // A token configured: required everywhere, compared exactly.
    for bind in ["127.0.0.1:0", "0.0.0.0:0"] {
        let guarded = start(
            SinkConfig::ephemeral()
                .bind(bind.parse().unwrap())
                .admin_token(Secret::new(TOKEN)),
        )
        .await;
        let addr = guarded.addr();
        assert_eq!(submit(addr).await, 204, "reports need no admin token");
        for path in ["v1/summary", "v1/reports"] {
            for wrong in [
                None,
                Some(TOKEN.to_owned()),
                Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
                Some(format!("Bearer {TOKEN}x")),
                Some(format!("Basic {TOKEN}")),
                Some("Bearer ".to_owned()),
            ] {
                assert_eq!(read(addr, path, wrong.as_deref()).await, 401, "{wrong:?}");
            }
            let right = format!("Bearer {TOKEN}");
            assert_eq!(read(addr, path, Some(&right)).await, 200, "{bind} {path}");
        }
        let seen = format!(
            "{:?} {:?}",
            guarded.requests(),
            SinkConfig::ephemeral().admin_token(Secret::new(TOKEN))
        );
        assert!(!seen.contains(TOKEN), "the token leaked: {seen}");
        guarded.shutdown().await;
    }
}

use beacon_meter_testkit::fixture;

/// An HTTPS client that trusts the test CA alone.
fn tls_client() -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(fixture("ca.pem")).unwrap()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_sink_refuses_plain_http_and_bad_files() {
    let sink = start(SinkConfig::ephemeral().tls(TlsFiles {
        cert: fixture("server.pem"),
        key: fixture("server_key.pem"),
    }))
    .await;
    assert_eq!(sink.base_url().scheme(), "https");
    let port = sink.addr().port();
    let r = tls_client()
        .get(format!("https://localhost:{port}/v1/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP gets no answer; an HTTPS client without the CA refuses.
    assert!(
        client()
            .get(format!("http://127.0.0.1:{port}/v1/summary"))
            .send()
            .await
            .is_err()
    );
    assert!(
        client()
            .get(format!("https://localhost:{port}/v1/summary"))
            .send()
            .await
            .is_err()
    );
    sink.shutdown().await;

    for (cert, key, says) in [
        ("nope.pem", "server_key.pem", "nope.pem"),
        ("ca.pem", "server_key.pem", "do not make a TLS server"),
        ("server.pem", "server.pem", "no PEM private key"),
        ("server_key.pem", "server_key.pem", "no CERTIFICATE"),
    ] {
        let e = SinkConfig::ephemeral()
            .tls(TlsFiles {
                cert: fixture(cert),
                key: fixture(key),
            })
            .start()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{cert}/{key}: {e}");
    }
}

#[tokio::test]
async fn a_reporter_trusting_a_private_ca_delivers_to_the_https_sink_binary() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let db = dir.path().join("sink.db");
    let mut command = Command::new(env!("CARGO_BIN_EXE_beacon-meter"));
    command
        .args(["sink", "--bind", "127.0.0.1:0", "--json"])
        .arg("--tls-cert")
        .arg(fixture("server.pem"))
        .arg("--tls-key")
        .arg(fixture("server_key.pem"))
        .arg("--admin-token-file")
        .arg(&token_file)
        .arg("--db")
        .arg(&db)
        .stderr(Stdio::null());
    let mut sink = Running::start(command);
    let url = sink.url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let endpoint = url.replace("127.0.0.1", "localhost");

    let demo = Command::new(env!("CARGO_BIN_EXE_beacon-meter"))
        .args(["demo", "--threads", "1", "--duration", "2", "--json"])
        .args(["--endpoint", &endpoint])
        .env("BEACON_CA_CERT", fixture("ca.pem"))
        .env("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE)
        .env_remove("BEACON_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&demo.stderr)
    );

    let answer = tls_client()
        .get(format!("{endpoint}/v1/summary"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let summary: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    let shown: Value = serde_json::from_str(&text).unwrap();
    println!("demo over HTTPS: {shown}\nsink summary: {summary}");
    // What the demo recorded is what the sink counted, and it went through
    // the license verification (over TLS too).
    assert_eq!(shown["reconciled"], true);
    assert_eq!(summary["measures"], shown["recorded"]);
    assert!(
        summary["measures"]["langgraph.platform.runs"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(summary["reports"], shown["windows_delivered"]);
    assert!(summary["verifications"].as_u64().unwrap() >= 1);
    sink.child.kill().unwrap();
    sink.child.wait().unwrap();
}
