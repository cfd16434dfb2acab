//! The shared HTTP client: TLS, timeouts, proxy, redirect policy, URL checks,
//! capped body reads and `Retry-After`.

use super::status::Class;
use crate::error_chain::error_chain;
use crate::secret::{Pem, Secret};
use crate::urls;
use reqwest::header::RETRY_AFTER;
use reqwest::{RequestBuilder, Response, redirect};
use std::time::{Duration, SystemTime};
use url::Url;

/// Longest server answer quoted in a message or reason.
pub(crate) const MESSAGE_CHARS: usize = 300;
/// Redirects followed at most, all within the first URL's origin.
const MAX_REDIRECTS: usize = 3;

/// How the [`HttpClient`] talks to the network: start from
/// [`ClientSettings::default`] and chain the setters (each documents its
/// default); the fields are private so that a setting can be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) ca_cert_pem: Option<Pem>,
    pub(crate) max_body: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            ca_cert_pem: None,
            max_body: 64 * 1024,
        }
    }
}

impl ClientSettings {
    /// Total time for one request, from connecting to the last body byte.
    /// Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time to open a connection (TCP and TLS handshake). Default 10 s.
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Extra trusted root certificates, a PEM bundle of one or more
    /// `CERTIFICATE` blocks, trusted in addition to the built-in roots
    /// (e.g. a corporate TLS-inspecting proxy's CA). Default none.
    pub fn ca_cert_pem(mut self, ca_cert_pem: Pem) -> Self {
        self.ca_cert_pem = Some(ca_cert_pem);
        self
    }

    /// [`Self::ca_cert_pem`] when `Some`; `None` restores the default (none).
    pub fn ca_cert_pem_opt(mut self, ca_cert_pem: Option<Pem>) -> Self {
        self.ca_cert_pem = ca_cert_pem;
        self
    }

    /// Most bytes read from any response body; the rest is never read.
    /// Default 64 KiB.
    pub fn max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }
}

/// A client that could not be built, or a URL it refuses to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is neither `https://` nor plain `http://` to a loopback host.
    #[error(
        "refusing the insecure URL {url}: use https:// (plain http:// is allowed only to a \
         loopback host such as 127.0.0.1, [::1] or localhost)"
    )]
    InsecureUrl {
        /// The URL, without user name, password or query.
        url: String,
    },
    /// `ClientSettings::ca_cert_pem` is not a usable PEM certificate bundle.
    #[error(
        "the extra CA certificates (ca_cert_pem) are not usable: {reason}; give a PEM file of \
         one or more -----BEGIN CERTIFICATE----- blocks"
    )]
    CaCert {
        /// What was wrong with the bundle.
        reason: String,
    },
    /// The license-token public key is not a usable PEM public key.
    #[error(
        "the license token public key is not usable: {reason}; give a PEM -----BEGIN PUBLIC \
         KEY----- block holding an RSA (RS256) or EC P-256 (ES256) key"
    )]
    PublicKey {
        /// What was wrong with the key.
        reason: String,
    },
    /// The TLS/HTTP stack could not be set up.
    #[error("could not build the HTTP client: {reason}")]
    Build {
        /// The underlying error.
        reason: String,
    },
}

/// The one HTTP client all Beacon requests go through. Cheap to clone
/// (clones share the connection pool). Building it opens no connection.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    max_body: usize,
}

