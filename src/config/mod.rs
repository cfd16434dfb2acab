//! Configuration: in code ([`Config::builder`]), from the environment
//! ([`Config::from_env`]), or both ([`ConfigBuilder::from_env`], then
//! setters). Layer: shell. May import `crate::secret`, `crate::urls`,
//! `crate::wire` (pure data), the spool's queue names
//! ([`crate::spool::Destination`]) and `url`; no HTTP client crate, no I/O
//! but the CA file.
//!
//! Each setting has a [`ConfigBuilder`] method and variables:
//!
//! | setting | builder method | variables, first set wins | default |
//! | --- | --- | --- | --- |
//! | license key (secret) | `license_key` | `LANGGRAPH_CLOUD_LICENSE_KEY` | unset |
//! | API key (secret) | `api_key` | `LANGSMITH_CONTROL_PLANE_API_KEY`, `LANGSMITH_API_KEY`, `LANGCHAIN_API_KEY` | unset |
//! | auth endpoint: API-key verification and reports | `auth_endpoint` | `LANGSMITH_AUTH_ENDPOINT`, `LANGCHAIN_ENDPOINT`, `LANGSMITH_ENDPOINT` | `https://api.smith.langchain.com` |
//! | Beacon: license verification and reports | `beacon_url` | `BEACON_URL` | `https://beacon.langchain.com` |
//! | wire dialect of the license destination | `wire` | `BEACON_WIRE`: `published` or `langgraph-api` | `published` |
//! | report interval, 1..=86400 s | `interval` | `BEACON_INTERVAL_SECS` | 300 |
//! | request timeout, 1..=600 s | `timeout` | `BEACON_TIMEOUT_SECS` | 30 |
//! | send nothing: `true`/`false`/`1`/`0`/`yes`/`no` | `offline` | `BEACON_OFFLINE` | false |
//! | where unsent reports are kept | `spool_dir` | `BEACON_SPOOL_DIR` | unset |
//! | extra CA certificate(s), PEM | `ca_cert` | `BEACON_CA_CERT` | unset |
//! | how often counts are checkpointed, 1..=3600 s | `checkpoint_interval` | `BEACON_CHECKPOINT_SECS` | 5 |
//! | export operational metrics (OTLP/HTTP): a boolean as above | `metrics_export` | `LANGGRAPH_METRICS_ENABLED` | false |
//! | where metrics go: the full URL, needed when on | `metrics_endpoint` | `LANGGRAPH_METRICS_ENDPOINT` | unset |
//! | how often metrics are exported, 1000..=86400000 ms | `metrics_export_interval` | `LANGGRAPH_METRICS_EXPORT_INTERVAL_MS` | 60000 |
//! | the metrics' `instance_id` | `instance_id` | `HOSTNAME` | unset |
//!
//! The precedence lists are the reference platform's (`langgraph-api`).
//! Values are trimmed; an empty value counts as unset, so the next variable
//! in the list is read. Only the winning variable is checked: a value that
//! is not UTF-8, longer than [`MAX_VALUE_BYTES`] (secrets:
//! [`MAX_SECRET_BYTES`]) or otherwise wrong is a [`ConfigError`] naming that
//! variable, the value (never for a secret) and the fix. A builder method
//! is held to the same rules, except that durations are typed (whole
//! milliseconds in code, whole seconds in a variable), and its errors name
//! the method ([`Origin`]). URLs must be `https`, except plain `http` to a
//! loopback address. [`Config::sources`] records where each value came
//! from.
//!
//! Who gets what ([`Config::credentials`]): an online (`lcl_`) license
//! reports to the Beacon; an API key reports to the auth endpoint; a license
//! without `lcl_` is never sent anywhere. Nothing is sent when
//! `BEACON_OFFLINE` is true, or when the only credential is such an offline
//! license ([`Config::is_offline`]).

mod builder;
mod env;
mod error;

pub use builder::ConfigBuilder;
pub use error::{ConfigError, Origin};

use crate::secret::{Pem, Secret};
use crate::spool::Destination;
use crate::urls;
use crate::wire::tags::ENV_VARS;
use crate::wire::{Credential, Dialect, TagError, Tags};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// `LANGGRAPH_CLOUD_LICENSE_KEY`
pub const ENV_LICENSE_KEY: &str = "LANGGRAPH_CLOUD_LICENSE_KEY";
/// `LANGSMITH_CONTROL_PLANE_API_KEY`: the API key, first choice.
pub const ENV_CONTROL_PLANE_API_KEY: &str = "LANGSMITH_CONTROL_PLANE_API_KEY";
/// `LANGSMITH_API_KEY`: the API key, second choice.
pub const ENV_API_KEY: &str = "LANGSMITH_API_KEY";
/// `LANGCHAIN_API_KEY`: the API key, last choice (legacy name).
pub const ENV_LEGACY_API_KEY: &str = "LANGCHAIN_API_KEY";
/// The API key's variables, first set wins.
pub const API_KEY_VARS: [&str; 3] = [ENV_CONTROL_PLANE_API_KEY, ENV_API_KEY, ENV_LEGACY_API_KEY];
/// `LANGSMITH_AUTH_ENDPOINT`: the auth endpoint, first choice.
pub const ENV_AUTH_ENDPOINT: &str = "LANGSMITH_AUTH_ENDPOINT";
/// `LANGCHAIN_ENDPOINT`: the auth endpoint, second choice (legacy name).
pub const ENV_LEGACY_ENDPOINT: &str = "LANGCHAIN_ENDPOINT";
/// `LANGSMITH_ENDPOINT`: the auth endpoint, last choice.
pub const ENV_ENDPOINT: &str = "LANGSMITH_ENDPOINT";
/// The auth endpoint's variables, first set wins.
pub const AUTH_ENDPOINT_VARS: [&str; 3] = [ENV_AUTH_ENDPOINT, ENV_LEGACY_ENDPOINT, ENV_ENDPOINT];
/// `BEACON_WIRE`: the license destination's wire dialect.
pub const ENV_WIRE: &str = "BEACON_WIRE";
/// `BEACON_URL`
pub const ENV_BEACON_URL: &str = "BEACON_URL";
/// `BEACON_INTERVAL_SECS`
pub const ENV_INTERVAL: &str = "BEACON_INTERVAL_SECS";
/// `BEACON_TIMEOUT_SECS`
pub const ENV_TIMEOUT: &str = "BEACON_TIMEOUT_SECS";
/// `BEACON_OFFLINE`
pub const ENV_OFFLINE: &str = "BEACON_OFFLINE";
/// `BEACON_SPOOL_DIR`
pub const ENV_SPOOL_DIR: &str = "BEACON_SPOOL_DIR";
/// `BEACON_CA_CERT`
pub const ENV_CA_CERT: &str = "BEACON_CA_CERT";
/// `BEACON_CHECKPOINT_SECS`
pub const ENV_CHECKPOINT: &str = "BEACON_CHECKPOINT_SECS";
/// `LANGGRAPH_METRICS_ENABLED`: export operational metrics over OTLP/HTTP
/// (the platform's own switch).
pub const ENV_METRICS_ENABLED: &str = "LANGGRAPH_METRICS_ENABLED";
/// `LANGGRAPH_METRICS_ENDPOINT`: the full OTLP/HTTP URL metrics are posted to.
pub const ENV_METRICS_ENDPOINT: &str = "LANGGRAPH_METRICS_ENDPOINT";
/// `LANGGRAPH_METRICS_EXPORT_INTERVAL_MS`: how often metrics are exported.
pub const ENV_METRICS_INTERVAL: &str = "LANGGRAPH_METRICS_EXPORT_INTERVAL_MS";
/// `HOSTNAME`: the `instance_id` of exported metrics (the pod's name in
/// Kubernetes, the container's id in Docker), as the platform sets it.
pub const ENV_HOSTNAME: &str = "HOSTNAME";

