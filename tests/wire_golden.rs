//! Golden tests: every JSON example of the protocol (`docs/protocol.md`)
//! parses into the crate's types, and the crate builds the same JSON from
//! typed values.
//!
//! The examples live in `tests/fixtures/protocol/` and are compiled in with
//! `include_str!`, so the tests read nothing outside the repository;
//! [`the_fixture_directory_holds_exactly_the_known_examples`] makes sure a
//! new example cannot go untested.
#![cfg(feature = "reporter")]

use beacon_meter::Meter;
use beacon_meter::secret::Secret;
use beacon_meter::wire::{
    AuthResponse, Credential, Dialect, Plan, ReportBody, Tags, UsageReport, UserAppFlags,
    VerifyRequest, VerifyResponse, encode_report, encode_report_in, format_timestamp,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// Every example: its file name under `tests/fixtures/protocol/` and text.
const EXAMPLES: [(&str, &str); 5] = [
    (
        "verify_request.json",
        include_str!("fixtures/protocol/verify_request.json"),
    ),
    (
        "verify_response.json",
        include_str!("fixtures/protocol/verify_response.json"),
    ),
    (
        "auth_response.json",
        include_str!("fixtures/protocol/auth_response.json"),
    ),
    (
        "usage_report.published.json",
        include_str!("fixtures/protocol/usage_report.published.json"),
    ),
    (
        "usage_report.langgraph-api.json",
        include_str!("fixtures/protocol/usage_report.langgraph-api.json"),
    ),
];

/// The example in `file`, as JSON.
fn example(file: &str) -> Value {
    let (_, text) = EXAMPLES
        .iter()
        .find(|(name, _)| *name == file)
        .unwrap_or_else(|| panic!("no example {file:?} in EXAMPLES"));
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("tests/fixtures/protocol/{file} is not JSON ({e}):\n{text}"))
}

/// The protocol's examples by kind.
struct Golden {
    verify_request: Value,
    verify_response: Value,
    auth_response: Value,
    usage_report: Value,
}

fn golden() -> Golden {
    Golden {
        verify_request: example("verify_request.json"),
        verify_response: example("verify_response.json"),
        auth_response: example("auth_response.json"),
        usage_report: example("usage_report.published.json"),
    }
}

#[test]
fn the_fixture_directory_holds_exactly_the_known_examples() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protocol");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut known: Vec<String> = EXAMPLES.iter().map(|(n, _)| n.to_string()).collect();
    known.sort();
    assert_eq!(
        on_disk, known,
        "tests/fixtures/protocol/ and EXAMPLES differ: add the new example to EXAMPLES and \
         give it a test"
    );
}

#[test]
fn every_example_parses_and_round_trips() {
    let g = golden();

    let req: VerifyRequest = serde_json::from_value(g.verify_request.clone()).unwrap();
    assert_eq!(req.license.expose(), "<LICENSE_KEY>");
    assert_eq!(serde_json::to_value(&req).unwrap(), g.verify_request);

    let resp: VerifyResponse = serde_json::from_value(g.verify_response.clone()).unwrap();
    assert_eq!(resp.token.expose(), "<JWT>");
    assert_eq!(serde_json::to_value(&resp).unwrap(), g.verify_response);

    let auth: AuthResponse = serde_json::from_value(g.auth_response.clone()).unwrap();
    assert_eq!(
        auth.org_config.org_id,
        "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1"
    );
    assert_eq!(serde_json::to_value(&auth).unwrap(), g.auth_response);

    let report: UsageReport = serde_json::from_value(g.usage_report.clone()).unwrap();
    assert_eq!(
        report.credential,
        Credential::License(Secret::new("<LICENSE_KEY>"))
    );
    let bytes = report.encode();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        g.usage_report
    );
    assert_eq!(UsageReport::parse(&bytes).unwrap(), report);
}

/// The published usage report, built from typed values: a meter that saw 150
/// runs of 3 nodes, the tags builder, and the pure serializer.
fn typed_report_body() -> ReportBody {
    let meter = Meter::new();
    let local = meter.local();
    for _ in 0..150 {
        local.record_run(3);
    }
    let window = meter.rotate();
    let tags = Tags::new()
        .python_version("0.1.0")
        .api_version("0.2.0")
        .revision("abc123")
        .variant("standard")
        .host("host-1")
        .tenant_id("3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1".parse().unwrap())
        .project_id("c5b5f53a-4716-4326-8967-d4f7f7799735".parse().unwrap())
        .plan(Plan::for_license(true))
        .user_app(UserAppFlags {
            uses_indexing: true,
            uses_custom_app: false,
            uses_custom_auth: true,
            uses_thread_ttl: true,
            uses_store_ttl: false,
        })
        .evaluate();
    assert!(tags.errors.is_empty());
    ReportBody::from_window(
        &window,
        "2025-01-06T09:00:00Z".parse().unwrap(),
        "2025-01-06T10:00:00Z".parse().unwrap(),
        tags.tags,
        Vec::new(),
    )
}

#[test]
fn typed_license_report_matches_the_example() {
    let g = golden();
    let body = typed_report_body();
    let bytes = encode_report(&Credential::License(Secret::new("<LICENSE_KEY>")), &body);
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        g.usage_report
    );
}