impl HttpClient {
    /// Builds the client described in the [module docs](super): proxies
    /// (and their lower-case variable names) are read now; no connection is
    /// opened.
    pub fn new(settings: ClientSettings) -> Result<HttpClient, ClientError> {
        let policy = redirect::Policy::custom(|attempt| {
            let previous = attempt.previous();
            if previous.len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let Some(first) = previous.first() else {
                return attempt.follow();
            };
            let (from, to) = (first.origin(), attempt.url().origin());
            if from != to {
                let message = format!(
                    "redirect from {} to {} refused: only redirects within the same scheme, \
                     host and port are followed",
                    from.ascii_serialization(),
                    to.ascii_serialization()
                );
                return attempt.error(message);
            }
            attempt.follow()
        });

        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(policy)
            .user_agent(concat!("beacon-meter/", env!("CARGO_PKG_VERSION")));

        if let Some(pem) = &settings.ca_cert_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ClientError::CaCert {
                    reason: error_chain(&e),
                })?;
            if certs.is_empty() {
                return Err(ClientError::CaCert {
                    reason: "no certificate found in the bundle".to_owned(),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }

        let client = builder.build().map_err(|e| {
            let reason = error_chain(&e);
            // reqwest parses the certificates only now: if the client builds
            // without them, they were the problem.
            if settings.ca_cert_pem.is_some()
                && reqwest::Client::builder().use_rustls_tls().build().is_ok()
            {
                ClientError::CaCert { reason }
            } else {
                ClientError::Build { reason }
            }
        })?;
        Ok(HttpClient {
            client,
            max_body: settings.max_body,
        })
    }

    /// A POST to `url`, after checking once more that the URL is secure.
    pub(crate) fn post(&self, url: &Url) -> Result<RequestBuilder, ClientError> {
        check_url(url)?;
        Ok(self.client.post(url.clone()))
    }

    /// Sends a request built by [`HttpClient::post`]. `url` names the
    /// endpoint in failure reasons.
    pub(crate) async fn send(&self, url: &Url, req: RequestBuilder) -> Result<Response, SendError> {
        req.send()
            .await
            .map_err(|e| SendError::from_reqwest(url, e))
    }

    /// One verification request (license or API key), sent and sorted by
    /// the [status table](super::status): the `2xx` answer read as a `T`,
    /// or a [`Refusal`] with every text scrubbed of `secret`. `request` is
    /// the request, or why it could not be made; `wrong_shape` ends the
    /// sentence "the answer …" for JSON that is not a `T`.
    pub(crate) async fn verify_request<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
        request: Result<RequestBuilder, ClientError>,
        secret: &Secret,
        wrong_shape: &str,
    ) -> Result<T, Refusal> {
        let unreachable = |reason: String, retry_after| Refusal::Unreachable {
            reason: scrub(&reason, secret, false),
            retry_after,
        };
        let request = request.map_err(|e| unreachable(error_chain(&e), None))?;
        let response = self.send(url, request).await;
        let response = response.map_err(|e| unreachable(e.reason, None))?;
        let status = response.status();
        let retry_after = retry_after(&response);
        let answer = self.read_capped(url, response).await;
        let answer = answer.map_err(|e| unreachable(e.reason, None))?;
        let message = || answer_text(&answer, secret, MESSAGE_CHARS);
        let class = Class::of(status.as_u16());
        let reason = match class {
            Class::Success if answer.truncated => {
                format!("the answer is longer than {} bytes", self.max_body)
            }
            Class::Success => match serde_json::from_slice(&answer.bytes) {
                Ok(parsed) => return Ok(parsed),
                Err(e) if e.is_data() => format!("the answer {wrong_shape}: {e}"),
                Err(_) => "the answer is not JSON".to_owned(),
            },
            Class::Transient { .. } => {
                let url = urls::display(url);
                let reason = format!("{url} answered HTTP {status}: {}", message());
                return Err(unreachable(reason, retry_after));
            }
            class => {
                return Err(Refusal::Status {
                    class,
                    code: status.as_u16(),
                    message: message(),
                });
            }
        };
        Err(Refusal::Malformed(scrub(&reason, secret, false)))
    }

