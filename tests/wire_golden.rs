//! Golden tests: every JSON example in the protocol spec parses into the
//! crate's types, and the crate builds the same JSON from typed values.
//!
//! The spec is read at test time from
//! `$CARGO_MANIFEST_DIR/../shared/spec/beacon-protocol.md` (a clone with
//! `shared/` beside it, as in CI), else from the path in `BEACON_SPEC`.
//! If neither exists the tests fail: they never pass without the spec.
//!
//! ```sh
//! BEACON_SPEC=/work/shared/spec/beacon-protocol.md cargo test --test wire_golden
//! ```
#![cfg(feature = "shell")]

use beacon_meter::Meter;
use beacon_meter::secret::Secret;
use beacon_meter::wire::{
    AuthResponse, Credential, Plan, ReportBody, Tags, UsageReport, UserAppFlags, VerifyRequest,
    VerifyResponse, encode_report,
};
use serde_json::Value;
use std::path::PathBuf;

/// The spec's text, or a panic saying where it was looked for.
fn spec() -> String {
    let beside =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/beacon-protocol.md");
    let from_env = std::env::var_os("BEACON_SPEC").map(PathBuf::from);
    let mut tried = vec![beside.clone()];
    let mut candidates = vec![beside];
    if let Some(p) = from_env {
        tried.push(p.clone());
        candidates.push(p);
    }
    for p in &candidates {
        if let Ok(text) = std::fs::read_to_string(p) {
            return text;
        }
    }
    panic!(
        "the protocol spec was not found (tried {tried:?}); the golden tests need it. \
         Clone the repository with `shared/` beside it, or set BEACON_SPEC to the path of \
         beacon-protocol.md, e.g. BEACON_SPEC=/work/shared/spec/beacon-protocol.md"
    );
}

/// One ```json block of the spec and the `## ` section it sits in.
struct Example {
    section: String,
    json: String,
}

fn examples(spec: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut block: Option<String> = None;
    for line in spec.lines() {
        match &mut block {
            Some(b) if line.trim_start().starts_with("```") => {
                out.push(Example {
                    section: section.clone(),
                    json: std::mem::take(b),
                });
                block = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None if line.trim_start().starts_with("```json") => block = Some(String::new()),
            None if line.starts_with("## ") => section = line[3..].trim().to_owned(),
            None => {}
        }
    }
    assert!(
        block.is_none(),
        "the spec has an unterminated ```json block"
    );
    out
}

fn value(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("spec example is not JSON ({e}):\n{json}"))
}

/// The spec's examples by kind, checking there are exactly the four the
/// protocol has (so a new example cannot go untested).
struct Golden {
    verify_request: Value,
    verify_response: Value,
    auth_response: Value,
    usage_report: Value,
}

fn golden() -> Golden {
    let spec = spec();
    let ex = examples(&spec);
    let sections: Vec<&str> = ex.iter().map(|e| e.section.as_str()).collect();
    assert_eq!(
        ex.len(),
        4,
        "expected 4 JSON examples in the spec (verify request/response, auth response, usage \
         report), found {} in sections {sections:?}: update this test",
        ex.len()
    );
    let pick = |prefix: &str, nth: usize| -> Value {
        let e = ex
            .iter()
            .filter(|e| e.section.starts_with(prefix))
            .nth(nth)
            .unwrap_or_else(|| panic!("no JSON example #{nth} in spec section {prefix:?}"));
        value(&e.json)
    };
    Golden {
        verify_request: pick("1.", 0),
        verify_response: pick("1.", 1),
        auth_response: pick("2.", 0),
        usage_report: pick("3.", 0),
    }
}

#[test]
fn every_spec_example_parses_and_round_trips() {
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

/// The spec's usage report, built from typed values: a meter that saw 150
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
fn typed_license_report_matches_the_spec() {
    let g = golden();
    let body = typed_report_body();
    let bytes = encode_report(&Credential::License(Secret::new("<LICENSE_KEY>")), &body);
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        g.usage_report
    );
}

#[test]
fn typed_api_key_report_matches_the_spec_with_api_key_in_place_of_license() {
    let g = golden();
    let mut expected = g.usage_report.clone();
    let obj = expected.as_object_mut().unwrap();
    obj.remove("license")
        .expect("the spec example carries a license");
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
fn spec_report_with_both_or_no_credential_is_rejected() {
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
