//! License verification: `POST` to the license's verify URL
//! (`{beacon}/v1/beacon/verify`, spelled in `config::Endpoint`), and the JWT
//! it returns, kept until it expires.

use super::flight::SingleFlight;
use super::http::{ClientError, HttpClient, Refusal, check_url, scrub, scrub_json};
use super::retry::{Backoff, RetryNow, RetryPolicy};
use crate::jwt::{self, PublicKey};
use crate::secret::{Pem, Secret};
use crate::urls;
use crate::wire::{VerifyRequest, VerifyResponse};
use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use url::Url;

/// Longest single sleep of the refresh task before it looks again.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// How license tokens are kept and refreshed.
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseSettings {
    /// Subtracted from the token's `exp` before it is trusted, for clocks
    /// that disagree. Default 30 s.
    pub clock_skew: Duration,
    /// How long a token without an `exp` claim is kept. Default 1 hour.
    pub default_lifetime: Duration,
    /// The fraction of a token's (skew-adjusted) lifetime after which the
    /// background task ([`LicenseVerifier::spawn_refresh`]) verifies again.
    /// Clamped to `0.0..=1.0`; default 0.8.
    pub refresh_fraction: f64,
    /// How the background task retries a failed verification: backoff with
    /// full jitter, or the Beacon's `Retry-After` (capped), and the long hold
    /// after a rejected license. Default [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// A PEM public key (`PUBLIC KEY`: RSA or EC P-256; or `RSA PUBLIC
    /// KEY`). When set, a token must carry a valid RS256 / ES256 signature
    /// by this key; an unsigned (`alg: none`) or altered token is
    /// [`LicenseError::Malformed`]. When unset, the token is trusted as the
    /// answer of the Beacon over TLS and only decoded. Default none.
    pub public_key_pem: Option<Pem>,
}

impl Default for LicenseSettings {
    fn default() -> Self {
        LicenseSettings {
            clock_skew: Duration::from_secs(30),
            default_lifetime: Duration::from_secs(3600),
            refresh_fraction: 0.8,
            retry: RetryPolicy::default(),
            public_key_pem: None,
        }
    }
}

/// A verified license token, kept in memory until `expires_at`. `Debug`
/// shows the JWT redacted.
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseToken {
    jwt: Secret,
    expires_at: DateTime<Utc>,
    refresh_at: DateTime<Utc>,
    claims: serde_json::Value,
}

impl LicenseToken {
    /// The JWT itself. Redacted in `Debug`; call `expose()` to send it.
    pub fn jwt(&self) -> &Secret {
        &self.jwt
    }

    /// When the token stops being used: its `exp` minus the clock-skew
    /// margin, or receipt time plus the default lifetime if it has no `exp`.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// When the background task verifies again.
    pub fn refresh_at(&self) -> DateTime<Utc> {
        self.refresh_at
    }

    /// The token's claims (its payload), a JSON object, with the license
    /// key redacted wherever the Beacon echoed it (`lcl_…cdef`).
    pub fn claims(&self) -> &serde_json::Value {
        &self.claims
    }
}

/// Why [`LicenseVerifier::token`] or [`LicenseVerifier::verify`] has no
/// token to give. Every text is free of the license key.
///
/// The variants carry text, not a source error, on purpose: `message` is
/// the Beacon's own answer (scrubbed), and `reason` says what was wrong
/// with an answer or a token in words an operator can act on. The parsers
/// behind a reason (base64, JSON, DER) add only offsets into a token that
/// must not be quoted, and the network error of
/// [`LicenseError::Unreachable`] is folded into its text so that the type
/// stays `Clone` and `Eq` (callers compare and copy these errors; a boxed
/// source error would be neither).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LicenseError {
    /// The Beacon refused the license: `401`, `403`, or any other `4xx`
    /// except `408` and `429` (`client/status.rs` says why). The kept token
    /// is dropped.
    #[error(
        "the Beacon rejected the license key (HTTP {status}): {message}; check the license key \
         (LANGGRAPH_CLOUD_LICENSE_KEY)"
    )]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The Beacon's answer, scrubbed.
        message: String,
    },
    /// No verdict: network error, timeout, refused redirect, `408`, `429`,
    /// `3xx` or `5xx` (a server in trouble says nothing about the license).
    /// The last valid token keeps being served until it expires.
    #[error("the license could not be verified, the Beacon is unreachable: {reason}")]
    Unreachable {
        /// What went wrong.
        reason: String,
        /// The Beacon's `Retry-After` (seconds or an HTTP date), uncapped:
        /// the refresh task waits that long, at most [`RetryPolicy::cap`].
        retry_after: Option<Duration>,
    },
    /// The Beacon answered `2xx` with something unusable: not JSON, no
    /// `token` string, not a JWT, bad `exp`, already expired, a bad
    /// signature, or a body over the size cap. The last valid token keeps
    /// being served until it expires.
    #[error("the Beacon's license verification answer is unusable: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
}

