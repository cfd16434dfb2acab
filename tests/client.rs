//! The HTTP client against real servers on 127.0.0.1: a small raw HTTP/1.1
//! server (and a TLS one) that records every request and answers from a
//! script.
#![cfg(feature = "reporter")]

use crate::common::jwt::{Es256, b64, signing_input};
use base64::Engine as _;
use beacon_meter::client::{
    ApiKeyError, ApiKeyVerifier, ClientError, ClientSettings, FailureKind, HttpClient,
    LicenseError, LicenseSettings, LicenseToken, LicenseVerifier, SubmitOutcome,
};
use beacon_meter::config::{Config, ENV_AUTH_ENDPOINT, ENV_BEACON_URL};
use beacon_meter::secret::Secret;
use beacon_meter::wire::{Credential, Dialect, ReportBody, encode_report, encode_report_in};
use chrono::{TimeZone, Utc};
use reqwest::Url;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const LICENSE: &str = "lcl_TESTKEY0123456789abcdefSECRET";
const API_KEY: &str = "lsv2_pt_0123456789abcdef_APIKEYSECRET";
const ORG_ID: &str = "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1";

// ---------------------------------------------------------------------------
// The test server
// ---------------------------------------------------------------------------

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    /// Names in lower case, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// What the server does with a request.
#[derive(Clone)]
enum Reply {
    /// A complete answer; the connection stays open for the next request.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A chunked body that never ends (until the client goes away, or
    /// 64 MiB as a backstop).
    Endless { status: u16 },
    /// Waits, then answers.
    Delay(Duration, Box<Reply>),
    /// Closes the connection without answering.
    Close,
}

fn reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply::Full {
        status,
        headers: vec![],
        body: body.into(),
    }
}