    /// Reads at most `max_body` bytes of the body, chunk by chunk. A longer
    /// (or endless) body is cut: the rest is never read and the connection
    /// is dropped.
    pub(crate) async fn read_capped(
        &self,
        url: &Url,
        mut response: Response,
    ) -> Result<Capped, SendError> {
        let max = self.max_body;
        let expected = response.content_length().unwrap_or(0);
        let mut bytes = Vec::with_capacity(expected.min(max.min(8 * 1024) as u64) as usize);
        let read_error = |e| SendError::from_reqwest(url, e);
        while let Some(chunk) = response.chunk().await.map_err(read_error)? {
            let room = max - bytes.len();
            if chunk.len() > room {
                bytes.extend_from_slice(&chunk[..room]);
                return Ok(Capped {
                    bytes,
                    truncated: true,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Capped {
            bytes,
            truncated: false,
        })
    }
}

/// Why a verification request gave no usable answer. Every text is free of
/// the credential.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No verdict: the network failed, or a [`Class::Transient`] status,
    /// with the server's `Retry-After` if it sent one.
    Unreachable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// A verdict: a status of another class, with the answer as one line.
    Status {
        class: Class,
        code: u16,
        message: String,
    },
    /// A `2xx` answer that is over the size cap, not JSON, or not of the
    /// expected shape.
    Malformed(String),
}

/// A request that got no (complete) answer.
#[derive(Debug, Clone)]
pub(crate) struct SendError {
    /// The request may have reached the server (it was sent, or partly
    /// sent, on an open connection).
    pub in_doubt: bool,
    /// What happened, without URL credentials or request content.
    pub reason: String,
    /// It timed out (connecting or waiting for the answer).
    pub timeout: bool,
}

impl SendError {
    fn from_reqwest(url: &Url, e: reqwest::Error) -> SendError {
        let (what, in_doubt) = match (e.is_redirect(), e.is_builder(), e.is_connect()) {
            (true, _, _) => ("redirect refused", false),
            (_, true, _) => ("request could not be built", false),
            (_, _, true) if e.is_timeout() => ("connecting timed out", false),
            (_, _, true) => ("could not connect", false),
            _ if e.is_timeout() => (
                "timed out after connecting (the request may have arrived)",
                true,
            ),
            _ => (
                "the connection failed during the request (it may have arrived)",
                true,
            ),
        };
        SendError {
            in_doubt,
            timeout: e.is_timeout(),
            reason: format!(
                "POST {}: {what}: {}",
                urls::display(url),
                error_chain(&e.without_url())
            ),
        }
    }
}

/// A response body read up to the cap.
#[derive(Debug, Clone)]
pub(crate) struct Capped {
    pub bytes: Vec<u8>,
    /// The body was longer than the cap; `bytes` is its beginning.
    pub truncated: bool,
}

/// `https://` anywhere, `http://` only to a loopback host
/// ([`urls::is_secure`]).
pub(crate) fn check_url(url: &Url) -> Result<(), ClientError> {
    if urls::is_secure(url) {
        Ok(())
    } else {
        Err(ClientError::InsecureUrl {
            url: urls::display(url),
        })
    }
}

/// The server's `Retry-After` ([`parse_retry_after`]), if it sent a usable
/// one. Read from the headers, before the body is.
pub(crate) fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (IMF-fixdate,
/// RFC 850 or asctime), as time from `now` (zero if already past).
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds: as good as forever.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A beginning of the secret at least this long (bytes) is removed wherever
/// it appears, not only at the end of a truncated text.
const MIN_PARTIAL: usize = 8;

/// Removes `secret` from `text`: every occurrence (in any ASCII letter
/// case), its JSON-escaped form, every beginning of it of at least
/// [`MIN_PARTIAL`] bytes (a server or proxy may cut its own echo of the
/// request short), and, when `cut` (the text was truncated here), a
/// trailing beginning of any length.
pub(crate) fn scrub(text: &str, secret: &Secret, cut: bool) -> String {
    let mut out = secret.scrub(text);
    let raw = secret.expose();
    if let Ok(quoted) = serde_json::to_string(raw) {
        let escaped = &quoted[1..quoted.len() - 1];
        if escaped != raw && !escaped.is_empty() {
            out = out.replace(escaped, &secret.redacted());
        }
    }
    out = scrub_beginnings(&out, raw);
    if cut {
        while out.ends_with('\u{fffd}') {
            out.pop();
        }
        for k in (1..raw.len()).rev() {
            if raw.is_char_boundary(k) && out.ends_with(&raw[..k]) {
                out.truncate(out.len() - k);
                out.push('…');
                break;
            }
        }
    }
    out
}

/// Replaces with `…` every run of `text` that matches (ASCII letter case
/// ignored) the first [`MIN_PARTIAL`] or more bytes of `raw`.
fn scrub_beginnings(text: &str, raw: &str) -> String {
    if raw.len() <= MIN_PARTIAL || !raw.is_char_boundary(MIN_PARTIAL) {
        return text.to_owned();
    }
    let lowered = text.to_ascii_lowercase();
    let key = raw.to_ascii_lowercase();
    let (t, k) = (lowered.as_bytes(), key.as_bytes());
    let head = &key[..MIN_PARTIAL];
    let mut out = String::with_capacity(text.len());
    let (mut last, mut from) = (0, 0);
    while let Some(found) = lowered[from..].find(head) {
        let at = from + found;
        let mut len = MIN_PARTIAL;
        while len < k.len() && at + len < t.len() && t[at + len] == k[len] {
            len += 1;
        }
        while !text.is_char_boundary(at + len) {
            len -= 1;
        }
        out.push_str(&text[last..at]);
        out.push('…');
        last = at + len;
        from = last;
    }
    out.push_str(&text[last..]);
    out
}

/// Removes `secret` from every string and object key in `value` (a
/// server's JSON that is kept and may be shown, such as token claims).
pub(crate) fn scrub_json(value: &mut serde_json::Value, secret: &Secret) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if s.contains(secret.expose()) {
                *s = scrub(s, secret, false);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_json(v, secret)),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains(secret.expose())) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (scrub(&k, secret, false), v))
                    .collect();
            }
            map.values_mut().for_each(|v| scrub_json(v, secret));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A server's answer as one line of at most `limit` characters, with
