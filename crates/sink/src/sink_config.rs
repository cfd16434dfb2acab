//! What a sink accepts and which faults it injects.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

use super::SinkError;
use beacon_meter::secret::Secret;

/// The organization id `/auth` returns unless [`SinkConfig::org_id`] says
/// otherwise: fixed, so that a demo's output is reproducible.
pub const DEFAULT_ORG_ID: Uuid = Uuid::from_u128(0x5e1f_0c41_0000_4000_8000_0000_0000_5171);

/// The fewest characters [`SinkConfig::admin_token`] may have.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// How a sink is set up. [`SinkConfig::default`] is a sink on
/// `127.0.0.1:8787` that accepts any online license (`lcl_` prefix), no API
/// key, and injects no fault.
///
/// `Debug` shows the license keys, API keys and admin token only in
/// redacted form (they are [`Secret`]s). Each field is documented on its
/// setter.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkConfig {
    pub(crate) bind: SocketAddr,
    pub(crate) token_lifetime: Duration,
    pub(crate) licenses: Option<Vec<Secret>>,
    pub(crate) api_keys: Vec<Secret>,
    pub(crate) org_id: Uuid,
    pub(crate) db: Option<PathBuf>,
    pub(crate) jsonl: Option<PathBuf>,
    pub(crate) admin_token: Option<Secret>,
    pub(crate) tls: Option<TlsFiles>,
    pub(crate) faults: Faults,
    pub(crate) max_body: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) max_connections: Option<usize>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8787)),
            token_lifetime: Duration::from_secs(3600),
            licenses: None,
            api_keys: Vec::new(),
            org_id: DEFAULT_ORG_ID,
            db: None,
            jsonl: None,
            admin_token: None,
            tls: None,
            faults: Faults::default(),
            max_body: 256 * 1024,
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(2),
            max_connections: None,
        }
    }
}

/// Setters, one per setting: start from [`SinkConfig::default`] or
/// [`SinkConfig::ephemeral`] and chain them. Fields are not public, so a
/// setting can be added without breaking a caller.
impl SinkConfig {
    /// Address to listen on. Default `127.0.0.1:8787`; tests use
    /// `127.0.0.1:0` and read the port from [`super::SinkHandle::addr`].
    pub fn bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Lifetime of the JWTs issued by `POST /v1/beacon/verify` (its `exp`
    /// claim is `iat` plus this, in whole seconds). Default one hour.
    pub fn token_lifetime(mut self, token_lifetime: Duration) -> Self {
        self.token_lifetime = token_lifetime;
        self
    }

    /// License keys accepted by `/v1/beacon/verify` and in reports. `None`
    /// (the default) accepts any key that starts with `lcl_`, the prefix of
    /// an online license.
    pub fn licenses(mut self, licenses: Vec<Secret>) -> Self {
        self.licenses = Some(licenses);
        self
    }

    /// [`Self::licenses`] when `Some`; `None` restores the default (none).
    pub fn licenses_opt(mut self, licenses: Option<Vec<Secret>>) -> Self {
        self.licenses = licenses;
        self
    }

    /// `X-Api-Key` values accepted by `/auth`, and `api_key` values accepted
    /// in reports. Default: none.
    pub fn api_keys(mut self, api_keys: Vec<Secret>) -> Self {
        self.api_keys = api_keys;
        self
    }

    /// The `org_id` that `/auth` answers with. Default [`DEFAULT_ORG_ID`].
    pub fn org_id(mut self, org_id: Uuid) -> Self {
        self.org_id = org_id;
        self
    }

    /// The SQLite database the sink stores accepted reports, idempotency
    /// keys and totals in (created if missing; reopened, a restarted sink
    /// keeps deduplicating against everything in it). `None` (the default):
    /// a database in memory, gone when the sink stops.
    pub fn db(mut self, db: impl Into<PathBuf>) -> Self {
        self.db = Some(db.into());
        self
    }

    /// [`Self::db`] when `Some`; `None` restores the default (none).
    pub fn db_opt(mut self, db: Option<PathBuf>) -> Self {
        self.db = db;
        self
    }

    /// If set, every accepted report is also exported to this file as one
    /// JSON line (the stored record), flushed line by line. The file is
    /// created if missing and never truncated.
    pub fn jsonl(mut self, jsonl: impl Into<PathBuf>) -> Self {
        self.jsonl = Some(jsonl.into());
        self
    }

    /// [`Self::jsonl`] when `Some`; `None` restores the default (none).
    pub fn jsonl_opt(mut self, jsonl: Option<PathBuf>) -> Self {
        self.jsonl = jsonl;
        self
    }

    /// The bearer token `GET /v1/summary` and `GET /v1/reports` require
    /// (`Authorization: Bearer <token>`). `None` (the default): they are
    /// open when [`SinkConfig::bind`] is a loopback address, and answer
    /// `401` otherwise (they reveal every tenant's usage).
    pub fn admin_token(mut self, admin_token: Secret) -> Self {
        self.admin_token = Some(admin_token);
        self
    }

    /// [`Self::admin_token`] when `Some`; `None` restores the default (none).
    pub fn admin_token_opt(mut self, admin_token: Option<Secret>) -> Self {
        self.admin_token = admin_token;
        self
    }

    /// Serve HTTPS with this certificate chain and key; `None` (the
    /// default): plain HTTP.
    pub fn tls(mut self, tls: TlsFiles) -> Self {
        self.tls = Some(tls);
        self
    }

    /// [`Self::tls`] when `Some`; `None` restores the default (none).
    pub fn tls_opt(mut self, tls: Option<TlsFiles>) -> Self {
        self.tls = tls;
        self
    }

    /// Faults injected into `POST /v1/metadata/submit`; see [`Faults`].
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Largest request body accepted, in bytes; a larger one is answered
    /// `413`. Default 256 KiB.
    pub fn max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// Time a request may take from its first header byte until its answer
    /// is ready, not counting [`Faults::latency`]. A slower client is
    /// answered `408` and its connection closed. Default 10 s.
    pub fn request_timeout(mut self, request_timeout: Duration) -> Self {
        self.request_timeout = request_timeout;
        self
    }

    /// How long [`super::SinkHandle::shutdown`] lets requests in flight
    /// finish before it closes their connections. Default 2 s.
    pub fn shutdown_grace(mut self, shutdown_grace: Duration) -> Self {
        self.shutdown_grace = shutdown_grace;
        self
    }

    /// The most connections served at once. At the limit, a new connection
    /// closes the oldest idle one (no request in progress: a keep-alive
    /// connection between requests, or one still sending its head), or is
    /// closed itself if every connection is busy. Default: 1024, or fewer
    /// if the process's open-file limit (read when the sink starts) would
    /// then leave fewer than 64 descriptors for everything else; a value
    /// that leaves fewer is refused by [`SinkConfig::start`].
    pub fn max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = Some(max_connections);
        self
    }