/// The default auth endpoint.
pub const DEFAULT_AUTH_ENDPOINT: &str = "https://api.smith.langchain.com";
/// The default Beacon.
pub const DEFAULT_BEACON_URL: &str = "https://beacon.langchain.com";

/// The longest accepted value of a non-secret variable, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;
/// The longest accepted credential, in bytes.
pub const MAX_SECRET_BYTES: usize = 1024;
/// The largest CA certificate file read, in bytes.
pub const MAX_CA_CERT_BYTES: u64 = 1024 * 1024;

/// An extra CA certificate file, checked and read at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCert {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its PEM text (at least one CERTIFICATE block).
    pub pem: Pem,
}

/// Where and how often operational metrics go ([`Config::metrics_export`]):
/// OTLP/HTTP protobuf, best effort, beside the usage reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsExport {
    /// The URL metrics are posted to, used as given (as the platform's
    /// exporter does: the path, usually `/v1/metrics`, is part of it).
    pub endpoint: Url,
    /// How often an export is made (default 60 s).
    pub interval: Duration,
    /// The `instance_id` attribute of every point ([`ENV_HOSTNAME`]).
    pub instance_id: Option<String>,
}

/// Where and how reports go with one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// What the requests carry.
    pub credential: Credential,
    /// The wire dialect of the reports ([`Config::wire`]; it changes only
    /// a license's path and field).
    pub dialect: Dialect,
    /// Where the credential is verified: `{beacon}/v1/beacon/verify` for a
    /// license, `{auth}/auth` for an API key (both dialects).
    pub verify_url: Url,
    /// Where reports are posted: [`Config::license_report_url`] for a
    /// license, [`Config::api_key_report_url`] for an API key.
    pub submit_url: Url,
}

impl Endpoint {
    /// The spool queue this credential's windows wait in: a license's in
    /// [`Destination::Beacon`], an API key's in [`Destination::Auth`].
    pub fn destination(&self) -> Destination {
        match self.credential {
            Credential::License(_) => Destination::Beacon,
            Credential::ApiKey(_) => Destination::Auth,
        }
    }

    /// What to do when nothing takes reports at [`Self::submit_url`]
    /// (`404`/`405`): for a license, try the other wire dialect
    /// ([`ENV_WIRE`]) or check [`ENV_BEACON_URL`]; for an API key (whose
    /// path is the same in both dialects), check the auth endpoint.
    pub fn no_report_path_hint(&self) -> String {
        match self.credential {
            Credential::License(_) => format!(
                "the Beacon may speak the other wire dialect: {ENV_WIRE} is {} (path {}), \
                 try {ENV_WIRE}={} (path {}); or check {ENV_BEACON_URL}",
                self.dialect,
                self.dialect.license_report_path().join("/"),
                self.dialect.other(),
                self.dialect.other().license_report_path().join("/"),
            ),
            Credential::ApiKey(_) => format!(
                "check the auth endpoint ({}): reports go to {{auth}}/v1/metadata/submit, or \
                 {{auth}}/metadata/submit when its path already contains /api/v1 (a self-hosted control plane); \
                 {ENV_WIRE} does not change this path",
                AUTH_ENDPOINT_VARS.join(", then ")
            ),
        }
    }
}

/// Where a configuration value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A variable or a builder method set it.
    Given(Origin),
    /// Nothing set it; the built-in default applies.
    Default,
    /// Nothing set it and there is no default.
    Unset,
}

impl Source {
    /// The variable, if the value came from one.
    pub fn var(self) -> Option<&'static str> {
        match self {
            Source::Given(origin) => origin.var(),
            Source::Default | Source::Unset => None,
        }
    }
}

