//! The usage report body (`POST /v1/metadata/submit`).
//!
//! Layer: wire (pure). May import serde, serde_json, chrono,
//! `crate::secret` and `crate::meter`; must not do I/O or import the shell.

use super::Dialect;
use crate::secret::Secret;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The JSON field an API key travels in, in both dialects.
pub const API_KEY_FIELD: &str = "api_key";

/// Who a report is sent as: a license key (to the Beacon) or an API key (to
/// the auth endpoint). It becomes the report's `license` or `api_key` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An enterprise license key: the report carries `"license"`.
    License(Secret),
    /// A LangSmith API key: the report carries `"api_key"`.
    ApiKey(Secret),
}

impl Credential {
    /// The secret itself.
    pub fn secret(&self) -> &Secret {
        match self {
            Credential::License(s) | Credential::ApiKey(s) => s,
        }
    }

    /// The same kind of credential holding `secret` instead (e.g. its
    /// redacted form, for a preview).
    pub fn with_secret(&self, secret: Secret) -> Credential {
        match self {
            Credential::License(_) => Credential::License(secret),
            Credential::ApiKey(_) => Credential::ApiKey(secret),
        }
    }

    /// The JSON field the credential travels in, in `dialect`.
    pub fn field_in(&self, dialect: Dialect) -> &'static str {
        match self {
            Credential::License(_) => dialect.license_field(),
            Credential::ApiKey(_) => API_KEY_FIELD,
        }
    }
}

/// A usage report without its credential: exactly what the spool stores and
/// what an operator reads there. [`encode_report`] adds the credential at
/// send time, so a fixed key applies to windows already spooled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// Window start, inclusive (UTC, RFC 3339 with `Z`).
    #[serde(with = "rfc3339_z")]
    pub from_timestamp: DateTime<Utc>,
    /// Window end, exclusive (UTC, RFC 3339 with `Z`).
    #[serde(with = "rfc3339_z")]
    pub to_timestamp: DateTime<Utc>,
    /// Tags: every value is a string.
    pub tags: BTreeMap<String, String>,
    /// Measures: every value is a non-negative integer.
    pub measures: BTreeMap<String, u64>,
    /// Operational log records, each a JSON object.
    pub logs: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl ReportBody {
    /// The body of a report for the window `[from, to)`: every measure of
    /// `window` (counters and gauges) under its name, plus `tags` and `logs`.
    /// Gauges whose callback panicked are absent from `window` and so from
    /// the report.
    pub fn from_window(
        window: &crate::meter::Window,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tags: BTreeMap<String, String>,
        logs: Vec<serde_json::Map<String, serde_json::Value>>,
    ) -> ReportBody {
        ReportBody {
            from_timestamp: from,
            to_timestamp: to,
            tags,
            measures: window
                .measures()
                .map(|(name, value, _)| (name.to_owned(), value))
                .collect(),
            logs,
        }
    }
}

/// A complete usage report as it travels: the credential (`license` or
/// `api_key`, exactly one) and the [`ReportBody`].
///
/// Parsing is strict: unknown keys, a missing or doubled credential, a
/// duplicated key, a non-string tag, a negative or fractional measure, or a
/// timestamp without `Z` are all rejected. Serializing gives the same bytes
/// as [`encode_report`]. `Debug` shows the credential redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// Who the report is sent as.
    pub credential: Credential,
    /// Everything else.
    pub body: ReportBody,
}

impl UsageReport {
    /// The exact bytes of this report (see [`encode_report`]).
    pub fn encode(&self) -> Vec<u8> {
        encode_report(&self.credential, &self.body)
    }

    /// Parses a report from its JSON bytes, strictly.
    pub fn parse(bytes: &[u8]) -> Result<UsageReport, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl Serialize for UsageReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOut::new(Dialect::Published, &self.credential, &self.body).serialize(s)
    }
}

impl<'de> Deserialize<'de> for UsageReport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(UsageReportVisitor)
    }
}

struct UsageReportVisitor;