impl LicenseError {
    /// The Beacon's `Retry-After`, if it sent one with an answer that gave
    /// no verdict ([`LicenseError::Unreachable`]).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LicenseError::Unreachable { retry_after, .. } => *retry_after,
            LicenseError::Rejected { .. } | LicenseError::Malformed { .. } => None,
        }
    }

    /// The license's column of the [status table](super::status): any
    /// verdict rejects the license.
    fn refused(refusal: Refusal) -> LicenseError {
        match refusal {
            Refusal::Unreachable {
                reason,
                retry_after,
            } => LicenseError::Unreachable {
                reason,
                retry_after,
            },
            Refusal::Malformed(reason) => LicenseError::Malformed { reason },
            Refusal::Status { code, message, .. } => LicenseError::Rejected {
                status: code,
                message,
            },
        }
    }
}

/// Verifies a license key with the Beacon and keeps the token it returns.
///
/// * [`token`](Self::token) answers from memory while the kept token is
///   valid, with no I/O, and verifies only when there is none.
/// * Concurrent callers that need a verification share one request (single
///   flight), and share its outcome, failure included.
/// * [`spawn_refresh`](Self::spawn_refresh) refreshes the token ahead of its
///   expiry in the background.
///
/// Construction opens no connection: whether to verify at all (offline
/// licenses send nothing) is the caller's decision. Cheap to clone; clones
/// share the token.
#[derive(Clone)]
pub struct LicenseVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    url: Url,
    license: Secret,
    settings: LicenseSettings,
    key: Option<PublicKey>,
    current: Mutex<Option<LicenseToken>>,
    flight: SingleFlight<Result<LicenseToken, LicenseError>>,
}

impl fmt::Debug for LicenseVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LicenseVerifier")
            .field("url", &urls::display(&self.inner.url))
            .field("license", &self.inner.license)
            .field("settings", &self.inner.settings)
            .field("token", &*self.inner.lock_current())
            .finish()
    }
}

impl LicenseVerifier {
    /// A verifier for `license` against `verify_url`, the whole URL
    /// ([`crate::config::Endpoint::verify_url`]: `{beacon}/v1/beacon/verify`),
    /// as [`HttpClient::submit`] takes the whole report URL. Fails only on an
    /// insecure URL or an unusable public key; opens no connection.
    pub fn new(
        http: HttpClient,
        verify_url: &Url,
        license: Secret,
        mut settings: LicenseSettings,
    ) -> Result<LicenseVerifier, ClientError> {
        check_url(verify_url)?;
        let url = verify_url.clone();
        let key = settings.public_key_pem.as_deref().map(PublicKey::from_pem);
        let key = key
            .transpose()
            .map_err(|reason| ClientError::PublicKey { reason })?;
        settings.refresh_fraction = if settings.refresh_fraction.is_nan() {
            LicenseSettings::default().refresh_fraction
        } else {
            settings.refresh_fraction.clamp(0.0, 1.0)
        };
        Ok(LicenseVerifier {
            inner: Arc::new(Inner {
                http,
                url,
                license,
                settings,
                key,
                current: Mutex::new(None),
                flight: SingleFlight::new(),
            }),
        })
    }

