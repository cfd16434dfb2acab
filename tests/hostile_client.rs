//! Hostile servers: a loopback server answers every request of the client
//! with a proptest-generated answer (not JSON, truncated JSON, JSON of the
//! wrong shape, a body over the cap or endless, any content type, any
//! status, a redirect to another host, a broken or silent connection, bytes
//! that are not HTTP at all, JWTs of every malformed kind), and checks that
//! `HttpClient::submit`, `LicenseVerifier::verify` and `ApiKeyVerifier::verify`
//! always come back with a typed outcome, in time, without the credential in
//! any text.
//!
//! The server plays a hostile echo: its answers carry the credentials it was
//! sent, raw, inside JSON, at any offset (so the body cap may cut them
//! anywhere), in a redirect's host name, and in claims of the JWT it issues.
#![cfg(feature = "reporter")]

use crate::common::jwt::{Es256, b64};
use crate::common::runner;
use beacon_meter::client::{
    ApiKeyError, ApiKeyVerifier, ClientSettings, HttpClient, LicenseError, LicenseSettings,
    LicenseVerifier, SubmitOutcome,
};
use beacon_meter::secret::Secret;
use beacon_meter::wire::{Credential, Dialect, ReportBody};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::Url;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LICENSE: &str = "lcl_SECRETLICENSE0123456789abcdef";
// The two secret parts share no 8 characters, so an echo of one key is
// never mistaken for a leak of the other.
const API_KEY: &str = "lsv2_SECRETAPIKEYfedcba9876543210";
const ORG_ID: &str = "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1";

/// The client's total request timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(600);
/// How long past [`TIMEOUT`] a call may take before it counts as a hang
/// (scheduling slack on a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(2500);

/// Fails if `text` holds `key`, or 8 consecutive characters of its secret
/// part (what follows `lcl_` / `lsv2_`), in any letter case (host names are
/// lower-cased on the way).
///
/// A call is checked for the credential it sent: that is what a server can
/// echo. (The server here knows both keys and puts both everywhere, but
/// a request carrying the API key cannot know that some other text is the
/// license key.)
fn secret_free(text: &str, key: &str) -> Result<(), String> {
    let lower = text.to_ascii_lowercase();
    {
        let secret = &key[key.find('_').unwrap() + 1..];
        for w in secret.as_bytes().windows(8) {
            let w = std::str::from_utf8(w).unwrap().to_ascii_lowercase();
            if lower.contains(&w) {
                return Err(format!("secret fragment {w:?} leaked into: {text}"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The hostile server
// ---------------------------------------------------------------------------

/// How the body of an HTTP answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// A correct `content-length`.
    Length,
    /// `content-length` larger than what is sent, then the connection closes.
    ShortLength,
    /// `transfer-encoding: chunked`, in a few chunks.
    Chunked,
    /// Neither: the body ends when the connection closes.
    UntilClose,
    /// One byte every 50 ms, slower than any timeout.
    Drip,
}

/// One answer of the hostile server.
#[derive(Debug, Clone)]
enum Reply {
    /// An HTTP answer (any status, any headers, any body).
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        framing: Framing,
    },
    /// A body that never ends (chunked, or until close), 8 MiB backstop.
    Endless { status: u16, chunked: bool },
    /// These bytes instead of an answer (not HTTP, or a cut status line).
    Raw(Vec<u8>),
    /// Closes the connection without a word.
    Close,
    /// Never answers (for 5 s, far past the client's timeout).
    Silent,
}

impl Reply {
    /// A complete, well-framed HTTP answer with a final status: the
    /// outcome is then fully determined by the status.
    fn clean_status(&self) -> Option<u16> {
        match self {
            Reply::Http {
                status,
                framing: Framing::Length,
                ..
            } if *status >= 200 => Some(*status),
            _ => None,
        }
    }
}

struct Server {
    addr: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    /// Connections to a second listener, the "other host" redirects point
    /// at: must stay 0.
    elsewhere: Arc<AtomicUsize>,
    elsewhere_port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let elsewhere_port = other.local_addr().unwrap().port();
        let reply = Arc::new(Mutex::new(Reply::Close));
        let elsewhere = Arc::new(AtomicUsize::new(0));
        let r = reply.clone();
        let main = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let reply = r.lock().unwrap().clone();
                tokio::spawn(serve(socket, reply));
            }
        });
        let e = elsewhere.clone();
        let side = tokio::spawn(async move {
            while let Ok((_socket, _)) = other.accept().await {
                e.fetch_add(1, Ordering::SeqCst);
            }
        });
        Server {
            addr,
            reply,
            elsewhere,
            elsewhere_port,
            tasks: vec![main, side],
        }
    }

    fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    fn url(&self) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}/", self.addr.port())).unwrap()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request (head and `content-length` body), answers it with