impl<'de> serde::de::Visitor<'de> for UsageReportVisitor {
    type Value = UsageReport;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a usage report object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UsageReport, A::Error> {
        use serde::de::Error;
        let mut credential: Option<Credential> = None;
        let mut rest = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "license" | "api_key" => {
                    let value = Secret::new(map.next_value::<String>()?);
                    if credential.is_some() {
                        return Err(A::Error::custom(
                            "a usage report carries exactly one of \"license\" and \"api_key\", \
                             and each at most once",
                        ));
                    }
                    credential = Some(if key == "license" {
                        Credential::License(value)
                    } else {
                        Credential::ApiKey(value)
                    });
                }
                _ => {
                    let value = map.next_value::<serde_json::Value>()?;
                    if rest.contains_key(&key) {
                        return Err(A::Error::custom(format!("duplicate field `{key}`")));
                    }
                    rest.insert(key, value);
                }
            }
        }
        let credential = credential.ok_or_else(|| {
            A::Error::custom("a usage report needs a \"license\" or an \"api_key\" field")
        })?;
        let body = ReportBody::deserialize(serde_json::Value::Object(rest))
            .map_err(|e| A::Error::custom(e.to_string()))?;
        Ok(UsageReport { credential, body })
    }
}

/// A report as it travels: the credential's one field, then the body's.
#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(flatten)]
    credential: BTreeMap<&'static str, &'a str>,
    #[serde(flatten)]
    body: &'a ReportBody,
}

impl<'a> WireOut<'a> {
    /// `body` with the credential in the field `dialect` gives it.
    fn new(dialect: Dialect, credential: &'a Credential, body: &'a ReportBody) -> WireOut<'a> {
        let field = credential.field_in(dialect);
        let credential = BTreeMap::from([(field, credential.secret().expose())]);
        WireOut { credential, body }
    }
}

/// The exact bytes of a usage report in the published format: `body` plus
/// the credential field. A pure function: the same inputs always give the
/// same bytes.
pub fn encode_report(credential: &Credential, body: &ReportBody) -> Vec<u8> {
    encode_report_in(Dialect::Published, credential, body)
}

/// The exact bytes of a usage report in `dialect`: `body` plus the
/// credential field ([`Dialect::license_field`] for a license, `api_key`
/// in both). A pure function.
pub fn encode_report_in(dialect: Dialect, credential: &Credential, body: &ReportBody) -> Vec<u8> {
    serde_json::to_vec(&WireOut::new(dialect, credential, body))
        .expect("a report of strings, integers and JSON objects always serializes")
}

