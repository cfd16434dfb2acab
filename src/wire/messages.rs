//! The request and response bodies of license verification
//! (`POST {beacon}/v1/beacon/verify`) and API-key verification
//! (`POST {auth}/auth`).
//!
//! Pure data: may import serde and `crate::secret`; no I/O.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// The body of `POST {beacon}/v1/beacon/verify`: `{ "license": "<LICENSE_KEY>" }`.
///
/// `Debug` shows the key redacted; serializing it writes the full key, since
/// that is what goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The enterprise license key to verify.
    #[serde(with = "secret_string")]
    pub license: Secret,
}

/// The `200` answer to a license verification: `{ "token": "<JWT>" }`.
///
/// The token is a short-lived JWT that stands in for repeated license checks;
/// it is held as a [`Secret`] so it never reaches a log. Fields other than
/// `token` are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// The JWT.
    #[serde(with = "secret_string")]
    pub token: Secret,
}

/// The `200` answer to an API-key verification:
/// `{ "org_config": { "org_id": "…", … } }`.
///
/// Unknown fields beside `org_config` are accepted and ignored, as the spec
/// requires; those inside it are kept ([`OrgConfig::other`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    /// The organization the API key belongs to.
    pub org_config: OrgConfig,
}

/// The organization details of an [`AuthResponse`]: `org_id`, and every
/// other detail kept as it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgConfig {
    /// The tenant the usage belongs to (a UUID, checked by the client).
    pub org_id: String,
    /// The further organization details, unknown to this crate.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl OrgConfig {
    /// The whole `org_config` object, `org_id` included.
    pub fn into_map(self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = self.other;
        map.insert("org_id".to_owned(), self.org_id.into());
        map
    }
}

/// Serde for a [`Secret`] that travels as a plain JSON string.
pub(crate) mod secret_string {
    use crate::secret::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_request_round_trips_and_redacts() {
        let key = "lcl_0123456789abcdef9f2a";
        let req = VerifyRequest {
            license: Secret::new(key),
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(json, format!(r#"{{"license":"{key}"}}"#));
        assert_eq!(serde_json::from_str::<VerifyRequest>(&json).unwrap(), req);
        assert!(!format!("{req:?}").contains(key));
        assert!(serde_json::from_str::<VerifyRequest>(r#"{"license":"k","x":1}"#).is_err());
        assert!(serde_json::from_str::<VerifyRequest>(r#"{}"#).is_err());
    }

    #[test]
    fn verify_response_ignores_extra_fields_and_redacts() {
        let token = "header.payload.signature";
        let resp: VerifyResponse =
            serde_json::from_str(&format!(r#"{{"token":"{token}","extra":true}}"#)).unwrap();
        assert_eq!(resp.token.expose(), token);
        assert!(!format!("{resp:?}").contains(token));
    }

    #[test]
    fn auth_response_ignores_unknown_fields() {
        let json = r#"{
            "org_config": {"org_id": "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1",
                           "max_workspaces": 3, "flags": {"a": [1, 2]}},
            "other": null
        }"#;
        let resp: AuthResponse = serde_json::from_str(json).unwrap();
        assert_eq!(
            resp.org_config.org_id,
            "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1"
        );
        assert_eq!(resp.org_config.other["max_workspaces"], 3);
        let map = resp.org_config.into_map();
        assert_eq!(map.len(), 3);
        assert_eq!(map["org_id"], "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1");
        assert!(serde_json::from_str::<AuthResponse>(r#"{"org_config":{}}"#).is_err());
        assert!(serde_json::from_str::<AuthResponse>(r#"{}"#).is_err());
    }
}