    /// The kept token if it is still valid (no I/O), else the result of a
    /// verification (shared with concurrent callers).
    pub async fn token(&self) -> Result<LicenseToken, LicenseError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        self.inner.verify_shared(true).await
    }

    /// The kept token if it is still valid. Never does I/O.
    pub fn cached(&self) -> Option<LicenseToken> {
        self.inner.cached()
    }

    /// Verifies now, even if a valid token is kept, and keeps the new
    /// token. A caller that arrives while a verification is in flight gets
    /// that one's outcome instead of starting another.
    pub async fn verify(&self) -> Result<LicenseToken, LicenseError> {
        self.inner.verify_shared(false).await
    }

    /// Starts a tokio task that keeps the token fresh: it verifies at once
    /// if no token is kept, then again at each token's
    /// [`refresh_at`](LicenseToken::refresh_at). A failed verification is
    /// retried by [`LicenseSettings::retry`]: backoff with full jitter (or
    /// the Beacon's `Retry-After`), or the long hold after a rejection, cut
    /// short by [`RefreshGuard::retry_now`]. Stops when the guard is dropped
    /// or every [`LicenseVerifier`] clone is gone.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_refresh(&self) -> RefreshGuard {
        let retry_now = RetryNow::new();
        let backoff = Backoff::new(self.inner.settings.retry, &retry_now);
        let handle = tokio::spawn(refresh(Arc::downgrade(&self.inner), backoff));
        RefreshGuard { handle, retry_now }
    }
}

/// The refresh task of [`LicenseVerifier::spawn_refresh`].
async fn refresh(weak: Weak<Inner>, mut backoff: Backoff) {
    loop {
        // Time until the kept token's refresh point (zero if there is
        // none). Long waits are cut into hours and re-checked, so a token
        // replaced meanwhile (by `verify`) is followed.
        let wait = {
            let Some(inner) = weak.upgrade() else { return };
            let refresh_at = inner.lock_current().as_ref().map(|t| t.refresh_at);
            refresh_at.map_or(Duration::ZERO, |at| {
                (at - Utc::now()).to_std().unwrap_or_default()
            })
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait.min(MAX_SLEEP)).await;
            continue;
        }
        let outcome = {
            let Some(inner) = weak.upgrade() else { return };
            backoff.attempting();
            inner.verify_shared(false).await
        };
        let e = match outcome {
            Ok(_) => {
                backoff.reset();
                continue;
            }
            Err(e) => e,
        };
        let wait = next_wait(&mut backoff, &e);
        tracing::warn!(error = %e, retry_in = ?wait, "license token refresh failed");
        backoff.sleep(wait, std::future::pending::<()>()).await;
    }
}

/// The refresh task's wait after a failed verification: the long hold
/// after a rejection, else the next backoff, which is the Beacon's
/// `Retry-After` (capped) when it sent one.
fn next_wait(backoff: &mut Backoff, e: &LicenseError) -> Duration {
    match e {
        LicenseError::Rejected { .. } => backoff.hold(),
        LicenseError::Unreachable { .. } | LicenseError::Malformed { .. } => {
            backoff.retry(e.retry_after())
        }
    }
}

/// Stops the background refresh task when dropped.
#[derive(Debug)]
pub struct RefreshGuard {
    handle: tokio::task::JoinHandle<()>,
    retry_now: RetryNow,
}

