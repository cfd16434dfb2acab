//! API-key verification: `POST` to the key's verify URL (`{auth}/auth`,
//! spelled in `config::Endpoint`) with `X-Api-Key`, answered by the
//! organization the key belongs to.

use super::flight::SingleFlight;
use super::http::{ClientError, HttpClient, Refusal, check_url, scrub, scrub_json};
use super::status::Class;
use crate::secret::Secret;
use crate::wire::AuthResponse;
use reqwest::header::HeaderValue;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use url::Url;

/// The organization an API key belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgInfo {
    /// `org_config.org_id`: the tenant the usage belongs to.
    pub org_id: uuid::Uuid,
    /// The whole `org_config` object, unknown fields included, with the API
    /// key redacted wherever the service echoed it.
    pub org_config: serde_json::Map<String, serde_json::Value>,
}

/// Why an API key could not be verified. Every text is free of the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// `401` or `403`: the auth service refused the key.
    #[error(
        "the auth service rejected the API key (HTTP {status}): {message}; check the API key \
         (LANGSMITH_CONTROL_PLANE_API_KEY, else LANGSMITH_API_KEY, else LANGCHAIN_API_KEY) and \
         the auth endpoint (LANGSMITH_AUTH_ENDPOINT, else LANGCHAIN_ENDPOINT, else \
         LANGSMITH_ENDPOINT)"
    )]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The service's answer, one line, scrubbed.
        message: String,
    },
    /// No answer: network error, timeout, refused redirect, `408`, `429` or
    /// `5xx`. Worth trying again later.
    #[error("the API key could not be verified, the auth service is unreachable: {reason}")]
    Unreachable {
        /// What went wrong.
        reason: String,
        /// The service's `Retry-After` (seconds or an HTTP date), uncapped:
        /// the reporter waits that long, at most its `RetryPolicy::cap`.
        retry_after: Option<Duration>,
    },
    /// Any other status (another `4xx`, an unfollowed `3xx`).
    #[error(
        "the auth service answered the API key check with HTTP {status}: {message}; check the \
         auth endpoint (LANGSMITH_AUTH_ENDPOINT, else LANGCHAIN_ENDPOINT, else LANGSMITH_ENDPOINT)"
    )]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// The service's answer, one line, scrubbed.
        message: String,
    },
    /// A `2xx` answer without a usable `org_config.org_id` UUID, or over
    /// the size cap.
    #[error("the auth service's answer is unusable: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// The key cannot travel in an HTTP header.
    #[error(
        "the API key contains characters not allowed in an HTTP header; check the API key \
         (LANGSMITH_CONTROL_PLANE_API_KEY, else LANGSMITH_API_KEY, else LANGCHAIN_API_KEY)"
    )]
    InvalidKey,
}

impl ApiKeyError {
    /// The service's `Retry-After`, if it sent one with an answer that gave
    /// no verdict ([`ApiKeyError::Unreachable`]).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiKeyError::Unreachable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The API key's column of the [status table](super::status): only a
    /// refused credential rejects the key; any other verdict points at the
    /// endpoint.
    fn refused(refusal: Refusal) -> ApiKeyError {
        match refusal {
            Refusal::Unreachable {
                reason,
                retry_after,
            } => ApiKeyError::Unreachable {
                reason,
                retry_after,
            },
            Refusal::Malformed(reason) => ApiKeyError::Malformed { reason },
            Refusal::Status {
                class: Class::CredentialRefused,
                code,
                message,
            } => ApiKeyError::Rejected {
                status: code,
                message,
            },
            Refusal::Status { code, message, .. } => ApiKeyError::UnexpectedStatus {
                status: code,
                message,
            },
        }
    }
}

/// Verifies an API key once per process: the first success is kept for
/// the life of the verifier (and its clones). Concurrent callers share one
/// request and its outcome; a failure is not kept, so a later call tries
/// again. Construction opens no connection. `Debug` shows the key redacted.
#[derive(Clone, Debug)]
pub struct ApiKeyVerifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: HttpClient,
    url: Url,
    key: Secret,
    verified: OnceLock<OrgInfo>,
    flight: SingleFlight<Result<OrgInfo, ApiKeyError>>,
}

impl ApiKeyVerifier {
    /// A verifier for `api_key` against `verify_url`, the whole URL
    /// ([`crate::config::Endpoint::verify_url`]: `{auth}/auth`). Fails only
    /// on an insecure URL; opens no connection.
    pub fn new(http: HttpClient, verify_url: &Url, api_key: Secret) -> Result<Self, ClientError> {
        check_url(verify_url)?;
        let url = verify_url.clone();
        Ok(ApiKeyVerifier {
            inner: Arc::new(Inner {
                http,
                url,
                key: api_key,
                verified: OnceLock::new(),
                flight: SingleFlight::new(),
            }),
        })
    }

    /// The key's organization: from memory once verified, else from one
    /// request shared with concurrent callers.
    pub async fn verify(&self) -> Result<OrgInfo, ApiKeyError> {
        if let Some(org) = self.cached() {
            return Ok(org);
        }
        let inner = &self.inner;
        let request = || async {
            let outcome = inner.verify_once().await;
            if let Ok(org) = &outcome {
                let _ = inner.verified.set(org.clone());
            }
            outcome
        };
        inner.flight.run(|| self.cached().map(Ok), request).await
    }

    /// The organization, if a verification has succeeded. Never does I/O.
    pub fn cached(&self) -> Option<OrgInfo> {
        self.inner.verified.get().cloned()
    }
}

impl Inner {
    /// One request to the auth service, its answer sorted by the status
    /// table (only `401`/`403` reject the key; see [`super::status`]).
    async fn verify_once(&self) -> Result<OrgInfo, ApiKeyError> {
        let secret = &self.key;
        let mut header =
            HeaderValue::from_str(secret.expose()).map_err(|_| ApiKeyError::InvalidKey)?;
        header.set_sensitive(true);
        let request = self
            .http
            .post(&self.url)
            .map(|r| r.header("X-Api-Key", header));
        let shape = r#"is not {"org_config": {"org_id": "<UUID>", …}}"#;
        let answer = self.http.verify_request(&self.url, request, secret, shape);
        let parsed: AuthResponse = answer.await.map_err(ApiKeyError::refused)?;
        let org = parsed.org_config;
        let org_id = uuid::Uuid::parse_str(&org.org_id).map_err(|_| {
            // Scrubbed before it is cut: a cut key is no longer found.
            let shown = crate::wire::truncate::cut_chars(&scrub(&org.org_id, secret, false), 64);
            ApiKeyError::Malformed {
                reason: format!("org_config.org_id {shown:?} is not a UUID"),
            }
        })?;
        // Kept and shown (`Debug`): the key is redacted wherever the service
        // echoed it.
        let mut org_config = serde_json::Value::Object(org.into_map());
        scrub_json(&mut org_config, secret);
        let serde_json::Value::Object(org_config) = org_config else {
            unreachable!("scrubbing keeps an object an object")
        };
        Ok(OrgInfo { org_id, org_config })
    }
}
