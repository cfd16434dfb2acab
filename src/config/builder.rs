//! [`ConfigBuilder`]: every setting of the environment as a typed setter,
//! and the checks every value passes, wherever it came from.
//!
//! A value is held with its [`Origin`] until [`ConfigBuilder::build`], which
//! checks it and names that origin in any error. Text from a variable is
//! parsed there (a setter's value is typed already), so a variable
//! overridden by a setter is never parsed and cannot fail.

use super::{
    CaCert, Config, ConfigError, DEFAULT_AUTH_ENDPOINT, DEFAULT_BEACON_URL, MAX_CA_CERT_BYTES,
    MAX_SECRET_BYTES, MetricsExport, Origin, Source, Sources,
};
use crate::secret::{Pem, Secret};
use crate::urls;
use crate::wire::Dialect;
use crate::wire::tiling::{MAX_INTERVAL, RESOLUTION};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Bad values shown in errors are cut to this many characters.
const SHOWN_CHARS: usize = 100;

/// A value that needs parsing when it comes from a variable.
#[derive(Debug, Clone)]
pub(super) enum Given<T> {
    /// This variable's trimmed, non-empty text.
    Var(&'static str, String),
    /// This value, from the builder method named.
    Code(&'static str, T),
}

impl<T> Given<T> {
    /// The text `s` of the variable `var`.
    pub(super) fn var((var, s): (&'static str, String)) -> Given<T> {
        Given::Var(var, s)
    }

    fn origin(&self) -> Origin {
        match self {
            Given::Var(var, _) => Origin::Var(var),
            Given::Code(method, _) => Origin::Builder(method),
        }
    }
}

/// Builds a [`Config`] in code, from the environment, or both.
///
/// [`Config::builder`] starts empty (every default);
/// [`ConfigBuilder::from_env`] starts from the environment. Each setter
/// overrides what was there, and [`build`](Self::build) checks everything
/// by the rules of the [module docs](super): a bad value is a
/// [`ConfigError`] naming its [`Origin`], the variable or the setter.
///
/// Text setters follow the environment's rules: values are trimmed, and an
/// empty value means unset (so `license_key(read_to_string(path)?)` works,
/// newline and all). Durations are exact: whole milliseconds within the
/// setting's range (sub-second values are for tests; the variables take
/// whole seconds). `Debug` shows credentials redacted.
///
/// ```
/// use beacon_meter::config::Config;
/// use std::time::Duration;
///
/// let config = Config::builder()
///     .license_key("lcl_0123456789abcdef")
///     .beacon_url("https://beacon.internal.example")
///     .interval(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(config.interval(), Duration::from_secs(60));
///
/// let err = Config::builder().interval(Duration::ZERO).build().unwrap_err();
/// assert!(err.to_string().starts_with("ConfigBuilder::interval is 0ns"));
/// # Ok::<(), beacon_meter::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    pub(super) license_key: Option<(Origin, Secret)>,
    pub(super) api_key: Option<(Origin, Secret)>,
    pub(super) auth_endpoint: Option<(Origin, String)>,
    pub(super) beacon_url: Option<(Origin, String)>,
    pub(super) wire: Option<Given<Dialect>>,
    pub(super) interval: Option<Given<Duration>>,
    pub(super) timeout: Option<Given<Duration>>,
    pub(super) checkpoint_interval: Option<Given<Duration>>,
    pub(super) offline: Option<Given<bool>>,
    pub(super) spool_dir: Option<(Origin, PathBuf)>,
    pub(super) ca_cert: Option<(Origin, PathBuf)>,
    pub(super) metrics_enabled: Option<Given<bool>>,
    pub(super) metrics_endpoint: Option<(Origin, String)>,
    pub(super) metrics_interval: Option<Given<Duration>>,
    pub(super) instance_id: Option<(Origin, String)>,
}

/// `Some((origin, value))` for a text setting, `None` when it is blank.
fn text<T>(
    method: &'static str,
    value: impl Into<String>,
    f: impl FnOnce(String) -> T,
) -> Option<(Origin, T)> {
    let s = value.into();
    let s = s.trim();
    (!s.is_empty()).then(|| (Origin::Builder(method), f(s.to_owned())))
}

impl ConfigBuilder {
    /// The license key ([`super::ENV_LICENSE_KEY`]): an online (`lcl_`)
    /// license reports to the Beacon; any other is never sent.
    pub fn license_key(mut self, key: impl Into<String>) -> Self {
        self.license_key = text("license_key", key, Secret::new);
        self
    }

    /// The API key (first of [`super::API_KEY_VARS`]): reports to the auth
    /// endpoint.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = text("api_key", key, Secret::new);
        self
    }

    /// The auth endpoint: API-key verification and reports (first of
    /// [`super::AUTH_ENDPOINT_VARS`]). `https`, or `http` to loopback.
    pub fn auth_endpoint(mut self, url: impl Into<String>) -> Self {
        self.auth_endpoint = text("auth_endpoint", url, |s| s);
        self
    }

    /// The Beacon: license verification and reports
    /// ([`super::ENV_BEACON_URL`]). `https`, or `http` to loopback.
    pub fn beacon_url(mut self, url: impl Into<String>) -> Self {
        self.beacon_url = text("beacon_url", url, |s| s);
        self
    }

    /// The wire dialect of the license destination ([`super::ENV_WIRE`]).
    pub fn wire(mut self, dialect: Dialect) -> Self {
        self.wire = Some(Given::Code("wire", dialect));
        self
    }

    /// The report interval ([`super::ENV_INTERVAL`]): 1 ms to 1 day,
    /// whole milliseconds.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(Given::Code("interval", interval));
        self
    }