#[test]
fn typed_api_key_report_matches_the_example_with_api_key_in_place_of_license() {
    let g = golden();
    let mut expected = g.usage_report.clone();
    let obj = expected.as_object_mut().unwrap();
    obj.remove("license")
        .expect("the example carries a license");
    obj.insert("api_key".into(), Value::from("<API_KEY>"));

    let body = typed_report_body();
    let credential = Credential::ApiKey(Secret::new("<API_KEY>"));
    let bytes = encode_report(&credential, &body);
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), expected);

    let parsed = UsageReport::parse(&bytes).unwrap();
    assert_eq!(parsed.credential, credential);
    assert_eq!(parsed.body, body);
}

#[test]
fn a_report_with_both_or_no_credential_is_rejected() {
    let g = golden();
    let mut both = g.usage_report.clone();
    both.as_object_mut()
        .unwrap()
        .insert("api_key".into(), Value::from("<API_KEY>"));
    assert!(serde_json::from_value::<UsageReport>(both).is_err());
    let mut none = g.usage_report.clone();
    none.as_object_mut().unwrap().remove("license");
    assert!(serde_json::from_value::<UsageReport>(none).is_err());
}

#[test]
fn auth_response_accepts_extra_org_details() {
    let g = golden();
    let mut extended = g.auth_response.clone();
    let obj = extended.as_object_mut().unwrap();
    obj["org_config"].as_object_mut().unwrap().insert(
        "tier".into(),
        serde_json::json!({"name": "plus", "seats": 5}),
    );
    obj.insert("workspace_id".into(), Value::from("w-1"));
    let auth: AuthResponse = serde_json::from_value(extended).unwrap();
    assert_eq!(
        auth.org_config.org_id,
        "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1"
    );
}

/// The reference reporter's example with each offset timestamp rewritten
/// in the `Z` form of the same instant (how beacon-meter writes times in
/// both dialects).
fn langgraph_api_report_with_z_times() -> Value {
    let mut v = example("usage_report.langgraph-api.json");
    let obj = v.as_object_mut().unwrap();
    for field in ["from_timestamp", "to_timestamp"] {
        let text = obj[field].as_str().unwrap();
        assert!(
            text.ends_with("+00:00"),
            "the reference reporter writes {field} with a +00:00 offset, not {text:?}"
        );
        let instant = chrono::DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{field} {text:?} is not RFC 3339: {e}"))
            .with_timezone(&chrono::Utc);
        obj.insert(field.into(), Value::from(format_timestamp(&instant)));
    }
    v
}

#[test]
fn langgraph_api_report_differs_from_the_published_one_only_as_documented() {
    let langgraph = langgraph_api_report_with_z_times();
    // With `license_key` renamed, it is a published report.
    let mut published = langgraph.clone();
    let obj = published.as_object_mut().unwrap();
    let key = obj
        .remove("license_key")
        .expect("the langgraph-api example carries license_key");
    obj.insert("license".into(), key);
    let report = UsageReport::parse(published.to_string().as_bytes())
        .expect("once license_key and the offsets are undone, it is a published report");
    assert_eq!(
        report.credential,
        Credential::License(Secret::new("<LICENSE_KEY>"))
    );
    assert_eq!(
        report.body.from_timestamp,
        "2025-01-06T09:00:00.123456Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(
        report.body.to_timestamp,
        "2025-01-06T09:05:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&report.encode()).unwrap(),
        published
    );
    // Written back in the langgraph-api dialect, it is the example again.
    let bytes = encode_report_in(Dialect::LanggraphApi, &report.credential, &report.body);
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), langgraph);
}

/// The tags the reference reporter sends in the example: the published
/// set plus its extras, with Python's `"True"` / `"False"` / `"unknown"`
/// and `""` for false or unknown.
fn reference_tags() -> BTreeMap<String, String> {
    [
        ("langgraph.python.version", "1.2.24"),
        ("langgraph_checkpoint.version", "4.3.2"),
        ("langgraph_checkpoint_postgres.version", ""),
        ("deepagents.version", ""),
        ("starlette.version", "1.10.0"),
        ("langgraph_api.version", "0.16.7"),
        ("langgraph.platform.revision", ""),
        ("langgraph.platform.variant", ""),
        ("langgraph.platform.host", "self-hosted"),
        ("langgraph.platform.tenant_id", ""),
        ("langgraph.platform.project_id", ""),
        ("langgraph.platform.plan", "enterprise"),
        ("user_app.uses_indexing", ""),
        ("user_app.uses_custom_app", ""),
        ("user_app.uses_custom_auth", "True"),
        ("user_app.uses_thread_ttl", "True"),
        ("user_app.uses_store_ttl", ""),
        ("langgraph.platform.uses_custom_auth", "True"),
        ("langgraph.platform.uses_js_custom_auth", "False"),
        ("langgraph.platform.uses_js_proxy_middleware", "False"),
        ("user_app.uses_delta_channel", "unknown"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn typed_report_with_the_reference_extras_matches_the_langgraph_api_example() {
    let mut b = Meter::builder();
    b.gauge("langgraph.platform.py_graphs", || 2).unwrap();
    b.gauge("langgraph.platform.js_graphs", || 0).unwrap();
    let meter = b.build();
    let local = meter.local();
    for _ in 0..150 {
        local.record_run(3);
    }
    let body = ReportBody::from_window(
        &meter.rotate(),
        "2025-01-06T09:00:00.123456Z".parse().unwrap(),
        "2025-01-06T09:05:00Z".parse().unwrap(),
        reference_tags(),
        Vec::new(),
    );
    let bytes = encode_report_in(
        Dialect::LanggraphApi,
        &Credential::License(Secret::new("<LICENSE_KEY>")),
        &body,
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        langgraph_api_report_with_z_times()
    );
}
