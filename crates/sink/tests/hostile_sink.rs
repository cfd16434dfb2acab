//! Hostile clients of the sink (it is a server too). `tests/sink.rs` sends
//! random bytes and whole top-level fields replaced by random JSON; this
//! file mutates a valid report *structurally*, at every depth: any field
//! (tags, measures, log records included) removed or set to a value of the
//! wrong type, hostile timestamps and ids, numbers written as raw JSON
//! tokens (overflowing, negative zero, exponents, floats), keys duplicated
//! inside any object, with any Content-Type and any set of Idempotency-Key
//! headers. Every answer must be `204` or a `4xx` whose JSON `detail` gives
//! a reason (without the credential), never a `5xx`, a panic or a hang.
//! Then raw-TCP abuse: framing that lies, nesting bombs, huge headers.

use beacon_meter::secret::Secret;
use beacon_meter_sink::SinkConfig;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

// Secret parts with no digit runs, so that an 8-character window of them
// never turns up in a timestamp or a UUID by chance.
const LICENSE: &str = "lcl_SECRETLICENSEqxzjvkwpmbtr";
const API_KEY: &str = "lsv2_SECRETAPIKEYzqjxvwkgmhpf";

fn report() -> Value {
    json!({
        "license": LICENSE,
        "from_timestamp": "2025-01-06T09:00:00Z",
        "to_timestamp": "2025-01-06T10:00:00Z",
        "tags": {
            "langgraph.python.version": "0.1.0",
            "langgraph.platform.variant": "standard",
            "langgraph.platform.tenant_id": "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1",
            "langgraph.platform.project_id": "c5b5f53a-4716-4326-8967-d4f7f7799735",
            "user_app.uses_indexing": "true"
        },
        "measures": {
            "langgraph.platform.runs": 150,
            "langgraph.platform.nodes": 450
        },
        "logs": [ { "level": "info", "message": "started" } ]
    })
}

/// Every place a mutation can hit.
const PATHS: &[&[&str]] = &[
    &[],
    &["license"],
    &["license_key"],
    &["api_key"],
    &["from_timestamp"],
    &["to_timestamp"],
    &["tags"],
    &["tags", "langgraph.python.version"],
    &["tags", "langgraph.platform.tenant_id"],
    &["tags", "langgraph.platform.project_id"],
    &["tags", "user_app.uses_indexing"],
    &["tags", "new.tag"],
    &["measures"],
    &["measures", "langgraph.platform.runs"],
    &["measures", "langgraph.platform.nodes"],
    &["measures", "langgraph.platform.py_graphs"],
    &["logs"],
    &["logs", "0"],
    &["logs", "0", "message"],
    &["logs", "1"],
    &["extra"],
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z._]{0,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Values aimed at the checks: timestamps, ids, credentials, counts.
fn targeted() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!("2025-01-06T09:00:00+00:00"),
        json!("2026-11-30T02:21:40.123456+00:00"),
        json!("2025-01-06T09:00:00-23:59"),
        json!("2025-01-06T09:00:00+24:00"),
        json!("2025-01-06T09:00:00+0000"),
        json!("True"),
        json!("unknown"),
        json!("2025-01-06T09:00:00z"),
        json!("2025-01-06 09:00:00Z"),
        json!("2025-01-06T09:00:00.123456789Z"),
        json!("2025-01-06T09:00:00.1234567891Z"),
        json!("2025-01-06T23:59:60Z"),
        json!("2016-12-31T23:59:60.999999999Z"),
        json!("2025-02-30T00:00:00Z"),
        json!("2025-01-06T24:00:00Z"),
        json!("+275760-09-13T00:00:00Z"),
        json!("0000-01-01T00:00:00Z"),
        json!("9999-12-31T23:59:59.999999999Z"),
        json!("1970-01-01T00:00:00Z"),
        json!("2025-01-06T10:00:00Z"),
        json!("2025-01-06T09:00:00Z\u{0}"),
        json!("Z"),
        json!(""),
        json!("3A1C2B6F-4430-4B92-8A5B-79B8B567BBC1"),
        json!("3a1c2b6f44304b928a5b79b8b567bbc1"),
        json!("{3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1}"),
        json!("urn:uuid:3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1"),
        json!("3a1c2b6f-4430-4b92-8a5b-79b8b567bbc"),
        json!(LICENSE),
        json!(API_KEY),
        json!("lcl_"),
        json!("offline-license-0123456789"),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.0),
        json!(-0.0),
        json!(1e300),
        json!("150"),
        json!([150]),
        json!({ "value": 150 }),
        json!("true"),
        json!(true),
        json!(null),
    ])
}

