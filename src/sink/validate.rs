//! Strict checks of request bodies against the Beacon protocol spec.
//!
//! Every error message names the field that is wrong and never contains a
//! credential's value.

use chrono::{DateTime, Utc};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Why a body was refused: malformed JSON (`400`) or a well-formed body
/// that breaks the protocol (`422`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Not JSON at all.
    Syntax(String),
    /// JSON, but not what the protocol allows.
    Shape(String),
}

#[cfg(test)]
impl Invalid {
    pub(crate) fn message(&self) -> &str {
        match self {
            Invalid::Syntax(m) | Invalid::Shape(m) => m,
        }
    }
}

/// Which field carries the credential of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialField {
    License,
    ApiKey,
}

impl CredentialField {
    pub(crate) fn name(self) -> &'static str {
        match self {
            CredentialField::License => "license",
            CredentialField::ApiKey => "api_key",
        }
    }
}

/// A report that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct ValidReport {
    /// The report as received.
    pub(crate) value: Value,
    pub(crate) credential_field: CredentialField,
    pub(crate) credential: String,
    pub(crate) measures: BTreeMap<String, u64>,
}

impl ValidReport {
    /// The report with its credential replaced by a redacted form: what the
    /// sink stores, shows and writes to its JSONL file.
    pub(crate) fn redacted(&self) -> Value {
        let mut value = self.value.clone();
        if let Value::Object(map) = &mut value {
            map.insert(
                self.credential_field.name().to_owned(),
                Value::String(crate::secret::Secret::new(self.credential.as_str()).redacted()),
            );
        }
        value
    }
}

const MAX_NAME_IN_MESSAGE: usize = 64;

/// A key for an error message: quoted, shortened if long.
fn shown(key: &str) -> String {
    if key.chars().count() > MAX_NAME_IN_MESSAGE {
        let head: String = key.chars().take(MAX_NAME_IN_MESSAGE).collect();
        format!("{head:?}…")
    } else {
        format!("{key:?}")
    }
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
        Err(e) if e.is_data() => Err(Invalid::Shape(format!("request body: {e}"))),
        Err(e) => Err(Invalid::Syntax(format!(
            "request body is not valid JSON: {e}"
        ))),
    }
}

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
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
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
const UUID_TAGS: [&str; 2] = [
    "langgraph.platform.tenant_id",
    "langgraph.platform.project_id",
];

fn shape(msg: impl Into<String>) -> Invalid {
    Invalid::Shape(msg.into())
}

/// Checks a usage report (`POST /v1/metadata/submit`) against the spec:
/// exactly the keys `license` or `api_key` (one of them), `from_timestamp`,
/// `to_timestamp`, `tags`, `measures`, `logs`, each of the right type.
///
/// A refusal quotes the offending value or name; if that is the report's
/// own credential (a client that put its key in the wrong field), it is
/// shown redacted.
pub(crate) fn validate_report(value: Value) -> Result<ValidReport, Invalid> {
    let credentials: Vec<crate::secret::Secret> = ["license", "api_key"]
        .iter()
        .filter_map(|f| value.get(f)?.as_str())
        .filter(|s| !s.is_empty())
        .map(crate::secret::Secret::new)
        .collect();
    check_report(value).map_err(|e| {
        let scrub = |m: String| credentials.iter().fold(m, |m, c| c.scrub(&m));
        match e {
            Invalid::Syntax(m) => Invalid::Syntax(scrub(m)),
            Invalid::Shape(m) => Invalid::Shape(scrub(m)),
        }
    })
}

fn check_report(value: Value) -> Result<ValidReport, Invalid> {
    let Value::Object(map) = &value else {
        return Err(shape(format!(
            "report body must be a JSON object, found {}",
            type_name(&value)
        )));
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !REQUIRED.contains(&k.as_str()) && *k != "license" && *k != "api_key")
    {
        return Err(shape(format!(
            "unknown field {} (allowed: license or api_key, from_timestamp, to_timestamp, tags, measures, logs)",
            shown(unknown)
        )));
    }
    let (credential_field, credential) = match (map.get("license"), map.get("api_key")) {
        (Some(_), Some(_)) => {
            return Err(shape(
                "exactly one of `license` and `api_key` must be present, found both",
            ));
        }
        (None, None) => {
            return Err(shape(
                "exactly one of `license` and `api_key` must be present, found neither",
            ));
        }
        (Some(v), None) => (CredentialField::License, v),
        (None, Some(v)) => (CredentialField::ApiKey, v),
    };
    let credential = match credential {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::String(_) => {
            return Err(shape(format!(
                "`{}` must not be empty",
                credential_field.name()
            )));
        }
        other => {
            return Err(shape(format!(
                "`{}` must be a string, found {}",
                credential_field.name(),
                type_name(other)
            )));
        }
    };
    for field in REQUIRED {
        if !map.contains_key(field) {
            return Err(shape(format!("missing field `{field}`")));
        }
    }
    let from = timestamp("from_timestamp", &map["from_timestamp"])?;
    let to = timestamp("to_timestamp", &map["to_timestamp"])?;
    if from >= to {
        return Err(shape(format!(
            "`from_timestamp` ({}) must be before `to_timestamp` ({})",
            crate::wire::format_timestamp(&from),
            crate::wire::format_timestamp(&to)
        )));
    }

    let Value::Object(tags) = &map["tags"] else {
        return Err(shape(format!(
            "`tags` must be an object of strings, found {}",
            type_name(&map["tags"])
        )));
    };
    for (k, v) in tags {
        let Value::String(s) = v else {
            return Err(shape(format!(
                "`tags.{}` must be a string, found {}",
                shown(k),
                type_name(v)
            )));
        };
        if UUID_TAGS.contains(&k.as_str()) && !s.is_empty() && uuid::Uuid::try_parse(s).is_err() {
            return Err(shape(format!(
                "`tags.{k}` must be a UUID or empty, found {}",
                shown(s)
            )));
        }
    }

    let Value::Object(raw_measures) = &map["measures"] else {
        return Err(shape(format!(
            "`measures` must be an object of non-negative integers, found {}",
            type_name(&map["measures"])
        )));
    };
    let mut measures = BTreeMap::new();
    for (k, v) in raw_measures {
        // `as_u64` is `None` for negatives and for every float, even `1.0`
        // and numbers above u64::MAX (which serde_json parses as floats).
        match v.as_u64() {
            Some(n) => {
                measures.insert(k.clone(), n);
            }
            None => {
                let found = match v {
                    Value::Number(n) => format!("{} {n}", type_name(v)),
                    other => type_name(other).to_owned(),
                };
                return Err(shape(format!(
                    "`measures.{}` must be a non-negative integer of at most {}, found {found}",
                    shown(k),
                    u64::MAX
                )));
            }
        }
    }

    let Value::Array(logs) = &map["logs"] else {
        return Err(shape(format!(
            "`logs` must be an array of objects, found {}",
            type_name(&map["logs"])
        )));
    };
    if let Some((i, v)) = logs.iter().enumerate().find(|(_, v)| !v.is_object()) {
        return Err(shape(format!(
            "`logs[{i}]` must be an object, found {}",
            type_name(v)
        )));
    }

    Ok(ValidReport {
        value,
        credential_field,
        credential,
        measures,
    })
}

