//! The local Beacon sink, driven over real HTTP by a reqwest client against
//! 127.0.0.1 on a free port.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use beacon_meter::secret::Secret;
use beacon_meter::wire::{Credential, ReportBody, encode_report};
use beacon_meter_sink::{DEFAULT_ORG_ID, Faults, SinkConfig, SinkError, SinkHandle, Summary};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use beacon_meter_testkit::http_client as client;

const LICENSE: &str = "lcl_test_license_0123456789abcdef";
const API_KEY: &str = "lsv2_pt_test_api_key_0123456789";

fn config() -> SinkConfig {
    SinkConfig::ephemeral().api_keys(vec![Secret::new(API_KEY)])
}

async fn start(config: SinkConfig) -> SinkHandle {
    config.start().await.expect("sink starts")
}

/// A report shaped like the spec's example.
fn report(runs: u64, nodes: u64) -> Value {
    json!({
        "license": LICENSE,
        "from_timestamp": "2025-01-06T09:00:00Z",
        "to_timestamp": "2025-01-06T10:00:00Z",
        "tags": {
            "langgraph.python.version": "0.1.0",
            "langgraph_api.version": "0.2.0",
            "langgraph.platform.revision": "abc123",
            "langgraph.platform.variant": "standard",
            "langgraph.platform.host": "host-1",
            "langgraph.platform.tenant_id": "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1",
            "langgraph.platform.project_id": "c5b5f53a-4716-4326-8967-d4f7f7799735",
            "langgraph.platform.plan": "enterprise",
            "user_app.uses_indexing": "true",
            "user_app.uses_custom_app": "false",
            "user_app.uses_custom_auth": "true",
            "user_app.uses_thread_ttl": "true",
            "user_app.uses_store_ttl": "false"
        },
        "measures": {
            "langgraph.platform.runs": runs,
            "langgraph.platform.nodes": nodes
        },
        "logs": []
    })
}

fn url(sink: &SinkHandle, path: &str) -> reqwest::Url {
    sink.base_url().join(path).unwrap()
}

async fn post_bytes(
    client: &Client,
    sink: &SinkHandle,
    body: Vec<u8>,
    key: Option<Uuid>,
) -> reqwest::Result<reqwest::Response> {
    let mut request = client
        .post(url(sink, "v1/metadata/submit"))
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key.to_string());
    }
    request.send().await
}

async fn submit(
    client: &Client,
    sink: &SinkHandle,
    body: &Value,
    key: Option<Uuid>,
) -> reqwest::Result<reqwest::Response> {
    post_bytes(client, sink, serde_json::to_vec(body).unwrap(), key).await
}