/// A JSON token written as is, in place of a value (things `Value` cannot
/// hold or serializes otherwise).
fn raw_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "18446744073709551616",
        "18446744073709551615",
        "-0",
        "1e2",
        "1E400",
        "-1e-400",
        "150.0",
        "0.0000000000000000000000000000001",
        "00",
        "01",
        "+1",
        ".5",
        "NaN",
        "Infinity",
        "\"\\ud800\"",
        "\"\\u0000\"",
        "\"a\\u0000b\"",
        "\"\u{7f}\"",
        "\"\\/\"",
        "tru",
        "[",
        "{\"a\":1,\"a\":2}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ])
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(&'static [&'static str], Value),
    Remove(&'static [&'static str]),
    Raw(&'static [&'static str], &'static str),
    /// A key repeated inside the object at this path.
    DuplicateKey(&'static [&'static str], String),
    /// `from` and `to` swapped or equal.
    Span(bool),
    /// The credential moved to the other field.
    SwapCredential,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let path = prop::sample::select(PATHS.to_vec());
    let object_path = prop::sample::select(vec![
        &[][..],
        &["tags"][..],
        &["measures"][..],
        &["logs", "0"][..],
    ]);
    prop_oneof![
        3 => (path.clone(), prop_oneof![arb_json(), targeted()])
            .prop_map(|(p, v)| Mutation::Set(p, v)),
        1 => path.clone().prop_map(Mutation::Remove),
        2 => (path, raw_token()).prop_map(|(p, t)| Mutation::Raw(p, t)),
        1 => (object_path, prop::sample::select(vec![
            "license".to_owned(),
            "license_key".to_owned(),
            "api_key".to_owned(),
            "measures".to_owned(),
            "langgraph.platform.runs".to_owned(),
            "langgraph.platform.tenant_id".to_owned(),
            "message".to_owned(),
        ]))
            .prop_map(|(p, k)| Mutation::DuplicateKey(p, k)),
        1 => any::<bool>().prop_map(Mutation::Span),
        1 => Just(Mutation::SwapCredential),
    ]
}