    /// The request timeout ([`super::ENV_TIMEOUT`]): 1 ms to 600 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(Given::Code("timeout", timeout));
        self
    }

    /// How often counts are checkpointed ([`super::ENV_CHECKPOINT`]): 1 ms
    /// to 3600 s.
    pub fn checkpoint_interval(mut self, every: Duration) -> Self {
        self.checkpoint_interval = Some(Given::Code("checkpoint_interval", every));
        self
    }

    /// Send nothing at all ([`super::ENV_OFFLINE`]).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = Some(Given::Code("offline", offline));
        self
    }

    /// Where unsent reports are kept ([`super::ENV_SPOOL_DIR`]).
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.spool_dir =
            (!dir.as_os_str().is_empty()).then_some((Origin::Builder("spool_dir"), dir));
        self
    }

    /// A PEM file of extra CA certificates to trust
    /// ([`super::ENV_CA_CERT`]); read by [`build`](Self::build).
    pub fn ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.ca_cert = (!path.as_os_str().is_empty()).then_some((Origin::Builder("ca_cert"), path));
        self
    }

    /// Exports operational metrics over OTLP/HTTP
    /// ([`super::ENV_METRICS_ENABLED`]); needs
    /// [`metrics_endpoint`](Self::metrics_endpoint).
    pub fn metrics_export(mut self, on: bool) -> Self {
        self.metrics_enabled = Some(Given::Code("metrics_export", on));
        self
    }

    /// The full URL operational metrics are posted to
    /// ([`super::ENV_METRICS_ENDPOINT`]). `https`, or `http` to loopback.
    pub fn metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.metrics_endpoint = text("metrics_endpoint", url, |s| s);
        self
    }

    /// How often operational metrics are exported
    /// ([`super::ENV_METRICS_INTERVAL`]): 1 ms to 1 day in code.
    pub fn metrics_export_interval(mut self, every: Duration) -> Self {
        self.metrics_interval = Some(Given::Code("metrics_export_interval", every));
        self
    }

    /// The `instance_id` attribute of exported metrics
    /// ([`super::ENV_HOSTNAME`]).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = text("instance_id", id, |s| s);
        self
    }

    /// Checks every value and makes the configuration. Reads the CA
    /// certificate file, if one is named; touches nothing else.
    pub fn build(mut self) -> Result<Config, ConfigError> {
        let license_key = self.license_key.take().map(check_secret).transpose()?;
        let api_key = self.api_key.take().map(check_secret).transpose()?;
        // A key pasted into another setting (say, two variables swapped)
        // is shown in that setting's error: redact it there.
        let secrets: Vec<Secret> = license_key
            .iter()
            .chain(&api_key)
            .map(|(_, k)| k.clone())
            .collect();
        self.build_with(license_key, api_key)
            .map_err(|e| e.without_secrets(&secrets))
    }

    fn build_with(
        self,
        license_key: Option<(Origin, Secret)>,
        api_key: Option<(Origin, Secret)>,
    ) -> Result<Config, ConfigError> {
        let origin = |o: Option<Origin>, has_default| match (o, has_default) {
            (Some(o), _) => Source::Given(o),
            (None, true) => Source::Default,
            (None, false) => Source::Unset,
        };
        let sources = Sources {
            license_key: origin(license_key.as_ref().map(|k| k.0), false),
            api_key: origin(api_key.as_ref().map(|k| k.0), false),
            auth_endpoint: origin(self.auth_endpoint.as_ref().map(|u| u.0), true),
            beacon_url: origin(self.beacon_url.as_ref().map(|u| u.0), true),
            wire: origin(self.wire.as_ref().map(Given::origin), true),
            interval: origin(self.interval.as_ref().map(Given::origin), true),
            timeout: origin(self.timeout.as_ref().map(Given::origin), true),
            offline: origin(self.offline.as_ref().map(Given::origin), true),
            spool_dir: origin(self.spool_dir.as_ref().map(|p| p.0), false),
            ca_cert: origin(self.ca_cert.as_ref().map(|p| p.0), false),
            checkpoint_interval: origin(self.checkpoint_interval.as_ref().map(Given::origin), true),
            metrics_enabled: origin(self.metrics_enabled.as_ref().map(Given::origin), true),
            metrics_endpoint: origin(self.metrics_endpoint.as_ref().map(|u| u.0), false),
            metrics_interval: origin(self.metrics_interval.as_ref().map(Given::origin), true),
        };
        let metrics_export = metrics_export(
            self.metrics_enabled,
            self.metrics_endpoint,
            self.metrics_interval,
            self.instance_id,
        )?;
        Ok(Config {
            license_key: license_key.map(|k| k.1),
            api_key: api_key.map(|k| k.1),
            auth_endpoint: url(self.auth_endpoint, DEFAULT_AUTH_ENDPOINT)?,
            beacon_url: url(self.beacon_url, DEFAULT_BEACON_URL)?,
            wire: self.wire.map(dialect).transpose()?.unwrap_or_default(),
            interval: INTERVAL.check(self.interval)?,
            timeout: TIMEOUT.check(self.timeout)?,
            offline: self.offline.map(boolean).transpose()?.unwrap_or(false),
            spool_dir: self.spool_dir.map(|p| p.1),
            ca_cert: self.ca_cert.map(|(o, p)| load_ca_cert(o, &p)).transpose()?,
            checkpoint_interval: CHECKPOINT.check(self.checkpoint_interval)?,
            metrics_export,
            sources,
        })
    }
}