async fn status_of(client: &Client, sink: &SinkHandle, body: &Value, key: Option<Uuid>) -> u16 {
    submit(client, sink, body, key)
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn verify_issues_hs256_tokens_for_accepted_licenses() {
    let sink = start(config().token_lifetime(Duration::from_secs(120))).await;
    let c = client();
    let verify = url(&sink, "v1/beacon/verify");
    let post = |body: String| {
        c.post(verify.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };

    let r = post(json!({ "license": LICENSE }).to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = json_of(r).await["token"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(decode_part(parts[0])["alg"], "HS256");
    let claims = decode_part(parts[1]);
    assert_eq!(claims["sub"], "license");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 120);
    assert!((iat - chrono::Utc::now().timestamp()).abs() <= 5);
    assert_eq!(sink.verify_token(&token), Some(claims));
    assert!(!token.contains(LICENSE));
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode([0u8; 32])
    );
    assert_eq!(sink.verify_token(&forged), None);

    // An offline license (no lcl_ prefix) is refused, without echoing it.
    let r = post(json!({ "license": "offline-0123456789abcdef" }).to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().await.unwrap();
    assert!(body.contains("\"detail\""), "{body}");
    assert!(!body.contains("0123456789abcdef"), "{body}");

    let r = post("{\"license\":".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post(json!({ "license": LICENSE, "extra": 1 }).to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json_of(r).await["detail"]
            .as_str()
            .unwrap()
            .contains("extra")
    );

    assert_eq!(sink.summary().verifications, 1);
    sink.shutdown().await;

    // With an explicit list, only listed keys pass, prefix or not.
    let sink = start(config().licenses(vec![Secret::new("custom-license")])).await;
    let verify = url(&sink, "v1/beacon/verify");
    for (license, expected) in [
        ("custom-license", StatusCode::OK),
        (LICENSE, StatusCode::FORBIDDEN),
    ] {
        let r = client()
            .post(verify.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(json!({ "license": license }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "{license}");
    }
    sink.shutdown().await;
}

#[tokio::test]
async fn auth_answers_org_config_for_known_api_keys() {
    let org = Uuid::new_v4();
    let sink = start(config().org_id(org)).await;
    let c = client();
    let auth = url(&sink, "auth");

    let r = c
        .post(auth.clone())
        .header("X-Api-Key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert_eq!(body["org_config"]["org_id"], org.to_string());
    assert_eq!(body["org_config"]["name"], "local sink");
    assert!(
        body["org_config"].as_object().unwrap().len() > 2,
        "extra fields to ignore"
    );

    let r = c
        .post(auth.clone())
        .header("X-Api-Key", "lsv2_unknown_key_000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!r.text().await.unwrap().contains("lsv2_unknown"));
    let r = c.post(auth.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sink.summary().auths, 1);

    // Recorded requests keep the header but not the key.
    let requests = sink.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/auth");
    assert_eq!(requests[0].status, Some(200));
    assert_eq!(
        requests[0].header("x-api-key"),
        Some(Secret::new(API_KEY).redacted().as_str())
    );
    assert_eq!(requests[2].status, Some(401));
    let shown = format!("{requests:?}");
    assert!(
        !shown.contains(API_KEY) && !shown.contains("lsv2_unknown"),
        "{shown}"
    );
    sink.shutdown().await;

    // The default org id is fixed.
    let sink = start(config()).await;
    let r = client()
        .post(url(&sink, "auth"))
        .header("X-Api-Key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(r).await["org_config"]["org_id"],
        DEFAULT_ORG_ID.to_string()
    );
    sink.shutdown().await;
}

#[tokio::test]
async fn submit_accepts_reports_from_the_wire_encoder_and_api_keys() {
    let sink = start(config()).await;
    let c = client();

    // Exactly what the crate's encoder produces.
    let body = ReportBody {
        from_timestamp: "2025-01-06T09:00:00Z".parse().unwrap(),
        to_timestamp: "2025-01-06T10:00:00.250Z".parse().unwrap(),
        tags: BTreeMap::from([("langgraph.platform.plan".into(), "enterprise".into())]),
        measures: BTreeMap::from([
            ("langgraph.platform.runs".into(), 150),
            ("langgraph.platform.nodes".into(), 450),
        ]),
        logs: vec![],
    };
    let bytes = encode_report(&Credential::License(Secret::new(LICENSE)), &body);
    let r = post_bytes(&c, &sink, bytes, Some(Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());

    let bytes = encode_report(&Credential::ApiKey(Secret::new(API_KEY)), &body);
    let r = c
        .post(url(&sink, "v1/metadata/submit"))
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let summary = sink.summary();
    assert_eq!(summary.reports, 2);
    assert_eq!(summary.measures["langgraph.platform.runs"], 300);
    assert_eq!(summary.measures["langgraph.platform.nodes"], 900);
    assert_eq!(summary.without_idempotency_key, 1);
    assert_eq!(summary.rejects, 0);
    assert_eq!(
        summary.by_credential,
        BTreeMap::from([
            (format!("license:{}", Secret::new(LICENSE).redacted()), 1),
            (format!("api_key:{}", Secret::new(API_KEY).redacted()), 1),
        ])
    );

    // Stored as received, credential redacted.
    let reports = sink.reports();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["license"], Secret::new(LICENSE).redacted());
    assert_eq!(reports[1]["api_key"], Secret::new(API_KEY).redacted());
    assert_eq!(reports[0]["to_timestamp"], "2025-01-06T10:00:00.250Z");
    assert_eq!(reports[0]["measures"]["langgraph.platform.runs"], 150);
    let shown = serde_json::to_string(&reports).unwrap();
    assert!(!shown.contains(LICENSE) && !shown.contains(API_KEY));
    sink.shutdown().await;
}

/// A client that puts a configured key into a tag (as its value, as its
/// name, or upper-cased) has the report accepted and stored, and the stored
/// record holds every configured key only in its redacted form.
#[tokio::test]
async fn configured_keys_in_tags_are_redacted_when_stored() {
    let sink = start(config()).await;
    let c = client();
    let mut body = report(1, 3);
    body["tags"]["langgraph.platform.host"] = Value::String(format!("host-{API_KEY}"));
    body["tags"][LICENSE] = Value::String(API_KEY.to_ascii_uppercase());
    assert_eq!(status_of(&c, &sink, &body, Some(Uuid::new_v4())).await, 204);

    let reports = sink.reports();
    assert_eq!(reports.len(), 1);
    let tags = &reports[0]["tags"];
    let (license, api_key) = (
        Secret::new(LICENSE).redacted(),
        Secret::new(API_KEY).redacted(),
    );
    assert_eq!(tags["langgraph.platform.host"], format!("host-{api_key}"));
    assert_eq!(tags[license.as_str()], api_key);
    assert_eq!(reports[0]["measures"]["langgraph.platform.runs"], 1);
    let shown = serde_json::to_string(&reports)
        .unwrap()
        .to_ascii_lowercase();
    for key in [LICENSE, API_KEY] {
        assert!(
            !shown.contains(&key.to_ascii_lowercase()),
            "{key} stored in full"
        );
    }
    sink.shutdown().await;
}

/// How a table case departs from a valid report.
enum Bad {
    /// This JSON instead of the body.
    Json(Value),
    /// These bytes instead of the body.
    Raw(&'static str),
    /// A valid body with this Content-Type (`None`: no header).
    ContentType(Option<&'static str>),
    /// A valid body with these Idempotency-Key header values.
    Keys(&'static [&'static str]),
}

fn with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Bad {
    let mut v = report(1, 2);
    edit(v.as_object_mut().unwrap());
    Bad::Json(v)
}

fn set(field: &'static str, value: Value) -> Bad {
    with(move |m| {
        m.insert(field.into(), value);
    })
}

fn measure(value: Value) -> Bad {
    with(move |m| {
        m["measures"]["x"] = value;
    })
}

#[tokio::test]
async fn submit_validation_table() {
    let sink = start(config()).await;
    let c = client();
    let valid = serde_json::to_string(&report(1, 2)).unwrap();
    let too_big = valid.replacen(
        "\"langgraph.platform.runs\":1",
        "\"langgraph.platform.runs\":18446744073709551616",
        1,
    );
    let dup_key = valid.replacen('{', &format!("{{\"license\":\"{LICENSE}\","), 1);
    let cases: Vec<(&str, Bad, u16, &str)> = vec![
        ("not JSON", Bad::Raw("{not json"), 422, "not valid JSON"),
        ("empty body", Bad::Raw(""), 422, "not valid JSON"),
        ("trailing garbage", Bad::Raw("{} x"), 422, "not valid JSON"),
        (
            "array body",
            Bad::Json(json!([])),
            422,
            "must be a JSON object",
        ),
        (
            "string body",
            Bad::Json(json!("report")),
            422,
            "must be a JSON object",
        ),
        (
            "duplicate key",
            Bad::Raw(Box::leak(dup_key.into_boxed_str())),
            422,
            "duplicate key \"license\"",
        ),
        (
            "unknown field",
            set("extra", json!(1)),
            422,
            "unknown field \"extra\"",
        ),
        (
            "both credentials",
            set("api_key", json!(API_KEY)),
            422,
            "found both",
        ),
        (
            "no credential (langgraph-api tags)",
            with(|m| {
                m.remove("license");
                m["tags"]["user_app.uses_indexing"] = json!("True");
            }),
            422,
            "found neither",
        ),
        (
            "no credential",
            with(|m| {
                m.remove("license");
            }),
            422,
            "found neither",
        ),
        (
            "license not a string",
            set("license", json!(7)),
            422,
            "`license` must be a string",
        ),
        (
            "empty license",
            set("license", json!("")),
            422,
            "`license` must not be empty",
        ),
        (
            "missing from",
            with(|m| {
                m.remove("from_timestamp");
            }),
            422,
            "missing field `from_timestamp`",
        ),
        (
            "missing to",
            with(|m| {
                m.remove("to_timestamp");
            }),
            422,
            "missing field `to_timestamp`",
        ),
        (
            "missing tags",
            with(|m| {
                m.remove("tags");
            }),
            422,
            "missing field `tags`",
        ),
        (
            "missing measures",
            with(|m| {
                m.remove("measures");
            }),
            422,
            "missing field `measures`",
        ),
        (
            "missing logs",
            with(|m| {
                m.remove("logs");
            }),
            422,
            "missing field `logs`",
        ),
        (
            "neither Z nor an offset",
            set("from_timestamp", json!("2025-01-06T09:00:00")),
            422,
            "`from_timestamp`",
        ),
        (
            "offset without a colon",
            set("from_timestamp", json!("2025-01-06T09:00:00+0000")),
            422,
            "`from_timestamp`",
        ),
        (
            "finer than nanoseconds",
            set("to_timestamp", json!("2025-01-06T10:00:00.1234567891Z")),
            422,
            "at most 9",
        ),
        (
            "no such day, offset form",
            set("to_timestamp", json!("2025-02-30T10:00:00.5+00:00")),
            422,
            "`to_timestamp` is not a valid RFC 3339",
        ),
        (
            "offset window reversed",
            set("to_timestamp", json!("2025-01-06T10:30:00+02:00")),
            422,
            "must be before `to_timestamp`",
        ),
        (
            "license and license_key",
            set("license_key", json!(LICENSE)),
            422,
            "found both `license` and `license_key`",
        ),
        (
            "license_key not a string",
            with(|m| {
                m.remove("license");
                m.insert("license_key".into(), json!(true));
            }),
            422,
            "`license_key` must be a string",
        ),
        (
            "lower-case z",
            set("to_timestamp", json!("2025-01-06T10:00:00z")),
            422,
            "`to_timestamp`",
        ),
        (
            "space instead of T",
            set("from_timestamp", json!("2025-01-06 09:00:00Z")),
            422,
            "`from_timestamp`",
        ),
        (
            "no such month",
            set("from_timestamp", json!("2025-13-06T09:00:00Z")),
            422,
            "`from_timestamp` is not a valid RFC 3339",
        ),
        (
            "timestamp as number",
            set("to_timestamp", json!(1736154000)),
            422,
            "`to_timestamp` must be an RFC 3339 string",
        ),
        (
            "empty window",
            set("to_timestamp", json!("2025-01-06T09:00:00Z")),
            422,
            "must be before `to_timestamp`",
        ),
        (
            "reversed window",
            set("from_timestamp", json!("2025-01-06T11:00:00Z")),
            422,
            "must be before `to_timestamp`",
        ),
        (
            "tags an array",
            set("tags", json!(["a"])),
            422,
            "`tags` must be an object",
        ),
        (
            "tag a number",
            with(|m| {
                m["tags"]["n"] = json!(1);
            }),
            422,
            "`tags.\"n\"` must be a string",
        ),
        (
            "tag a boolean",
            with(|m| {
                m["tags"]["user_app.uses_indexing"] = json!(true);
            }),
            422,
            "`tags.\"user_app.uses_indexing\"` must be a string",
        ),
        (
            "tag null",
            with(|m| {
                m["tags"]["n"] = Value::Null;
            }),
            422,
            "`tags.\"n\"` must be a string",
        ),
        (
            "tenant id not a UUID",
            with(|m| {
                m["tags"]["langgraph.platform.tenant_id"] = json!("tenant-1");
            }),
            422,
            "tenant_id` must be a UUID",
        ),
        (
            "project id not a UUID",
            with(|m| {
                m["tags"]["langgraph.platform.project_id"] = json!("p");
            }),
            422,
            "project_id` must be a UUID",
        ),
        (
            "measures an array",
            set("measures", json!([1])),
            422,
            "`measures` must be an object",
        ),
        (
            "measure a float",
            measure(json!(1.5)),
            422,
            "`measures.\"x\"`",
        ),
        (
            "measure a whole float",
            measure(json!(2.0)),
            422,
            "`measures.\"x\"`",
        ),
        (
            "measure negative",
            measure(json!(-1)),
            422,
            "`measures.\"x\"`",
        ),
        (
            "measure a string",
            measure(json!("3")),
            422,
            "`measures.\"x\"`",
        ),
        (
            "measure null",
            measure(Value::Null),
            422,
            "`measures.\"x\"`",
        ),
        (
            "measure above u64::MAX",
            Bad::Raw(Box::leak(too_big.into_boxed_str())),
            422,
            "`measures.\"langgraph.platform.runs\"`",
        ),
        (
            "logs an object",
            set("logs", json!({})),
            422,
            "`logs` must be an array",
        ),
        (
            "log not an object",
            set("logs", json!([{}, "line"])),
            422,
            "`logs[1]` must be an object",
        ),
        (
            "text/plain",
            Bad::ContentType(Some("text/plain")),
            422,
            "Content-Type",
        ),
        (
            "no Content-Type",
            Bad::ContentType(None),
            422,
            "Content-Type",
        ),
        (
            "unknown license",
            set("license", json!("lcl_not_in_the_list_0000")),
            401,
            "`license` is not accepted",
        ),
        (
            "offline license",
            set("license", json!("offline-license-000000")),
            401,
            "`license` is not accepted",
        ),
        (
            "unknown api key",
            with(|m| {
                m.remove("license");
                m.insert("api_key".into(), json!("lsv2_other_key_000000"));
            }),
            401,
            "`api_key` is not accepted",
        ),
        (
            "key not a UUID",
            Bad::Keys(&["not-a-uuid"]),
            422,
            "Idempotency-Key header must be a UUID",
        ),
        (
            "two keys",
            Bad::Keys(&[
                "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1",
                "c5b5f53a-4716-4326-8967-d4f7f7799735",
            ]),
            422,
            "at most once",
        ),
    ];
    let n = cases.len() as u64;
    let sink_with_list = start(config().licenses(vec![Secret::new(LICENSE)])).await;
    for (name, bad, status, reason) in cases {
        // The unknown-license case needs a sink with an explicit list.
        let target = if name == "unknown license" {
            &sink_with_list
        } else {
            &sink
        };
        let mut request = c.post(url(target, "v1/metadata/submit"));
        let mut content_type = Some("application/json");
        let body = match bad {
            Bad::Json(v) => serde_json::to_string(&v).unwrap(),
            Bad::Raw(s) => s.to_owned(),
            Bad::ContentType(ct) => {
                content_type = ct;
                valid.clone()
            }
            Bad::Keys(keys) => {
                for k in keys {
                    request = request.header("Idempotency-Key", *k);
                }
                valid.clone()
            }
        };
        if let Some(ct) = content_type {
            request = request.header(CONTENT_TYPE, ct);
        }
        let r = request.body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
        let text = r.text().await.unwrap();
        let detail = serde_json::from_str::<Value>(&text).unwrap()["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no detail in {text}"))
            .to_owned();
        assert!(
            detail.contains(reason),
            "{name}: {detail:?} lacks {reason:?}"
        );
        for secret in [
            LICENSE,
            API_KEY,
            "lcl_not_in_the_list",
            "offline-license",
            "lsv2_other_key",
        ] {
            assert!(
                !detail.contains(secret),
                "{name}: {detail:?} echoes a credential"
            );
        }
    }
    let summary = sink.summary();
    let listed = sink_with_list.summary();
    assert_eq!(summary.rejects + listed.rejects, n);
    assert_eq!((summary.reports, listed.reports), (0, 0));
    assert!(sink.reports().is_empty());

    // And the unmodified body passes on both.
    for s in [&sink, &sink_with_list] {
        assert_eq!(status_of(&c, s, &report(1, 2), None).await, 204);
    }
    sink.shutdown().await;
    sink_with_list.shutdown().await;
}

/// A report as the reference reporter (langgraph-api 0.16.7) sends it:
/// `license_key`, offset timestamps with microseconds, Python booleans,
/// its extra tags and gauges.
fn langgraph_report(runs: u64, nodes: u64) -> Value {
    let mut v = report(runs, nodes);
    let m = v.as_object_mut().unwrap();
    let license = m.remove("license").unwrap();
    m.insert("license_key".into(), license);
    m.insert(
        "from_timestamp".into(),
        json!("2026-11-30T02:16:40.123456+00:00"),
    );
    m.insert("to_timestamp".into(), json!("2026-11-30T02:21:40+00:00"));
    let tags = m["tags"].as_object_mut().unwrap();
    for (k, t) in [
        ("user_app.uses_indexing", "True"),
        ("user_app.uses_custom_app", "False"),
        ("langgraph.platform.uses_custom_auth", "unknown"),
        ("langgraph_checkpoint.version", ""),
        ("deepagents.version", "0.1.2"),
    ] {
        tags.insert(k.into(), json!(t));
    }
    m["measures"]["langgraph.platform.py_graphs"] = json!(2);
    m["measures"]["langgraph.platform.js_graphs"] = json!(0);
    v
}

async fn post_to(c: &Client, sink: &SinkHandle, path: &str, body: &Value) -> u16 {
    let r = c
        .post(url(sink, path))
        .header(CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 204, "{path}: {}", r.text().await.unwrap());
    status
}

#[tokio::test]
async fn both_dialects_are_accepted_counted_and_told_apart() {
    let sink = start(config()).await;
    let c = client();
    let lg = langgraph_report(10, 30);
    let mut lg_api = lg.clone();
    let m = lg_api.as_object_mut().unwrap();
    m.remove("license_key");
    m.insert("api_key".into(), json!(API_KEY));
    // The published body at the published path, but with nanoseconds.
    let mut nanos = report(1, 2);
    nanos["to_timestamp"] = json!("2025-01-06T10:00:00.123456789Z");
    // A published body but with a non-UTC offset (so langgraph-api):
    // normalised to UTC.
    let mut east = report(100, 200);
    east["from_timestamp"] = json!("2025-01-06T11:00:00+02:00");
    east["to_timestamp"] = json!("2025-01-06T11:30:00.5+02:00");

    post_to(&c, &sink, "v1/beacon/metadata/submit", &lg).await;
    post_to(&c, &sink, "api/v1/metadata/submit", &lg_api).await;
    post_to(&c, &sink, "v1/metadata/submit", &lg_api).await;
    post_to(&c, &sink, "v1/metadata/submit", &nanos).await;
    post_to(&c, &sink, "v1/metadata/submit", &east).await;
    // `license` at the langgraph-api path: the path decides.
    post_to(&c, &sink, "v1/beacon/metadata/submit", &report(1000, 2000)).await;
    // The API-key check under /api/v1 too.
    let r = c
        .post(url(&sink, "api/v1/auth"))
        .header("X-Api-Key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let summary = sink.summary();
    assert_eq!(summary.reports, 6);
    assert_eq!(summary.without_idempotency_key, 6);
    assert_eq!(summary.measures["langgraph.platform.runs"], 1131);
    assert_eq!(summary.measures["langgraph.platform.nodes"], 2292);
    assert_eq!(summary.measures["langgraph.platform.py_graphs"], 6);
    assert_eq!(summary.measures["langgraph.platform.js_graphs"], 0);
    assert_eq!(
        summary.by_dialect,
        BTreeMap::from([("langgraph-api".into(), 5), ("published".into(), 1)])
    );
    let license = format!("license:{}", Secret::new(LICENSE).redacted());
    assert_eq!(summary.by_credential[&license], 4);

    let records = sink.reports();
    let dialects: Vec<&str> = records
        .iter()
        .map(|r| r["dialect"].as_str().unwrap())
        .collect();
    assert_eq!(
        dialects,
        [
            "langgraph-api",
            "langgraph-api",
            "langgraph-api",
            "published",
            "langgraph-api",
            "langgraph-api"
        ]
    );
    // Stored in UTC with `Z`, to the nanosecond; credential redacted in
    // whichever field it came.
    assert_eq!(records[0]["from_timestamp"], "2026-11-30T02:16:40.123456Z");
    assert_eq!(records[0]["to_timestamp"], "2026-11-30T02:21:40Z");
    assert_eq!(records[0]["license_key"], Secret::new(LICENSE).redacted());
    assert_eq!(records[0]["tags"]["user_app.uses_indexing"], "True");
    assert_eq!(records[3]["to_timestamp"], "2025-01-06T10:00:00.123456789Z");
    assert_eq!(records[4]["from_timestamp"], "2025-01-06T09:00:00Z");
    assert_eq!(records[4]["to_timestamp"], "2025-01-06T09:30:00.500Z");
    let shown = serde_json::to_string(&records).unwrap();
    assert!(!shown.contains(LICENSE) && !shown.contains(API_KEY));
    sink.shutdown().await;
}

#[tokio::test]
async fn idempotency_keys_deduplicate() {
    let sink = start(config()).await;
    let c = client();
    let key = Uuid::new_v4();
    assert_eq!(status_of(&c, &sink, &report(10, 30), Some(key)).await, 204);
    assert_eq!(status_of(&c, &sink, &report(10, 30), Some(key)).await, 204);
    let s = sink.summary();
    assert_eq!((s.reports, s.duplicates), (1, 1));
    assert_eq!(s.measures["langgraph.platform.runs"], 10);

    // Same key, another body: a conflict, nothing counted.
    let r = submit(&c, &sink, &report(11, 30), Some(key)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json_of(r).await["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    let s = sink.summary();
    assert_eq!((s.reports, s.duplicates, s.rejects), (1, 1, 1));
    assert_eq!(s.measures["langgraph.platform.runs"], 10);

    // Key order in the JSON does not make a body different.
    let reordered = {
        let v = report(10, 30);
        let mut text = String::from("{");
        for (i, (k, v)) in v.as_object().unwrap().iter().rev().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("{}:{}", json!(k), v));
        }
        text.push('}');
        text
    };
    let r = post_bytes(&c, &sink, reordered.into_bytes(), Some(key))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(sink.summary().duplicates, 2);

    // Without a key, the same body twice is two reports.
    assert_eq!(status_of(&c, &sink, &report(1, 1), None).await, 204);
    assert_eq!(status_of(&c, &sink, &report(1, 1), None).await, 204);
    let s = sink.summary();
    assert_eq!((s.reports, s.without_idempotency_key), (3, 2));
    assert_eq!(s.measures["langgraph.platform.runs"], 12);
    assert_eq!(sink.reports().len(), 3);
    sink.shutdown().await;
}

#[tokio::test]
async fn forced_status_and_failure_rate_then_recovery() {
    let sink = start(config()).await;
    let c = client();
    sink.set_forced_status(Some(503));
    let r = submit(&c, &sink, &report(1, 1), Some(Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()[RETRY_AFTER], "1");
    sink.set_forced_status(Some(500));
    assert_eq!(status_of(&c, &sink, &report(1, 1), None).await, 500);
    sink.set_forced_status(None);

    sink.set_faults(Faults {
        failure_rate: 1.0,
        retry_after_secs: 7,
        ..Faults::none()
    });
    let key = Uuid::new_v4();
    let r = submit(&c, &sink, &report(5, 5), Some(key)).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()[RETRY_AFTER], "7");
    assert!(json_of(r).await["detail"].is_string());

    // Recovery: the retry of the same report goes through, once.
    sink.set_faults(Faults::none());
    assert_eq!(status_of(&c, &sink, &report(5, 5), Some(key)).await, 204);
    let s = sink.summary();
    assert_eq!((s.reports, s.faults_injected, s.rejects), (1, 3, 0));
    assert_eq!(s.measures["langgraph.platform.runs"], 5);
    let statuses: Vec<_> = sink.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(500), Some(503), Some(204)]);
    sink.shutdown().await;
}

#[tokio::test]
async fn dropped_connection_is_an_error_and_records_nothing() {
    let sink = start(config().faults(Faults {
        drop_rate: 1.0,
        ..Faults::none()
    }))
    .await;
    let c = client();
    let key = Uuid::new_v4();
    let err = submit(&c, &sink, &report(3, 3), Some(key))
        .await
        .unwrap_err();
    assert!(err.status().is_none() && !err.is_timeout(), "{err:?}");
    let s = sink.summary();
    assert_eq!((s.reports, s.faults_injected), (0, 1));
    assert!(sink.reports().is_empty());
    assert_eq!(sink.requests().last().unwrap().status, None);

    sink.set_faults(Faults::none());
    assert_eq!(status_of(&c, &sink, &report(3, 3), Some(key)).await, 204);
    assert_eq!(sink.summary().reports, 1);
    assert_eq!(sink.summary().duplicates, 0);
    sink.shutdown().await;
}

#[tokio::test]
async fn accept_then_drop_counts_the_report_and_the_retry_is_a_duplicate() {
    let sink = start(config().faults(Faults {
        accept_then_drop_rate: 1.0,
        ..Faults::none()
    }))
    .await;
    let c = client();
    let key = Uuid::new_v4();
    let err = submit(&c, &sink, &report(4, 8), Some(key))
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "{err:?}");
    let s = sink.summary();
    assert_eq!((s.reports, s.faults_injected), (1, 1));
    assert_eq!(s.measures["langgraph.platform.nodes"], 8);

    // The client retries with the same key (the rate is still 1): 204, not
    // counted again.
    assert_eq!(status_of(&c, &sink, &report(4, 8), Some(key)).await, 204);
    let s = sink.summary();
    assert_eq!((s.reports, s.duplicates), (1, 1));
    assert_eq!(s.measures["langgraph.platform.nodes"], 8);
    assert_eq!(sink.reports().len(), 1);
    // An invalid report is refused before the drop decision.
    assert_eq!(status_of(&c, &sink, &json!({}), None).await, 422);
    sink.shutdown().await;
}

#[tokio::test]
async fn fault_decisions_follow_the_seed() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let sink = start(config().faults(Faults {
            failure_rate: 0.5,
            seed,
            ..Faults::none()
        }))
        .await;
        let c = client();
        let mut out = Vec::new();
        for i in 0..24 {
            out.push(status_of(&c, &sink, &report(i, i), Some(Uuid::new_v4())).await);
        }
        let s = sink.summary();
        assert_eq!(s.reports + s.faults_injected, 24);
        sink.shutdown().await;
        out
    }
    let a = statuses(42).await;
    assert_eq!(a, statuses(42).await);
    assert!(a.contains(&204) && a.contains(&503), "{a:?}");
    assert_ne!(a, statuses(43).await);
}

#[tokio::test]
async fn latency_delays_protocol_endpoints_only() {
    let latency = Duration::from_millis(400);
    let sink = start(config().faults(Faults {
        latency,
        ..Faults::none()
    }))
    .await;
    let c = client();
    let t = Instant::now();
    assert_eq!(status_of(&c, &sink, &report(1, 1), None).await, 204);
    assert!(t.elapsed() >= latency, "{:?}", t.elapsed());
    let t = Instant::now();
    let r = c
        .post(url(&sink, "auth"))
        .header("X-Api-Key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(t.elapsed() >= latency, "{:?}", t.elapsed());
    let t = Instant::now();
    let r = c.get(url(&sink, "v1/summary")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(t.elapsed() < latency, "{:?}", t.elapsed());
    sink.shutdown().await;
}

#[tokio::test]
async fn summary_and_reports_endpoints_match_the_handle() {
    let sink = start(config()).await;
    let c = client();
    let mut gauge = report(2, 6);
    gauge["measures"]["langgraph.platform.py_graphs"] = json!(3);
    assert_eq!(
        status_of(&c, &sink, &gauge, Some(Uuid::new_v4())).await,
        204
    );
    assert_eq!(
        status_of(&c, &sink, &report(1, 3), Some(Uuid::new_v4())).await,
        204
    );
    assert_eq!(status_of(&c, &sink, &json!([]), None).await, 422);

    let served: Summary = serde_json::from_value(
        json_of(c.get(url(&sink, "v1/summary")).send().await.unwrap()).await,
    )
    .unwrap();
    assert_eq!(served, sink.summary());
    assert_eq!(served.reports, 2);
    assert_eq!(served.rejects, 1);
    assert_eq!(
        served.measures,
        BTreeMap::from([
            ("langgraph.platform.runs".into(), 3),
            ("langgraph.platform.nodes".into(), 9),
            ("langgraph.platform.py_graphs".into(), 3),
        ])
    );
    let reports = json_of(c.get(url(&sink, "v1/reports")).send().await.unwrap()).await;
    assert_eq!(reports, Value::Array(sink.reports()));
    assert_eq!(reports[0]["measures"]["langgraph.platform.py_graphs"], 3);

    // Unknown paths and methods answer with a detail too.
    let r = c.get(url(&sink, "nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(json_of(r).await["detail"].is_string());
    let r = c
        .get(url(&sink, "v1/metadata/submit"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    sink.shutdown().await;
}

#[tokio::test]
async fn jsonl_gets_one_flushed_line_per_accepted_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports.jsonl");
    let sink = start(config().jsonl(path.clone())).await;
    let c = client();
    let key = Uuid::new_v4();
    assert_eq!(status_of(&c, &sink, &report(1, 2), Some(key)).await, 204);
    assert_eq!(status_of(&c, &sink, &report(1, 2), Some(key)).await, 204); // duplicate
    assert_eq!(
        status_of(&c, &sink, &report(1, 2), Some(Uuid::nil())).await,
        204
    );
    assert_eq!(
        status_of(&c, &sink, &json!({"license": LICENSE}), None).await,
        422
    );

    // Readable while the sink runs: every line is flushed.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, sink.reports());
    assert_eq!(lines.len(), 2);
    assert!(text.ends_with('\n'));
    assert!(!text.contains(LICENSE));
    assert_eq!(lines[0]["license"], Secret::new(LICENSE).redacted());
    sink.shutdown().await;

    // A second sink appends.
    let sink = start(config().jsonl(path.clone())).await;
    assert_eq!(status_of(&client(), &sink, &report(9, 9), None).await, 204);
    sink.shutdown().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let sink = start(config().max_body(1024)).await;
    let c = client();
    let small = serde_json::to_vec(&report(1, 1)).unwrap();
    assert!(small.len() <= 1024);
    // Padded with a log record to exactly the limit: accepted.
    let mut exact = report(1, 1);
    exact["logs"] = json!([{"pad": ""}]);
    let pad = 1024 - serde_json::to_vec(&exact).unwrap().len();
    exact["logs"][0]["pad"] = json!("x".repeat(pad));
    assert_eq!(serde_json::to_vec(&exact).unwrap().len(), 1024);
    assert_eq!(status_of(&c, &sink, &exact, None).await, 204);
    // One byte more: 413.
    exact["logs"][0]["pad"] = json!("x".repeat(pad + 1));
    let r = submit(&c, &sink, &exact, None).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        json_of(r).await["detail"]
            .as_str()
            .unwrap()
            .contains("1024")
    );
    // Well over, and on the other endpoints too.
    let big = vec![b'x'; 200 * 1024];
    let r = post_bytes(&c, &sink, big.clone(), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = c
        .post(url(&sink, "v1/beacon/verify"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let s = sink.summary();
    assert_eq!((s.reports, s.rejects), (1, 2));
    sink.shutdown().await;
}

#[tokio::test]
async fn slow_clients_time_out() {
    let sink = start(config().request_timeout(Duration::from_millis(300))).await;
    // Headers complete, body never finishes: 408.
    let mut s = tokio::net::TcpStream::connect(sink.addr()).await.unwrap();
    s.write_all(b"POST /v1/metadata/submit HTTP/1.1\r\nHost: sink\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut answer))
        .await
        .expect("the sink closes a slow connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );

    // Headers never finish: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(sink.addr()).await.unwrap();
    s.write_all(b"POST /v1/metadata/submit HTTP/1.1\r\nHost: sink\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "connection left open");
    assert_eq!(sink.requests().len(), 1);
    sink.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_graceful_then_bounded() {
    // A request in flight when shutdown starts is answered.
    let sink = start(config().faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::none()
    }))
    .await;
    let addr = sink.addr();
    let c = client();
    let body = report(1, 1);
    let submit_url = url(&sink, "v1/metadata/submit");
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move {
            c.post(submit_url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    sink.shutdown().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::NO_CONTENT);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );

    // One that would outlast the grace period is cut off in time.
    let sink = start(
        config()
            .shutdown_grace(Duration::from_millis(200))
            .faults(Faults {
                latency: Duration::from_secs(30),
                ..Faults::none()
            }),
    )
    .await;
    let auth_url = url(&sink, "auth");
    let stuck = tokio::spawn({
        let c = c.clone();
        async move { c.post(auth_url).header("X-Api-Key", API_KEY).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    sink.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(stuck.await.unwrap().is_err());
}

#[tokio::test]
async fn start_errors_name_the_problem() {
    let sink = start(config()).await;
    let err = config().bind(sink.addr()).start().await.unwrap_err();
    assert!(matches!(err, SinkError::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains(&sink.addr().to_string()));

    let err = config()
        .jsonl("/nonexistent-dir/reports.jsonl")
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent-dir/reports.jsonl"),
        "{err}"
    );

    let err = config()
        .faults(Faults {
            failure_rate: 2.0,
            ..Faults::none()
        })
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failure_rate"), "{err}");
    sink.shutdown().await;
}

mod garbage {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            ".{0,12}".prop_map(Value::from),
            Just(json!("2025-01-06T09:00:00Z")),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const FIELDS: [&str; 8] = [
        "license",
        "api_key",
        "from_timestamp",
        "to_timestamp",
        "tags",
        "measures",
        "logs",
        "other",
    ];

    /// A valid report with one field replaced by (or added as) random JSON.
    fn mutated_report() -> impl Strategy<Value = Value> {
        (0..FIELDS.len(), arb_json(), any::<bool>()).prop_map(|(i, v, remove)| {
            let mut r = report(1, 1);
            let m = r.as_object_mut().unwrap();
            if remove {
                m.remove(FIELDS[i]);
            } else {
                m.insert(FIELDS[i].into(), v);
            }
            r
        })
    }

    #[test]
    fn random_input_never_gets_a_server_error() {
        let rt = beacon_meter_testkit::runtime();
        let sink = rt.block_on(start(config()));
        let c = client();
        let paths = ["v1/metadata/submit", "v1/beacon/verify", "auth"];
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        });

        runner
            .run(
                &(prop::collection::vec(any::<u8>(), 0..600), 0..paths.len()),
                |(bytes, p)| {
                    let status = rt.block_on(async {
                        c.post(url(&sink, paths[p]))
                            .header(CONTENT_TYPE, "application/json")
                            .header(
                                "X-Api-Key",
                                String::from_utf8_lossy(&bytes)
                                    .chars()
                                    .filter(char::is_ascii_alphanumeric)
                                    .collect::<String>(),
                            )
                            .body(bytes.clone())
                            .send()
                            .await
                            .unwrap()
                            .status()
                    });
                    prop_assert!(status.is_client_error(), "{} on {}", status, paths[p]);
                    Ok(())
                },
            )
            .unwrap();

        runner
            .run(&prop_oneof![arb_json(), mutated_report()], |v| {
                let status = rt.block_on(status_of(&c, &sink, &v, None));
                prop_assert!([204, 400, 401, 422].contains(&status), "{status} for {v}");
                Ok(())
            })
            .unwrap();

        // Not even HTTP: the sink stays up.
        rt.block_on(async {
            for junk in [
                &b"\x00\xff\xfe garbage \r\n\r\n"[..],
                b"GET / HTTP/9.9\r\n\r\n",
                b"\r\n\r\n\r\n",
            ] {
                let mut s = tokio::net::TcpStream::connect(sink.addr()).await.unwrap();
                s.write_all(junk).await.unwrap();
                let mut sink_answer = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut sink_answer))
                        .await;
            }
            let r = c.get(url(&sink, "v1/summary")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        });
        let s = sink.summary();
        assert!(s.rejects > 0);
        rt.block_on(sink.shutdown());
    }
}

#[tokio::test]
async fn the_database_keeps_reports_and_dedup_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sink.db");
    let with_db = || config().db(db.clone());
    let c = client();
    let key = Uuid::new_v4();
    let sink = start(with_db()).await;
    assert_eq!(status_of(&c, &sink, &report(3, 9), Some(key)).await, 204);
    assert_eq!(status_of(&c, &sink, &report(1, 1), None).await, 204);
    post_to(
        &c,
        &sink,
        "v1/beacon/metadata/submit",
        &langgraph_report(5, 6),
    )
    .await;
    sink.shutdown().await;

    // A new sink on the same file: the retry is a duplicate, a new body
    // under the old key a conflict, and the totals are still there.
    let sink = start(with_db()).await;
    assert_eq!(status_of(&c, &sink, &report(3, 9), Some(key)).await, 204);
    assert_eq!(status_of(&c, &sink, &report(4, 9), Some(key)).await, 422);
    let summary = sink.summary();
    assert_eq!(summary.reports, 3);
    assert_eq!(summary.duplicates, 1);
    assert_eq!(summary.without_idempotency_key, 2);
    assert_eq!(summary.measures["langgraph.platform.runs"], 9);
    assert_eq!(summary.measures["langgraph.platform.nodes"], 16);
    assert_eq!(summary.by_dialect["langgraph-api"], 1);

    // Pages of /v1/reports.
    let page = |q: &'static str| {
        let c = c.clone();
        let u = url(&sink, &format!("v1/reports{q}"));
        async move { json_of(c.get(u).send().await.unwrap()).await }
    };
    assert_eq!(page("").await, Value::Array(sink.reports()));
    assert_eq!(
        page("?offset=1&limit=1").await[0]["measures"]["langgraph.platform.runs"],
        1
    );
    assert_eq!(page("?offset=3").await, json!([]));
    let r = c
        .get(url(&sink, "v1/reports?limit=-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sink.reports_page(2, 5).unwrap().len(), 1);
    sink.shutdown().await;

    // Usage, read from the file.
    use beacon_meter_sink::{Period, usage};
    let rows = usage(&db, Period::Day, None).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (
            rows[0].period.as_str(),
            rows[0].host.as_str(),
            rows[0].reports
        ),
        ("2025-01-06", "host-1", 2)
    );
    assert_eq!(rows[0].measures["langgraph.platform.runs"], 4);
    assert_eq!(rows[0].destination, "license");
    assert_eq!(rows[1].period, "2026-11-30");
    assert_eq!(rows[1].measures["langgraph.platform.py_graphs"], 2);
    let since = "2026-01-01T00:00:00Z".parse().unwrap();
    let hours = usage(&db, Period::Hour, Some(since)).unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!(hours[0].period, "2026-11-30T02");
    let missing = usage(&dir.path().join("none.db"), Period::Day, None).unwrap_err();
    assert!(missing.to_string().contains("none.db"), "{missing}");
}