/// `reply`, and closes the connection.
async fn serve(mut socket: TcpStream, reply: Reply) {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match socket.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match socket.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let _ = answer(&mut socket, reply).await;
    let _ = socket.shutdown().await;
}

async fn answer(socket: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Close => Ok(()),
        Reply::Silent => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        }
        Reply::Raw(bytes) => socket.write_all(&bytes).await,
        Reply::Endless { status, chunked } => {
            let head = if chunked {
                format!("HTTP/1.1 {status} X\r\ntransfer-encoding: chunked\r\n\r\n")
            } else {
                format!("HTTP/1.1 {status} X\r\nconnection: close\r\n\r\n")
            };
            socket.write_all(head.as_bytes()).await?;
            let data = "y".repeat(16 * 1024);
            for _ in 0..512 {
                if chunked {
                    let chunk = format!("{:x}\r\n{data}\r\n", data.len());
                    socket.write_all(chunk.as_bytes()).await?;
                } else {
                    socket.write_all(data.as_bytes()).await?;
                }
            }
            Ok(())
        }
        Reply::Http {
            status,
            headers,
            body,
            framing,
        } => {
            let mut head = format!("HTTP/1.1 {status} Hostile\r\nconnection: close\r\n");
            match framing {
                Framing::Length => head.push_str(&format!("content-length: {}\r\n", body.len())),
                Framing::ShortLength | Framing::Drip => {
                    head.push_str(&format!("content-length: {}\r\n", body.len() + 100))
                }
                Framing::Chunked => head.push_str("transfer-encoding: chunked\r\n"),
                Framing::UntilClose => {}
            }
            for (n, v) in &headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str("\r\n");
            socket.write_all(head.as_bytes()).await?;
            match framing {
                Framing::Length | Framing::ShortLength | Framing::UntilClose => {
                    socket.write_all(&body).await
                }
                Framing::Chunked => {
                    for part in body.chunks(7) {
                        socket
                            .write_all(format!("{:x}\r\n", part.len()).as_bytes())
                            .await?;
                        socket.write_all(part).await?;
                        socket.write_all(b"\r\n").await?;
                    }
                    socket.write_all(b"0\r\n\r\n").await
                }
                Framing::Drip => {
                    for b in body.iter().chain(b"x".repeat(100).iter()) {
                        socket.write_all(&[*b]).await?;
                        socket.flush().await?;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(())
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// A piece of a hostile body: random bytes and text, the keys, JSON
/// fragments, multi-byte characters (so the cap can cut inside one).
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..48),
        3 => "[ -~]{0,40}".prop_map(String::into_bytes),
        3 => Just(LICENSE.as_bytes().to_vec()),
        3 => Just(API_KEY.as_bytes().to_vec()),
        1 => Just(br#"{"detail":""#.to_vec()),
        1 => Just(br#""}"#.to_vec()),
        1 => Just(br#"{"token":""#.to_vec()),
        1 => Just(br#"{"org_config":{"org_id":""#.to_vec()),
        1 => Just(ORG_ID.as_bytes().to_vec()),
        1 => Just("é€😀\u{0}\u{7f}\r\n\t".as_bytes().to_vec()),
    ]
}

/// A string that mostly holds a key somewhere.
fn echo_string() -> impl Strategy<Value = String> {
    (
        "[ -~]{0,300}",
        prop_oneof![Just(LICENSE), Just(API_KEY), Just("")],
        "[ -~]{0,20}",
    )
        .prop_map(|(a, k, b)| format!("{a}{k}{b}"))
}

/// JSON of the right and of the wrong shapes, carrying the keys.
fn json_answer() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        echo_string().prop_map(Value::from),
    ];
    let any_json = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        any_json.clone(),
        echo_string().prop_map(|s| json!({ "detail": s })),
        any_json.clone().prop_map(|v| json!({ "detail": v })),
        echo_string().prop_map(|s| json!({ "message": s, "error": s })),
        echo_string().prop_map(|s| json!({ "token": s })),
        any_json.clone().prop_map(|v| json!({ "token": v })),
        echo_string().prop_map(|s| json!({ "org_config": { "org_id": s } })),
        any_json.clone().prop_map(|v| json!({ "org_config": v })),
        any_json.prop_map(|v| json!({ "org_config": { "org_id": v } })),
        // A usable answer that echoes the key in an extra field.
        echo_string().prop_map(|s| {
            let mut org = serde_json::Map::new();
            org.insert("org_id".into(), json!(ORG_ID));
            org.insert("echo".into(), json!(s));
            org.insert(s, json!(1));
            json!({ "org_config": org })
        }),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(piece(), 0..8).prop_map(|p| p.concat()),
        3 => json_answer().prop_map(|v| v.to_string().into_bytes()),
        // Truncated JSON.
        2 => (json_answer(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string().into_bytes();
            let cut = i.index(s.len().max(1));
            s[..cut].to_vec()
        }),
        // Larger than any cap used here.
        1 => (echo_string(), 5_000usize..20_000).prop_map(|(s, n)| {
            format!("{}{s}", "z".repeat(n)).into_bytes()
        }),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![
            200u16, 201, 202, 204, 206, 299, 300, 301, 302, 303, 304, 307, 308, 400, 401, 403,
            404, 405, 408, 409, 413, 415, 418, 422, 429, 451, 499, 500, 502, 503, 504, 599,
        ]),
        1 => 100u16..=599,
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec![
            "application/json",
            "application/json; charset=utf-16",
            "text/html",
            "text/plain; charset=iso-8859-1",
            "application/octet-stream",
            "application/problem+json",
            "multipart/form-data; boundary=x",
            ";;;",
        ])
        .prop_map(|s| Some(s.to_owned())),
        "[ -~]{0,30}".prop_map(Some),
    ]
}

