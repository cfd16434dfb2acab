//! `POST` of one usage report to its destination's report URL, in either
//! wire dialect: one report, one outcome.

use super::http::{
    Capped, ClientError, HttpClient, MESSAGE_CHARS, answer_text, retry_after, scrub,
};
use super::status::Class;
use crate::secret::Secret;
use crate::urls;
use crate::wire::{Credential, Dialect, ReportBody, encode_report_in};
use reqwest::Response;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use std::time::Duration;
use url::Url;

/// Longest server answer kept in [`SubmitOutcome::PayloadRejected`].
const ANSWER_CHARS: usize = 1024;

/// What became of one report submission. Every text in it is free of the
/// credential the report was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// The server took the report (any `2xx`; the protocol says `204`).
    Accepted {
        /// The HTTP status.
        status: u16,
    },
    /// Try the same report again later, with the same idempotency key.
    ///
    /// Given for network errors and timeouts, `408`, `429`, every `5xx`,
    /// an unfollowed `3xx` and a refused redirect.
    Retry {
        /// What went wrong, for the log.
        reason: String,
        /// The server's `Retry-After`, in seconds or as an HTTP date (a
        /// date in the past gives zero). Not capped: the caller decides.
        retry_after: Option<Duration>,
        /// The server may have received (and counted) the request: a
        /// timeout or broken connection after connecting, or a `5xx` other
        /// than `503`. Not in doubt: a refused or timed-out connection
        /// attempt, a refused redirect, `408`, `429`, `503` and `3xx`.
        in_doubt: bool,
        /// Which kind of failure, for the stats.
        kind: FailureKind,
    },
    /// `401` or `403`: the credential was refused. Retrying with the same
    /// credential will not help.
    CredentialRejected {
        /// The HTTP status.
        status: u16,
        /// The server's answer, one line, scrubbed.
        message: String,
    },
    /// `404` or `405`: nothing takes reports at this URL, so the server did
    /// not judge the report at all. The usual cause is the wrong wire
    /// dialect (`BEACON_WIRE`) or a wrong base URL; retrying the same URL
    /// will not help, but the report is not at fault and must be kept.
    NoReportPath {
        /// The HTTP status.
        status: u16,
        /// The URL that answered, safe to show.
        url: String,
        /// The server's answer, one line, scrubbed.
        message: String,
    },
    /// Any other `4xx`: the server refused this report.
    PayloadRejected {
        /// The HTTP status.
        status: u16,
        /// The server's answer, at most 1024 characters, scrubbed.
        answer: String,
    },
}

impl HttpClient {
    /// Posts one usage report to `url` with `Content-Type:
    /// application/json`, `Idempotency-Key: <uuid>` and the body
    /// [`encode_report_in`]`(dialect, credential, body)`.
    ///
    /// `url` is the destination's whole report URL
    /// ([`crate::config::Endpoint::submit_url`]). Only a URL this client
    /// refuses to use gives an error ([`ClientError::InsecureUrl`]);
    /// everything the network or the server does is a [`SubmitOutcome`],
    /// sorted by the status table (`client/status.rs`).
    pub async fn submit(
        &self,
        url: &Url,
        dialect: Dialect,
        credential: &Credential,
        body: &ReportBody,
        idempotency_key: uuid::Uuid,
    ) -> Result<SubmitOutcome, ClientError> {
        let request = self
            .post(url)?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(
                "Idempotency-Key",
                idempotency_key.hyphenated().to_string().as_str(),
            )
            .body(encode_report_in(dialect, credential, body));
        let secret = credential.secret();
        Ok(match self.send(url, request).await {
            Ok(response) => self.outcome(url, response, secret).await,
            Err(e) => SubmitOutcome::Retry {
                reason: scrub(&e.reason, secret, false),
                retry_after: None,
                in_doubt: e.in_doubt,
                kind: if e.timeout {
                    FailureKind::Timeout
                } else {
                    FailureKind::Network
                },
            },
        })
    }

    /// What the server's answer to a report means.
    async fn outcome(&self, url: &Url, response: Response, secret: &Secret) -> SubmitOutcome {
        let status = response.status();
        let code = status.as_u16();
        let retry_after = retry_after(&response);
        // Read (capped) even after a success, so the connection can be
        // reused; a failure to read then changes nothing.
        let answer = self.read_capped(url, response).await;
        let answer = answer.unwrap_or_else(|e| Capped {
            bytes: format!("(answer unreadable: {})", e.reason).into_bytes(),
            truncated: false,
        });
        let message = || answer_text(&answer, secret, MESSAGE_CHARS);
        match Class::of(code) {
            Class::Success => SubmitOutcome::Accepted { status: code },
            Class::CredentialRefused => SubmitOutcome::CredentialRejected {
                status: code,
                message: message(),
            },
            Class::NoSuchPath => SubmitOutcome::NoReportPath {
                status: code,
                url: urls::display(url),
                message: message(),
            },
            Class::Refused => SubmitOutcome::PayloadRejected {
                status: code,
                answer: answer_text(&answer, secret, ANSWER_CHARS),
            },
            Class::Transient { in_doubt } => SubmitOutcome::Retry {
                reason: format!(
                    "{} answered HTTP {status}: {}",
                    urls::display(url),
                    message()
                ),
                retry_after,
                in_doubt,
                kind: FailureKind::of_status(code),
            },
        }
    }
}

/// Why a delivery attempt failed, as [`crate::reporter::DestinationStats::failures`]
/// counts it (and the operational metrics export it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureKind {
    /// No connection, or it broke during the request.
    Network,
    /// Connecting or the answer timed out, or `408`.
    Timeout,
    /// A `5xx`.
    ServerError,
    /// `429 Too Many Requests`.
    RateLimited,
    /// `401`/`403`: the credential was refused.
    CredentialRefused,
    /// `404`/`405`: nothing takes reports at the URL.
    NoReportPath,
    /// Anything else that is retried (an unfollowed `3xx`, a request that
    /// could not be made).
    Other,
}

impl FailureKind {
    /// Every kind, in the order of [`Self::as_str`]'s list.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Network,
        FailureKind::Timeout,
        FailureKind::ServerError,
        FailureKind::RateLimited,
        FailureKind::CredentialRefused,
        FailureKind::NoReportPath,
        FailureKind::Other,
    ];

    /// The kind of a retried answer's status.
    fn of_status(code: u16) -> FailureKind {
        match code {
            408 => FailureKind::Timeout,
            429 => FailureKind::RateLimited,
            500..=599 => FailureKind::ServerError,
            _ => FailureKind::Other,
        }
    }

    /// Its name in stats and metrics: `network`, `timeout`, `5xx`, `429`,
    /// `credential_refused`, `no_report_path` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Network => "network",
            FailureKind::Timeout => "timeout",
            FailureKind::ServerError => "5xx",
            FailureKind::RateLimited => "429",
            FailureKind::CredentialRefused => "credential_refused",
            FailureKind::NoReportPath => "no_report_path",
            FailureKind::Other => "other",
        }
    }
}
