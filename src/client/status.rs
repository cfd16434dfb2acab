//! What an HTTP status means, for all three requests of the client, in one
//! table. May import: nothing of the crate.
//!
//! | status | [`Class`] | submit ([`super::SubmitOutcome`]) | license verify | API-key verify |
//! | --- | --- | --- | --- | --- |
//! | `2xx` | `Success` | `Accepted` | a token | an organization |
//! | `401`, `403` | `CredentialRefused` | `CredentialRejected` (hold) | `Rejected` | `Rejected` |
//! | `404`, `405` | `NoSuchPath` | `NoReportPath` (hold) | `Rejected` | `UnexpectedStatus` |
//! | other `4xx` | `Refused` | `PayloadRejected` | `Rejected` | `UnexpectedStatus` |
//! | `408`, `429`, `5xx`, `3xx`, any other | `Transient` | `Retry` | `Unreachable` | `Unreachable` |
//!
//! The two verifications differ on purpose, and only here:
//!
//! * **License.** The request's only content is the license, in its body,
//!   so any `4xx` verdict is a verdict on the license (a Beacon may answer
//!   an unknown or malformed key with `400`, `404` or `422` as well as
//!   `401`/`403`): the kept token is dropped.
//! * **API key.** The request has no body, and the auth service refuses a
//!   bad key with `401`/`403`. Its URL is configurable (a self-hosted
//!   control plane), so any other `4xx` says more likely that the endpoint
//!   is wrong than that the key is: it is reported as such, pointing at the
//!   endpoint variables.
//!
//! A `Transient` answer's `Retry-After` travels with it in all three
//! (`Retry`, and each verifier's `Unreachable`), for the caller's backoff.
//!
//! Not in doubt (the server did not process the request): `408`, `429`,
//! `503` and `3xx`. Every other `5xx` may have been processed.

/// The class of an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// `2xx`.
    Success,
    /// `401` or `403`: the credential was refused.
    CredentialRefused,
    /// `404` or `405`: nothing takes this request at this URL.
    NoSuchPath,
    /// Any other `4xx` but `408` and `429`: the request was judged and
    /// refused.
    Refused,
    /// No verdict; try again later.
    Transient {
        /// The server may have processed the request.
        in_doubt: bool,
    },
}

impl Class {
    /// The class of `code`.
    pub(crate) fn of(code: u16) -> Class {
        match code {
            200..=299 => Class::Success,
            401 | 403 => Class::CredentialRefused,
            404 | 405 => Class::NoSuchPath,
            408 | 429 => Class::Transient { in_doubt: false },
            400..=499 => Class::Refused,
            500..=599 => Class::Transient {
                in_doubt: code != 503,
            },
            _ => Class::Transient { in_doubt: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let cases = [
            (200, Class::Success),
            (204, Class::Success),
            (401, Class::CredentialRefused),
            (403, Class::CredentialRefused),
            (404, Class::NoSuchPath),
            (405, Class::NoSuchPath),
            (400, Class::Refused),
            (422, Class::Refused),
            (408, Class::Transient { in_doubt: false }),
            (429, Class::Transient { in_doubt: false }),
            (503, Class::Transient { in_doubt: false }),
            (500, Class::Transient { in_doubt: true }),
            (599, Class::Transient { in_doubt: true }),
            (304, Class::Transient { in_doubt: false }),
            (101, Class::Transient { in_doubt: false }),
        ];
        for (code, class) in cases {
            assert_eq!(Class::of(code), class, "{code}");
        }
    }
}
