//! API-key verification: `POST {auth}/auth` with `X-Api-Key`, answered by
//! the organization the key belongs to.

use super::http::{
    ClientError, HttpClient, answer_text, display_url, endpoint, error_chain, scrub, scrub_json,
};
use crate::secret::Secret;
use reqwest::Url;
use reqwest::header::HeaderValue;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Longest server answer quoted in a message or reason.
const MESSAGE_CHARS: usize = 300;

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

/// Verifies an API key once per process: the first success is kept for
/// the life of the verifier (and its clones). Concurrent callers share one
/// request and its outcome; a failure is not kept, so a later call tries
/// again. Construction opens no connection.
#[derive(Clone)]
pub struct ApiKeyVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    url: Url,
    key: Secret,
    verified: OnceLock<OrgInfo>,
    generation: AtomicU64,
    flight: tokio::sync::Mutex<Option<Result<OrgInfo, ApiKeyError>>>,
}

impl fmt::Debug for ApiKeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyVerifier")
            .field("url", &display_url(&self.inner.url))
            .field("key", &self.inner.key)
            .field("verified", &self.inner.verified.get())
            .finish()
    }
}

impl ApiKeyVerifier {
    /// A verifier for `api_key` against `{auth}/auth`. Fails only on an
    /// insecure or unusable URL; opens no connection.
    pub fn new(http: HttpClient, auth: &Url, api_key: Secret) -> Result<Self, ClientError> {
        let url = endpoint(auth, &["auth"])?;
        Ok(ApiKeyVerifier {
            inner: Arc::new(Inner {
                http,
                url,
                key: api_key,
                verified: OnceLock::new(),
                generation: AtomicU64::new(0),
                flight: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The key's organization: from memory once verified, else from one
    /// request shared with concurrent callers.
    pub async fn verify(&self) -> Result<OrgInfo, ApiKeyError> {
        if let Some(org) = self.inner.verified.get() {
            return Ok(org.clone());
        }
        let inner = &self.inner;
        let seen = inner.generation.load(Ordering::Acquire);
        let mut last = inner.flight.lock().await;
        if let Some(org) = inner.verified.get() {
            return Ok(org.clone());
        }
        if inner.generation.load(Ordering::Acquire) != seen
            && let Some(outcome) = last.as_ref()
        {
            return outcome.clone();
        }
        let outcome = inner.verify_once().await;
        if let Ok(org) = &outcome {
            let _ = inner.verified.set(org.clone());
        }
        *last = Some(outcome.clone());
        inner.generation.fetch_add(1, Ordering::Release);
        outcome
    }

    /// The organization, if a verification has succeeded. Never does I/O.
    pub fn cached(&self) -> Option<OrgInfo> {
        self.inner.verified.get().cloned()
    }
}

impl Inner {
    async fn verify_once(&self) -> Result<OrgInfo, ApiKeyError> {
        let secret = &self.key;
        let unreachable = |reason: String| ApiKeyError::Unreachable {
            reason: scrub(&reason, secret, false),
        };
        let mut header =
            HeaderValue::from_str(secret.expose()).map_err(|_| ApiKeyError::InvalidKey)?;
        header.set_sensitive(true);
        let request = self
            .http
            .post(&self.url)
            .map_err(|e| unreachable(error_chain(&e)))?
            .header("X-Api-Key", header);
        let (status, answer) = self
            .http
            .exchange(&self.url, request)
            .await
            .map_err(unreachable)?;
        let code = status.as_u16();

        if !status.is_success() {
            let message = answer_text(&answer, secret, MESSAGE_CHARS);
            return Err(match code {
                401 | 403 => ApiKeyError::Rejected {
                    status: code,
                    message,
                },
                408 | 429 | 500..=599 => unreachable(format!(
                    "{} answered HTTP {status}: {message}",
                    display_url(&self.url)
                )),
                _ => ApiKeyError::UnexpectedStatus {
                    status: code,
                    message,
                },
            });
        }

        let malformed = |reason: String| ApiKeyError::Malformed {
            reason: scrub(&reason, secret, false),
        };
        if answer.truncated {
            return Err(malformed(format!(
                "the answer is longer than {} bytes",
                self.http.max_body()
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(&answer.bytes)
            .map_err(|_| malformed("the answer is not JSON".to_owned()))?;
        let Some(org_config) = value.get("org_config").and_then(|v| v.as_object()) else {
            return Err(malformed(
                "the answer has no \"org_config\" object".to_owned(),
            ));
        };
        let org_id = match org_config.get("org_id") {
            Some(serde_json::Value::String(s)) => uuid::Uuid::parse_str(s).map_err(|_| {
                // Scrubbed before it is cut: a cut key is no longer found.
                malformed(format!(
                    "org_config.org_id {:?} is not a UUID",
                    scrub(s, secret, false).chars().take(64).collect::<String>()
                ))
            })?,
            Some(_) => {
                return Err(malformed("org_config.org_id is not a string".to_owned()));
            }
            None => return Err(malformed("org_config has no \"org_id\"".to_owned())),
        };
        // Kept and shown (`Debug`): the key is redacted wherever the service
        // echoed it.
        let mut org_config = serde_json::Value::Object(org_config.clone());
        scrub_json(&mut org_config, secret);
        let serde_json::Value::Object(org_config) = org_config else {
            unreachable!("scrubbing keeps an object an object")
        };
        Ok(OrgInfo { org_id, org_config })
    }
}