/// RFC 3339, UTC, with an upper-case `T` and `Z`: `2025-01-06T09:00:00Z`.
fn timestamp(field: &str, v: &Value) -> Result<DateTime<Utc>, Invalid> {
    let Value::String(s) = v else {
        return Err(shape(format!(
            "`{field}` must be an RFC 3339 string, found {}",
            type_name(v)
        )));
    };
    if !s.ends_with('Z') || s.as_bytes().get(10) != Some(&b'T') {
        return Err(shape(format!(
            "`{field}` must be RFC 3339 in UTC like 2025-01-06T09:00:00Z (with 'T' and a 'Z' suffix), found {}",
            shown(s)
        )));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            shape(format!(
                "`{field}` is not a valid RFC 3339 timestamp ({e}), found {}",
                shown(s)
            ))
        })
}

/// Checks a license verification body: exactly `{"license": "<string>"}`.
/// Returns the license.
pub(crate) fn validate_verify(value: Value) -> Result<String, Invalid> {
    let Value::Object(map) = value else {
        return Err(shape(format!(
            "verification body must be a JSON object, found {}",
            type_name(&value)
        )));
    };
    if let Some(unknown) = map.keys().find(|k| *k != "license") {
        return Err(shape(format!(
            "unknown field {} (the body is {{\"license\": \"...\"}})",
            shown(unknown)
        )));
    }
    match map.get("license") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(shape("`license` must not be empty")),
        Some(other) => Err(shape(format!(
            "`license` must be a string, found {}",
            type_name(other)
        ))),
        None => Err(shape("missing field `license`")),
    }
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
        let red = r.redacted();
        assert_eq!(red["license"], "lcl_…1234");
        assert_eq!(red["measures"], good()["measures"]);
    }

    #[test]
    fn strict_parse_refuses_duplicate_keys_at_any_depth() {
        let e = parse_json(br#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert!(
            matches!(&e, Invalid::Shape(m) if m.contains("duplicate key \"b\"")),
            "{e:?}"
        );
        assert!(matches!(parse_json(b"{nope"), Err(Invalid::Syntax(_))));
        assert!(matches!(parse_json(b""), Err(Invalid::Syntax(_))));
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
            assert!(e.message().contains("`measures.\"x\"`"), "{bad}: {e:?}");
        }
        // larger than u64::MAX parses as a float
        let text = serde_json::to_string(&good())
            .unwrap()
            .replace("18446744073709551615", "18446744073709551616");
        let e = validate_report(parse_json(text.as_bytes()).unwrap()).unwrap_err();
        assert!(e.message().contains("measures.\"big\""), "{e:?}");
    }

    #[test]
    fn messages_never_contain_the_credential() {
        let mut v = good();
        v["api_key"] = json!("lsv2_secret_api_key");
        let e = validate_report(v).unwrap_err();
        assert!(!e.message().contains("secret"), "{e:?}");
        let mut v = good();
        v["license"] = json!(["lcl_secret"]);
        let e = validate_report(v).unwrap_err();
        assert!(!e.message().contains("secret"), "{e:?}");
        // The credential put in a field whose value is quoted back.
        for field in ["from_timestamp", "to_timestamp"] {
            let mut v = good();
            v[field] = v["license"].clone();
            let e = validate_report(v).unwrap_err();
            assert!(e.message().contains(field), "{e:?}");
            assert!(!e.message().contains("secret_license"), "{e:?}");
        }
        let mut v = good();
        v["tags"]["langgraph.platform.tenant_id"] = v["license"].clone();
        let e = validate_report(v).unwrap_err();
        assert!(!e.message().contains("secret_license"), "{e:?}");
    }

    #[test]
    fn verify_body() {
        assert_eq!(
            validate_verify(json!({"license": "lcl_x"})).unwrap(),
            "lcl_x"
        );
        for bad in [
            json!({}),
            json!({"license": 1}),
            json!({"license": ""}),
            json!({"license": "x", "y": 1}),
            json!("lcl_x"),
        ] {
            assert!(matches!(validate_verify(bad), Err(Invalid::Shape(_))));
        }
    }
}