/// The metrics export, when its switch is on: the endpoint (required) and
/// the interval checked. When it is off, neither is read, as the platform
/// ignores them then.
fn metrics_export(
    enabled: Option<Given<bool>>,
    endpoint: Option<(Origin, String)>,
    interval: Option<Given<Duration>>,
    instance_id: Option<(Origin, String)>,
) -> Result<Option<MetricsExport>, ConfigError> {
    let Some(enabled) = enabled else {
        return Ok(None);
    };
    let origin = enabled.origin();
    if !boolean(enabled)? {
        return Ok(None);
    }
    let Some((url_origin, url)) = endpoint else {
        return Err(ConfigError::NoMetricsEndpoint {
            origin,
            endpoint: super::ENV_METRICS_ENDPOINT,
        });
    };
    Ok(Some(MetricsExport {
        endpoint: check_endpoint(url_origin, &url)?,
        interval: METRICS_INTERVAL.check(interval)?,
        instance_id: instance_id.map(|(_, id)| id),
    }))
}

/// A credential: at most [`MAX_SECRET_BYTES`], no whitespace or control
/// characters (the variables' length is checked on reading already).
fn check_secret((origin, key): (Origin, Secret)) -> Result<(Origin, Secret), ConfigError> {
    let s = key.expose();
    if s.len() > MAX_SECRET_BYTES {
        let (len, max) = (s.len(), MAX_SECRET_BYTES);
        return Err(ConfigError::TooLong { origin, len, max });
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::BadSecret { origin });
    }
    Ok((origin, key))
}

fn url(given: Option<(Origin, String)>, default: &str) -> Result<Url, ConfigError> {
    match given {
        Some((origin, s)) => check_endpoint(origin, &s),
        None => Ok(Url::parse(default).expect("the default endpoint is a valid URL")),
    }
}