    /// [`Self::max_connections`] when `Some`; `None` restores the default.
    pub fn max_connections_opt(mut self, max_connections: Option<usize>) -> Self {
        self.max_connections = max_connections;
        self
    }
}

impl SinkConfig {
    /// The default configuration, bound to `127.0.0.1` on a free port: what
    /// tests want.
    pub fn ephemeral() -> Self {
        SinkConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ..SinkConfig::default()
        }
    }

    /// Checks the values a sink cannot work with ([`SinkConfig::start`]
    /// calls it): a zero `max_body` or `request_timeout`, an `admin_token`
    /// shorter than [`MIN_ADMIN_TOKEN_CHARS`] or with whitespace or control
    /// characters, a license or API key that is empty or has any, and the
    /// [`Faults`]. No error shows a credential.
    pub fn validate(&self) -> Result<(), SinkError> {
        if self.max_body == 0 {
            return Err(SinkError::InvalidConfig(
                "max_body is 0, so every request would be refused; use a positive byte count"
                    .into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(SinkError::InvalidConfig(
                "request_timeout is 0, so every request would time out; use a positive duration"
                    .into(),
            ));
        }
        let unusable =
            |s: &str| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control());
        if let Some(t) = &self.admin_token
            && (unusable(t.expose()) || t.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS)
        {
            return Err(SinkError::WeakAdminToken);
        }
        let licenses = self.licenses.as_deref().unwrap_or_default();
        for (field, keys) in [("licenses", licenses), ("api_keys", &self.api_keys)] {
            if let Some(i) = keys.iter().position(|k| unusable(k.expose())) {
                return Err(SinkError::BadKey {
                    field,
                    index: i + 1,
                });
            }
        }
        self.faults.validate()
    }

    /// True if `license` is accepted, per [`SinkConfig::licenses`].
    pub(crate) fn accepts_license(&self, license: &str) -> bool {
        match &self.licenses {
            Some(list) => list.iter().any(|l| l.expose() == license),
            None => license.starts_with("lcl_"),
        }
    }

    /// True if `key` is one of [`SinkConfig::api_keys`].
    pub(crate) fn accepts_api_key(&self, key: &str) -> bool {
        self.api_keys.iter().any(|k| k.expose() == key)
    }
}

/// The PEM files of an HTTPS sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM, `CERTIFICATE` blocks).
    pub cert: PathBuf,
    /// The private key of the leaf (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Faults injected into `POST /v1/metadata/submit` (the other endpoints only
