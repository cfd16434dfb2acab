//! Strict checks of request bodies against the Beacon protocol spec.
//!
//! Every error message names the field that is wrong and never contains a
//! credential's value.

use beacon_meter::secret::Secret;
pub(crate) use beacon_meter::wire::Dialect;
use beacon_meter::wire::truncate::first_chars;
use beacon_meter::wire::{API_KEY_FIELD, VerifyRequest, tags};
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Why a body was refused, naming the field: malformed JSON or a
/// well-formed body that breaks the protocol, both answered `422`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid(pub(crate) String);

/// Which field carries the credential of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialField {
    /// `license`: the published format.
    License,
    /// `license_key`: what the reference reporter (langgraph-api) sends.
    LicenseKey,
    /// `api_key`: both dialects.
    ApiKey,
}

/// Every credential field, in the order error messages name them.
const CREDENTIAL_FIELDS: [CredentialField; 3] = [
    CredentialField::License,
    CredentialField::LicenseKey,
    CredentialField::ApiKey,
];

impl CredentialField {
    /// The field's name, as the wire dialects spell it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CredentialField::License => Dialect::Published.license_field(),
            CredentialField::LicenseKey => Dialect::LanggraphApi.license_field(),
            CredentialField::ApiKey => API_KEY_FIELD,
        }
    }

    /// The kind of credential: `license` (both license fields) or
    /// `api_key`. The sink stores it in its `destination` column (see
    /// [`super::UsageRow::destination`]); not a `spool::Destination`.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            CredentialField::License | CredentialField::LicenseKey => "license",
            CredentialField::ApiKey => "api_key",
        }
    }
}

/// A report to store: valid, with its `Idempotency-Key` (if any) and its
/// dialect.
#[derive(Debug, Clone)]
pub(crate) struct Submission {
    pub(crate) key: Option<uuid::Uuid>,
    pub(crate) report: ValidReport,
    pub(crate) dialect: Dialect,
    /// What is stored: [`ValidReport::record`] of `report`.
    pub(crate) record: Value,
}

/// A report that passed every check.
///
/// Not read as [`beacon_meter::wire::UsageReport`]/[`beacon_meter::wire::ReportBody`]:
/// those take only `license`/`api_key` and `Z` times (the sink also takes
/// the langgraph-api dialect and must tell which it got), keep the last of
/// duplicated nested keys, and re-encode; the sink names the wrong field in
/// spec terms and stores and digests the report as received.
#[derive(Debug, Clone)]
pub(crate) struct ValidReport {
    /// The report as received.
    pub(crate) value: Value,
    pub(crate) credential_field: CredentialField,
    pub(crate) credential: String,
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    pub(crate) measures: BTreeMap<String, u64>,
    /// True if the body itself is in the langgraph-api dialect
    /// (`license_key`, or a timestamp not in `Z` form); the path may make
    /// it so too, see [`ValidReport::dialect`].
    langgraph_body: bool,
}

impl ValidReport {
    /// The dialect of this report, posted to a path of `path_dialect`.
    pub(crate) fn dialect(&self, path_dialect: Dialect) -> Dialect {
        if self.langgraph_body {
            Dialect::LanggraphApi
        } else {
            path_dialect
        }
    }

    /// What the sink stores, shows and writes to its JSONL file: the report
    /// as received, with its credential replaced by a redacted form, both
    /// timestamps normalised to UTC (`...Z`), and a `"dialect"` field. The
    /// report's own credential and each of `keys` (the sink's configured
    /// ones) are redacted wherever else they appear, a tag say.
    pub(crate) fn record(&self, dialect: Dialect, keys: &[&Secret]) -> Value {
        let mut value = self.value.clone();
        let own = Secret::new(self.credential.as_str());
        let keys: Vec<&Secret> = keys.iter().copied().chain([&own]).collect();
        redact_keys(&keys, &mut value);
        if let Value::Object(map) = &mut value {
            map.insert(
                self.credential_field.name().to_owned(),
                Value::String(Secret::new(self.credential.as_str()).redacted()),
            );
            for (field, t) in [("from_timestamp", &self.from), ("to_timestamp", &self.to)] {
                map.insert(
                    field.to_owned(),
                    Value::String(beacon_meter::wire::format_timestamp(t)),
                );
            }
            map.insert("dialect".to_owned(), Value::String(dialect.name().into()));
        }
        value
    }
}