fn retry_after() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        1 => prop::sample::select(vec![
            "0",
            "1",
            "120",
            "18446744073709551615",
            "99999999999999999999999999",
            "-1",
            "1.5",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "soon",
            "",
        ])
        .prop_map(|s| Some(s.to_owned())),
    ]
}

/// Where a redirect points; `{other}` becomes the second listener's port,
/// `{self}` the server's own.
fn location() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "http://localhost:{other}/v1/metadata/submit".to_owned(),
        "http://127.0.0.1:{other}/".to_owned(),
        format!(
            "http://{}.localhost:{{other}}/",
            LICENSE.to_ascii_lowercase()
        ),
        format!("http://{LICENSE}.localhost:{{other}}/"),
        format!("http://{API_KEY}.localhost:{{other}}/?k={API_KEY}"),
        format!("http://user:{LICENSE}@127.0.0.1:{{other}}/"),
        format!("https://127.0.0.1:{{self}}/{LICENSE}"),
        "http://127.0.0.1:{self}/again".to_owned(),
        format!("/v1/metadata/submit?license={LICENSE}"),
        "//localhost:{other}/x".to_owned(),
        "ftp://127.0.0.1:{other}/".to_owned(),
        "file:///etc/passwd".to_owned(),
        "http://[::1".to_owned(),
        "\u{1}not a url".to_owned(),
        String::new(),
    ])
}