fn reply_with(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Reply {
    Reply::Full {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.into(),
    }
}

type Handler = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

struct Shared {
    handler: Handler,
    requests: Mutex<Vec<Recorded>>,
    connections: AtomicUsize,
}

struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// A plain HTTP server; `handler` gets each request and its index.
    async fn start(handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(handler, None).await
    }

    /// Always the same reply.
    async fn always(r: Reply) -> Self {
        Self::start(move |_, _| r.clone()).await
    }

    /// The replies in order; the last one repeats.
    async fn script(replies: Vec<Reply>) -> Self {
        Self::start(move |_, i| replies[i.min(replies.len() - 1)].clone()).await
    }

    async fn start_with(
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            handler: Arc::new(handler),
            requests: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                accept_shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = accept_shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(socket).await {
                                serve(stream, shared).await;
                            }
                        }
                        None => serve(socket, shared).await,
                    }
                });
            }
        });
        TestServer { addr, shared, task }
    }

    fn url(&self) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}", self.addr.port())).unwrap()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match socket.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_owned();
        let path = first.next().unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        while buf.len() < head_end + len {
            match socket.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let recorded = Recorded {
            method,
            path,
            headers,
            body,
        };
        let index = {
            let mut requests = shared.requests.lock().unwrap();
            requests.push(recorded.clone());
            requests.len() - 1
        };
        let mut answer = (shared.handler)(&recorded, index);
        loop {
            match answer {
                Reply::Delay(d, inner) => {
                    tokio::time::sleep(d).await;
                    answer = *inner;
                }
                Reply::Close => return,
                Reply::Full {
                    status,
                    headers,
                    body,
                } => {
                    let mut out = format!("HTTP/1.1 {status} Test\r\n");
                    if status != 204 && status != 304 {
                        out.push_str(&format!("content-length: {}\r\n", body.len()));
                    }
                    for (n, v) in headers {
                        out.push_str(&format!("{n}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    let mut bytes = out.into_bytes();
                    bytes.extend_from_slice(&body);
                    if socket.write_all(&bytes).await.is_err() {
                        return;
                    }
                    break;
                }
                Reply::Endless { status } => {
                    let head =
                        format!("HTTP/1.1 {status} Test\r\ntransfer-encoding: chunked\r\n\r\n");
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
                    for _ in 0..(64 * 1024 / 16) {
                        if socket.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn settings() -> ClientSettings {
    ClientSettings::default()
        .timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(1))
        .max_body(4 * 1024)
}

fn fast_timeout() -> ClientSettings {
    settings().timeout(Duration::from_millis(300))
}

fn client() -> HttpClient {
    HttpClient::new(settings()).unwrap()
}

fn body() -> ReportBody {
    ReportBody {
        from_timestamp: Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap(),
        to_timestamp: Utc.with_ymd_and_hms(2025, 1, 6, 10, 0, 0).unwrap(),
        tags: BTreeMap::from([(
            "langgraph.platform.variant".to_owned(),
            "standard".to_owned(),
        )]),
        measures: BTreeMap::from([
            ("langgraph.platform.runs".to_owned(), 150),
            ("langgraph.platform.nodes".to_owned(), 450),
        ]),
        logs: vec![],
    }
}

/// The published report URL under `base` (what the configuration builds).
fn report_url(base: &Url) -> Url {
    base.join("v1/metadata/submit").unwrap()
}

fn license() -> Credential {
    Credential::License(Secret::new(LICENSE))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// An unsigned (`alg: none`) JWT.
fn unsigned_jwt(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string())
    )
}

fn token_reply(jwt: &str) -> Reply {
    reply(200, json!({ "token": jwt }).to_string())
}

fn license_settings() -> LicenseSettings {
    LicenseSettings {
        clock_skew: Duration::ZERO,
        ..LicenseSettings::default()
    }
}

/// Where `credential` is verified when the Beacon and the auth endpoint are
/// both `server`: the URL `config::Endpoint` gives, the one place the verify
/// paths are spelled (a test below checks what arrives).
fn verify_url(server: &TestServer, credential: Credential) -> Url {
    let base = server.url();
    let config = Config::from_pairs(&[
        (ENV_BEACON_URL, base.as_str()),
        (ENV_AUTH_ENDPOINT, base.as_str()),
    ]);
    config.unwrap().endpoint(credential).verify_url
}

fn license_url(server: &TestServer) -> Url {
    verify_url(server, license())
}

fn auth_url(server: &TestServer) -> Url {
    verify_url(server, Credential::ApiKey(Secret::new(API_KEY)))
}

fn verifier(server: &TestServer, settings: LicenseSettings) -> LicenseVerifier {
    LicenseVerifier::new(
        client(),
        &license_url(server),
        Secret::new(LICENSE),
        settings,
    )
    .unwrap()
}

fn api_verifier(server: &TestServer) -> ApiKeyVerifier {
    ApiKeyVerifier::new(client(), &auth_url(server), Secret::new(API_KEY)).unwrap()
}

/// A port with nothing listening on it.
async fn closed_port_url() -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()
}

/// Fails if `text` holds any 8 consecutive characters of a test secret.
fn assert_secret_free(text: &str) {
    for secret in [LICENSE, API_KEY] {
        for window in secret.as_bytes().windows(8) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(
                !text.contains(window),
                "secret fragment {window:?} leaked into: {text}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------

#[tokio::test]
async fn nothing_connects_on_construction() {
    let server = TestServer::always(reply(204, "")).await;
    let http = client();
    let _license = LicenseVerifier::new(
        http.clone(),
        &license_url(&server),
        Secret::new(LICENSE),
        license_settings(),
    )
    .unwrap();
    let _api = ApiKeyVerifier::new(http.clone(), &auth_url(&server), Secret::new(API_KEY)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.connections(), 0);
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn insecure_urls_are_refused() {
    let plain = Url::parse("http://beacon.example.com").unwrap();
    let outcome = client()
        .submit(
            &report_url(&plain),
            Dialect::Published,
            &license(),
            &body(),
            uuid::Uuid::new_v4(),
        )
        .await;
    assert!(
        matches!(outcome, Err(ClientError::InsecureUrl { .. })),
        "{outcome:?}"
    );
    let err = LicenseVerifier::new(client(), &plain, Secret::new(LICENSE), license_settings())
        .unwrap_err();
    assert!(matches!(err, ClientError::InsecureUrl { .. }));
    assert!(err.to_string().contains("https://"), "{err}");
    let err = ApiKeyVerifier::new(client(), &plain, Secret::new(API_KEY)).unwrap_err();
    assert!(matches!(err, ClientError::InsecureUrl { .. }));
    // Credentials in the URL are not repeated in the error.
    let with_password = Url::parse("http://user:hunter2hunter2@example.com/").unwrap();
    let err = ApiKeyVerifier::new(client(), &with_password, Secret::new(API_KEY)).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn bad_ca_bundle_and_public_key_are_clear_errors() {
    let err =
        HttpClient::new(settings().ca_cert_pem(b"not a certificate".to_vec().into())).unwrap_err();
    assert!(matches!(err, ClientError::CaCert { .. }), "{err:?}");
    assert!(err.to_string().contains("ca_cert_pem"), "{err}");
    // A PEM block that is not a certificate inside.
    let err = HttpClient::new(
        settings().ca_cert_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
                .to_vec()
                .into(),
        ),
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::CaCert { .. }), "{err:?}");

    let url = Url::parse("https://beacon.example.com").unwrap();
    let err = LicenseVerifier::new(
        client(),
        &url,
        Secret::new(LICENSE),
        LicenseSettings {
            public_key_pem: Some(include_bytes!("fixtures/ca.pem").to_vec().into()),
            ..license_settings()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::PublicKey { .. }), "{err:?}");
    assert!(err.to_string().contains("CERTIFICATE"), "{err}");
}

// ---------------------------------------------------------------------------
// Submit
// ---------------------------------------------------------------------------

#[tokio::test]
async fn submit_posts_the_exact_report() {
    let server = TestServer::always(reply(204, "")).await;
    let key = uuid::Uuid::new_v4();
    let outcome = client()
        .submit(
            &report_url(&server.url()),
            Dialect::Published,
            &license(),
            &body(),
            key,
        )
        .await
        .unwrap();
    assert_eq!(outcome, SubmitOutcome::Accepted { status: 204 });

    let api = Credential::ApiKey(Secret::new(API_KEY));
    let prefixed = server.url().join("/prefix/").unwrap();
    let key2 = uuid::Uuid::new_v4();
    let outcome = client()
        .submit(
            &report_url(&prefixed),
            Dialect::Published,
            &api,
            &body(),
            key2,
        )
        .await
        .unwrap();
    assert_eq!(outcome, SubmitOutcome::Accepted { status: 204 });

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/metadata/submit");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("idempotency-key"), Some(key.to_string().as_str()));
    assert_eq!(r.body, encode_report(&license(), &body()));
    let json = r.json();
    assert_eq!(json["license"], LICENSE);
    assert_eq!(json["from_timestamp"], "2025-01-06T09:00:00Z");
    assert_eq!(json["measures"]["langgraph.platform.runs"], 150);
    assert!(json.get("api_key").is_none());

    let r = &requests[1];
    assert_eq!(r.path, "/prefix/v1/metadata/submit");
    assert_eq!(r.header("idempotency-key"), Some(key2.to_string().as_str()));
    assert_eq!(r.body, encode_report(&api, &body()));
    assert_eq!(r.json()["api_key"], API_KEY);
    assert!(r.json().get("license").is_none());
}

#[tokio::test]
async fn submit_in_the_langgraph_api_dialect_names_the_field_license_key() {
    let server = TestServer::always(reply(204, "")).await;
    let url = server.url().join("v1/beacon/metadata/submit").unwrap();
    let key = uuid::Uuid::new_v4();
    let api = Credential::ApiKey(Secret::new(API_KEY));
    for credential in [license(), api] {
        let outcome = client()
            .submit(&url, Dialect::LanggraphApi, &credential, &body(), key)
            .await
            .unwrap();
        assert_eq!(outcome, SubmitOutcome::Accepted { status: 204 });
    }
    let requests = server.requests();
    let r = &requests[0];
    assert_eq!(r.path, "/v1/beacon/metadata/submit");
    assert_eq!(
        r.body,
        encode_report_in(Dialect::LanggraphApi, &license(), &body())
    );
    assert_eq!(r.json()["license_key"], LICENSE);
    assert!(r.json().get("license").is_none());
    assert_eq!(r.json()["from_timestamp"], "2025-01-06T09:00:00Z");
    // The API key's field is the same in both dialects.
    assert_eq!(requests[1].json()["api_key"], API_KEY);
    assert_eq!(
        requests[1].header("idempotency-key"),
        Some(key.to_string().as_str())
    );
}

#[tokio::test]
async fn submit_maps_statuses_to_outcomes() {
    let echo = format!(r#"{{"detail":"bad report for {LICENSE}"}}"#);
    let in_two_minutes = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let cases: Vec<(Reply, &str)> = vec![
        (reply(200, "ok"), "accepted 200"),
        (reply(202, ""), "accepted 202"),
        (reply(401, echo.clone()), "credential 401"),
        (reply(403, "forbidden"), "credential 403"),
        (reply(400, echo.clone()), "payload 400"),
        (reply(422, "unprocessable"), "payload 422"),
        (reply(408, ""), "retry 408"),
        (reply_with(429, &[("retry-after", "7")], ""), "retry 429"),
        (
            reply_with(503, &[("retry-after", &in_two_minutes)], ""),
            "retry 503",
        ),
        (reply(500, "boom"), "retry 500"),
        (reply(502, ""), "retry 502"),
        (reply(304, ""), "retry 304"),
        (reply(404, echo.clone()), "no path 404"),
        (reply(405, ""), "no path 405"),
    ];
    for (answer, case) in cases {
        let server = TestServer::always(answer).await;
        let outcome = client()
            .submit(
                &report_url(&server.url()),
                Dialect::Published,
                &license(),
                &body(),
                uuid::Uuid::new_v4(),
            )
            .await
            .unwrap();
        assert_secret_free(&format!("{outcome:?}"));
        match (case, &outcome) {
            ("accepted 200", SubmitOutcome::Accepted { status: 200 })
            | ("accepted 202", SubmitOutcome::Accepted { status: 202 }) => {}
            (
                "no path 404" | "no path 405",
                SubmitOutcome::NoReportPath {
                    status,
                    url,
                    message,
                },
            ) => {
                assert_eq!(case, format!("no path {status}"));
                assert_eq!(*url, report_url(&server.url()).to_string());
                if *status == 404 {
                    assert_eq!(message, "bad report for lcl_…CRET");
                }
            }
            (
                "credential 401",
                SubmitOutcome::CredentialRejected {
                    status: 401,
                    message,
                },
            ) => {
                assert_eq!(message, "bad report for lcl_…CRET");
            }
            (
                "credential 403",
                SubmitOutcome::CredentialRejected {
                    status: 403,
                    message,
                },
            ) => {
                assert_eq!(message, "forbidden");
            }
            (
                "payload 400",
                SubmitOutcome::PayloadRejected {
                    status: 400,
                    answer,
                },
            ) => {
                assert_eq!(answer, "bad report for lcl_…CRET");
            }
            (
                "payload 422",
                SubmitOutcome::PayloadRejected {
                    status: 422,
                    answer,
                },
            ) => {
                assert_eq!(answer, "unprocessable");
            }
            (
                "retry 408",
                SubmitOutcome::Retry {
                    retry_after: None,
                    in_doubt: false,
                    reason,
                    kind: FailureKind::Timeout,
                },
            ) => assert!(reason.contains("408"), "{reason}"),
            (
                "retry 429",
                SubmitOutcome::Retry {
                    retry_after: Some(d),
                    in_doubt: false,
                    kind: FailureKind::RateLimited,
                    ..
                },
            ) => assert_eq!(*d, Duration::from_secs(7)),
            (
                "retry 503",
                SubmitOutcome::Retry {
                    retry_after: Some(d),
                    in_doubt: false,
                    kind: FailureKind::ServerError,
                    ..
                },
            ) => assert!(
                (Duration::from_secs(115)..=Duration::from_secs(120)).contains(d),
                "{d:?}"
            ),
            (
                "retry 500",
                SubmitOutcome::Retry {
                    retry_after: None,
                    in_doubt: true,
                    reason,
                    kind: FailureKind::ServerError,
                },
            ) => assert!(
                reason.contains("500") && reason.contains("boom"),
                "{reason}"
            ),
            ("retry 502", SubmitOutcome::Retry { in_doubt: true, .. }) => {}
            (
                "retry 304",
                SubmitOutcome::Retry {
                    in_doubt: false, ..
                },
            ) => {}
            _ => panic!("{case}: unexpected {outcome:?}"),
        }
        assert_eq!(server.count(), 1, "{case}");
    }
}

#[tokio::test]
async fn submit_network_failures_are_retries_with_the_right_doubt() {
    // Nothing listening: the request never left, not in doubt.
    let outcome = client()
        .submit(
            &report_url(&closed_port_url().await),
            Dialect::Published,
            &license(),
            &body(),
            uuid::Uuid::new_v4(),
        )
        .await
        .unwrap();
    match &outcome {
        SubmitOutcome::Retry {
            in_doubt: false,
            reason,
            retry_after: None,
            kind: FailureKind::Network,
        } => assert!(reason.contains("could not connect"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // The server reads the request and never answers: timeout after
    // connecting, in doubt.
    let server = TestServer::always(Reply::Delay(
        Duration::from_secs(5),
        Box::new(reply(204, "")),
    ))
    .await;
    let started = Instant::now();
    let outcome = HttpClient::new(fast_timeout())
        .unwrap()
        .submit(
            &report_url(&server.url()),
            Dialect::Published,
            &license(),
            &body(),
            uuid::Uuid::new_v4(),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    match &outcome {
        SubmitOutcome::Retry {
            in_doubt: true,
            reason,
            kind: FailureKind::Timeout,
            ..
        } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.count(), 1);

    // The server reads the request and hangs up: in doubt.
    let server = TestServer::always(Reply::Close).await;
    let outcome = client()
        .submit(
            &report_url(&server.url()),
            Dialect::Published,
            &license(),
            &body(),
            uuid::Uuid::new_v4(),
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, SubmitOutcome::Retry { in_doubt: true, .. }),
        "{outcome:?}"
    );
    assert!(server.count() >= 1);
}

#[tokio::test]
async fn submit_reads_at_most_max_body_of_an_endless_answer() {
    let server = TestServer::always(Reply::Endless { status: 400 }).await;
    let started = Instant::now();
    let outcome = client()
        .submit(
            &report_url(&server.url()),
            Dialect::Published,
            &license(),
            &body(),
            uuid::Uuid::new_v4(),
        )
        .await
        .unwrap();
    // Cut at the cap, well before the 3 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    match outcome {
        SubmitOutcome::PayloadRejected {
            status: 400,
            answer,
        } => {
            assert!(
                answer.starts_with("xxxx") && answer.ends_with('…'),
                "{answer}"
            );
            assert!(answer.chars().count() <= 1025);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn submit_follows_same_origin_redirects_only() {
    // 307 within the server: followed with method, headers and body.
    let server = TestServer::start(|r, _| {
        if r.path == "/v1/metadata/submit" {
            reply_with(307, &[("location", "/moved/submit")], "")
        } else {
            reply(204, "")
        }
    })
    .await;
    let key = uuid::Uuid::new_v4();
    let outcome = client()
        .submit(
            &report_url(&server.url()),
            Dialect::Published,
            &license(),
            &body(),
            key,
        )
        .await
        .unwrap();
    assert_eq!(outcome, SubmitOutcome::Accepted { status: 204 });
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].method, "POST");
    assert_eq!(requests[1].path, "/moved/submit");
    assert_eq!(
        requests[1].header("idempotency-key"),
        Some(key.to_string().as_str())
    );
    assert_eq!(requests[1].body, encode_report(&license(), &body()));

    // A redirect loop: 3 redirects followed, the 4th refused.
    let looping = TestServer::always(reply_with(307, &[("location", "/again")], "")).await;
    let outcome = client()
        .submit(
            &report_url(&looping.url()),
            Dialect::Published,
            &license(),
            &body(),
            uuid::Uuid::new_v4(),
        )
        .await
        .unwrap();
    match &outcome {
        SubmitOutcome::Retry {
            in_doubt: false,
            reason,
            ..
        } => assert!(reason.contains("more than 3 redirects"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(looping.count(), 4);

    // To another host (localhost is not 127.0.0.1): refused, never sent.
    let elsewhere = TestServer::always(reply(204, "")).await;
    let target = format!(
        "http://localhost:{}/v1/metadata/submit",
        elsewhere.addr.port()
    );
    let redirecting = TestServer::always(reply_with(307, &[("location", &target)], "")).await;
    let outcome = client()
        .submit(
            &report_url(&redirecting.url()),
            Dialect::Published,
            &license(),
            &body(),
            uuid::Uuid::new_v4(),
        )
        .await
        .unwrap();
    match &outcome {
        SubmitOutcome::Retry {
            in_doubt: false,
            reason,
            ..
        } => assert!(
            reason.contains("redirect") && reason.contains("refused"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(redirecting.count(), 1);
    assert_eq!(elsewhere.connections(), 0);
}

// ---------------------------------------------------------------------------
// License verification
// ---------------------------------------------------------------------------

#[tokio::test]
async fn license_token_is_verified_once_and_kept() {
    let exp = now_secs() as i64 + 3600;
    let jwt = unsigned_jwt(&json!({ "exp": exp, "sub": "customer-1" }));
    let server = TestServer::always(token_reply(&jwt)).await;
    let v = LicenseVerifier::new(
        client(),
        &license_url(&server),
        Secret::new(LICENSE),
        LicenseSettings::default(),
    )
    .unwrap();
    for _ in 0..20 {
        let token = v.token().await.unwrap();
        assert_eq!(token.jwt().expose(), jwt);
        assert_eq!(token.claims()["sub"], "customer-1");
        // exp minus the default 30 s clock-skew margin.
        assert_eq!(token.expires_at().timestamp(), exp - 30);
        let lifetime = (token.expires_at() - Utc::now()).num_seconds() as f64;
        let to_refresh = (token.refresh_at() - Utc::now()).num_seconds() as f64;
        assert!(
            (to_refresh / lifetime - 0.8).abs() < 0.01,
            "{to_refresh} / {lifetime}"
        );
    }
    assert_eq!(server.count(), 1);

    let requests = server.requests();
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/beacon/verify");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({ "license": LICENSE }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_verification() {
    let jwt = unsigned_jwt(&json!({ "exp": now_secs() as i64 + 3600 }));
    let server = TestServer::always(Reply::Delay(
        Duration::from_millis(200),
        Box::new(token_reply(&jwt)),
    ))
    .await;
    let v = verifier(&server, license_settings());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let v = v.clone();
            tokio::spawn(async move { v.token().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().jwt().expose(), jwt);
    }
    assert_eq!(server.count(), 1);

    // A failure is shared too: one request for all concurrent callers.
    let failing = TestServer::always(Reply::Delay(
        Duration::from_millis(200),
        Box::new(reply(503, "")),
    ))
    .await;
    let v = verifier(&failing, license_settings());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let v = v.clone();
            tokio::spawn(async move { v.token().await })
        })
        .collect();
    for task in tasks {
        assert!(matches!(
            task.await.unwrap(),
            Err(LicenseError::Unreachable { .. })
        ));
    }
    assert_eq!(failing.count(), 1);
}

#[tokio::test]
async fn refresh_happens_before_expiry_in_the_background() {
    // Each token lives 1.2 s (fractional exp); refresh at half its life.
    let server =
        TestServer::start(|_, _| token_reply(&unsigned_jwt(&json!({ "exp": now_secs() + 1.2 }))))
            .await;
    let v = verifier(
        &server,
        LicenseSettings {
            refresh_fraction: 0.5,
            ..license_settings()
        },
    );
    let first = v.token().await.unwrap();
    let started = Instant::now();
    let guard = v.spawn_refresh();
    while server.count() < 2 {
        assert!(started.elapsed() < Duration::from_secs(3), "no refresh");
        // Served from memory meanwhile.
        assert_eq!(v.token().await.unwrap().jwt(), first.jwt());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        Utc::now() < first.expires_at(),
        "refreshed only after expiry"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400),
        "refreshed too early: {elapsed:?}"
    );
    // The new token replaces the old one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = v.token().await.unwrap();
    assert!(second.expires_at() > first.expires_at());
    assert_eq!(server.count(), 2);

    // Dropping the guard stops refreshing.
    drop(guard);
    let count = server.count();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(server.count(), count);
}

#[tokio::test]
async fn license_outcomes() {
    let echo = format!(r#"{{"detail":"unknown license {LICENSE}"}}"#);
    let past = now_secs() as i64 - 10;
    let cases: Vec<(Reply, &str)> = vec![
        (reply(401, echo.clone()), "rejected 401"),
        (reply(403, "revoked"), "rejected 403"),
        (reply(404, "no such license"), "rejected 404"),
        (reply(500, "boom"), "unreachable 500"),
        (reply(429, ""), "unreachable 429"),
        (reply(200, "<html>hello</html>"), "malformed: not JSON"),
        (reply(200, r#"{"tok":"x"}"#), "malformed: no \"token\""),
        (reply(200, r#"{"token":17}"#), "malformed: no \"token\""),
        (token_reply("not-a-jwt"), "malformed: 1 dot-separated parts"),
        (token_reply("a.b.c.d"), "malformed: 4 dot-separated parts"),
        (
            token_reply(&format!("{}.{}.", b64("{}"), b64("[]"))),
            "malformed: payload is a JSON array",
        ),
        (
            token_reply(&format!("{}.%%%.", b64("{}"))),
            "malformed: not base64url",
        ),
        (
            token_reply(&unsigned_jwt(&json!({ "exp": -5 }))),
            "malformed: out of range",
        ),
        (
            token_reply(&unsigned_jwt(&json!({ "exp": 1e20 }))),
            "malformed: out of range",
        ),
        (
            token_reply(&unsigned_jwt(&json!({ "exp": "soon" }))),
            "malformed: is a string",
        ),
        (
            token_reply(&unsigned_jwt(&json!({ "exp": past }))),
            "malformed: already passed",
        ),
        (
            reply(200, "x".repeat(5000)),
            "malformed: longer than 4096 bytes",
        ),
        (
            Reply::Endless { status: 200 },
            "malformed: longer than 4096 bytes",
        ),
    ];
    for (answer, case) in cases {
        let server = TestServer::always(answer).await;
        let v = verifier(&server, license_settings());
        let started = Instant::now();
        let outcome = v.verify().await;
        assert!(started.elapsed() < Duration::from_secs(2), "{case}");
        assert_secret_free(&format!("{outcome:?}"));
        let (kind, detail) = case.split_once(' ').unwrap();
        match (&outcome, kind) {
            (Err(LicenseError::Rejected { status, message }), "rejected") => {
                assert_eq!(status.to_string(), detail);
                assert!(!message.is_empty());
            }
            (Err(LicenseError::Unreachable { reason, .. }), "unreachable") => {
                assert!(reason.contains(detail), "{case}: {reason}");
            }
            (Err(LicenseError::Malformed { reason }), "malformed:") => {
                assert!(reason.contains(detail), "{case}: {reason}");
            }
            _ => panic!("{case}: unexpected {outcome:?}"),
        }
        // token() says the same, as an error.
        let err = v.token().await.unwrap_err();
        assert_secret_free(&err.to_string());
        assert_secret_free(&format!("{err:?}"));
        assert!(v.cached().is_none());
    }

    // The answer echoing the key is scrubbed.
    let server = TestServer::always(reply(401, echo)).await;
    let err = verifier(&server, license_settings())
        .token()
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LicenseError::Rejected {
            status: 401,
            message: "unknown license lcl_…CRET".to_owned()
        }
    );
    assert!(
        err.to_string().contains("LANGGRAPH_CLOUD_LICENSE_KEY"),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_without_exp_lives_the_default_lifetime() {
    let server = TestServer::always(token_reply(&unsigned_jwt(&json!({ "sub": "x" })))).await;
    let v = verifier(
        &server,
        LicenseSettings {
            default_lifetime: Duration::from_secs(600),
            ..license_settings()
        },
    );
    let before = Utc::now();
    match v.verify().await {
        Ok(token) => {
            let lifetime = (token.expires_at() - before).num_seconds();
            assert!((599..=601).contains(&lifetime), "{lifetime}");
            assert_eq!(*token.claims(), json!({ "sub": "x" }));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn license_timeouts_and_refused_redirects_are_unreachable() {
    let server = TestServer::always(Reply::Delay(
        Duration::from_secs(5),
        Box::new(reply(200, "")),
    ))
    .await;
    let v = LicenseVerifier::new(
        HttpClient::new(fast_timeout()).unwrap(),
        &license_url(&server),
        Secret::new(LICENSE),
        license_settings(),
    )
    .unwrap();
    let started = Instant::now();
    match v.verify().await {
        Err(LicenseError::Unreachable { reason, .. }) => {
            assert!(reason.contains("timed out"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));

    let elsewhere = TestServer::always(reply(200, "")).await;
    let target = format!(
        "http://localhost:{}/v1/beacon/verify",
        elsewhere.addr.port()
    );
    let redirecting = TestServer::always(reply_with(308, &[("location", &target)], "")).await;
    match verifier(&redirecting, license_settings()).verify().await {
        Err(LicenseError::Unreachable { reason, .. }) => {
            assert!(reason.contains("refused"), "{reason}");
            assert_secret_free(&reason);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(elsewhere.connections(), 0);

    match verifier(
        &TestServer::always(reply(200, "")).await,
        license_settings(),
    )
    .verify()
    .await
    {
        Err(LicenseError::Malformed { .. }) => {}
        other => panic!("{other:?}"),
    }
    let closed = closed_port_url().await;
    let v =
        LicenseVerifier::new(client(), &closed, Secret::new(LICENSE), license_settings()).unwrap();
    assert!(matches!(
        v.verify().await,
        Err(LicenseError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn the_last_valid_token_is_served_while_the_beacon_is_down_and_dropped_on_rejection() {
    let jwt = unsigned_jwt(&json!({ "exp": now_secs() as i64 + 3600 }));
    let server = TestServer::script(vec![
        token_reply(&jwt),
        reply(503, "maintenance"),
        token_reply("garbage"),
        reply(403, "revoked"),
    ])
    .await;
    let v = verifier(&server, license_settings());
    assert!(v.verify().await.is_ok());
    assert!(matches!(
        v.verify().await,
        Err(LicenseError::Unreachable { .. })
    ));
    assert_eq!(v.token().await.unwrap().jwt().expose(), jwt);
    assert!(matches!(
        v.verify().await,
        Err(LicenseError::Malformed { .. })
    ));
    assert_eq!(v.token().await.unwrap().jwt().expose(), jwt);
    assert_eq!(server.count(), 3);
    assert!(matches!(
        v.verify().await,
        Err(LicenseError::Rejected { status: 403, .. })
    ));
    assert!(v.cached().is_none());
    assert!(matches!(
        v.token().await,
        Err(LicenseError::Rejected { status: 403, .. })
    ));
    assert_eq!(server.count(), 5);
}

// ---- signed tokens ----

fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn rs256(claims: &Value) -> String {
    let der = pem_der(include_str!("fixtures/rsa_jwt_key.pem"));
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let input = signing_input("RS256", claims);
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", b64(sig))
}

async fn verify_with_key(key_pem: &[u8], jwt: &str) -> Result<LicenseToken, LicenseError> {
    let server = TestServer::always(token_reply(jwt)).await;
    let v = verifier(
        &server,
        LicenseSettings {
            public_key_pem: Some(key_pem.to_vec().into()),
            ..license_settings()
        },
    );
    v.verify().await
}

#[tokio::test]
async fn signed_tokens_are_checked_when_a_public_key_is_configured() {
    let claims = json!({ "exp": now_secs() as i64 + 3600, "sub": "customer-1" });
    let es = Es256::generate();
    let rsa_pub = include_bytes!("fixtures/rsa_jwt_pub.pem");

    let good_es = es.sign(&claims);
    let good_rs = rs256(&claims);
    assert!(verify_with_key(&es.public_pem, &good_es).await.is_ok());
    assert!(verify_with_key(rsa_pub, &good_rs).await.is_ok());

    // Tampered payload, same signature.
    let forged_claims =
        b64(json!({ "exp": now_secs() as i64 + 999_999, "sub": "customer-1" }).to_string());
    let mut parts: Vec<&str> = good_es.split('.').collect();
    parts[1] = &forged_claims;
    let tampered = parts.join(".");
    let bad = [
        (es.public_pem.clone(), tampered, "does not match"),
        (es.public_pem.clone(), unsigned_jwt(&claims), "\"none\""),
        (es.public_pem.clone(), good_rs.clone(), "needs ES256"),
        (rsa_pub.to_vec(), good_es.clone(), "needs RS256"),
        (
            Es256::generate().public_pem,
            good_es.clone(),
            "does not match",
        ),
        (
            es.public_pem.clone(),
            format!("{}.", &good_es[..good_es.rfind('.').unwrap()]),
            "does not match",
        ),
    ];
    for (key, jwt, why) in bad {
        match verify_with_key(&key, &jwt).await {
            Err(LicenseError::Malformed { reason }) => {
                assert!(reason.contains(why), "{why}: {reason}")
            }
            other => panic!("{why}: {other:?}"),
        }
    }
    // Without a key the same unsigned token is accepted as is.
    let server = TestServer::always(token_reply(&unsigned_jwt(&claims))).await;
    assert!(verifier(&server, license_settings()).verify().await.is_ok());
}

// ---------------------------------------------------------------------------
// API-key verification
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_verified_once_per_process() {
    let answer = json!({
        "org_config": { "org_id": ORG_ID, "max_workspaces": 3, "nested": { "x": [1, 2] } },
        "other": "ignored"
    });
    let server = TestServer::always(Reply::Delay(
        Duration::from_millis(200),
        Box::new(reply(200, answer.to_string())),
    ))
    .await;
    let v = api_verifier(&server);
    assert!(v.cached().is_none());
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let v = v.clone();
            tokio::spawn(async move { v.verify().await })
        })
        .collect();
    for task in tasks {
        let org = task.await.unwrap().unwrap();
        assert_eq!(org.org_id.to_string(), ORG_ID);
        assert_eq!(org.org_config["max_workspaces"], 3);
    }
    for _ in 0..10 {
        assert_eq!(v.verify().await.unwrap().org_id.to_string(), ORG_ID);
    }
    assert_eq!(v.cached().unwrap().org_id.to_string(), ORG_ID);
    assert_eq!(server.count(), 1);

    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/auth");
    assert_eq!(r.header("x-api-key"), Some(API_KEY));
    assert!(r.body.is_empty());
    assert!(r.header("content-type").is_none());
}

#[tokio::test]
async fn api_key_errors_are_typed() {
    let echo = format!("invalid key {API_KEY}");
    let cases: Vec<(Reply, &str)> = vec![
        (reply(401, echo.clone()), "rejected"),
        (reply(403, "no"), "rejected"),
        (reply(404, "not found"), "unexpected"),
        (reply(500, echo.clone()), "unreachable"),
        (reply(429, ""), "unreachable"),
        (reply(200, "<html>"), "malformed: not JSON"),
        (
            reply(200, r#"{"org":{}}"#),
            "malformed: missing field `org_config`",
        ),
        (
            reply(200, r#"{"org_config":{}}"#),
            "malformed: missing field `org_id`",
        ),
        (
            reply(200, r#"{"org_config":{"org_id":7}}"#),
            "malformed: expected a string",
        ),
        (
            reply(200, r#"{"org_config":{"org_id":"acme"}}"#),
            "malformed: not a UUID",
        ),
        (Reply::Endless { status: 200 }, "malformed: longer than"),
    ];
    for (answer, case) in cases {
        let server = TestServer::always(answer).await;
        let err = api_verifier(&server).verify().await.unwrap_err();
        assert_secret_free(&err.to_string());
        assert_secret_free(&format!("{err:?}"));
        match (&err, case) {
            (ApiKeyError::Rejected { .. }, "rejected")
            | (ApiKeyError::UnexpectedStatus { status: 404, .. }, "unexpected")
            | (ApiKeyError::Unreachable { .. }, "unreachable") => {}
            (ApiKeyError::Malformed { reason }, _) if case.starts_with("malformed") => {
                assert!(
                    reason.contains(&case["malformed: ".len()..]),
                    "{case}: {reason}"
                );
            }
            _ => panic!("{case}: unexpected {err:?}"),
        }
    }
    let server = TestServer::always(reply(401, echo)).await;
    let err = api_verifier(&server).verify().await.unwrap_err();
    assert_eq!(
        err,
        ApiKeyError::Rejected {
            status: 401,
            message: "invalid key lsv2…CRET".to_owned()
        }
    );
    assert!(err.to_string().contains("LANGSMITH_API_KEY"), "{err}");

    // A failure is not kept: the next call asks again, and keeps a success.
    let server = TestServer::script(vec![
        reply(503, ""),
        reply(
            200,
            json!({ "org_config": { "org_id": ORG_ID } }).to_string(),
        ),
    ])
    .await;
    let v = api_verifier(&server);
    assert!(matches!(
        v.verify().await,
        Err(ApiKeyError::Unreachable { .. })
    ));
    assert!(v.verify().await.is_ok());
    assert!(v.verify().await.is_ok());
    assert_eq!(server.count(), 2);

    // A redirect to another host is refused: the key never travels there.
    let elsewhere = TestServer::always(reply(200, "")).await;
    let target = format!("http://localhost:{}/auth", elsewhere.addr.port());
    let redirecting = TestServer::always(reply_with(307, &[("location", &target)], "")).await;
    assert!(matches!(
        api_verifier(&redirecting).verify().await,
        Err(ApiKeyError::Unreachable { .. })
    ));
    assert_eq!(elsewhere.connections(), 0);

    // Timeout.
    let slow = TestServer::always(Reply::Delay(
        Duration::from_secs(5),
        Box::new(reply(200, "")),
    ))
    .await;
    let v = ApiKeyVerifier::new(
        HttpClient::new(fast_timeout()).unwrap(),
        &auth_url(&slow),
        Secret::new(API_KEY),
    )
    .unwrap();
    assert!(matches!(
        v.verify().await,
        Err(ApiKeyError::Unreachable { .. })
    ));

    // A key that cannot be a header value.
    let server = TestServer::always(reply(200, "")).await;
    let v = ApiKeyVerifier::new(
        client(),
        &auth_url(&server),
        Secret::new("bad\nkey-0123456789"),
    )
    .unwrap();
    assert_eq!(v.verify().await.unwrap_err(), ApiKeyError::InvalidKey);
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn verify_answers_carry_the_servers_retry_after() {
    // As a submit's `SubmitOutcome::Retry` does: the wait is the caller's,
    // capped by its `RetryPolicy` (the license refresh task's is tested in
    // `client::license`).
    let busy = TestServer::always(reply_with(503, &[("retry-after", "42")], "busy")).await;
    let e = verifier(&busy, license_settings())
        .verify()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LicenseError::Unreachable { retry_after: Some(d), .. } if d.as_secs() == 42),
        "{e:?}"
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(42)));
    let limited = TestServer::always(reply_with(429, &[("retry-after", "7")], "slow")).await;
    let e = api_verifier(&limited).verify().await.unwrap_err();
    assert!(
        matches!(&e, ApiKeyError::Unreachable { retry_after: Some(d), .. } if d.as_secs() == 7),
        "{e:?}"
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    // No header, or a verdict: nothing to honour.
    let down = TestServer::always(reply(502, "down")).await;
    let e = verifier(&down, license_settings())
        .verify()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LicenseError::Unreachable {
                retry_after: None,
                ..
            }
        ),
        "{e:?}"
    );
    let refused = TestServer::always(reply_with(401, &[("retry-after", "42")], "no")).await;
    let e = api_verifier(&refused).verify().await.unwrap_err();
    assert!(matches!(e, ApiKeyError::Rejected { .. }), "{e:?}");
    assert_eq!(e.retry_after(), None);
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/// A server that echoes the request (body, `X-Api-Key`) in its answer, in
/// every shape, including cut mid-key by the body cap.
#[tokio::test]
async fn no_secret_reaches_debug_or_error_text() {
    let echo = |r: &Recorded| {
        format!(
            "{} {}",
            String::from_utf8_lossy(&r.body),
            r.header("x-api-key").unwrap_or("")
        )
    };
    let mut shown: Vec<String> = Vec::new();
    for status in [200, 400, 401, 404, 500] {
        let server = TestServer::start(move |r, _| {
            let text = echo(r);
            reply(
                status,
                json!({ "detail": text.clone(), "token": text }).to_string(),
            )
        })
        .await;
        let http = client();
        let outcome = http
            .submit(
                &report_url(&server.url()),
                Dialect::Published,
                &license(),
                &body(),
                uuid::Uuid::new_v4(),
            )
            .await
            .unwrap();
        shown.push(format!("{outcome:?}"));
        let api = Credential::ApiKey(Secret::new(API_KEY));
        let outcome = http
            .submit(
                &report_url(&server.url()),
                Dialect::Published,
                &api,
                &body(),
                uuid::Uuid::new_v4(),
            )
            .await
            .unwrap();
        shown.push(format!("{outcome:?}"));
        let v = verifier(&server, license_settings());
        shown.push(format!("{:?}", v.verify().await));
        shown.push(format!("{v:?}"));
        let a = api_verifier(&server);
        shown.push(format!("{:?}", a.verify().await));
        shown.push(format!("{a:?}"));
        if let Err(e) = a.verify().await {
            shown.push(e.to_string());
        }
    }
    // Raw text answers, cut by a 200-byte cap in the middle of the key.
    let small = HttpClient::new(settings().max_body(200)).unwrap();
    for (status, pad) in [(400, 200 - 20), (401, 200 - 25), (500, 200 - 30)] {
        let server = TestServer::start(move |r, _| {
            reply(
                status,
                format!("{}{}{}", "p".repeat(pad), echo(r), "z".repeat(50)),
            )
        })
        .await;
        for credential in [license(), Credential::ApiKey(Secret::new(API_KEY))] {
            let outcome = small
                .submit(
                    &report_url(&server.url()),
                    Dialect::Published,
                    &credential,
                    &body(),
                    uuid::Uuid::new_v4(),
                )
                .await
                .unwrap();
            let text = format!("{outcome:?}");
            assert!(text.contains("ppp") && text.contains('…'), "{text}");
            shown.push(text);
        }
        let cut = TestServer::start(move |r, _| {
            let key = r.header("x-api-key").unwrap_or("").to_owned();
            reply(status, format!("{}{}", "p".repeat(200 - 12), key))
        })
        .await;
        let a = ApiKeyVerifier::new(small.clone(), &auth_url(&cut), Secret::new(API_KEY)).unwrap();
        let text = format!("{:?}", a.verify().await);
        assert!(text.contains("ppp") && text.contains('…'), "{text}");
        shown.push(text);
    }
    // A kept token shows neither the key nor the JWT.
    let jwt = unsigned_jwt(&json!({ "exp": now_secs() as i64 + 3600, "sub": "a-long-subject" }));
    let server = TestServer::always(token_reply(&jwt)).await;
    let v = verifier(&server, license_settings());
    let token = v.token().await.unwrap();
    let token_debug = format!("{token:?} {v:?}");
    assert!(!token_debug.contains(&jwt[..20]), "{token_debug}");
    shown.push(token_debug);
    shown.push(format!("{:?}", license()));
    shown.push(format!("{:?}", ClientSettings::default()));

    assert!(shown.len() > 40);
    for text in &shown {
        assert_secret_free(text);
    }
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs =
        vec![CertificateDer::from_pem_slice(include_bytes!("fixtures/server.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("fixtures/server_key.pem")).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn https_with_an_extra_ca_root() {
    let server = TestServer::start_with(|_, _| reply(204, ""), Some(tls_acceptor())).await;
    let url = Url::parse(&format!("https://localhost:{}", server.addr.port())).unwrap();

    // The test CA is not a built-in root: the handshake fails, nothing sent.
    let outcome = client()
        .submit(
            &report_url(&url),
            Dialect::Published,
            &license(),
            &body(),
            uuid::Uuid::new_v4(),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            SubmitOutcome::Retry {
                in_doubt: false,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(server.count(), 0);

    let trusting =
        HttpClient::new(settings().ca_cert_pem(include_bytes!("fixtures/ca.pem").to_vec().into()))
            .unwrap();
    let outcome = trusting
        .submit(
            &report_url(&url),
            Dialect::Published,
            &license(),
            &body(),
            uuid::Uuid::new_v4(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, SubmitOutcome::Accepted { status: 204 });
    assert_eq!(server.count(), 1);
    assert_eq!(server.requests()[0].json()["license"], LICENSE);
}