/// Redacts each of `keys` wherever it appears in `value`, in strings and
/// object keys alike (ASCII case ignored, see [`Secret::scrub`]). A client
/// may put a key in a tag, as its name or its value, and no stored report
/// may hold a credential in full.
fn redact_keys(keys: &[&Secret], value: &mut Value) {
    let scrub = |text: String| keys.iter().fold(text, |t, k| k.scrub(&t));
    match value {
        Value::String(s) => *s = scrub(std::mem::take(s)),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_keys(keys, v)),
        Value::Object(map) => {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(k, mut v)| {
                    redact_keys(keys, &mut v);
                    (scrub(k), v)
                })
                .collect();
        }
        _ => {}
    }
}

const MAX_NAME_IN_MESSAGE: usize = 64;

/// A key for an error message: quoted, shortened if long (`"abcd"…`: the
/// quotes close on the kept part, the `…` follows them).
fn shown(key: &str) -> String {
    let (head, cut) = first_chars(key, MAX_NAME_IN_MESSAGE);
    format!("{head:?}{}", if cut { "…" } else { "" })
}

/// "`what` must be `expected`, found <the type of `found`>".
fn wrong(what: &str, expected: &str, found: &Value) -> Invalid {
    shape(format!(
        "{what} must be {expected}, found {}",
        type_name(found)
    ))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a floating-point number",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses JSON, refusing an object with the same key twice (serde_json
/// would silently keep the last one, so the sink could count something else
/// than a stricter server).
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, Invalid> {
    match serde_json::from_slice::<StrictValue>(bytes) {
        Ok(StrictValue(v)) => Ok(v),
        Err(e) if e.is_data() => Err(shape(format!("request body: {e}"))),
        Err(e) => Err(shape(format!("request body is not valid JSON: {e}"))),
    }
}

/// A [`Value`] that refuses duplicate keys. Only read by `serde_json`,
/// whose `deserialize_any` calls the `visit_*` methods below and no others
/// (`null` is `visit_unit`, never `visit_none`/`visit_some`).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key {} in an object",
                    shown(&key)
                )));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

const REQUIRED: [&str; 5] = ["from_timestamp", "to_timestamp", "tags", "measures", "logs"];

/// Tags whose value, when not empty, must be a UUID.
const UUID_TAGS: [&str; 2] = [tags::TENANT_ID, tags::PROJECT_ID];