fn reply() -> impl Strategy<Value = Reply> {
    let framing = prop_oneof![
        8 => Just(Framing::Length),
        2 => Just(Framing::ShortLength),
        2 => Just(Framing::Chunked),
        2 => Just(Framing::UntilClose),
        1 => Just(Framing::Drip),
    ];
    let http = (
        status(),
        content_type(),
        retry_after(),
        location(),
        prop::option::of(echo_string()),
        body(),
        framing,
    )
        .prop_map(|(status, ct, ra, loc, echo_header, body, framing)| {
            let mut headers = Vec::new();
            if let Some(ct) = ct {
                headers.push(("content-type".to_owned(), ct));
            }
            if let Some(ra) = ra {
                headers.push(("retry-after".to_owned(), ra));
            }
            if (300..400).contains(&status) {
                headers.push(("location".to_owned(), loc));
            }
            if let Some(e) = echo_header {
                headers.push(("x-echo".to_owned(), e));
            }
            Reply::Http {
                status,
                headers,
                body,
                framing,
            }
        });
    prop_oneof![
        12 => http,
        1 => (status(), any::<bool>()).prop_map(|(status, chunked)| Reply::Endless { status, chunked }),
        1 => prop::collection::vec(piece(), 0..4).prop_map(|p| Reply::Raw(p.concat())),
        1 => prop::sample::select(vec![
            &b"HTTP/1.1 200"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n",
            b"HTTP/1.1 99999 OK\r\n\r\n",
            b"HTTP/9.9 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 18446744073709551616\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 401 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ])
        .prop_map(|b| Reply::Raw(b.to_vec())),
        1 => Just(Reply::Close),
        1 => Just(Reply::Silent),
    ]
}

/// Fills in the ports of a redirect target.
fn with_ports(reply: Reply, server: &Server) -> Reply {
    match reply {
        Reply::Http {
            status,
            headers,
            body,
            framing,
        } => Reply::Http {
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| {
                    let v = v
                        .replace("{other}", &server.elsewhere_port.to_string())
                        .replace("{self}", &server.addr.port().to_string());
                    (n, v)
                })
                .collect(),
            body,
            framing,
        },
        other => other,
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

use beacon_meter_testkit::runtime;

fn client(max_body: usize) -> HttpClient {
    HttpClient::new(
        ClientSettings::default()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .max_body(max_body),
    )
    .unwrap()
}

fn report() -> ReportBody {
    ReportBody {
        from_timestamp: Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap(),
        to_timestamp: Utc.with_ymd_and_hms(2025, 1, 6, 10, 0, 0).unwrap(),
        tags: BTreeMap::new(),
        measures: BTreeMap::from([("langgraph.platform.runs".to_owned(), 3)]),
        logs: vec![],
    }
}

/// Runs `f`, failing the case if it takes longer than the timeout plus
/// slack (a hang).
async fn in_time<T>(
    what: &str,
    f: impl std::future::Future<Output = T>,
) -> Result<T, TestCaseError> {
    let started = Instant::now();
    match tokio::time::timeout(TIMEOUT + SLACK, f).await {
        Ok(v) => Ok(v),
        Err(_) => Err(TestCaseError::fail(format!(
            "{what} hung: no outcome after {:?}",
            started.elapsed()
        ))),
    }
}

fn leak_free(text: &str, key: &str) -> Result<(), TestCaseError> {
    secret_free(text, key).map_err(TestCaseError::fail)
}

/// The outcome class `submit` must give a clean answer with `status`.
fn submit_class(status: u16) -> &'static str {
    match status {
        200..=299 => "accepted",
        401 | 403 => "credential",
        404 | 405 => "no path",
        408 | 429 => "retry",
        400..=499 => "payload",
        _ => "retry",
    }
}

fn submit_kind(o: &SubmitOutcome) -> &'static str {
    match o {
        SubmitOutcome::Accepted { .. } => "accepted",
        SubmitOutcome::Retry { .. } => "retry",
        SubmitOutcome::CredentialRejected { .. } => "credential",
        SubmitOutcome::PayloadRejected { .. } => "payload",
        SubmitOutcome::NoReportPath { .. } => "no path",
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

#[test]
fn every_hostile_answer_gives_a_typed_outcome_in_time_without_the_key() {
    let rt = runtime();
    let server = rt.block_on(Server::start());
    let mut runner = runner(64);
    let cap = prop::sample::select(vec![64usize, 200, 1024, 4096]);
    runner
        .run(&(reply(), cap), |(reply, max_body)| {
            let reply = with_ports(reply, &server);
            server.set(reply.clone());
            let http = client(max_body);
            let base = server.url();
            let submit_url = base.join("v1/metadata/submit").unwrap();
            rt.block_on(async {
                let license = Credential::License(Secret::new(LICENSE));
                let api = Credential::ApiKey(Secret::new(API_KEY));
                let lv = LicenseVerifier::new(
                    http.clone(),
                    &base.join("v1/beacon/verify").unwrap(),
                    Secret::new(LICENSE),
                    LicenseSettings::default(),
                )
                .unwrap();
                let av = ApiKeyVerifier::new(
                    http.clone(),
                    &base.join("auth").unwrap(),
                    Secret::new(API_KEY),
                )
                .unwrap();
                let body = report();
                let id = uuid::Uuid::new_v4();
                let (s1, s2, l, a) = tokio::join!(
                    in_time(
                        "submit (license)",
                        http.submit(&submit_url, Dialect::Published, &license, &body, id)
                    ),
                    in_time(
                        "submit (API key)",
                        http.submit(&submit_url, Dialect::Published, &api, &body, id)
                    ),
                    in_time("LicenseVerifier::verify", lv.verify()),
                    in_time("ApiKeyVerifier::verify", av.verify()),
                );
                let (s1, s2, l, a) = (s1?, s2?, l?, a?);

                // Only a URL the client refuses is an error, and this one is fine.
                let s1 = s1.map_err(|e| TestCaseError::fail(format!("submit error {e}")))?;
                let s2 = s2.map_err(|e| TestCaseError::fail(format!("submit error {e}")))?;
                leak_free(&format!("{s1:?}"), LICENSE)?;
                leak_free(&format!("{s2:?}"), API_KEY)?;
                leak_free(&format!("{l:?} {lv:?}"), LICENSE)?;
                leak_free(&format!("{a:?} {av:?}"), API_KEY)?;
                if let Err(e) = &a {
                    leak_free(&e.to_string(), API_KEY)?;
                }

                if let Some(status) = reply.clean_status() {
                    for s in [&s1, &s2] {
                        let want = if (300..400).contains(&status) {
                            "retry"
                        } else {
                            submit_class(status)
                        };
                        prop_assert_eq!(submit_kind(s), want, "HTTP {} gave {:?}", status, s);
                        if let SubmitOutcome::Accepted { status: got }
                        | SubmitOutcome::CredentialRejected { status: got, .. }
                        | SubmitOutcome::PayloadRejected { status: got, .. }
                        | SubmitOutcome::NoReportPath { status: got, .. } = s
                        {
                            prop_assert_eq!(*got, status);
                        }
                    }
                    let license_ok = match (&l, status) {
                        (Ok(_) | Err(LicenseError::Malformed { .. }), 200..=299) => true,
                        (Err(LicenseError::Rejected { status: got, .. }), 400..=499) => {
                            *got == status && status != 408 && status != 429
                        }
                        (Err(LicenseError::Unreachable { .. }), s) => {
                            (300..400).contains(&s) || s >= 500 || s == 408 || s == 429
                        }
                        _ => false,
                    };
                    prop_assert!(license_ok, "HTTP {} gave {:?}", status, l);
                    let api_ok = match (&a, status) {
                        (Ok(_) | Err(ApiKeyError::Malformed { .. }), 200..=299) => true,
                        (Err(ApiKeyError::Rejected { status: got, .. }), 401 | 403) => {
                            *got == status
                        }
                        (Err(ApiKeyError::Unreachable { .. }), s) => {
                            (300..400).contains(&s) || s >= 500 || s == 408 || s == 429
                        }
                        (Err(ApiKeyError::UnexpectedStatus { status: got, .. }), s) => {
                            *got == s && s != 401 && s != 403 && s != 408 && s != 429 && s < 500
                        }
                        _ => false,
                    };
                    prop_assert!(api_ok, "HTTP {} gave {:?}", status, a);
                }
                // Nothing that was sent may have been read beyond the cap.
                if let Err(ApiKeyError::Malformed { reason }) = &a {
                    prop_assert!(reason.len() < 2000, "{}", reason);
                }
                Ok(())
            })
        })
        .unwrap();
    assert_eq!(
        server.elsewhere.load(Ordering::SeqCst),
        0,
        "a redirect to another host was followed: the credential travelled there"
    );
}

// ---- JWTs ----

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The `exp` claim of a generated token.
#[derive(Debug, Clone)]
enum Exp {
    Absent,
    Null,
    /// Seconds in the future (well past the 30 s clock-skew margin).
    Future(i64),
    /// The latest `exp` accepted: 9999-12-31T23:59:59Z.
    LastSecondOf9999,
    /// Seconds in the past.
    Past(i64),
    /// Inside the clock-skew margin: already expired once the margin is
    /// taken off.
    WithinSkew,
    Zero,
    Negative(i64),
    /// Beyond year 9999, or beyond any integer type.
    Huge(Value),
    /// Not a number.
    NotANumber(Value),
}

impl Exp {
    fn usable(&self) -> bool {
        matches!(
            self,
            Exp::Absent | Exp::Null | Exp::Future(_) | Exp::LastSecondOf9999
        )
    }

    fn json(&self) -> Option<Value> {
        let now = now_secs();
        Some(match self {
            Exp::Absent => return None,
            Exp::Null => Value::Null,
            Exp::Future(s) => json!(now + s),
            Exp::LastSecondOf9999 => json!(253_402_300_799i64),
            Exp::Past(s) => json!(now - s),
            Exp::WithinSkew => json!(now + 10),
            Exp::Zero => json!(0),
            Exp::Negative(s) => json!(-s),
            Exp::Huge(v) | Exp::NotANumber(v) => v.clone(),
        })
    }
}

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![
        Just(Exp::Absent),
        Just(Exp::Null),
        (120i64..10_000_000).prop_map(Exp::Future),
        Just(Exp::LastSecondOf9999),
        (1i64..2_000_000_000).prop_map(Exp::Past),
        Just(Exp::WithinSkew),
        Just(Exp::Zero),
        (1i64..i64::MAX).prop_map(Exp::Negative),
        prop::sample::select(vec![
            json!(253_402_300_800i64),
            json!(1e20),
            json!(1e308),
            json!(u64::MAX),
            json!(i64::MAX),
            json!(-1e308),
            json!(-0.5),
        ])
        .prop_map(Exp::Huge),
        prop::sample::select(vec![
            json!("1700000000"),
            json!(true),
            json!([1_700_000_000]),
            json!({ "seconds": 1_700_000_000 }),
            json!(""),
        ])
        .prop_map(Exp::NotANumber),
    ]
}

/// How a generated token is put together.
#[derive(Debug, Clone)]
enum Shape {
    /// Header, payload, signature, as asked.
    Jwt,
    /// Not three dot-separated parts.
    Parts(usize),
    /// The payload is not base64url.
    PayloadNotBase64,
    /// The payload decodes to bytes that are not JSON.
    PayloadNotJson(Vec<u8>),
    /// The payload is JSON but not an object.
    PayloadNotObject(Value),
    /// The header is not a JSON object.
    HeaderNotObject,
}

/// How a generated token is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signing {
    /// `alg: none`, empty signature.
    None,
    /// ES256 with the key the verifier trusts.
    Good,
    /// ES256, then the payload altered.
    Tampered,
    /// ES256 by another key.
    OtherKey,
    /// Claims `HS256` with random bytes.
    Hs256,
    /// ES256 with a signature that is not base64url.
    BadBase64,
}

#[derive(Debug, Clone)]
struct TokenCase {
    shape: Shape,
    exp: Exp,
    signing: Signing,
    /// The verifier is configured with the public key.
    key_configured: bool,
    /// The Beacon echoes the license key in a claim.
    echo: bool,
    /// Whitespace around the token.
    padded: bool,
}

impl TokenCase {
    fn valid(&self) -> bool {
        // A tampered token carries forged claims with a usable `exp`: only
        // the signature check can tell.
        let exp_usable = self.signing == Signing::Tampered || self.exp.usable();
        matches!(self.shape, Shape::Jwt)
            && exp_usable
            && (!self.key_configured || self.signing == Signing::Good)
    }
}

fn token_case() -> impl Strategy<Value = TokenCase> {
    let shape = prop_oneof![
        6 => Just(Shape::Jwt),
        1 => prop::sample::select(vec![0usize, 1, 2, 4, 5, 9]).prop_map(Shape::Parts),
        1 => Just(Shape::PayloadNotBase64),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Shape::PayloadNotJson),
        1 => prop::sample::select(vec![json!([]), json!(1), json!("x"), json!(null), json!(true)])
            .prop_map(Shape::PayloadNotObject),
        1 => Just(Shape::HeaderNotObject),
    ];
    let signing = prop::sample::select(vec![
        Signing::None,
        Signing::Good,
        Signing::Good,
        Signing::Tampered,
        Signing::OtherKey,
        Signing::Hs256,
        Signing::BadBase64,
    ]);
    (
        shape,
        exp(),
        signing,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(shape, exp, signing, key_configured, echo, padded)| TokenCase {
                shape,
                exp,
                signing,
                key_configured,
                echo,
                padded,
            },
        )
}