/// get [`Faults::latency`]). The default injects nothing.
///
/// For every submit, after its body has been read and the latency waited
/// out, the sink decides in this order:
///
/// 1. [`forced_status`](Faults::forced_status) set: answer that status.
/// 2. with probability [`failure_rate`](Faults::failure_rate): answer `503`
///    with `Retry-After: retry_after_secs`.
/// 3. with probability [`drop_rate`](Faults::drop_rate): close the
///    connection without an answer, recording nothing.
/// 4. validate, authenticate and deduplicate the report as usual.
/// 5. if the report was new and accepted, with probability
///    [`accept_then_drop_rate`](Faults::accept_then_drop_rate): close the
///    connection without an answer. The report stays accepted: this is the
///    timeout-after-accept case that idempotency keys exist for. A
///    duplicate is never dropped this way, so a retry gets its `204`.
///
/// The random draws come from a `fastrand` generator seeded with
/// [`seed`](Faults::seed): one sink fed the same requests in the same order
/// makes the same decisions. A rate of 0 or 1 draws nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Share of submits answered `503 Service Unavailable`, in `[0, 1]`.
    pub failure_rate: f64,
    /// `Retry-After` value, in seconds, sent with injected `503`s (and with
    /// a forced `429` or `503`). Default 1.
    pub retry_after_secs: u64,
    /// Share of submits whose connection is closed without an answer and
    /// without accepting the report, in `[0, 1]`.
    pub drop_rate: f64,
    /// Share of accepted submits whose connection is then closed without an
    /// answer, in `[0, 1]`.
    pub accept_then_drop_rate: f64,
    /// Added before answering every request except `GET /v1/summary` and
    /// `GET /v1/reports`.
    pub latency: Duration,
    /// Answer every submit with this status, without looking at it. Must be
    /// in `200..=599`; a value outside it set through
    /// [`super::SinkHandle::set_forced_status`] is answered as `500`.
    pub forced_status: Option<u16>,
    /// Seed of the generator that draws the rates.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            failure_rate: 0.0,
            retry_after_secs: 1,
            drop_rate: 0.0,
            accept_then_drop_rate: 0.0,
            latency: Duration::ZERO,
            forced_status: None,
            seed: 0x5EED,
        }
    }
}

impl Faults {
    /// No fault at all (same as `Faults::default()`).
    pub fn none() -> Self {
        Faults::default()
    }

    fn rates(&self) -> [(&'static str, f64); 3] {
        [
            ("failure_rate", self.failure_rate),
            ("drop_rate", self.drop_rate),
            ("accept_then_drop_rate", self.accept_then_drop_rate),
        ]
    }

    pub(crate) fn validate(&self) -> Result<(), SinkError> {
        for (name, rate) in self.rates() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SinkError::InvalidConfig(format!(
                    "faults.{name} is {rate}; use a share between 0 and 1"
                )));
            }
        }
        if let Some(status) = self.forced_status
            && !(200..=599).contains(&status)
        {
            return Err(SinkError::InvalidConfig(format!(
                "faults.forced_status is {status}; use an HTTP status between 200 and 599"
            )));
        }
        Ok(())
    }

    /// The same faults with every rate clamped into `[0, 1]` (NaN becomes 0).
    pub(crate) fn sanitized(mut self) -> Self {
        for rate in [
            &mut self.failure_rate,
            &mut self.drop_rate,
            &mut self.accept_then_drop_rate,
        ] {
            *rate = if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            };
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_names_the_field() {
        let mut c = SinkConfig::ephemeral();
        c.faults.drop_rate = 1.5;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("faults.drop_rate"), "{e}");
        let mut c = SinkConfig::ephemeral();
        c.faults.forced_status = Some(42);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("forced_status"), "{e}");
        let mut c = SinkConfig::ephemeral();
        c.max_body = 0;
        assert!(c.validate().unwrap_err().to_string().contains("max_body"));
        assert!(SinkConfig::default().validate().is_ok());
        for token in ["", "short-hidden", "0123456789 hidden-admin"] {
            let c = SinkConfig::ephemeral().admin_token(Secret::new(token));
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("admin_token") && !e.contains("hidden"), "{e}");
        }
        let c = SinkConfig::ephemeral()
            .licenses(vec![Secret::new("lcl_ok_0123456789")])
            .api_keys(vec![Secret::new("lsv2_ok"), Secret::new("lsv2 hidden\n")]);
        let e = c.validate().unwrap_err();
        assert!(
            matches!(
                e,
                SinkError::BadKey {
                    field: "api_keys",
                    index: 2
                }
            ),
            "{e:?}"
        );
        assert!(!e.to_string().contains("hidden"), "{e}");
        let f = Faults {
            failure_rate: f64::NAN,
            drop_rate: -1.0,
            accept_then_drop_rate: 3.0,
            ..Faults::none()
        }
        .sanitized();
        assert_eq!(
            (f.failure_rate, f.drop_rate, f.accept_then_drop_rate),
            (0.0, 0.0, 1.0)
        );
    }

    #[test]
    fn debug_redacts_credentials() {
        let c = SinkConfig::ephemeral()
            .licenses(vec![Secret::new("lcl_0123456789abcdef9f2a")])
            .api_keys(vec![Secret::new("lsv2_pt_0123456789abcdef_77")]);
        let shown = format!("{c:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("lcl_…9f2a"), "{shown}");
    }

    #[test]
    fn license_acceptance() {
        let any = SinkConfig::ephemeral();
        assert!(any.accepts_license("lcl_x"));
        assert!(!any.accepts_license("offline-x"));
        let listed =
            SinkConfig::ephemeral().licenses(vec![Secret::new("lcl_a"), Secret::new("custom")]);
        assert!(listed.accepts_license("custom"));
        assert!(!listed.accepts_license("lcl_b"));
        assert!(!any.accepts_api_key("k"));
    }
}