/// Where each value of a [`Config`] came from (field for field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sources {
    /// Of [`Config::license_key`].
    pub license_key: Source,
    /// Of [`Config::api_key`]: one of [`API_KEY_VARS`], or the builder.
    pub api_key: Source,
    /// Of [`Config::auth_endpoint`]: one of [`AUTH_ENDPOINT_VARS`], or the
    /// builder.
    pub auth_endpoint: Source,
    /// Of [`Config::beacon_url`].
    pub beacon_url: Source,
    /// Of [`Config::wire`].
    pub wire: Source,
    /// Of [`Config::interval`].
    pub interval: Source,
    /// Of [`Config::timeout`].
    pub timeout: Source,
    /// Of [`Config::offline_flag`].
    pub offline: Source,
    /// Of [`Config::spool_dir`].
    pub spool_dir: Source,
    /// Of [`Config::ca_cert`].
    pub ca_cert: Source,
    /// Of [`Config::checkpoint_interval`].
    pub checkpoint_interval: Source,
    /// Of the switch of [`Config::metrics_export`].
    pub metrics_enabled: Source,
    /// Of [`MetricsExport::endpoint`].
    pub metrics_endpoint: Source,
    /// Of [`MetricsExport::interval`].
    pub metrics_interval: Source,
}

/// The whole configuration, checked: make one with [`Config::builder`] or
/// [`Config::from_env`]. `Debug` shows credentials redacted.
///
/// The fields are private, with an accessor each: a setting can be added
/// without breaking an embedder, and a `Config` is only ever made by
/// [`ConfigBuilder::build`], so every value in it has passed the checks.
#[derive(Debug, Clone)]
pub struct Config {
    license_key: Option<Secret>,
    api_key: Option<Secret>,
    auth_endpoint: Url,
    beacon_url: Url,
    wire: Dialect,
    interval: Duration,
    timeout: Duration,
    offline: bool,
    spool_dir: Option<PathBuf>,
    ca_cert: Option<CaCert>,
    checkpoint_interval: Duration,
    metrics_export: Option<MetricsExport>,
    sources: Sources,
}

/// The platform tags from the process environment ([`Tags::from_lookup`]
/// over [`ENV_VARS`]). A variable that is not
/// UTF-8 is an error.
pub fn tags_from_env() -> Result<Tags, TagError> {
    if let Some(var) = ENV_VARS
        .into_iter()
        .find(|var| std::env::var_os(var).is_some_and(|v| v.to_str().is_none()))
    {
        return Err(TagError::NotUnicode { var });
    }
    Tags::from_lookup(|var| std::env::var(var).ok())
}

impl Config {
    /// A builder with nothing set: every setting at its default.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The configuration from the process environment
    /// ([`ConfigBuilder::from_env`], then [`ConfigBuilder::build`]).
    pub fn from_env() -> Result<Config, ConfigError> {
        ConfigBuilder::from_env()?.build()
    }

    /// The configuration from `lookup` (an environment). Reads the CA
    /// certificate file, if one is named; touches nothing else.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Config, ConfigError> {
        ConfigBuilder::from_lookup(lookup)?.build()
    }

    /// The configuration from explicit `(variable, value)` pairs, ignoring
    /// the process environment: the environment's rules without the
    /// process's environment (tests, and tools that take variables from a
    /// file). Code that sets values should use [`Config::builder`].
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        })
    }

    /// The license key ([`ENV_LICENSE_KEY`]), if set.
    pub fn license_key(&self) -> Option<&Secret> {
        self.license_key.as_ref()
    }

    /// The API key (first of [`API_KEY_VARS`]), if set.
    pub fn api_key(&self) -> Option<&Secret> {
        self.api_key.as_ref()
    }

    /// The auth endpoint: API-key verification and reports.
    pub fn auth_endpoint(&self) -> &Url {
        &self.auth_endpoint
    }

    /// The Beacon: license verification and reports.
    pub fn beacon_url(&self) -> &Url {
        &self.beacon_url
    }

    /// The wire dialect reports are sent in.
    pub fn wire(&self) -> Dialect {
        self.wire
    }

    /// The report interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True if [`ENV_OFFLINE`] (or [`ConfigBuilder::offline`]) says to send
    /// nothing. Whether anything is sent also depends on the license:
    /// see [`Config::is_offline`].
    pub fn offline_flag(&self) -> bool {
        self.offline
    }

    /// Where unsent reports are kept, if set (the reporter then falls back
    /// to [`crate::spool::Spool::default_dir`]).
    pub fn spool_dir(&self) -> Option<&Path> {
        self.spool_dir.as_deref()
    }

    /// The extra CA certificates, read and checked at build.
    pub fn ca_cert(&self) -> Option<&CaCert> {
        self.ca_cert.as_ref()
    }

    /// How often the open window's counts are checkpointed.
    pub fn checkpoint_interval(&self) -> Duration {
        self.checkpoint_interval
    }

    /// Where and how often operational metrics are exported, if
    /// [`ENV_METRICS_ENABLED`] (or [`ConfigBuilder::metrics_export`]) turns
    /// it on. The reporter exports only with a license key, as the
    /// platform does, and never offline.
    pub fn metrics_export(&self) -> Option<&MetricsExport> {
        self.metrics_export.as_ref()
    }

    /// Where each value came from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// True if nothing may be sent at all: `BEACON_OFFLINE` is true, or the
    /// license key is an offline (air-gapped) license, i.e. lacks the `lcl_`
    /// prefix, and no API key is set. (With an API key, an offline license
    /// is simply never sent, and the API key still reports.)
    pub fn is_offline(&self) -> bool {
        self.offline || (self.has_offline_license() && self.api_key.is_none())
    }

    /// True if a license key is set that lacks the `lcl_` prefix: it never
    /// leaves the process, whatever else is set.
    pub fn has_offline_license(&self) -> bool {
        self.license_key
            .as_ref()
            .is_some_and(|k| !k.is_online_license())
    }

    /// Where reports will go: an online (`lcl_`) license key to the Beacon,
    /// the API key to the auth endpoint, in that order. Empty when
    /// [offline](Self::is_offline) or when no credential is set. An offline
    /// license is never among them.
    pub fn credentials(&self) -> Vec<Endpoint> {
        if self.is_offline() {
            return Vec::new();
        }
        let mut all = self.every_endpoint();
        all.retain(|d| match &d.credential {
            Credential::License(k) => k.is_online_license(),
            Credential::ApiKey(_) => true,
        });
        all
    }

    /// The destination of every credential set, license first, whether or
    /// not it is [sent](Self::credentials): what an offline deployment's
    /// reports would look like.
    pub fn every_endpoint(&self) -> Vec<Endpoint> {
        let license = self
            .license_key
            .iter()
            .map(|k| Credential::License(k.clone()));
        let api_key = self.api_key.iter().map(|k| Credential::ApiKey(k.clone()));
        license.chain(api_key).map(|c| self.endpoint(c)).collect()
    }

    /// Where `credential` would be verified and report to under this
    /// configuration (whether or not it is [sent](Self::credentials)).
    pub fn endpoint(&self, credential: Credential) -> Endpoint {
        let (base, _) = self.base_url(&credential);
        let (verify_path, submit_url): (&[&str], _) = match &credential {
            Credential::License(_) => (
                &["v1", "beacon", "verify"],
                self.license_report_url(self.wire),
            ),
            Credential::ApiKey(_) => (&["auth"], self.api_key_report_url()),
        };
        Endpoint {
            verify_url: join(base, verify_path),
            credential,
            dialect: self.wire,
            submit_url,
        }
    }

    /// The base URL `credential`'s requests go under, and the variable that
    /// sets it: [`Self::beacon_url`] ([`ENV_BEACON_URL`]) for a license,
    /// [`Self::auth_endpoint`] for an API key (the variable it was read
    /// from, else the first of [`AUTH_ENDPOINT_VARS`]).
    pub fn base_url(&self, credential: &Credential) -> (&Url, &'static str) {
        match credential {
            Credential::License(_) => (&self.beacon_url, ENV_BEACON_URL),
            Credential::ApiKey(_) => {
                let var = self.sources.auth_endpoint.var();
                (&self.auth_endpoint, var.unwrap_or(AUTH_ENDPOINT_VARS[0]))
            }
        }
    }

    /// Where a license's reports go in `dialect`:
    /// `{beacon}/v1/metadata/submit` (published) or
    /// `{beacon}/v1/beacon/metadata/submit` (langgraph-api).
    pub fn license_report_url(&self, dialect: Dialect) -> Url {
        join(&self.beacon_url, dialect.license_report_path())
    }

    /// Where an API key's reports go, in both dialects:
    /// `{auth}/v1/metadata/submit`, or `{auth}/metadata/submit` when the
    /// auth endpoint's path already contains `/api/v1` (a self-hosted
    /// control plane). The rule is the reference reporter's, which applies
    /// it to the auth endpoint whatever the license destination does, so it
    /// holds in both dialects.
    pub fn api_key_report_url(&self) -> Url {
        if self.auth_endpoint.path().contains("/api/v1") {
            join(&self.auth_endpoint, &["metadata", "submit"])
        } else {
            join(&self.auth_endpoint, &["v1", "metadata", "submit"])
        }
    }
}

