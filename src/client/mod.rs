//! The HTTP side of the Beacon protocol: usage report submission, license
//! verification and API-key verification.
//!
//! Everything here goes through one [`HttpClient`], which
//!
//! * speaks TLS through rustls (with optional extra trusted roots),
//! * has a connect timeout and a total per-request timeout,
//! * honours the `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY`
//!   environment variables (read once, when the client is built),
//! * follows at most 3 redirects, and only within the same origin (scheme,
//!   host and port): a redirect elsewhere is refused, so a header such as
//!   `X-Api-Key` never travels to another host,
//! * refuses plain `http://` except to loopback hosts
//!   ([`ClientError::InsecureUrl`]), checked again for every request,
//! * reads at most [`ClientSettings::max_body`] bytes of any response body,
//!   chunk by chunk, however long or endless the body is.
//!
//! Nothing in this module opens a connection on construction: the first
//! connection is made by the first request.
//!
//! Every text this module produces (reasons, messages, server answers) is
//! scrubbed of the credential it was sent with, so it is safe to log.
//!
//! May import: `crate::{secret, urls, text, wire, jwt}`, reqwest, `url`, tokio.
//! Must not import: the reporter, the spool, the sink, the CLI, `config`.

mod apikey;
mod flight;
pub(crate) mod http;
mod license;
mod retry;
mod status;
mod submit;

pub use apikey::{ApiKeyError, ApiKeyVerifier, OrgInfo};
pub use http::{ClientError, ClientSettings, HttpClient};
pub use license::{LicenseError, LicenseSettings, LicenseToken, LicenseVerifier, RefreshGuard};
pub use retry::RetryPolicy;
pub(crate) use retry::{Backoff, RetryNow};
pub use submit::{FailureKind, SubmitOutcome};