fn build_token(case: &TokenCase, trusted: &Es256, other: &Es256) -> String {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!("customer-1"));
    if let Some(exp) = case.exp.json() {
        claims.insert("exp".into(), exp);
    }
    if case.echo {
        claims.insert("license".into(), json!(LICENSE));
        claims.insert(LICENSE.into(), json!([format!("key={LICENSE}")]));
    }
    let alg = match case.signing {
        Signing::None => "none",
        Signing::Hs256 => "HS256",
        _ => "ES256",
    };
    let header = b64(json!({ "alg": alg, "typ": "JWT" }).to_string());
    let payload = b64(Value::Object(claims).to_string());
    let token = match &case.shape {
        Shape::Parts(n) => vec![payload.as_str(); *n].join("."),
        Shape::PayloadNotBase64 => format!("{header}.%%%!!.sig"),
        Shape::PayloadNotJson(bytes) => format!("{header}.{}.sig", b64(bytes)),
        Shape::PayloadNotObject(v) => format!("{header}.{}.sig", b64(v.to_string())),
        Shape::HeaderNotObject => format!("{}.{payload}.sig", b64("[\"ES256\"]")),
        Shape::Jwt => {
            let input = format!("{header}.{payload}");
            match case.signing {
                Signing::None => format!("{input}."),
                Signing::Good => format!("{input}.{}", b64(trusted.sign_input(&input))),
                Signing::Tampered => {
                    let sig = b64(trusted.sign_input(&input));
                    let forged =
                        b64(json!({ "sub": "someone-else", "exp": now_secs() + 9999 }).to_string());
                    format!("{header}.{forged}.{sig}")
                }
                Signing::OtherKey => format!("{input}.{}", b64(other.sign_input(&input))),
                Signing::Hs256 => format!("{input}.{}", b64([7u8; 32])),
                Signing::BadBase64 => format!("{input}.***"),
            }
        }
    };
    if case.padded {
        format!(" \n{token}\t ")
    } else {
        token
    }
}