/// `segments` under `base` ([`urls::join`]).
fn join(base: &Url, segments: &[&str]) -> Url {
    urls::join(base, segments).expect("a checked endpoint URL takes a path")
}

#[cfg(test)]
mod tests {
    use super::builder::check_endpoint;
    use super::*;

    const LICENSE: &str = "lcl_0123456789abcdef0123456789";
    const OFFLINE_LICENSE: &str = "offline_9876543210fedcba9876543210";
    const API_KEY: &str = "lsv2_pt_00112233445566778899aabb";

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_pairs(pairs)
    }

    /// Asserts that `value` in `var` is refused by an error naming `var`
    /// whose message says each of `says`.
    fn assert_refused(var: &str, value: &str, says: &[&str]) {
        let err = load(&[(var, value)]).unwrap_err();
        assert_eq!(err.var(), Some(var));
        let msg = err.to_string();
        assert!(says.iter().all(|s| msg.contains(s)), "{msg}");
    }

    fn assert_no_secret(text: &str) {
        for s in [
            LICENSE,
            OFFLINE_LICENSE,
            API_KEY,
            "0123456789abcdef",
            "00112233445566",
        ] {
            assert!(!text.contains(s), "secret leaked: {text}");
        }
    }

    const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\n\
        MIIBszCCAVmgAwIBAgIUQ2Fm\n\
        -----END CERTIFICATE-----\n";

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.license_key(), None);
        assert_eq!(c.api_key(), None);
        assert_eq!(
            c.auth_endpoint().as_str(),
            "https://api.smith.langchain.com/"
        );
        assert_eq!(c.beacon_url().as_str(), "https://beacon.langchain.com/");
        assert_eq!(c.interval(), Duration::from_secs(300));
        assert_eq!(c.timeout(), Duration::from_secs(30));
        assert!(!c.offline_flag());
        assert_eq!(c.spool_dir(), None);
        assert_eq!(c.ca_cert(), None);
        assert_eq!(c.checkpoint_interval(), Duration::from_secs(5));
        assert!(!c.is_offline());
        assert!(c.credentials().is_empty());
    }

    #[test]
    fn reads_every_variable_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, format!("junk before\n{CERT_PEM}")).unwrap();
        let c = load(&[
            (ENV_LICENSE_KEY, &format!("  {LICENSE}\n")),
            (ENV_API_KEY, API_KEY),
            (ENV_AUTH_ENDPOINT, " https://eu.api.smith.langchain.com "),
            (ENV_BEACON_URL, "http://127.0.0.1:8080/base"),
            (ENV_INTERVAL, "60"),
            (ENV_TIMEOUT, " 10 "),
            (ENV_OFFLINE, "No"),
            (ENV_SPOOL_DIR, "/var/spool/beacon"),
            (ENV_CA_CERT, ca.to_str().unwrap()),
            (ENV_CHECKPOINT, "2"),
        ])
        .unwrap();
        assert_eq!(c.license_key().as_ref().unwrap().expose(), LICENSE);
        assert_eq!(c.api_key().as_ref().unwrap().expose(), API_KEY);
        assert_eq!(
            c.auth_endpoint().as_str(),
            "https://eu.api.smith.langchain.com/"
        );
        assert_eq!(c.beacon_url().as_str(), "http://127.0.0.1:8080/base");
        assert_eq!(c.interval(), Duration::from_secs(60));
        assert_eq!(c.timeout(), Duration::from_secs(10));
        assert!(!c.offline_flag());
        assert_eq!(c.spool_dir(), Some(Path::new("/var/spool/beacon")));
        assert_eq!(c.ca_cert().as_ref().unwrap().path, ca);
        assert!(
            c.ca_cert()
                .as_ref()
                .unwrap()
                .pem
                .starts_with(b"junk before")
        );
        assert_eq!(c.checkpoint_interval(), Duration::from_secs(2));
    }

    #[test]
    fn empty_and_blank_values_are_unset() {
        let c = load(&[
            (ENV_LICENSE_KEY, ""),
            (ENV_API_KEY, "   "),
            (ENV_BEACON_URL, " "),
            (ENV_INTERVAL, ""),
            (ENV_OFFLINE, "\t"),
            (ENV_SPOOL_DIR, ""),
            (ENV_CA_CERT, "  "),
        ])
        .unwrap();
        assert_eq!((c.license_key(), c.api_key()), (None, None));
        assert_eq!(c.beacon_url().as_str(), "https://beacon.langchain.com/");
        assert_eq!(c.interval(), Duration::from_secs(300));
        assert!(!c.offline_flag());
        assert_eq!((c.spool_dir(), c.ca_cert()), (None, None));
    }

    #[test]
    fn booleans() {
        for (v, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("false", false),
            ("0", false),
            ("no", false),
        ] {
            assert_eq!(load(&[(ENV_OFFLINE, v)]).unwrap().offline, want, "{v}");
        }
        assert_refused(
            ENV_OFFLINE,
            "maybe",
            &["BEACON_OFFLINE", "\"maybe\"", "true, false"],
        );
    }

    #[test]
    fn seconds_must_be_whole_and_in_range() {
        for (var, bad) in [
            (ENV_INTERVAL, "0"),
            (ENV_INTERVAL, "86401"),
            (ENV_INTERVAL, "-5"),
            (ENV_INTERVAL, "+5"),
            (ENV_INTERVAL, "1.5"),
            (ENV_INTERVAL, "5m"),
            (ENV_INTERVAL, "99999999999999999999999"),
            (ENV_TIMEOUT, "601"),
            (ENV_CHECKPOINT, "3601"),
            (ENV_CHECKPOINT, "0"),
        ] {
            let err = load(&[(var, bad)]).unwrap_err();
            assert_eq!(err.var(), Some(var));
            let msg = err.to_string();
            assert!(
                msg.contains(var) && msg.contains(&format!("{bad:?}")),
                "{msg}"
            );
            assert!(msg.contains("whole number of seconds"), "{msg}");
        }
        assert_eq!(
            load(&[(ENV_INTERVAL, "86400")]).unwrap().interval,
            Duration::from_secs(86_400)
        );
        assert_eq!(
            load(&[(ENV_TIMEOUT, "1")]).unwrap().timeout,
            Duration::from_secs(1)
        );
        assert_eq!(
            load(&[(ENV_CHECKPOINT, "3600")])
                .unwrap()
                .checkpoint_interval,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn huge_values_are_rejected_without_echoing_them() {
        let huge = "9".repeat(MAX_VALUE_BYTES + 1);
        let err = load(&[(ENV_INTERVAL, &huge)]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::TooLong {
                origin: Origin::Var(ENV_INTERVAL),
                len: MAX_VALUE_BYTES + 1,
                max: MAX_VALUE_BYTES
            }
        );
        assert!(err.to_string().len() < 200);
        let long_secret = format!("lcl_{}", "a".repeat(MAX_SECRET_BYTES));
        let err = load(&[(ENV_LICENSE_KEY, &long_secret)]).unwrap_err();
        assert_eq!(err.var(), Some(ENV_LICENSE_KEY));
        assert!(!err.to_string().contains("aaaa"));
        // a long but allowed value is shown cut short
        let long_url = format!("ftp://{}", "h".repeat(1000));
        let msg = load(&[(ENV_BEACON_URL, &long_url)])
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 400, "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_is_an_error_naming_the_variable() {
        use std::os::unix::ffi::OsStringExt;
        for var in [ENV_LICENSE_KEY, ENV_BEACON_URL, ENV_SPOOL_DIR] {
            let err = Config::from_lookup(|k| {
                (k == var).then(|| OsString::from_vec(vec![b'a', 0xff, b'b']))
            })
            .unwrap_err();
            assert_eq!(
                err,
                ConfigError::NotUnicode {
                    origin: Origin::Var(var)
                }
            );
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn secrets_with_whitespace_are_rejected_without_showing_them() {
        let bad = format!("{LICENSE} {LICENSE}");
        let err = load(&[(ENV_LICENSE_KEY, &bad)]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::BadSecret {
                origin: Origin::Var(ENV_LICENSE_KEY)
            }
        );
        let text = format!("{err} {err:?}");
        assert_no_secret(&text);
        assert!(text.contains(ENV_LICENSE_KEY));
        let err = load(&[(ENV_API_KEY, &format!("{API_KEY}\u{7}"))]).unwrap_err();
        assert_eq!(err.var(), Some(ENV_API_KEY));
        assert_no_secret(&format!("{err} {err:?}"));
    }

    #[test]
    fn urls_https_or_loopback_http() {
        for ok in [
            "https://beacon.example.com",
            "https://beacon.example.com:8443/prefix/",
            "http://127.0.0.1:9000",
            "http://127.5.6.7",
            "http://[::1]:8080/x",
            "http://localhost:3000",
            "http://LOCALHOST",
        ] {
            assert!(check_endpoint(Origin::Var("X_URL"), ok).is_ok(), "{ok}");
        }
        for insecure in [
            "http://beacon.example.com",
            "http://10.0.0.1",
            "http://[::2]",
            "http://localhost.example.com",
            "http://128.0.0.1",
        ] {
            let err = check_endpoint(Origin::Var("X_URL"), insecure).unwrap_err();
            assert!(
                matches!(err, ConfigError::InsecureUrl { .. }),
                "{insecure}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("X_URL") && msg.contains(insecure) && msg.contains("use https"),
                "{msg}"
            );
        }
        for bad in [
            "beacon.example.com",
            "ftp://beacon.example.com",
            "https://",
            "https://beacon.example.com/?x=1",
            "https://beacon.example.com/#f",
            "file:///etc/passwd",
        ] {
            let err = check_endpoint(Origin::Var("X_URL"), bad).unwrap_err();
            assert!(matches!(err, ConfigError::BadUrl { .. }), "{bad}: {err}");
            assert_eq!(err.var(), Some("X_URL"));
            assert!(
                err.to_string().contains("https://beacon.example.com"),
                "fix: {err}"
            );
        }
        assert_refused(ENV_AUTH_ENDPOINT, "http://api.example.com", &[]);
    }

    #[test]
    fn url_passwords_are_not_echoed() {
        let err = check_endpoint(
            Origin::Var("X_URL"),
            "https://user:hunter2pass@beacon.example.com/",
        )
        .unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(
            !msg.contains("hunter2pass") && !msg.contains("user:"),
            "{msg}"
        );
        assert!(msg.contains("***@beacon.example.com"), "{msg}");
        let err = check_endpoint(Origin::Var("X_URL"), "http://user:hunter2pass@example.com/")
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2pass"));
        // Forms the URL parser takes without "://".
        for url in [
            "https:user:hunter2pass@h.example",
            "https:/user:hunter2pass@h.example",
            "https:\\\\user:hunter2pass@h.example",
            "user:hunter2pass@h.example",
        ] {
            let err = check_endpoint(Origin::Var("X_URL"), url).unwrap_err();
            let msg = format!("{err} {err:?}");
            assert!(!msg.contains("hunter2pass"), "{msg}");
            assert!(msg.contains("***@h.example"), "{msg}");
        }
        // A query or fragment may hold a token too.
        let err = check_endpoint(
            Origin::Var("X_URL"),
            "https://h.example/?key=hunter2pass#hunter2pass",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("\"https://h.example/?***\""),
            "{err}"
        );
    }

    #[test]
    fn ca_cert_must_exist_and_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let unterminated = dir.path().join("open.pem");
        std::fs::write(
            &unterminated,
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Fm\n",
        )
        .unwrap();
        let second_good = dir.path().join("two.pem");
        std::fs::write(
            &second_good,
            format!("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n{CERT_PEM}"),
        )
        .unwrap();
        for (path, why) in [
            (&missing, "cannot read"),
            (&empty, "no PEM CERTIFICATE"),
            (&key_only, "no PEM CERTIFICATE"),
            (&garbage, "no PEM CERTIFICATE"),
            (&unterminated, "no PEM CERTIFICATE"),
            (&dir.path().to_path_buf(), "not a file"),
        ] {
            let err = load(&[(ENV_CA_CERT, path.to_str().unwrap())]).unwrap_err();
            assert_eq!(err.var(), Some(ENV_CA_CERT));
            let msg = err.to_string();
            assert!(
                msg.contains(ENV_CA_CERT)
                    && msg.contains(path.to_str().unwrap())
                    && msg.contains(why),
                "{msg}"
            );
        }
        assert!(
            load(&[(ENV_CA_CERT, second_good.to_str().unwrap())])
                .unwrap()
                .ca_cert
                .is_some()
        );
    }

    #[test]
    fn offline_rules() {
        assert!(load(&[(ENV_OFFLINE, "true")]).unwrap().is_offline());
        assert!(
            load(&[(ENV_OFFLINE, "yes"), (ENV_LICENSE_KEY, LICENSE)])
                .unwrap()
                .is_offline()
        );
        assert!(
            load(&[(ENV_LICENSE_KEY, OFFLINE_LICENSE)])
                .unwrap()
                .is_offline()
        );
        assert!(!load(&[(ENV_LICENSE_KEY, LICENSE)]).unwrap().is_offline());
        assert!(!load(&[(ENV_API_KEY, API_KEY)]).unwrap().is_offline());
        // The platform's rule: an offline license turns reporting off only
        // when no API key is set; with one, the API key reports alone and
        // the license is never sent.
        let c = load(&[(ENV_LICENSE_KEY, OFFLINE_LICENSE), (ENV_API_KEY, API_KEY)]).unwrap();
        assert!(!c.is_offline());
        assert!(c.has_offline_license());
        let d = c.credentials();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].credential, Credential::ApiKey(Secret::new(API_KEY)));
        // BEACON_OFFLINE wins over everything.
        let c = load(&[
            (ENV_OFFLINE, "true"),
            (ENV_LICENSE_KEY, LICENSE),
            (ENV_API_KEY, API_KEY),
        ])
        .unwrap();
        assert!(c.is_offline());
        assert!(c.credentials().is_empty(), "offline sends nothing at all");
        // No credential: not offline, but nothing to send.
        let c = load(&[]).unwrap();
        assert!(!c.is_offline() && c.credentials().is_empty());
    }

    #[test]
    fn api_key_follows_the_platform_precedence() {
        const CP: &str = "lsv2_pt_controlplane0123456789";
        const LEGACY: &str = "lsv2_pt_legacykey0123456789ab";
        let pick = |pairs: &[(&str, &str)]| {
            let c = load(pairs).unwrap();
            (
                c.api_key().map(|k| k.expose().to_owned()),
                c.sources().api_key,
            )
        };
        let all = [
            (ENV_CONTROL_PLANE_API_KEY, CP),
            (ENV_API_KEY, API_KEY),
            (ENV_LEGACY_API_KEY, LEGACY),
        ];
        assert_eq!(
            pick(&all),
            (
                Some(CP.to_owned()),
                Source::Given(Origin::Var(ENV_CONTROL_PLANE_API_KEY))
            )
        );
        assert_eq!(
            pick(&all[1..]),
            (
                Some(API_KEY.to_owned()),
                Source::Given(Origin::Var(ENV_API_KEY))
            )
        );
        assert_eq!(
            pick(&all[2..]),
            (
                Some(LEGACY.to_owned()),
                Source::Given(Origin::Var(ENV_LEGACY_API_KEY))
            )
        );
        // Empty counts as unset: the next one is read.
        assert_eq!(
            pick(&[
                (ENV_CONTROL_PLANE_API_KEY, " "),
                (ENV_LEGACY_API_KEY, LEGACY)
            ]),
            (
                Some(LEGACY.to_owned()),
                Source::Given(Origin::Var(ENV_LEGACY_API_KEY))
            )
        );
        assert_eq!(pick(&[]), (None, Source::Unset));
        // A shadowed variable is not read at all, so it cannot fail.
        assert!(load(&[(ENV_CONTROL_PLANE_API_KEY, CP), (ENV_API_KEY, "bad key")]).is_ok());
        let err = load(&[
            (ENV_CONTROL_PLANE_API_KEY, "bad key"),
            (ENV_API_KEY, API_KEY),
        ])
        .unwrap_err();
        assert_eq!(err.var(), Some(ENV_CONTROL_PLANE_API_KEY));
    }

    #[test]
    fn auth_endpoint_follows_the_platform_precedence() {
        let auth = |pairs: &[(&str, &str)]| {
            let c = load(pairs).unwrap();
            (c.auth_endpoint().to_string(), c.sources().auth_endpoint)
        };
        let all = [
            (ENV_AUTH_ENDPOINT, "https://a.example.com"),
            (ENV_LEGACY_ENDPOINT, "https://b.example.com"),
            (ENV_ENDPOINT, "https://c.example.com"),
        ];
        assert_eq!(
            auth(&all),
            (
                "https://a.example.com/".to_owned(),
                Source::Given(Origin::Var(ENV_AUTH_ENDPOINT))
            )
        );
        assert_eq!(
            auth(&all[1..]),
            (
                "https://b.example.com/".to_owned(),
                Source::Given(Origin::Var(ENV_LEGACY_ENDPOINT))
            )
        );
        assert_eq!(
            auth(&all[2..]),
            (
                "https://c.example.com/".to_owned(),
                Source::Given(Origin::Var(ENV_ENDPOINT))
            )
        );
        assert_eq!(
            auth(&[]),
            (
                "https://api.smith.langchain.com/".to_owned(),
                Source::Default
            )
        );
        // An error names the variable the value came from.
        assert_refused(ENV_LEGACY_ENDPOINT, "http://evil.example.com", &[]);
    }

    #[test]
    fn base_url_names_the_variable_that_sets_it() {
        let (license, api) = (
            Credential::License(Secret::new(LICENSE)),
            Credential::ApiKey(Secret::new(API_KEY)),
        );
        let c = load(&[]).unwrap();
        assert_eq!(c.base_url(&license), (c.beacon_url(), ENV_BEACON_URL));
        assert_eq!(c.base_url(&api), (c.auth_endpoint(), ENV_AUTH_ENDPOINT));
        let c = load(&[(ENV_LEGACY_ENDPOINT, "https://b.example.com")]).unwrap();
        let (url, var) = c.base_url(&api);
        assert_eq!(
            (url.as_str(), var),
            ("https://b.example.com/", ENV_LEGACY_ENDPOINT)
        );
        // The verify URL is under it.
        let verify = c.endpoint(api.clone()).verify_url;
        assert_eq!(verify.as_str(), "https://b.example.com/auth");
    }

    #[test]
    fn every_value_records_its_source() {
        let c = load(&[(ENV_LICENSE_KEY, LICENSE), (ENV_WIRE, "langgraph-api")]).unwrap();
        assert_eq!(
            c.sources().license_key,
            Source::Given(Origin::Var(ENV_LICENSE_KEY))
        );
        assert_eq!(c.sources().wire, Source::Given(Origin::Var(ENV_WIRE)));
        assert_eq!(c.sources().beacon_url, Source::Default);
        assert_eq!(c.sources().spool_dir, Source::Unset);
        assert_eq!(c.sources().ca_cert, Source::Unset);
        assert_eq!(c.sources().interval, Source::Default);
        assert_eq!(c.wire(), Dialect::LanggraphApi);
        assert_eq!(load(&[]).unwrap().wire, Dialect::Published);
    }

    #[test]
    fn a_bad_dialect_names_both_choices() {
        assert_refused(
            ENV_WIRE,
            "beacon-v2",
            &["\"beacon-v2\"", "published", "langgraph-api"],
        );
    }

    #[test]
    fn the_dialect_sets_the_license_path_and_the_api_v1_rule_the_api_key_path() {
        for (wire, license_url) in [
            (
                "published",
                "https://beacon.example.com/x/v1/metadata/submit",
            ),
            (
                "langgraph-api",
                "https://beacon.example.com/x/v1/beacon/metadata/submit",
            ),
        ] {
            for (auth, api_url) in [
                (
                    "https://api.example.com",
                    "https://api.example.com/v1/metadata/submit",
                ),
                (
                    "https://cp.example.com/api/v1",
                    "https://cp.example.com/api/v1/metadata/submit",
                ),
                (
                    "https://cp.example.com/api/v1/",
                    "https://cp.example.com/api/v1/metadata/submit",
                ),
                (
                    "https://cp.example.com/ls/api/v1",
                    "https://cp.example.com/ls/api/v1/metadata/submit",
                ),
                (
                    "https://cp.example.com/api",
                    "https://cp.example.com/api/v1/metadata/submit",
                ),
            ] {
                let c = load(&[
                    (ENV_LICENSE_KEY, LICENSE),
                    (ENV_API_KEY, API_KEY),
                    (ENV_BEACON_URL, "https://beacon.example.com/x"),
                    (ENV_AUTH_ENDPOINT, auth),
                    (ENV_WIRE, wire),
                ])
                .unwrap();
                let d = c.credentials();
                assert_eq!(d[0].submit_url.as_str(), license_url, "{wire}");
                assert_eq!(d[1].submit_url.as_str(), api_url, "{wire} {auth}");
                assert!(d.iter().all(|d| d.dialect == c.wire()));
                // Verification paths do not depend on the dialect.
                assert_eq!(
                    d[0].verify_url.as_str(),
                    "https://beacon.example.com/x/v1/beacon/verify"
                );
                assert!(d[0].no_report_path_hint().contains(ENV_WIRE));
            }
        }
    }

    #[test]
    fn credentials_map_to_destinations() {
        let c = load(&[
            (ENV_LICENSE_KEY, LICENSE),
            (ENV_API_KEY, API_KEY),
            (ENV_BEACON_URL, "https://proxy.example.com/beacon"),
        ])
        .unwrap();
        let d = c.credentials();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].credential, Credential::License(Secret::new(LICENSE)));
        assert_eq!(
            d[0].verify_url.as_str(),
            "https://proxy.example.com/beacon/v1/beacon/verify"
        );
        assert_eq!(
            d[0].submit_url.as_str(),
            "https://proxy.example.com/beacon/v1/metadata/submit"
        );
        assert_eq!(d[1].credential, Credential::ApiKey(Secret::new(API_KEY)));
        assert_eq!(
            d[1].verify_url.as_str(),
            "https://api.smith.langchain.com/auth"
        );
        assert_eq!(
            d[1].submit_url.as_str(),
            "https://api.smith.langchain.com/v1/metadata/submit"
        );
        assert_no_secret(&format!("{d:?}"));

        let only_key = load(&[(ENV_API_KEY, API_KEY)]).unwrap().credentials();
        assert_eq!(only_key.len(), 1);
        assert!(matches!(only_key[0].credential, Credential::ApiKey(_)));
        let only_license = load(&[(ENV_LICENSE_KEY, LICENSE)]).unwrap().credentials();
        assert_eq!(only_license.len(), 1);
        assert_eq!(
            only_license[0].verify_url.as_str(),
            "https://beacon.langchain.com/v1/beacon/verify"
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = load(&[(ENV_LICENSE_KEY, LICENSE), (ENV_API_KEY, API_KEY)]).unwrap();
        let dbg = format!("{c:?} {c:#?}");
        assert_no_secret(&dbg);
        assert!(
            dbg.contains("lcl_…6789") && dbg.contains("beacon.langchain.com"),
            "{dbg}"
        );
    }

    #[test]
    fn no_error_text_carries_a_secret() {
        // Errors in other variables, with secrets set, never mention them.
        let cases: [&[(&str, &str)]; 4] = [
            &[
                (ENV_LICENSE_KEY, LICENSE),
                (ENV_API_KEY, API_KEY),
                (ENV_INTERVAL, "x"),
            ],
            &[
                (ENV_LICENSE_KEY, LICENSE),
                (ENV_BEACON_URL, "http://evil.example.com"),
            ],
            &[(ENV_API_KEY, API_KEY), (ENV_OFFLINE, "perhaps")],
            &[(ENV_API_KEY, &format!("{API_KEY} x"))],
        ];
        let mut cases = cases.to_vec();
        // A key pasted into another variable is redacted there.
        let in_url = format!("http://{LICENSE}.example.com");
        let in_flag = format!(" {API_KEY}");
        let swapped: [&[(&str, &str)]; 2] = [
            &[(ENV_LICENSE_KEY, LICENSE), (ENV_BEACON_URL, &in_url)],
            &[(ENV_API_KEY, API_KEY), (ENV_OFFLINE, &in_flag)],
        ];
        cases.extend(swapped);
        for pairs in cases {
            let err = load(pairs).unwrap_err();
            assert_no_secret(&format!("{err} {err:?}"));
        }
    }

    #[test]
    fn metrics_export_follows_the_platforms_variables() {
        let off = load(&[(ENV_METRICS_ENDPOINT, "https://c.example/v1/metrics")]).unwrap();
        assert!(
            off.metrics_export().is_none(),
            "off unless LANGGRAPH_METRICS_ENABLED"
        );
        let on = load(&[
            (ENV_METRICS_ENABLED, "true"),
            (ENV_METRICS_ENDPOINT, "https://c.example/v1/metrics"),
            (ENV_METRICS_INTERVAL, "15000"),
            (ENV_HOSTNAME, "pod-7"),
        ])
        .unwrap();
        let m = on.metrics_export().unwrap();
        assert_eq!(m.endpoint.as_str(), "https://c.example/v1/metrics");
        assert_eq!(m.interval, Duration::from_millis(15_000));
        assert_eq!(m.instance_id.as_deref(), Some("pod-7"));
        let default = load(&[
            (ENV_METRICS_ENABLED, "1"),
            (ENV_METRICS_ENDPOINT, "http://127.0.0.1:4318/v1/metrics"),
        ])
        .unwrap();
        assert_eq!(
            default.metrics_export().unwrap().interval,
            Duration::from_secs(60)
        );
        // On without an endpoint: refused, as the platform refuses to start.
        let err = load(&[(ENV_METRICS_ENABLED, "true")]).unwrap_err();
        assert_eq!(err.var(), Some(ENV_METRICS_ENABLED));
        assert!(err.to_string().contains(ENV_METRICS_ENDPOINT), "{err}");
        for bad in ["500", "15s", "-1"] {
            let err = load(&[
                (ENV_METRICS_ENABLED, "true"),
                (ENV_METRICS_ENDPOINT, "https://c.example/v1/metrics"),
                (ENV_METRICS_INTERVAL, bad),
            ])
            .unwrap_err();
            assert_eq!(err.var(), Some(ENV_METRICS_INTERVAL));
            assert!(err.to_string().contains("milliseconds from 1000"), "{err}");
        }
        assert_refused_with_metrics(ENV_METRICS_ENDPOINT, "http://collector.example/v1/metrics");
    }

    fn assert_refused_with_metrics(var: &str, value: &str) {
        let err = load(&[(ENV_METRICS_ENABLED, "true"), (var, value)]).unwrap_err();
        assert_eq!(err.var(), Some(var), "{err}");
    }
}