fn dialect(given: Given<Dialect>) -> Result<Dialect, ConfigError> {
    match given {
        Given::Code(_, d) => Ok(d),
        Given::Var(var, s) => s.parse().map_err(|_| ConfigError::BadDialect {
            origin: Origin::Var(var),
            value: shown(&s),
        }),
    }
}

fn boolean(given: Given<bool>) -> Result<bool, ConfigError> {
    match given {
        Given::Code(_, b) => Ok(b),
        Given::Var(var, s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ConfigError::BadBool {
                origin: Origin::Var(var),
                value: shown(&s),
            }),
        },
    }
}

/// The range of a duration setting: whole seconds from `min` to `max` in
/// a variable; whole milliseconds from `code_min` to `max` in code.
struct Span {
    default: u64,
    min: u64,
    max: u64,
    code_min: Duration,
    /// The variable's unit: seconds, or milliseconds (the platform's
    /// metrics interval).
    millis: bool,
}

/// The report interval's: the variable's whole seconds are the platform's;
/// in code, the window tiling's own bounds ([`RESOLUTION`] to
/// [`MAX_INTERVAL`]), so a built configuration always tiles.
const INTERVAL: Span = Span {
    default: 300,
    min: 1,
    max: MAX_INTERVAL.as_secs(),
    code_min: RESOLUTION,
    millis: false,
};
const TIMEOUT: Span = Span {
    default: 30,
    min: 1,
    max: 600,
    code_min: Duration::from_millis(1),
    millis: false,
};
const CHECKPOINT: Span = Span {
    default: 5,
    min: 1,
    max: 3600,
    code_min: Duration::from_millis(1),
    millis: false,
};

/// The metrics export interval's: the platform's variable is in
/// milliseconds (default 60 000).
const METRICS_INTERVAL: Span = Span {
    default: 60_000,
    min: 1_000,
    max: 86_400_000,
    code_min: Duration::from_millis(1),
    millis: true,
};

impl Span {
    /// The largest value, as a duration.
    fn max(&self) -> Duration {
        if self.millis {
            Duration::from_millis(self.max)
        } else {
            Duration::from_secs(self.max)
        }
    }

    fn check(&self, given: Option<Given<Duration>>) -> Result<Duration, ConfigError> {
        match given {
            None if self.millis => Ok(Duration::from_millis(self.default)),
            None => Ok(Duration::from_secs(self.default)),
            Some(Given::Code(method, d)) => {
                let max = self.max();
                if (self.code_min..=max).contains(&d) && d.subsec_nanos() % 1_000_000 == 0 {
                    Ok(d)
                } else {
                    Err(ConfigError::BadDuration {
                        origin: Origin::Builder(method),
                        value: d,
                        min: self.code_min,
                        max,
                    })
                }
            }
            Some(Given::Var(var, s)) => match s.parse::<u64>() {
                Ok(n)
                    if (self.min..=self.max).contains(&n)
                        && s.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    Ok(if self.millis {
                        Duration::from_millis(n)
                    } else {
                        Duration::from_secs(n)
                    })
                }
                _ if self.millis => Err(ConfigError::BadMillis {
                    origin: Origin::Var(var),
                    value: shown(&s),
                    min: self.min,
                    max: self.max,
                    default: self.default,
                }),
                _ => Err(ConfigError::BadSeconds {
                    origin: Origin::Var(var),
                    value: shown(&s),
                    min: self.min,
                    max: self.max,
                    default: self.default,
                }),
            },
        }
    }
}