/// The parent container of `path` and the last key (`None` for the root).
fn parent<'v>(root: &'v mut Value, path: &[&str]) -> Option<(&'v mut Value, String)> {
    let (last, init) = path.split_last()?;
    let mut at = root;
    for key in init {
        at = match at {
            Value::Object(m) => m.get_mut(*key)?,
            Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some((at, (*last).to_owned()))
}

fn set(root: &mut Value, path: &[&str], value: Value) {
    if path.is_empty() {
        *root = value;
        return;
    }
    if let Some((p, key)) = parent(root, path) {
        match p {
            Value::Object(m) => {
                m.insert(key, value);
            }
            Value::Array(a) => {
                if let Ok(i) = key.parse::<usize>() {
                    if i < a.len() {
                        a[i] = value;
                    } else {
                        a.push(value);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The report text with all mutations applied.
fn body(mutations: &[Mutation]) -> Vec<u8> {
    let mut v = report();
    let mut raws: Vec<(String, &str)> = Vec::new();
    let mut dups: Vec<(String, String)> = Vec::new();
    for (i, m) in mutations.iter().enumerate() {
        match m {
            Mutation::Set(p, value) => set(&mut v, p, value.clone()),
            Mutation::Remove(p) => {
                if let Some((parent, key)) = parent(&mut v, p) {
                    match parent {
                        Value::Object(m) => {
                            m.remove(&key);
                        }
                        Value::Array(a) => {
                            if let Ok(i) = key.parse::<usize>()
                                && i < a.len()
                            {
                                a.remove(i);
                            }
                        }
                        _ => {}
                    }
                } else {
                    v = Value::Null;
                }
            }
            Mutation::Raw(p, token) => {
                let marker = format!("@@RAW{i}@@");
                set(&mut v, p, json!(marker));
                raws.push((format!("\"{marker}\""), token));
            }
            Mutation::DuplicateKey(p, key) => {
                // A marker key first in the object, turned into a duplicate
                // of `key` in the text.
                let marker = format!("@@DUP{i}@@");
                let target = if p.is_empty() {
                    Some(&mut v)
                } else {
                    parent(&mut v, p).and_then(|(parent, k)| match parent {
                        Value::Object(m) => m.get_mut(&k),
                        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                        _ => None,
                    })
                };
                if let Some(Value::Object(m)) = target {
                    m.insert(marker.clone(), json!("duplicate"));
                    dups.push((format!("\"{marker}\""), json!(key).to_string()));
                }
            }
            Mutation::Span(equal) => {
                if let Value::Object(m) = &mut v {
                    let from = m.get("from_timestamp").cloned();
                    let to = m.get("to_timestamp").cloned();
                    if let (Some(f), Some(t)) = (from, to) {
                        if *equal {
                            m.insert("to_timestamp".into(), f);
                        } else {
                            m.insert("from_timestamp".into(), t);
                            m.insert("to_timestamp".into(), f);
                        }
                    }
                }
            }
            Mutation::SwapCredential => {
                if let Value::Object(m) = &mut v
                    && let Some(l) = m.remove("license")
                {
                    m.insert("api_key".into(), l);
                }
            }
        }
    }
    let mut text = v.to_string();
    for (marker, token) in raws {
        text = text.replace(&marker, token);
    }
    for (marker, key) in dups {
        text = text.replace(&marker, &key);
    }
    text.into_bytes()
}

#[derive(Debug, Clone)]
enum KeyHeader {
    Fresh,
    Same(Uuid),
    Text(String),
    Bytes(Vec<u8>),
}

fn headers() -> impl Strategy<Value = (Option<&'static str>, Vec<KeyHeader>)> {
    let content_type = prop::sample::select(vec![
        Some("application/json"),
        Some("application/json"),
        Some("APPLICATION/JSON; charset=utf-8"),
        Some("application/json;"),
        Some("text/plain"),
        Some("application/jsonx"),
        Some("application/json, text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some(""),
        None,
    ]);
    let shared = Uuid::from_u128(0x1234);
    let key = prop_oneof![
        4 => Just(KeyHeader::Fresh),
        1 => Just(KeyHeader::Same(shared)),
        1 => prop::sample::select(vec![
            "",
            " ",
            "not-a-uuid",
            "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
            "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "6BA7B810-9DAD-11D1-80B4-00C04FD430C8",
            "6ba7b8109dad11d180b400c04fd430c8",
            " 6ba7b810-9dad-11d1-80b4-00c04fd430c8 ",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8, 6ba7b811-9dad-11d1-80b4-00c04fd430c8",
            "00000000-0000-0000-0000-000000000000",
        ])
        .prop_map(|s| KeyHeader::Text(s.to_owned())),
        1 => "[ -~]{0,60}".prop_map(KeyHeader::Text),
        1 => (100usize..6000).prop_map(|n| KeyHeader::Text("a".repeat(n))),
        1 => prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 1..40)
            .prop_map(KeyHeader::Bytes),
    ];
    (content_type, prop::collection::vec(key, 0..3))
}

fn secret_free(text: &str) -> Result<(), TestCaseError> {
    for key in [LICENSE, API_KEY] {
        let secret = &key[key.find('_').unwrap() + 1..];
        for w in secret.as_bytes().windows(8) {
            let w = std::str::from_utf8(w).unwrap();
            if text.contains(w) {
                return Err(TestCaseError::fail(format!("{w:?} leaked into {text}")));
            }
        }
    }
    Ok(())
}

use beacon_meter_testkit::{http_client as client, runtime};

fn config() -> SinkConfig {
    SinkConfig::ephemeral()
        .licenses(vec![Secret::new(LICENSE)])
        .api_keys(vec![Secret::new(API_KEY)])
}

#[test]
fn structured_mutations_get_204_or_a_4xx_with_a_reason() {
    let rt = runtime();
    let sink = rt.block_on(config().start()).unwrap();
    // Every report path, in turn: all three must hold to the same rules.
    let urls = [
        "v1/metadata/submit",
        "v1/beacon/metadata/submit",
        "api/v1/metadata/submit",
    ]
    .map(|p| sink.base_url().join(p).unwrap());
    let turn = std::sync::atomic::AtomicUsize::new(0);
    let c = client();
    let cases = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    runner
        .run(
            &(prop::collection::vec(mutation(), 0..4), headers()),
            |(mutations, (content_type, keys))| {
                let bytes = body(&mutations);
                let n = turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut request = c.post(urls[n % urls.len()].clone()).body(bytes.clone());
                if let Some(ct) = content_type {
                    request = request.header(CONTENT_TYPE, ct);
                }
                for k in &keys {
                    let value = match k {
                        KeyHeader::Fresh => HeaderValue::from_str(&Uuid::new_v4().to_string()),
                        KeyHeader::Same(u) => HeaderValue::from_str(&u.to_string()),
                        KeyHeader::Text(t) => HeaderValue::from_str(t),
                        KeyHeader::Bytes(b) => HeaderValue::from_bytes(b),
                    };
                    if let Ok(v) = value {
                        request = request.header("Idempotency-Key", v);
                    }
                }
                let (status, answer) = rt.block_on(async {
                    let r = request.send().await.expect("the sink answers");
                    let status = r.status().as_u16();
                    (status, r.bytes().await.unwrap_or_default().to_vec())
                });
                *statuses.lock().unwrap().entry(status).or_default() += 1;
                prop_assert!(
                    [204, 400, 401, 413, 422].contains(&status),
                    "HTTP {} for {}",
                    status,
                    String::from_utf8_lossy(&bytes)
                );
                if status != 204 {
                    let v: Value = serde_json::from_slice(&answer).map_err(|e| {
                        TestCaseError::fail(format!(
                            "HTTP {status} answer is not JSON ({e}): {}",
                            String::from_utf8_lossy(&answer)
                        ))
                    })?;
                    let detail = v["detail"].as_str().unwrap_or("");
                    prop_assert!(!detail.trim().is_empty(), "no reason in {}", v);
                    secret_free(detail)?;
                }
                Ok(())
            },
        )
        .unwrap();
    // The sink is still up, its views show no credential in full, and the
    // generator reached both acceptance and refusal.
    rt.block_on(async {
        let r = c
            .get(sink.base_url().join("v1/summary").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    let shown = format!(
        "{:?} {:?} {:?}",
        sink.reports(),
        sink.requests(),
        sink.summary()
    );
    secret_free(&shown).unwrap();
    let statuses = statuses.into_inner().unwrap();
    assert!(
        // (A body that is not JSON and one of the wrong shape are both 422.)
        statuses.contains_key(&204) && statuses.contains_key(&422),
        "{statuses:?}"
    );
    rt.block_on(sink.shutdown());
}

// ---------------------------------------------------------------------------
// Raw TCP
// ---------------------------------------------------------------------------

/// Sends `bytes` on a fresh connection and returns what came back until
/// the sink closes it (it does after its request timeout at the latest),
/// or 5 s. The write side stays open: a half-close may make the sink drop
/// a request in flight, and the counts below must not depend on timing.
async fn raw(addr: std::net::SocketAddr, bytes: Vec<u8>) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn request(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{head}\r\n\r\n").into_bytes();
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_framing_bombs_and_huge_headers_get_4xx_or_a_close_never_5xx() {
    let sink = config()
        .max_body(4096)
        .request_timeout(Duration::from_millis(800))
        .start()
        .await
        .unwrap();
    let valid = report().to_string();
    let post = "POST /v1/metadata/submit HTTP/1.1\r\nHost: sink\r\nContent-Type: application/json";
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_object = format!(
        "{{\"license\":\"{LICENSE}\",\"logs\":[{{\"a\":{}}}]}}",
        nest(100_000)
    );
    let chunked_big: Vec<u8> = {
        let mut b = Vec::new();
        for _ in 0..64 {
            b.extend_from_slice(format!("{:x}\r\n{}\r\n", 1000, "x".repeat(1000)).as_bytes());
        }
        b.extend_from_slice(b"0\r\n\r\n");
        b
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "content-length larger than the body (then the sink times out)",
            request(&format!("{post}\r\nContent-Length: 4000"), valid.as_bytes()),
        ),
        (
            "content-length smaller than the body",
            request(&format!("{post}\r\nContent-Length: 10"), valid.as_bytes()),
        ),
        (
            "content-length not a number",
            request(&format!("{post}\r\nContent-Length: abc"), valid.as_bytes()),
        ),
        (
            "negative content-length",
            request(&format!("{post}\r\nContent-Length: -1"), valid.as_bytes()),
        ),
        (
            "content-length past u64",
            request(
                &format!("{post}\r\nContent-Length: 99999999999999999999999"),
                b"{}",
            ),
        ),
        (
            "content-length in the terabytes",
            request(&format!("{post}\r\nContent-Length: 1000000000000"), b"{}"),
        ),
        (
            "two different content-lengths",
            request(
                &format!(
                    "{post}\r\nContent-Length: {}\r\nContent-Length: 3",
                    valid.len()
                ),
                valid.as_bytes(),
            ),
        ),
        (
            "content-length and chunked",
            request(
                &format!(
                    "{post}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked",
                    valid.len()
                ),
                valid.as_bytes(),
            ),
        ),
        (
            "chunked body over the limit",
            request(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                &chunked_big,
            ),
        ),
        (
            "bad chunk size",
            request(
                &format!("{post}\r\nTransfer-Encoding: chunked"),
                b"zz\r\n{}\r\n0\r\n\r\n",
            ),
        ),
        (
            "unknown transfer-encoding",
            request(&format!("{post}\r\nTransfer-Encoding: gzip, rot13"), b"{}"),
        ),
        (
            "nesting bomb",
            request(
                &format!("{post}\r\nContent-Length: {}", 4000),
                nest(2000).as_bytes(),
            ),
        ),
        (
            "nesting bomb over the limit",
            request(
                &format!("{post}\r\nContent-Length: {}", deep_object.len()),
                deep_object.as_bytes(),
            ),
        ),
        (
            "huge header",
            request(
                &format!(
                    "{post}\r\nX-Big: {}\r\nContent-Length: 2",
                    "b".repeat(200_000)
                ),
                b"{}",
            ),
        ),
        (
            "many headers",
            request(
                &format!(
                    "{post}{}\r\nContent-Length: 2",
                    "\r\nIdempotency-Key: 6ba7b810-9dad-11d1-80b4-00c04fd430c8".repeat(500)
                ),
                b"{}",
            ),
        ),
        (
            "header without a colon",
            request(
                &format!("{post}\r\nnot a header\r\nContent-Length: 2"),
                b"{}",
            ),
        ),
        (
            "non-ASCII header name",
            request(
                &format!("{post}\r\nX-Ünïcode: 1\r\nContent-Length: 2"),
                b"{}",
            ),
        ),
        (
            "NUL in a header value",
            request(
                &format!("{post}\r\nX-Nul: a\0b\r\nContent-Length: 2"),
                b"{}",
            ),
        ),
        (
            "HTTP/1.0 without Host",
            request(
                &format!(
                    "POST /v1/metadata/submit HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}",
                    valid.len()
                ),
                valid.as_bytes(),
            ),
        ),
        (
            "absolute-form target to another host",
            request(
                &format!(
                    "POST http://evil.example/v1/metadata/submit HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\nContent-Length: {}",
                    valid.len()
                ),
                valid.as_bytes(),
            ),
        ),
        (
            "path traversal",
            request("GET /../../etc/passwd HTTP/1.1\r\nHost: sink", b""),
        ),
        (
            "very long path",
            request(
                &format!("GET /{} HTTP/1.1\r\nHost: sink", "a".repeat(100_000)),
                b"",
            ),
        ),
        (
            "unknown method",
            request(
                "BREW /v1/metadata/submit HTTP/1.1\r\nHost: sink\r\nContent-Length: 0",
                b"",
            ),
        ),
        ("pipelined: a valid report, then garbage", {
            let mut b = request(
                &format!("{post}\r\nContent-Length: {}", valid.len()),
                valid.as_bytes(),
            );
            b.extend_from_slice(b"\x00\x01\x02 not http\r\n\r\n");
            b
        }),
        (
            "expect 100-continue, body too large",
            request(
                &format!("{post}\r\nExpect: 100-continue\r\nContent-Length: 100000"),
                b"",
            ),
        ),
    ];
    // All at once: each waits for the sink's request timeout.
    let running: Vec<_> = cases
        .into_iter()
        .map(|(what, bytes)| (what, tokio::spawn(raw(sink.addr(), bytes))))
        .collect();
    for (what, answer) in running {
        let answer = answer.await.unwrap();
        let statuses: Vec<u16> = answer
            .match_indices("HTTP/1.1 ")
            .filter_map(|(i, _)| answer.get(i + 9..i + 12)?.parse().ok())
            .collect();
        assert!(
            statuses.iter().all(|s| *s < 500),
            "{what}: server error in {answer:.400}"
        );
        assert!(
            statuses
                .iter()
                .all(|s| *s == 204 || *s == 100 || (400..500).contains(s)),
            "{what}: {statuses:?} in {answer:.400}"
        );
        assert!(!answer.contains(&LICENSE[4..]), "{what}: {answer:.400}");
    }
    // Still serving, and nothing was counted from a broken request: the
    // three accepted are the valid bodies with sound framing (pipelined,
    // HTTP/1.0 without Host, absolute-form target).
    let r = client()
        .get(sink.base_url().join("v1/summary").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let summary = sink.summary();
    assert_eq!(summary.reports, 3, "{summary:?}");
    sink.shutdown().await;
}

/// A client sizes its own headers, so the requests the sink keeps are
/// bounded in bytes, not only in number: 10 000 requests of 16 KiB of
/// headers each (160 MiB, which a sink that kept them all would hold) leave
/// at most `MAX_RECORDED_BYTES` kept, the newest among them. A head over
/// `MAX_REQUEST_HEAD` is refused with 431, before anything is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_headers_on_many_requests_keep_memory_bounded_in_bytes() {
    use beacon_meter_sink::{MAX_RECORDED_BYTES, MAX_REQUEST_HEAD};
    let sink = config().start().await.unwrap();
    let filler = "f".repeat(16 << 10);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let (client, filler) = (client(), filler.clone());
        let url = sink.base_url().join("/no-such-path").unwrap();
        tasks.spawn(async move {
            for i in 0..1250 {
                let answer = client
                    .get(url.clone())
                    .header("x-filler", &filler)
                    .header("x-request", format!("{task}-{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 404);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let kept = sink.requests();
    let bytes: usize = kept.iter().map(|r| r.size()).sum();
    assert!(
        bytes <= MAX_RECORDED_BYTES,
        "{} requests kept hold {bytes} bytes, over the bound of {MAX_RECORDED_BYTES}",
        kept.len()
    );
    assert!(kept.len() > 100, "only {} requests kept", kept.len());
    let newest = kept.last().unwrap().header("x-request").unwrap();
    assert!(newest.ends_with("-1249"), "the newest kept is {newest}");

    let huge = "h".repeat(MAX_REQUEST_HEAD + 1);
    let answer = raw(
        sink.addr(),
        request(
            &format!("GET /v1/summary HTTP/1.1\r\nHost: sink\r\nX-Filler: {huge}"),
            b"",
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(
        sink.requests().iter().all(|r| r.size() < MAX_REQUEST_HEAD),
        "a refused head was kept"
    );
}

/// Measure names are bounded: a report of more than `MAX_MEASURES_PER_REPORT`
/// names is refused, and so is a report that would take its tenant past
/// `MAX_MEASURES_PER_TENANT` distinct names (then nothing of it is stored);
/// another tenant, and names the tenant already has, still go in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_names_are_bounded_per_report_and_per_tenant() {
    use beacon_meter_sink::{MAX_MEASURES_PER_REPORT, MAX_MEASURES_PER_TENANT};
    use beacon_meter_testkit::post_json;
    let sink = config().start().await.unwrap();
    let url = sink.base_url().join("/v1/metadata/submit").unwrap();
    let post = |tenant: &str, names: std::ops::Range<usize>| {
        let mut body = report();
        body["tags"] = json!({"langgraph.platform.tenant_id": tenant});
        body["measures"] = names.map(|i| (format!("m{i}"), json!(1))).collect();
        let (client, url) = (client(), url.clone());
        async move {
            let answer = post_json(&client, url, body.to_string()).await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    let a = "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1";
    let b = "c5b5f53a-4716-4326-8967-d4f7f7799735";
    let (status, why) = post(a, 0..MAX_MEASURES_PER_REPORT + 1).await;
    assert_eq!(status, 422, "{why}");
    assert!(why.contains("at most 256"), "{why}");
    let per_tenant = MAX_MEASURES_PER_TENANT as usize;
    for start in (0..per_tenant).step_by(MAX_MEASURES_PER_REPORT) {
        let (status, why) = post(a, start..start + MAX_MEASURES_PER_REPORT).await;
        assert_eq!(status, 204, "{why}");
    }
    let (status, why) = post(a, per_tenant - 1..per_tenant + 1).await;
    assert_eq!(status, 422, "{why}");
    assert!(
        why.contains(&format!("{} distinct measure names", per_tenant + 1)),
        "{why}"
    );
    assert_eq!(post(a, 0..10).await.0, 204, "names the tenant has go in");
    assert_eq!(
        post(b, per_tenant..per_tenant + 10).await.0,
        204,
        "another tenant goes in"
    );
    let summary = sink.summary();
    assert_eq!(summary.measures.len(), per_tenant + 10);
    assert_eq!(
        summary.reports,
        (per_tenant / MAX_MEASURES_PER_REPORT) as u64 + 2
    );
    sink.shutdown().await;
}