/// `secret` scrubbed. A JSON object's `detail`, `message` or `error` field
/// is preferred to the raw body.
pub(crate) fn answer_text(body: &Capped, secret: &Secret, limit: usize) -> String {
    let raw = String::from_utf8_lossy(&body.bytes);
    let text = if body.truncated {
        raw.into_owned()
    } else {
        json_message(&raw).unwrap_or_else(|| raw.into_owned())
    };
    let scrubbed = scrub(&text, secret, body.truncated);
    // Whitespace and control characters as one space, none leading.
    let mut collapsed = String::with_capacity(scrubbed.len());
    for c in scrubbed.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c != ' ' || !(collapsed.is_empty() || collapsed.ends_with(' ')) {
            collapsed.push(c);
        }
    }
    let cut = crate::wire::truncate::cut_chars(&collapsed, limit);
    let line = cut.trim_end();
    if line.is_empty() {
        "(empty answer)".to_owned()
    } else if body.truncated && !line.ends_with('…') {
        format!("{line}…")
    } else {
        line.to_owned()
    }
}

fn json_message(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let object = value.as_object()?;
    ["detail", "message", "error"]
        .iter()
        .find_map(|k| object.get(*k))
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_url_refuses_what_cannot_be_an_endpoint() {
        let url = |s| Url::parse(s).unwrap();
        for bad in ["mailto:a@b.c", "http://example.com/auth", "data:,x"] {
            assert!(
                matches!(check_url(&url(bad)), Err(ClientError::InsecureUrl { .. })),
                "{bad}"
            );
        }
        assert!(check_url(&url("https://b.example.com/p/auth")).is_ok());
        assert!(check_url(&url("http://127.0.0.1:9/v1/beacon/verify")).is_ok());
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:39 1994", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn scrub_removes_whole_escaped_and_cut_secrets() {
        let s = Secret::new("lcl_0123456789abcdef9f2a");
        assert_eq!(
            scrub("x lcl_0123456789abcdef9f2a y", &s, false),
            "x lcl_…9f2a y"
        );
        assert_eq!(scrub("x lcl_0123456789ab", &s, true), "x …");
        // Not cut here, but by the server: 8 bytes or more of the key go too,
        // fewer stay (no false alarms on text that merely starts like it).
        assert_eq!(scrub("x lcl_0123456789ab", &s, false), "x …");
        assert_eq!(scrub("x lcl_012", &s, false), "x lcl_012");
        assert_eq!(scrub("x lcl_012", &s, true), "x …");
        // A beginning of 8 bytes or more, anywhere, in any case.
        assert_eq!(
            scrub(
                "echo {\"license\":\"lcl_01234567...\"} LCL_012 x",
                &s,
                false
            ),
            "echo {\"license\":\"…...\"} LCL_012 x"
        );
        let q = Secret::new("key\"with\\quote0123");
        assert_eq!(
            scrub(r#"{"k":"key\"with\\quote0123"}"#, &q, false),
            r#"{"k":"key"…0123"}"#
        );
    }

    #[test]
    fn answer_text_prefers_json_detail_and_caps() {
        let s = Secret::new("lcl_0123456789abcdef9f2a");
        let body = |b: &str, truncated| Capped {
            bytes: b.as_bytes().to_vec(),
            truncated,
        };
        assert_eq!(
            answer_text(
                &body(r#"{"detail":"bad key lcl_0123456789abcdef9f2a"}"#, false),
                &s,
                100
            ),
            "bad key lcl_…9f2a"
        );
        assert_eq!(answer_text(&body("a\n\n b\tc", false), &s, 100), "a b c");
        assert_eq!(answer_text(&body("abcdef", false), &s, 3), "abc…");
        assert_eq!(answer_text(&body("abc", true), &s, 10), "abc…");
        assert_eq!(answer_text(&body("", false), &s, 10), "(empty answer)");
    }
}