/// Checks an endpoint URL: it must parse as an absolute `https` URL, or plain
/// `http` to a loopback host (127.0.0.0/8, ::1, `localhost`), with no user
/// info, query or fragment. `origin` is named in the error.
pub(super) fn check_endpoint(origin: Origin, value: &str) -> Result<Url, ConfigError> {
    let value = value.trim();
    let bad = |reason: &str| ConfigError::BadUrl {
        origin,
        value: shown(&hide_credentials(value)),
        reason: reason.to_owned(),
    };
    let url = Url::parse(value).map_err(|e| bad(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not contain a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            if !urls::is_loopback(&url) {
                return Err(ConfigError::InsecureUrl {
                    origin,
                    value: shown(&hide_credentials(value)),
                });
            }
        }
        other => return Err(bad(&format!("scheme {other:?} is not https"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    Ok(url)
}

/// `value` for error text: any `user:password@` replaced by `***@`, and
/// the content of a query and a fragment (which may hold a token, like
/// `?key=...`) by `***`.
///
/// The authority starts after the scheme's `:` and any run of `/` or `\`:
/// the URL parser also takes `https:user:pw@host`, `https:/user:pw@host`
/// and backslashes for slashes, so a `://` cannot be relied on.
fn hide_credentials(value: &str) -> String {
    let is_scheme = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    };
    let start = match value.find(':') {
        Some(colon) if is_scheme(&value[..colon]) => {
            let rest = &value[colon + 1..];
            colon + 1 + (rest.len() - rest.trim_start_matches(['/', '\\']).len())
        }
        _ => 0,
    };
    let rest = &value[start..];
    let authority_end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let shown = match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &value[..start], &rest[at + 1..]),
        None => value.to_owned(),
    };
    match shown.find(['?', '#']) {
        Some(q) => format!("{}***", &shown[..=q]),
        None => shown,
    }
}

/// A bad value as shown in an error: cut to [`SHOWN_CHARS`] characters.
fn shown(value: &str) -> String {
    crate::wire::truncate::cut_chars(value, SHOWN_CHARS)
}

fn load_ca_cert(origin: Origin, path: &Path) -> Result<CaCert, ConfigError> {
    let bad = |reason: String| ConfigError::BadCaCert {
        origin,
        path: shown(&path.display().to_string()),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
    if !meta.is_file() {
        return Err(bad("it is not a file".into()));
    }
    if meta.len() > MAX_CA_CERT_BYTES {
        return Err(bad(format!(
            "it is {} bytes, more than the {MAX_CA_CERT_BYTES} allowed",
            meta.len()
        )));
    }
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
    if !has_pem_certificate(&pem) {
        return Err(bad("it holds no PEM CERTIFICATE block".into()));
    }
    Ok(CaCert {
        path: path.to_owned(),
        pem: Pem(pem),
    })
}

/// True if `pem` holds at least one PEM `CERTIFICATE` block whose body is
/// base64 of a DER SEQUENCE (a block that does not decode is skipped).
fn has_pem_certificate(pem: &[u8]) -> bool {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem)
        .flatten()
        .any(|der| der.len() > 2 && der[0] == 0x30)
}

#[cfg(test)]
mod tests {
    use super::super::{ENV_BEACON_URL, ENV_INTERVAL, ENV_LICENSE_KEY, ENV_OFFLINE};
    use super::*;
    use std::ffi::OsString;

    const LICENSE: &str = "lcl_0123456789abcdef0123456789";

    fn env(pairs: &'static [(&'static str, &'static str)]) -> ConfigBuilder {
        ConfigBuilder::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        })
        .unwrap()
    }

    #[test]
    fn every_setter_sets_its_value_and_records_the_method() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Fm\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let c = Config::builder()
            .license_key(format!("{LICENSE}\n"))
            .api_key("lsv2_pt_00112233445566778899aabb")
            .auth_endpoint("https://api.example.com")
            .beacon_url("http://127.0.0.1:9/b")
            .wire(Dialect::LanggraphApi)
            .interval(Duration::from_millis(250))
            .timeout(Duration::from_secs(3))
            .checkpoint_interval(Duration::from_millis(50))
            .offline(true)
            .spool_dir("/var/spool/beacon")
            .ca_cert(&ca)
            .build()
            .unwrap();
        assert_eq!(c.license_key().unwrap().expose(), LICENSE);
        assert!(c.api_key().is_some());
        assert_eq!(c.auth_endpoint().as_str(), "https://api.example.com/");
        assert_eq!(c.beacon_url().as_str(), "http://127.0.0.1:9/b");
        assert_eq!(c.wire(), Dialect::LanggraphApi);
        assert_eq!(c.interval(), Duration::from_millis(250));
        assert_eq!(c.timeout(), Duration::from_secs(3));
        assert_eq!(c.checkpoint_interval(), Duration::from_millis(50));
        assert!(c.offline_flag() && c.is_offline());
        assert_eq!(c.spool_dir(), Some(Path::new("/var/spool/beacon")));
        assert_eq!(c.ca_cert().unwrap().path, ca);
        let s = c.sources();
        assert_eq!(s.license_key, Source::Given(Origin::Builder("license_key")));
        assert_eq!(s.interval, Source::Given(Origin::Builder("interval")));
        assert_eq!(s.ca_cert, Source::Given(Origin::Builder("ca_cert")));
        assert_eq!(s.beacon_url.var(), None);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
    }

    #[test]
    fn an_empty_builder_is_the_defaults() {
        let (built, env) = (
            Config::builder().build().unwrap(),
            env(&[]).build().unwrap(),
        );
        assert_eq!(format!("{built:?}"), format!("{env:?}"));
        assert_eq!(built.sources().interval, Source::Default);
        assert_eq!(built.sources().spool_dir, Source::Unset);
    }

    #[test]
    fn errors_name_the_method_and_say_how_to_fix_it() {
        let cases: [(ConfigBuilder, &str, &str); 7] = [
            (
                Config::builder().interval(Duration::ZERO),
                "interval",
                "from 1ms to 86400s",
            ),
            (
                Config::builder().interval(Duration::from_micros(1500)),
                "interval",
                "whole number of milliseconds",
            ),
            (
                Config::builder().timeout(Duration::from_secs(601)),
                "timeout",
                "to 600s",
            ),
            (
                Config::builder().checkpoint_interval(Duration::from_secs(3601)),
                "checkpoint_interval",
                "to 3600s",
            ),
            (
                Config::builder().beacon_url("http://beacon.example.com"),
                "beacon_url",
                "use https",
            ),
            (
                Config::builder().auth_endpoint("not a url"),
                "auth_endpoint",
                "https://beacon.example.com",
            ),
            (
                Config::builder().ca_cert("/nonexistent/ca.pem"),
                "ca_cert",
                "cannot read it",
            ),
        ];
        for (builder, method, says) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.origin(), Origin::Builder(method));
            assert_eq!(err.var(), None);
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("ConfigBuilder::{method} is ")),
                "{msg}"
            );
            assert!(msg.contains(says), "{msg}");
            assert!(
                !msg.contains("BEACON_") && !msg.contains("unset it"),
                "{msg}"
            );
            // Debug reads as the message (what `main` prints for a
            // `Box<dyn Error>`), not as a struct.
            assert_eq!(format!("{err:?}"), msg);
        }
        let err = Config::builder()
            .license_key("lcl_a b")
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::BadSecret {
                origin: Origin::Builder("license_key")
            }
        );
        assert!(!format!("{err} {err:?}").contains("lcl_a"));
    }

    #[test]
    fn a_setter_overrides_the_environment_which_is_then_never_parsed() {
        let b = env(&[
            (ENV_INTERVAL, "not a number"),
            (ENV_OFFLINE, "maybe"),
            (ENV_LICENSE_KEY, LICENSE),
        ]);
        let err = b.clone().build().unwrap_err();
        assert_eq!(err.var(), Some(ENV_INTERVAL));
        let c = b
            .interval(Duration::from_secs(60))
            .offline(false)
            .build()
            .unwrap();
        assert_eq!(c.interval(), Duration::from_secs(60));
        assert_eq!(
            c.sources().interval,
            Source::Given(Origin::Builder("interval"))
        );
        assert_eq!(
            c.sources().license_key,
            Source::Given(Origin::Var(ENV_LICENSE_KEY))
        );
        // A blank value unsets, as a blank variable does.
        let c = env(&[(ENV_BEACON_URL, "https://b.example.com")])
            .beacon_url("  ")
            .build()
            .unwrap();
        assert_eq!(c.sources().beacon_url, Source::Default);
    }

    #[test]
    fn a_key_in_another_setter_is_redacted_there() {
        let err = Config::builder()
            .license_key(LICENSE)
            .beacon_url(format!("http://{LICENSE}.example.com"))
            .build()
            .unwrap_err();
        assert_eq!(err.origin(), Origin::Builder("beacon_url"));
        assert!(
            !format!("{err} {err:?}").contains("0123456789abcdef"),
            "{err}"
        );
        let b = Config::builder().api_key("lsv2_pt_00112233445566778899aabb");
        assert!(!format!("{b:?}").contains("00112233445566"), "{b:?}");
    }
}
