//! The usage report body (`POST /v1/metadata/submit`).

use crate::secret::Secret;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

    /// The JSON field the credential travels in.
    pub fn field(&self) -> &'static str {
        match self {
            Credential::License(_) => "license",
            Credential::ApiKey(_) => "api_key",
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

#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'a str>,
    #[serde(flatten)]
    body: &'a ReportBody,
}

/// The exact bytes of a usage report: `body` plus the credential field.
/// A pure function: the same inputs always give the same bytes.
pub fn encode_report(credential: &Credential, body: &ReportBody) -> Vec<u8> {
    let (license, api_key) = match credential {
        Credential::License(s) => (Some(s.expose()), None),
        Credential::ApiKey(s) => (None, Some(s.expose())),
    };
    serde_json::to_vec(&WireOut {
        license,
        api_key,
        body,
    })
    .expect("a report of strings, integers and JSON objects always serializes")
}

/// RFC 3339 in UTC with a `Z` suffix; fractional seconds only when present
/// (`2025-01-06T09:00:00Z`, `2025-01-06T09:00:00.250Z`).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

mod rfc3339_z {
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
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| D::Error::custom(format!("timestamp {s:?} is not RFC 3339: {e}")))
    }
}