fn shape(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// Checks a usage report (`POST .../metadata/submit`) against the spec:
/// exactly the keys `license`, `license_key` or `api_key` (one of them),
/// `from_timestamp`, `to_timestamp`, `tags`, `measures`, `logs`, each of
/// the right type.
///
/// A refusal quotes the offending value or name; if that is the report's
/// own credential (a client that put its key in the wrong field), it is
/// shown redacted.
pub(crate) fn validate_report(value: Value) -> Result<ValidReport, Invalid> {
    let credentials: Vec<Secret> = CREDENTIAL_FIELDS
        .iter()
        .filter_map(|f| value.get(f.name())?.as_str())
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect();
    check_report(value)
        .map_err(|Invalid(m)| Invalid(credentials.iter().fold(m, |m, c| c.scrub(&m))))
}

fn check_report(mut value: Value) -> Result<ValidReport, Invalid> {
    let Value::Object(map) = &mut value else {
        return Err(wrong("report body", "a JSON object", &value));
    };
    let is_credential = |k: &str| CREDENTIAL_FIELDS.iter().any(|f| f.name() == k);
    if let Some(unknown) = map
        .keys()
        .find(|k| !REQUIRED.contains(&k.as_str()) && !is_credential(k))
    {
        return Err(shape(format!(
            "unknown field {} (allowed: license, license_key or api_key, from_timestamp, \
             to_timestamp, tags, measures, logs)",
            shown(unknown)
        )));
    }
    let (credential_field, credential) = credential(map)?;
    for field in REQUIRED {
        if !map.contains_key(field) {
            return Err(shape(format!("missing field `{field}`")));
        }
    }
    let (from, from_z) = timestamp("from_timestamp", &map["from_timestamp"])?;
    let (to, to_z) = timestamp("to_timestamp", &map["to_timestamp"])?;
    if from >= to {
        return Err(shape(format!(
            "`from_timestamp` ({}) must be before `to_timestamp` ({})",
            beacon_meter::wire::format_timestamp(&from),
            beacon_meter::wire::format_timestamp(&to)
        )));
    }
    if to - from > MAX_WINDOW {
        return Err(shape(format!(
            "the window from {} to {} is {} days long; at most {} days are accepted",
            beacon_meter::wire::format_timestamp(&from),
            beacon_meter::wire::format_timestamp(&to),
            (to - from).num_days(),
            MAX_WINDOW.num_days()
        )));
    }
    check_tags(map.get_mut("tags").expect("checked present above"))?;
    let measures = measures(&map["measures"])?;
    check_logs(&map["logs"])?;
    let langgraph_body = credential_field == CredentialField::LicenseKey || !(from_z && to_z);
    Ok(ValidReport {
        value,
        credential_field,
        credential,
        from,
        to,
        measures,
        langgraph_body,
    })
}

/// The one credential field of a report and its value (a non-empty string).
fn credential(map: &Map<String, Value>) -> Result<(CredentialField, String), Invalid> {
    let present: Vec<CredentialField> = CREDENTIAL_FIELDS
        .into_iter()
        .filter(|f| map.contains_key(f.name()))
        .collect();
    let field = match present[..] {
        [one] => one,
        [] => {
            return Err(shape(
                "exactly one of `license`, `license_key` and `api_key` must be present, found neither",
            ));
        }
        _ => {
            let names: Vec<String> = present.iter().map(|f| format!("`{}`", f.name())).collect();
            return Err(shape(format!(
                "exactly one of `license`, `license_key` and `api_key` must be present, found both {}",
                names.join(" and ")
            )));
        }
    };
    match &map[field.name()] {
        Value::String(s) if !s.is_empty() => Ok((field, s.clone())),
        Value::String(_) => Err(shape(format!("`{}` must not be empty", field.name()))),
        other => Err(wrong(&format!("`{}`", field.name()), "a string", other)),
    }
}

/// `tags`: an object of strings; tenant and project ids UUIDs or empty.
/// Any other string is accepted, `"True"`, `"False"` and `"unknown"`
/// included (the reference reporter sends them).
///
/// A UUID tag written in another form `uuid` reads (upper case, braces,
/// `urn:uuid:`, no dashes) is rewritten in the one canonical form, lower
/// case with dashes: otherwise one tenant would be stored, and summed in
/// `sink usage`, as several.
fn check_tags(tags: &mut Value) -> Result<(), Invalid> {
    let Value::Object(tags) = tags else {
        return Err(wrong("`tags`", "an object of strings", tags));
    };
    for (k, v) in tags.iter_mut() {
        let Value::String(s) = v else {
            return Err(wrong(&format!("`tags.{}`", shown(k)), "a string", v));
        };
        if !UUID_TAGS.contains(&k.as_str()) || s.is_empty() {
            continue;
        }
        match uuid::Uuid::try_parse(s) {
            Ok(id) => *s = id.hyphenated().to_string(),
            Err(_) => {
                return Err(shape(format!(
                    "`tags.{k}` must be a UUID or empty, found {}",
                    shown(s)
                )));
            }
        }
    }
    Ok(())
}

/// The most measure names one report may carry. The reference platform
/// sends four (runs, nodes, Python and JS graphs) and an embedder's custom
/// counters are a few more; each name is a row of the store, so a report
/// of 18 000 names would cost as much as 4 500 ordinary ones.
pub const MAX_MEASURES_PER_REPORT: usize = 256;

/// `measures`: an object of at most [`MAX_MEASURES_PER_REPORT`] integers in
/// `0..=u64::MAX`, any names.
fn measures(measures: &Value) -> Result<BTreeMap<String, u64>, Invalid> {
    let Value::Object(raw) = measures else {
        return Err(wrong(
            "`measures`",
            "an object of non-negative integers",
            measures,
        ));
    };
    if raw.len() > MAX_MEASURES_PER_REPORT {
        return Err(shape(format!(
            "`measures` has {} names; a report may carry at most {MAX_MEASURES_PER_REPORT}",
            raw.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        // `as_u64` is `None` for negatives and for every float, even `1.0`
        // and numbers above u64::MAX (which serde_json parses as floats).
        let Some(n) = v.as_u64() else {
            let found = match v {
                Value::Number(n) => format!("{} {n}", type_name(v)),
                other => type_name(other).to_owned(),
            };
            return Err(shape(format!(
                "`measures.{}` must be a non-negative integer of at most {}, found {found}",
                shown(k),
                u64::MAX
            )));
        };
        out.insert(k.clone(), n);
    }
    Ok(out)
}

/// `logs`: an array of objects.
fn check_logs(logs: &Value) -> Result<(), Invalid> {
    let Value::Array(logs) = logs else {
        return Err(wrong("`logs`", "an array of objects", logs));
    };
    match logs.iter().enumerate().find(|(_, v)| !v.is_object()) {
        Some((i, v)) => Err(wrong(&format!("`logs[{i}]`"), "an object", v)),
        None => Ok(()),
    }
}

/// The longest window a report may cover: 366 days.
///
/// Not the reporting interval: the reference reporter (langgraph-api) adds
/// its counts back after a failed send and keeps its window's start, so its
/// next report spans the whole outage, and an air-gapped or unreachable
/// site can be cut off for months. A window refused for its length would
/// be refused again on every retry, only longer, and those counts would
/// never land; so the bound is far above any outage an operator leaves
/// unfixed, a year (and a leap day), and what it refuses is a clock or a
/// client that is wrong, such as a 100-year window.
pub(crate) const MAX_WINDOW: TimeDelta = TimeDelta::days(366);

/// Most digits of a fraction of a second: nanoseconds, the finest a
/// timestamp is kept at.
const MAX_FRACTION_DIGITS: usize = 9;

/// RFC 3339 with an upper-case `T`, seconds, at most nine fractional
/// digits, and `Z` or a numeric offset: `2025-01-06T09:00:00Z`,
/// `2026-11-30T02:21:40.123456+00:00`. Returns the instant in UTC and
/// whether it was written with `Z`. The instant's UTC form must be an
/// RFC 3339 timestamp too (years 0000 to 9999): an offset must not carry
/// it out of range, as `9999-12-31T23:59:59-23:59` would.
fn timestamp(field: &str, v: &Value) -> Result<(DateTime<Utc>, bool), Invalid> {
    let Value::String(s) = v else {
        return Err(wrong(&format!("`{field}`"), "an RFC 3339 string", v));
    };
    let zulu = s.ends_with('Z');
    let offset = s.len() > 6 && {
        let tail = &s.as_bytes()[s.len() - 6..];
        matches!(tail[0], b'+' | b'-') && tail[3] == b':'
    };
    if s.as_bytes().get(10) != Some(&b'T') || !(zulu || offset) {
        return Err(shape(format!(
            "`{field}` must be RFC 3339 like 2025-01-06T09:00:00Z or \
             2025-01-06T09:00:00.123456+00:00 (with 'T', and 'Z' or a numeric offset), found {}",
            shown(s)
        )));
    }
    let fraction = s.split_once('.').map_or(0, |(_, rest)| {
        rest.bytes().take_while(u8::is_ascii_digit).count()
    });
    if fraction > MAX_FRACTION_DIGITS {
        return Err(shape(format!(
            "`{field}` has {fraction} fractional digits; at most {MAX_FRACTION_DIGITS} \
             (nanoseconds) are allowed, found {}",
            shown(s)
        )));
    }
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| {
            shape(format!(
                "`{field}` is not a valid RFC 3339 timestamp ({e}), found {}",
                shown(s)
            ))
        })?
        .with_timezone(&Utc);
    if !(0..=9999).contains(&t.year()) {
        return Err(shape(format!(
            "`{field}` is {} in UTC, outside RFC 3339's years 0000 to 9999; found {}",
            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            shown(s)
        )));
    }
    Ok((t, zulu))
}

/// Checks a license verification body: exactly `{"license": "<string>"}`
/// ([`VerifyRequest`]). Returns the license.
pub(crate) fn validate_verify(value: Value) -> Result<Secret, Invalid> {
    // Checked first: serde would quote a bare string, which may be a key.
    if !value.is_object() {
        return Err(wrong("verification body", "a JSON object", &value));
    }
    let VerifyRequest { license } = serde_json::from_value(value).map_err(|e| {
        shape(format!(
            "verification body (`{{\"license\": \"...\"}}`): {e}"
        ))
    })?;
    if license.expose().is_empty() {
        return Err(shape("`license` must not be empty"));
    }
    Ok(license)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "license": "lcl_secret_license_key_1234",
            "from_timestamp": "2025-01-06T09:00:00Z",
            "to_timestamp": "2025-01-06T10:00:00Z",
            "tags": {"langgraph.platform.tenant_id": "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1", "a": ""},
            "measures": {"langgraph.platform.runs": 150, "big": u64::MAX},
            "logs": [{"level": "info"}]
        })
    }

    #[test]
    fn accepts_the_spec_example_shape() {
        let r = validate_report(good()).unwrap();
        assert_eq!(r.credential_field, CredentialField::License);
        assert_eq!(r.measures["big"], u64::MAX);
        let red = r.record(r.dialect(Dialect::Published), &[]);
        assert_eq!(red["license"], "lcl_…1234");
        assert_eq!(red["dialect"], "published");
        assert_eq!(red["measures"], good()["measures"]);
    }

    #[test]
    fn long_names_are_cut_outside_the_quotes() {
        let exact = "é".repeat(MAX_NAME_IN_MESSAGE);
        assert_eq!(shown(&exact), format!("{exact:?}"));
        assert_eq!(shown(&format!("{exact}x")), format!("{exact:?}…"));
    }

    #[test]
    fn strict_parse_refuses_duplicate_keys_at_any_depth() {
        let Invalid(e) = parse_json(br#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert!(e.contains("duplicate key \"b\""), "{e}");
        for bad in [&b"{nope"[..], b""] {
            let Invalid(e) = parse_json(bad).unwrap_err();
            assert!(e.contains("not valid JSON"), "{e}");
        }
        assert_eq!(
            parse_json(br#"[1, -2, 2.5, "x", null, true, {}]"#).unwrap(),
            json!([1, -2, 2.5, "x", null, true, {}])
        );
        // deep nesting hits serde_json's recursion limit, not the stack
        let deep = "[".repeat(100_000);
        assert!(parse_json(deep.as_bytes()).is_err());
    }

    #[test]
    fn float_measures_are_refused_even_if_whole() {
        for bad in [json!(1.0), json!(1e3), json!(-1), json!("3"), json!(null)] {
            let mut v = good();
            v["measures"]["x"] = bad.clone();
            let e = validate_report(v).unwrap_err();
            assert!(e.0.contains("`measures.\"x\"`"), "{bad}: {e:?}");
        }
        // larger than u64::MAX parses as a float
        let text = serde_json::to_string(&good())
            .unwrap()
            .replace("18446744073709551615", "18446744073709551616");
        let e = validate_report(parse_json(text.as_bytes()).unwrap()).unwrap_err();
        assert!(e.0.contains("measures.\"big\""), "{e:?}");
    }

    #[test]
    fn messages_never_contain_the_credential() {
        let mut v = good();
        v["api_key"] = json!("lsv2_secret_api_key");
        let e = validate_report(v).unwrap_err();
        assert!(!e.0.contains("secret"), "{e:?}");
        let mut v = good();
        v["license"] = json!(["lcl_secret"]);
        let e = validate_report(v).unwrap_err();
        assert!(!e.0.contains("secret"), "{e:?}");
        // The credential put in a field whose value is quoted back.
        for field in ["from_timestamp", "to_timestamp"] {
            let mut v = good();
            v[field] = v["license"].clone();
            let e = validate_report(v).unwrap_err();
            assert!(e.0.contains(field), "{e:?}");
            assert!(!e.0.contains("secret_license"), "{e:?}");
        }
        let mut v = good();
        v["tags"]["langgraph.platform.tenant_id"] = v["license"].clone();
        let e = validate_report(v).unwrap_err();
        assert!(!e.0.contains("secret_license"), "{e:?}");
    }

    #[test]
    fn uuid_tags_in_any_form_are_stored_in_one() {
        let canonical = "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1";
        for form in [
            canonical,
            "3A1C2B6F-4430-4B92-8A5B-79B8B567BBC1",
            "{3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1}",
            "urn:uuid:3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1",
            "3a1c2b6f44304b928a5b79b8b567bbc1",
        ] {
            let mut v = good();
            for tag in UUID_TAGS {
                v["tags"][tag] = json!(form);
            }
            let r = validate_report(v).unwrap();
            for tag in UUID_TAGS {
                assert_eq!(r.value["tags"][tag], canonical, "{form} in {tag}");
            }
        }
        let mut v = good();
        v["tags"]["langgraph.platform.tenant_id"] = json!("tenant-1");
        assert!(validate_report(v).is_err());
    }

    #[test]
    fn a_window_may_span_a_year_and_a_day_but_not_more() {
        let window = |from: &str, to: &str| {
            let mut v = good();
            v["from_timestamp"] = json!(from);
            v["to_timestamp"] = json!(to);
            validate_report(v)
        };
        // An outage of a leap year, as the reference reporter's next window
        // would span it.
        assert!(window("2027-06-01T00:00:00Z", "2028-06-01T00:00:00Z").is_ok());
        let Invalid(e) = window("2027-06-01T00:00:00Z", "2028-06-01T00:00:01Z").unwrap_err();
        assert!(e.contains("366 days long; at most 366 days"), "{e}");
        let Invalid(e) = window("1925-01-06T09:00:00Z", "2025-01-06T09:00:00Z").unwrap_err();
        assert!(e.contains("36525 days long"), "{e}");
    }

    #[test]
    fn timestamps_in_either_form_become_utc() {
        let ok = |s: &str| {
            timestamp("t", &json!(s)).map(|(t, z)| (beacon_meter::wire::format_timestamp(&t), z))
        };
        assert_eq!(
            ok("2025-01-06T09:00:00Z"),
            Ok(("2025-01-06T09:00:00Z".into(), true))
        );
        assert_eq!(
            ok("2026-11-30T02:21:40.123456+00:00"),
            Ok(("2026-11-30T02:21:40.123456Z".into(), false))
        );
        assert_eq!(
            ok("2025-01-06T00:30:00.000000001-01:00"),
            Ok(("2025-01-06T01:30:00.000000001Z".into(), false))
        );
        // The ends of RFC 3339's range, reached from either side.
        assert_eq!(
            ok("9999-12-31T23:59:59+00:00"),
            Ok(("9999-12-31T23:59:59Z".into(), false))
        );
        assert_eq!(
            ok("0000-01-01T00:00:00-00:00"),
            Ok(("0000-01-01T00:00:00Z".into(), false))
        );
        assert_eq!(
            ok("0000-01-01T23:59:00+23:59"),
            Ok(("0000-01-01T00:00:00Z".into(), false))
        );
        for bad in [
            "2025-01-06T09:00:00",
            "2025-01-06T09:00:00+0100",
            "2025-01-06T09:00:00.0000000001Z",
            "2025-01-06 09:00:00+00:00",
            "2025-02-29T09:00:00+00:00",
            "2025-01-06T09:00:00+24:00",
            "+00:00",
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+23:59",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_dialect_follows_the_field_the_times_and_the_path() {
        let published = validate_report(good()).unwrap();
        assert_eq!(published.dialect(Dialect::Published), Dialect::Published);
        assert_eq!(
            published.dialect(Dialect::LanggraphApi),
            Dialect::LanggraphApi
        );
        let mut v = good();
        let license = v.as_object_mut().unwrap().remove("license").unwrap();
        v["license_key"] = license;
        let r = validate_report(v).unwrap();
        assert_eq!(r.credential_field.kind(), "license");
        assert_eq!(r.dialect(Dialect::Published), Dialect::LanggraphApi);
        assert_eq!(
            r.record(Dialect::LanggraphApi, &[])["license_key"],
            "lcl_…1234"
        );
        let mut v = good();
        v["to_timestamp"] = json!("2025-01-06T10:00:00+00:00");
        let r = validate_report(v).unwrap();
        assert_eq!(r.dialect(Dialect::Published), Dialect::LanggraphApi);
        assert_eq!(
            r.record(Dialect::LanggraphApi, &[])["to_timestamp"],
            "2025-01-06T10:00:00Z"
        );
    }

    #[test]
    fn verify_body() {
        let license = validate_verify(json!({"license": "lcl_x"})).unwrap();
        assert_eq!(license.expose(), "lcl_x");
        for bad in [
            json!({}),
            json!({"license": 1}),
            json!({"license": ""}),
            json!({"license": "x", "y": 1}),
            json!("lcl_x"),
        ] {
            assert!(validate_verify(bad).is_err());
        }
    }
}