#[test]
fn every_token_is_judged_and_only_usable_ones_are_kept() {
    let rt = runtime();
    let server = rt.block_on(Server::start());
    let trusted = Es256::generate();
    let other = Es256::generate();
    let mut runner = runner(64);
    runner
        .run(&token_case(), |case| {
            let token = build_token(&case, &trusted, &other);
            server.set(Reply::Http {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: json!({ "token": token }).to_string().into_bytes(),
                framing: Framing::Length,
            });
            let settings = LicenseSettings {
                public_key_pem: case
                    .key_configured
                    .then(|| trusted.public_pem.clone().into()),
                ..LicenseSettings::default()
            };
            let v = LicenseVerifier::new(
                client(64 * 1024),
                &server.url().join("v1/beacon/verify").unwrap(),
                Secret::new(LICENSE),
                settings,
            )
            .unwrap();
            rt.block_on(async {
                let outcome = in_time("LicenseVerifier::verify", v.verify()).await?;
                leak_free(&format!("{outcome:?}"), LICENSE)?;
                leak_free(&format!("{v:?}"), LICENSE)?;
                match (&outcome, case.valid()) {
                    (Ok(valid), true) => {
                        prop_assert!(valid.expires_at() > Utc::now(), "{:?}", outcome);
                        let kept = v.cached().expect("a valid token is kept");
                        leak_free(&format!("{kept:?}"), LICENSE)?;
                        prop_assert_eq!(kept.jwt().expose(), token.trim());
                        prop_assert!(kept.refresh_at() <= kept.expires_at());
                    }
                    (Err(LicenseError::Malformed { reason }), false) => {
                        prop_assert!(!reason.is_empty());
                        prop_assert!(
                            token.trim().len() < 8 || !reason.contains(token.trim()),
                            "{}",
                            reason
                        );
                        prop_assert!(v.cached().is_none());
                        let err = in_time("LicenseVerifier::token", v.token()).await?;
                        let err = err.expect_err("no usable token");
                        leak_free(&format!("{err} {err:?}"), LICENSE)?;
                    }
                    _ => {
                        return Err(TestCaseError::fail(format!("{case:?} gave {outcome:?}")));
                    }
                }
                Ok(())
            })
        })
        .unwrap();
}
