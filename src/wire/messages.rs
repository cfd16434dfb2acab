//! The request and response bodies of license verification
//! (`POST {beacon}/v1/beacon/verify`) and API-key verification
//! (`POST {auth}/auth`).

use crate::secret::Secret;
use chrono::{DateTime, Utc};
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

impl VerifyResponse {
    /// When the token expires: its JWT `exp` claim (seconds since the
    /// epoch). The signature is not checked; the client only needs to know
    /// when to verify again.
    pub fn expires_at(&self) -> Result<DateTime<Utc>, TokenError> {
        jwt_expiry(self.token.expose())
    }
}

/// Why a verification token's expiry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not three base64url sections separated by dots.
    #[error(
        "the verification token is not a JWT (expected three dot-separated base64url sections); \
         the Beacon answered with something else: verify the license again"
    )]
    NotAJwt,
    /// The JWT payload is not base64url-encoded JSON.
    #[error(
        "the verification token's payload is not base64url JSON ({0}); verify the license again"
    )]
    BadPayload(String),
    /// The payload has no usable `exp` claim.
    #[error(
        "the verification token has no integer `exp` claim (seconds since the epoch) in range; \
         treat it as expired and verify the license again"
    )]
    NoExpiry,
}

fn jwt_expiry(token: &str) -> Result<DateTime<Utc>, TokenError> {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::NotAJwt);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| TokenError::BadPayload(e.to_string()))?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|e| TokenError::BadPayload(e.to_string()))?;
    let exp = claims
        .get("exp")
        .and_then(|v| v.as_i64())
        .ok_or(TokenError::NoExpiry)?;
    DateTime::from_timestamp(exp, 0).ok_or(TokenError::NoExpiry)
}

/// The `200` answer to an API-key verification:
/// `{ "org_config": { "org_id": "…", … } }`.
///
/// Unknown fields, inside `org_config` and beside it, are accepted and
/// ignored, as the spec requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    /// The organization the API key belongs to.
    pub org_config: OrgConfig,
}

/// The organization details of an [`AuthResponse`]; only `org_id` is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgConfig {
    /// The tenant the usage belongs to.
    pub org_id: String,
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
    use base64::Engine as _;

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            e.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            e.encode(payload),
            e.encode("signature")
        )
    }

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
    fn verify_response_reads_the_expiry() {
        let token = jwt(r#"{"sub":"x","exp":1736154000}"#);
        let resp: VerifyResponse =
            serde_json::from_str(&format!(r#"{{"token":"{token}","extra":true}}"#)).unwrap();
        assert_eq!(
            resp.expires_at().unwrap(),
            DateTime::parse_from_rfc3339("2025-01-06T09:00:00Z").unwrap()
        );
        assert!(!format!("{resp:?}").contains(&token));
    }

    #[test]
    fn verify_response_expiry_errors() {
        let resp = |t: &str| VerifyResponse {
            token: Secret::new(t),
        };
        assert_eq!(resp("abc").expires_at(), Err(TokenError::NotAJwt));
        assert_eq!(resp("a.b.c.d").expires_at(), Err(TokenError::NotAJwt));
        assert!(matches!(
            resp("a.!!!.c").expires_at(),
            Err(TokenError::BadPayload(_))
        ));
        assert_eq!(
            resp(&jwt(r#"{"sub":"x"}"#)).expires_at(),
            Err(TokenError::NoExpiry)
        );
        assert_eq!(
            resp(&jwt(r#"{"exp":"soon"}"#)).expires_at(),
            Err(TokenError::NoExpiry)
        );
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
        assert!(serde_json::from_str::<AuthResponse>(r#"{"org_config":{}}"#).is_err());
        assert!(serde_json::from_str::<AuthResponse>(r#"{}"#).is_err());
    }
}