/// RFC 3339 in UTC with a `Z` suffix; fractional seconds only when present
/// (`2025-01-06T09:00:00Z`, `2025-01-06T09:00:00.250Z`).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(super) mod rfc3339_z {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_timestamp(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        if !s.ends_with('Z') {
            return Err(D::Error::custom(format!(
                "timestamp {s:?} must be UTC with a 'Z' suffix"
            )));
        }
        if s.as_bytes().get(10) != Some(&b'T') {
            return Err(D::Error::custom(format!(
                "timestamp {s:?} must separate date and time with 'T' (2025-01-06T09:00:00Z)"
            )));
        }
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| D::Error::custom(format!("timestamp {s:?} is not RFC 3339: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "lcl_0123456789abcdef9f2a";

    fn body() -> ReportBody {
        ReportBody {
            from_timestamp: "2025-01-06T09:00:00Z".parse().unwrap(),
            to_timestamp: "2025-01-06T09:05:00.250Z".parse().unwrap(),
            tags: BTreeMap::from([("a".to_owned(), "b".to_owned())]),
            measures: BTreeMap::from([("langgraph.platform.runs".to_owned(), 7)]),
            logs: vec![],
        }
    }

    fn report_json(extra: &str) -> String {
        format!(
            r#"{{{extra}"from_timestamp":"2025-01-06T09:00:00Z","to_timestamp":"2025-01-06T09:05:00.250Z","tags":{{"a":"b"}},"measures":{{"langgraph.platform.runs":7}},"logs":[]}}"#
        )
    }

    #[test]
    fn usage_report_round_trips_with_either_credential() {
        for credential in [
            Credential::License(Secret::new(KEY)),
            Credential::ApiKey(Secret::new(KEY)),
        ] {
            let report = UsageReport {
                credential: credential.clone(),
                body: body(),
            };
            let bytes = report.encode();
            assert_eq!(bytes, encode_report(&credential, &body()));
            assert_eq!(serde_json::to_vec(&report).unwrap(), bytes);
            assert_eq!(UsageReport::parse(&bytes).unwrap(), report);
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.starts_with(&format!(
                r#"{{"{}":"{KEY}","#,
                credential.field_in(Dialect::Published)
            )));
            assert!(text.contains(r#""to_timestamp":"2025-01-06T09:05:00.250Z""#));
            assert!(!format!("{report:?}").contains(KEY));
        }
    }

    #[test]
    fn each_dialect_names_the_license_field_and_nothing_else_changes() {
        for credential in [
            Credential::License(Secret::new(KEY)),
            Credential::ApiKey(Secret::new(KEY)),
        ] {
            for dialect in Dialect::ALL {
                let bytes = encode_report_in(dialect, &credential, &body());
                let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let obj = json.as_object().unwrap();
                assert_eq!(obj[credential.field_in(dialect)], KEY, "{dialect}");
                assert_eq!(obj.len(), 6, "one credential field plus the body: {obj:?}");
                let mut published = obj.clone();
                let v = published.remove(credential.field_in(dialect)).unwrap();
                published.insert(credential.field_in(Dialect::Published).to_owned(), v);
                let expected: serde_json::Value =
                    serde_json::from_slice(&encode_report(&credential, &body())).unwrap();
                assert_eq!(serde_json::Value::Object(published), expected);
                // Timestamps stay in the Z form in both dialects.
                assert_eq!(obj["from_timestamp"], "2025-01-06T09:00:00Z");
            }
        }
    }

    #[test]
    fn usage_report_parse_is_strict() {
        let ok = report_json(r#""license":"k","#);
        assert!(UsageReport::parse(ok.as_bytes()).is_ok());
        let bad = [
            // no credential, both, doubled
            report_json(""),
            report_json(r#""license":"k","api_key":"k","#),
            report_json(r#""license":"k","license":"k","#),
            // unknown key
            report_json(r#""license":"k","extra":1,"#),
            // credential not a string
            report_json(r#""license":7,"#),
            // duplicated body key
            report_json(r#""license":"k","logs":[],"#),
        ];
        for json in &bad {
            assert!(UsageReport::parse(json.as_bytes()).is_err(), "{json}");
        }
        let variants = [
            (
                "\"measures\":{\"langgraph.platform.runs\":7}",
                "\"measures\":{\"langgraph.platform.runs\":-1}",
            ),
            (
                "\"measures\":{\"langgraph.platform.runs\":7}",
                "\"measures\":{\"langgraph.platform.runs\":7.5}",
            ),
            (
                "\"measures\":{\"langgraph.platform.runs\":7}",
                "\"measures\":{\"langgraph.platform.runs\":\"7\"}",
            ),
            ("\"tags\":{\"a\":\"b\"}", "\"tags\":{\"a\":true}"),
            ("\"tags\":{\"a\":\"b\"}", "\"tags\":{\"a\":null}"),
            ("\"2025-01-06T09:00:00Z\"", "\"2025-01-06T09:00:00+00:00\""),
            ("\"2025-01-06T09:00:00Z\"", "\"2025-01-06 09:00:00Z\""),
            ("\"logs\":[]", "\"logs\":[1]"),
            ("\"logs\":[]", ""),
        ];
        for (from, to) in variants {
            let json = ok.replace(from, to).replace(",}", "}");
            assert_ne!(json, ok);
            assert!(UsageReport::parse(json.as_bytes()).is_err(), "{json}");
        }
    }

    #[test]
    fn from_window_maps_counters_and_gauges_by_name() {
        let mut b = crate::Meter::builder();
        let tokens = b.counter("myplatform.tokens").unwrap();
        b.gauge("langgraph.platform.py_graphs", || 4).unwrap();
        b.gauge("broken.gauge", || panic!("gauge failed")).unwrap();
        let meter = b.build();
        meter.record_run_with(3, &[(tokens, 512)]);
        meter.record_run(2);
        let window = meter.rotate();
        let from = body().from_timestamp;
        let to = body().to_timestamp;
        let logs = vec![serde_json::Map::from_iter([(
            "message".to_owned(),
            serde_json::Value::from("x"),
        )])];
        let b = ReportBody::from_window(&window, from, to, body().tags, logs.clone());
        assert_eq!(
            b.measures,
            BTreeMap::from([
                ("langgraph.platform.runs".to_owned(), 2),
                ("langgraph.platform.nodes".to_owned(), 5),
                ("myplatform.tokens".to_owned(), 512),
                ("langgraph.platform.py_graphs".to_owned(), 4),
            ])
        );
        assert_eq!((b.from_timestamp, b.to_timestamp), (from, to));
        assert_eq!(b.tags, body().tags);
        assert_eq!(b.logs, logs);
    }

    #[test]
    fn a_report_that_is_not_an_object_says_what_was_expected() {
        for json in ["[1, 2]", "\"report\"", "42", "null"] {
            let err = UsageReport::parse(json.as_bytes()).unwrap_err().to_string();
            assert!(
                err.contains("expected a usage report object"),
                "{json}: {err}"
            );
        }
    }
}