impl RefreshGuard {
    /// Cuts the task's wait after a failed verification short: it verifies
    /// again at once (e.g. after an operator fixed the license).
    pub fn retry_now(&self) {
        self.retry_now.trigger();
    }
}

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Inner {
    fn lock_current(&self) -> std::sync::MutexGuard<'_, Option<LicenseToken>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self) -> Option<LicenseToken> {
        let now = Utc::now();
        self.lock_current()
            .as_ref()
            .filter(|t| now < t.expires_at)
            .cloned()
    }

    /// One verification for all concurrent callers. With `use_cached`, a
    /// token that became valid while waiting is returned as is.
    async fn verify_shared(&self, use_cached: bool) -> Result<LicenseToken, LicenseError> {
        let kept = || self.cached().filter(|_| use_cached).map(Ok);
        let request = || async {
            let outcome = self.verify_once().await;
            match &outcome {
                Ok(token) => *self.lock_current() = Some(token.clone()),
                Err(LicenseError::Rejected { .. }) => *self.lock_current() = None,
                Err(_) => {}
            }
            outcome
        };
        self.flight.run(kept, request).await
    }

    /// One request to the Beacon, its answer sorted by the status table
    /// (any `4xx` verdict rejects the license; see [`super::status`]).
    async fn verify_once(&self) -> Result<LicenseToken, LicenseError> {
        let secret = &self.license;
        let body = serde_json::to_vec(&VerifyRequest {
            license: secret.clone(),
        })
        .expect("a JSON object of one string always serializes");
        let request = self.http.post(&self.url).map(|r| {
            r.header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body)
        });
        let answer =
            self.http
                .verify_request(&self.url, request, secret, r#"has no "token" string"#);
        let parsed: VerifyResponse = answer.await.map_err(LicenseError::refused)?;
        let malformed = |reason: String| LicenseError::Malformed {
            reason: scrub(&reason, secret, false),
        };
        let token = parsed.token.expose().trim();
        let decoded = jwt::decode(token, self.key.as_ref()).map_err(malformed)?;
        let (expires_at, refresh_at) = self.lifetime(decoded.exp).map_err(malformed)?;
        // A Beacon may put the license key itself in a claim: the claims are
        // kept and shown (`Debug`), so the key is redacted there too.
        let mut claims = decoded.claims;
        scrub_json(&mut claims, secret);
        Ok(LicenseToken {
            jwt: Secret::new(token),
            expires_at,
            refresh_at,
            claims,
        })
    }

    /// When a token received now with expiry `exp` stops being used, and
    /// when it is refreshed; an error if it has already expired.
    fn lifetime(
        &self,
        exp: Option<DateTime<Utc>>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
        let received = Utc::now();
        let settings = &self.settings;
        let skew = chrono::Duration::from_std(settings.clock_skew).unwrap_or(chrono::Duration::MAX);
        let expires_at = match exp {
            Some(exp) => exp
                .checked_sub_signed(skew)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            None => chrono::Duration::from_std(settings.default_lifetime)
                .ok()
                .and_then(|d| received.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        if expires_at <= received {
            return Err(format!(
                "the token expires at {} (exp minus a {} s clock-skew margin), which has \
                 already passed; check the system clock",
                expires_at.to_rfc3339(),
                settings.clock_skew.as_secs_f64()
            ));
        }
        let lifetime = (expires_at - received).to_std().unwrap_or_default();
        let refresh_at = received
            + chrono::Duration::from_std(lifetime.mul_f64(settings.refresh_fraction))
                .unwrap_or_default();
        Ok((expires_at, refresh_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientSettings;
    use axum::http::StatusCode;
    use axum::routing::post;

    /// A loopback Beacon answering every verification `503` with
    /// `Retry-After: {after}`; its verify URL. Stops with the test's runtime.
    async fn busy_beacon(after: &'static str) -> Url {
        let busy =
            move || async move { (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", after)]) };
        let app = axum::Router::new().route("/v1/beacon/verify", post(busy));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Url::parse(&format!("http://{addr}/v1/beacon/verify")).unwrap()
    }

    #[tokio::test]
    async fn after_a_503_the_refresh_waits_as_its_retry_after_says_capped() {
        let policy = RetryPolicy::default();
        let mut backoff = Backoff::seeded(policy, &RetryNow::new(), 7);
        let http = HttpClient::new(ClientSettings::default()).unwrap();
        let license = Secret::new("lcl_retry_after_test_0123456789abcdef");
        for (after, wait) in [("42", Duration::from_secs(42)), ("86400", policy.cap)] {
            let url = busy_beacon(after).await;
            let settings = LicenseSettings::default();
            let v = LicenseVerifier::new(http.clone(), &url, license.clone(), settings).unwrap();
            let e = v.verify().await.unwrap_err();
            assert_eq!(next_wait(&mut backoff, &e), wait, "{e:?}");
        }
        assert_eq!(backoff.failures(), 2);
    }
}
