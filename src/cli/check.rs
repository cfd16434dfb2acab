//! `beacon-meter check`: is this deployment ready to report?
//!
//! Reads the environment exactly as the library does ([`Config::from_env`],
//! [`Tags::from_env`]) and reports, in order:
//!
//! 1. the effective configuration, secrets redacted, each value with the
//!    variable it came from (several variables may set one value);
//! 2. the egress allowlist the configuration needs (scheme, host, port),
//!    for the firewall team; none when offline;
//! 3. for each host: DNS resolution, TCP connect, TLS handshake (and which
//!    roots verified the certificate: the built-in webpki roots or
//!    `BEACON_CA_CERT`, found by handshaking with each alone), and whether
//!    it answers HTTP at all (any status counts; this request goes through
//!    the `*_PROXY` proxy when one applies, as the library's requests do);
//! 4. for each destination, the wire dialect and the exact URL and body of
//!    its reports, and a `GET` probe of the report path (and, for a
//!    license, of the other dialect's), see [`ReportPath`];
//! 5. the license verification (token expiry) and the API-key verification
//!    (organization id). An offline license beside an API key is never
//!    sent, so never verified.
//!
//! An offline deployment makes no network call of any kind: it is said so
//! and every probe is skipped. The exit status is one of [`exit`]'s:
//! 0 all good, 2 configuration error, 3 unreachable, 4 credential rejected.

mod paths;

pub use paths::{PathFinding, PathProbe, ReportPath};

use super::args::CheckArgs;
use super::exit;
use super::preview::offline_reason;
use super::term::{Spinner, Term};
use crate::client::{
    ApiKeyError, ApiKeyVerifier, ClientSettings, HttpClient, LicenseSettings, LicenseVerifier,
    Verification,
};
use crate::config::{
    API_KEY_VARS, AUTH_ENDPOINT_VARS, Config, ENV_BEACON_URL, ENV_CA_CERT, ENV_CHECKPOINT,
    ENV_INTERVAL, ENV_LICENSE_KEY, ENV_OFFLINE, ENV_SPOOL_DIR, ENV_TIMEOUT, ENV_WIRE, Source,
};
use crate::secret::Secret;
use crate::spool::Spool;
use crate::wire::{Credential, Plan, Tags};
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types};

/// Longest wait for one connection step (DNS, TCP, TLS), whatever
/// `BEACON_TIMEOUT_SECS` says.
const MAX_CONNECT_WAIT: Duration = Duration::from_secs(10);
/// At most this many resolved addresses are tried.
const MAX_ADDRESSES: usize = 4;

/// The overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything needed works (or the deployment is offline).
    Ok,
    /// A variable is invalid, or no credential is set.
    ConfigError,
    /// A host could not be reached, or did not answer like a Beacon / auth
    /// service.
    Unreachable,
    /// A credential was rejected.
    CredentialRejected,
}

impl Verdict {
    /// The exit status.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => exit::OK,
            Verdict::ConfigError => exit::CONFIG,
            Verdict::Unreachable => exit::UNREACHABLE,
            Verdict::CredentialRejected => exit::REJECTED,
        }
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Set in the environment.
    Environment,
    /// Not set; the default applies.
    Default,
    /// Not set, and there is no default.
    Unset,
}

/// One configuration value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The setting, named as in [`Config`] (`api_key`, `wire`, ...).
    pub setting: &'static str,
    /// The environment variable the value came from; when none is set,
    /// the setting's first variable.
    pub variable: &'static str,
    /// The effective value (secrets redacted), `None` if unset.
    pub value: Option<String>,
    /// Where it came from.
    pub origin: Origin,
    /// A remark (e.g. "online license").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A configuration variable that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// The variable, if one is to blame.
    pub variable: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// One entry of the egress allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Egress {
    /// `https` (or `http` to a loopback address).
    pub scheme: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Why the host is needed.
    pub purpose: Vec<String>,
}

/// What became of one probe step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It worked.
    Ok,
    /// It failed.
    Failed,
    /// It was not tried.
    Skipped,
}

/// One probe step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `dns`, `tcp`, `tls` or `http`.
    pub step: &'static str,
    /// What became of it.
    pub outcome: Outcome,
    /// What was seen.
    pub detail: String,
}

/// The probes of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCheck {
    /// The base URL probed.
    pub url: String,
    /// Scheme.
    pub scheme: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The proxy the library's requests to this host go through, if any
    /// (the DNS, TCP and TLS steps then go direct and are informational).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Whether the library can reach the host.
    pub reachable: bool,
}

/// What became of a credential verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialOutcome {
    /// Verified.
    Valid,
    /// Refused by the service.
    Rejected,
    /// No verdict: the service could not be reached.
    Unreachable,
    /// The service answered, but not like a Beacon / auth service.
    Unexpected,
    /// The key cannot be sent at all.
    Invalid,
    /// Not tried (its host is unreachable).
    Skipped,
}

/// One credential's verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialCheck {
    /// `license` or `api_key`.
    pub kind: &'static str,
    /// The environment variable it came from.
    pub variable: &'static str,
    /// The key, redacted.
    pub key: String,
    /// Where it was verified.
    pub url: String,
    /// What became of it.
    pub outcome: CredentialOutcome,
    /// What was seen, and the fix when it failed.
    pub detail: String,
    /// License: when the token stops being used (its `exp` minus a 30 s
    /// clock-skew margin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// API key: the organization it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<uuid::Uuid>,
}

/// Everything `check` found. With `--json` this is the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The overall result.
    pub verdict: Verdict,
    /// The exit status (from the verdict).
    pub exit_code: u8,
    /// The problems found, each with its fix.
    pub problems: Vec<String>,
    /// A configuration variable that could not be read (nothing else was
    /// checked then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<ConfigProblem>,
    /// The effective configuration.
    pub settings: Vec<Setting>,
    /// The report tags this environment gives.
    pub tags: BTreeMap<String, String>,
    /// Why nothing is sent, if the deployment is offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<String>,
    /// The hosts the configuration needs to reach.
    pub egress: Vec<Egress>,
    /// The probes of each host.
    pub hosts: Vec<HostCheck>,
    /// The verification of each credential.
    pub credentials: Vec<CredentialCheck>,
    /// Each destination's report URL and body, and a probe of its path.
    pub report_paths: Vec<ReportPath>,
}

/// Runs the check on the process environment, prints it (text or JSON) and
/// returns the exit status.
pub async fn run(args: &CheckArgs, term: Term, out: &mut dyn Write) -> io::Result<u8> {
    let spinner = if args.json {
        Spinner::none()
    } else {
        term.spinner("reading the configuration")
    };
    let report = check_env(&spinner).await;
    drop(spinner);
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(io::Error::other)?;
        writeln!(out, "{json}")?;
    } else {
        render(&report, term, out)?;
    }
    out.flush()?;
    Ok(report.exit_code)
}

/// The check of the process environment.
pub async fn check_env(spinner: &Spinner) -> CheckReport {
    let mut report = CheckReport {
        verdict: Verdict::Ok,
        exit_code: exit::OK,
        problems: Vec::new(),
        config_error: None,
        settings: Vec::new(),
        tags: BTreeMap::new(),
        offline: None,
        egress: Vec::new(),
        hosts: Vec::new(),
        credentials: Vec::new(),
        report_paths: Vec::new(),
    };
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            return config_failure(report, Some(e.var().to_owned()), e.to_string());
        }
    };
    report.settings = settings(&config);
    let tags = match Tags::from_env() {
        Ok(tags) => {
            let plan = Plan::for_license(config.license_key.is_some());
            report.tags = tags.clone().plan(plan).evaluate().tags;
            tags
        }
        Err(e) => {
            let var = match &e {
                crate::wire::TagError::NotAUuid { var, .. }
                | crate::wire::TagError::NotUnicode { var } => Some((*var).to_owned()),
                _ => None,
            };
            return config_failure(report, var, e.to_string());
        }
    };
    check_config(report, &config, &tags, spinner).await
}

fn config_failure(
    mut report: CheckReport,
    variable: Option<String>,
    message: String,
) -> CheckReport {
    report.problems.push(message.clone());
    report.config_error = Some(ConfigProblem { variable, message });
    report.verdict = Verdict::ConfigError;
    report.exit_code = Verdict::ConfigError.exit_code();
    report
}

/// The checks that follow a readable configuration: offline, egress,
/// probes, verifications.
async fn check_config(
    mut report: CheckReport,
    config: &Config,
    tags: &Tags,
    spinner: &Spinner,
) -> CheckReport {
    if let Some(why) = offline_reason(config) {
        report.offline = Some(why);
        return finish(report);
    }
    let destinations = config.credentials();
    if destinations.is_empty() {
        report.problems.push(format!(
            "no credential is set, so nothing would be reported: set {ENV_LICENSE_KEY} (enterprise \
             license) or one of {} (LangSmith API key), or {ENV_OFFLINE}=true for an \
             air-gapped deployment",
            API_KEY_VARS.join(", ")
        ));
        report.verdict = Verdict::ConfigError;
        report.exit_code = exit::CONFIG;
        return report;
    }

    let targets = egress_targets(config, &destinations);
    report.egress = targets.iter().map(|(_, e)| e.clone()).collect();

    let tls = TlsRoots::new(config);
    let connect_wait = config.timeout.min(MAX_CONNECT_WAIT);
    let ca_pem = config.ca_cert.as_ref().map(|c| c.pem.clone());
    let http = match HttpClient::new(ClientSettings {
        timeout: config.timeout,
        connect_timeout: connect_wait,
        ca_cert_pem: ca_pem.clone(),
        ..ClientSettings::default()
    }) {
        Ok(h) => h,
        Err(e) => {
            return config_failure(
                report,
                config.ca_cert.as_ref().map(|_| ENV_CA_CERT.to_owned()),
                e.to_string(),
            );
        }
    };
    let probe_client = probe_client(config.timeout, connect_wait, ca_pem.as_deref());

    for (url, egress) in &targets {
        let host = probe_host(
            url,
            egress,
            &tls,
            probe_client.as_ref(),
            connect_wait,
            spinner,
        )
        .await;
        report.problems.extend(host_problems(&host, &tls));
        report.hosts.push(host);
    }

    spinner.set("probing the report paths".to_owned());
    let spool_dir = config.spool_dir.clone().unwrap_or_else(Spool::default_dir);
    let previews = super::preview::build(config, tags, &spool_dir, Utc::now());
    report.report_paths =
        paths::report_paths(config, &previews.reports, probe_client.as_ref(), |url| {
            reachable(&report.hosts, url)
        })
        .await;
    report
        .problems
        .extend(report.report_paths.iter().filter_map(|p| p.problem.clone()));

    for d in &destinations {
        let host_reachable = reachable(&report.hosts, &d.verify_url);
        let check = verify_credential(d, config, &http, host_reachable, spinner).await;
        if matches!(
            check.outcome,
            CredentialOutcome::Rejected
                | CredentialOutcome::Unreachable
                | CredentialOutcome::Unexpected
                | CredentialOutcome::Invalid
        ) {
            report.problems.push(check.detail.clone());
        }
        report.credentials.push(check);
    }
    finish(report)
}

/// Which hosts `destinations` need, for what: one entry per scheme, host
/// and port, with every purpose.
fn egress_targets(config: &Config, destinations: &[crate::config::Endpoint]) -> Vec<(Url, Egress)> {
    let mut targets: Vec<(Url, Egress)> = Vec::new();
    for d in destinations {
        let (base, purpose) = match d.credential {
            Credential::License(_) => (
                &config.beacon_url,
                format!("license verification and usage reports ({ENV_BEACON_URL})"),
            ),
            Credential::ApiKey(_) => (
                &config.auth_endpoint,
                format!(
                    "API-key verification and usage reports ({})",
                    config
                        .sources
                        .auth_endpoint
                        .var()
                        .unwrap_or("the default auth endpoint")
                ),
            ),
        };
        let scheme = base.scheme().to_owned();
        let host = base.host_str().unwrap_or_default().to_owned();
        let port = base.port_or_known_default().unwrap_or(443);
        match targets
            .iter_mut()
            .find(|(_, e)| e.scheme == scheme && e.host == host && e.port == port)
        {
            Some((_, e)) => e.purpose.push(purpose),
            None => targets.push((
                base.clone(),
                Egress {
                    scheme,
                    host,
                    port,
                    purpose: vec![purpose],
                },
            )),
        }
    }
    targets
}

/// True if `url`'s host (and port) answered.
fn reachable(hosts: &[HostCheck], url: &Url) -> bool {
    hosts.iter().any(|h| {
        h.reachable
            && Some(h.host.as_str()) == url.host_str()
            && Some(h.port) == url.port_or_known_default()
    })
}

/// Sets the verdict from what was found. A report path that is not there
/// counts as unreachable: the host does not answer like a Beacon there.
fn finish(mut report: CheckReport) -> CheckReport {
    let outcomes: Vec<CredentialOutcome> = report.credentials.iter().map(|c| c.outcome).collect();
    report.verdict =
        if report.config_error.is_some() || outcomes.contains(&CredentialOutcome::Invalid) {
            Verdict::ConfigError
        } else if outcomes.contains(&CredentialOutcome::Rejected) {
            Verdict::CredentialRejected
        } else if report.hosts.iter().any(|h| !h.reachable)
            || report.report_paths.iter().any(|p| p.problem.is_some())
            || outcomes.iter().any(|o| {
                matches!(
                    o,
                    CredentialOutcome::Unreachable
                        | CredentialOutcome::Unexpected
                        | CredentialOutcome::Skipped
                )
            })
        {
            Verdict::Unreachable
        } else {
            Verdict::Ok
        };
    report.exit_code = report.verdict.exit_code();
    report
}

/// The effective configuration, each value with the variable it came from
/// ([`Config::sources`]); secrets redacted.
pub fn settings(config: &Config) -> Vec<Setting> {
    let src = &config.sources;
    let row = setting_row;
    let license_note = config.license_key.as_ref().map(|k| {
        if k.is_online_license() {
            "online license".to_owned()
        } else if config.api_key.is_some() {
            "offline (air-gapped) license: never sent; the API key reports alone".to_owned()
        } else {
            "offline (air-gapped) license: nothing is sent".to_owned()
        }
    });
    let mut license = row(
        "license_key",
        &[ENV_LICENSE_KEY],
        src.license_key,
        config.license_key.as_ref().map(Secret::redacted),
    );
    license.note = license_note;
    let spool = config
        .spool_dir
        .clone()
        .unwrap_or_else(Spool::default_dir)
        .display()
        .to_string();
    let mut spool = row("spool_dir", &[ENV_SPOOL_DIR], src.spool_dir, Some(spool));
    if spool.origin == Origin::Unset {
        spool.origin = Origin::Default;
    }
    let secs = |d: Duration| Some(d.as_secs().to_string());
    let mut wire = row(
        "wire",
        &[ENV_WIRE],
        src.wire,
        Some(config.wire.name().to_owned()),
    );
    wire.note = Some(format!(
        "license reports go to {{beacon}}/{} with \"{}\"",
        config.wire.license_report_path().join("/"),
        config.wire.license_field()
    ));
    vec![
        license,
        row(
            "api_key",
            &API_KEY_VARS,
            src.api_key,
            config.api_key.as_ref().map(Secret::redacted),
        ),
        row(
            "beacon_url",
            &[ENV_BEACON_URL],
            src.beacon_url,
            Some(config.beacon_url.to_string()),
        ),
        row(
            "auth_endpoint",
            &AUTH_ENDPOINT_VARS,
            src.auth_endpoint,
            Some(config.auth_endpoint.to_string()),
        ),
        wire,
        row(
            "interval",
            &[ENV_INTERVAL],
            src.interval,
            secs(config.interval),
        ),
        row("timeout", &[ENV_TIMEOUT], src.timeout, secs(config.timeout)),
        row(
            "offline",
            &[ENV_OFFLINE],
            src.offline,
            Some(config.offline.to_string()),
        ),
        spool,
        row(
            "ca_cert",
            &[ENV_CA_CERT],
            src.ca_cert,
            config
                .ca_cert
                .as_ref()
                .map(|c| c.path.display().to_string()),
        ),
        row(
            "checkpoint_interval",
            &[ENV_CHECKPOINT],
            src.checkpoint_interval,
            secs(config.checkpoint_interval),
        ),
    ]
}

/// One row of [`settings`]: `setting`, whose variables are `vars` (first
/// set wins), came `from` there and has `value`.
fn setting_row(
    setting: &'static str,
    vars: &[&'static str],
    from: Source,
    value: Option<String>,
) -> Setting {
    let (variable, origin) = match from {
        Source::Var(v) => (v, Origin::Environment),
        Source::Default => (vars[0], Origin::Default),
        Source::Unset => (vars[0], Origin::Unset),
    };
    let note = (vars.len() > 1).then(|| match from {
        Source::Var(v) => {
            let before: Vec<&str> = vars.iter().take_while(|x| **x != v).copied().collect();
            if before.is_empty() {
                format!("first of {}", vars.join(", "))
            } else {
                format!("{} unset, so read from {v}", before.join(" and "))
            }
        }
        Source::Default | Source::Unset => format!("none of {} is set", vars.join(", ")),
    });
    Setting {
        setting,
        variable,
        value,
        origin,
        note,
    }
}

// ---- TLS roots -------------------------------------------------------------

/// The two trust sources, each alone.
struct TlsRoots {
    webpki: Option<Arc<ClientConfig>>,
    /// `BEACON_CA_CERT` alone, and its path.
    extra: Option<(Arc<ClientConfig>, PathBuf)>,
    /// Why `BEACON_CA_CERT` could not be used, if it is set but unusable.
    extra_error: Option<String>,
}

impl TlsRoots {
    fn new(config: &Config) -> TlsRoots {
        let webpki = tls_config(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .ok();
        let (mut extra, mut extra_error) = (None, None);
        if let Some(ca) = &config.ca_cert {
            use pki_types::pem::PemObject as _;
            let mut store = RootCertStore::empty();
            let mut errors = Vec::new();
            for cert in pki_types::CertificateDer::pem_slice_iter(&ca.pem) {
                match cert
                    .map_err(|e| e.to_string())
                    .and_then(|c| store.add(c).map_err(|e| e.to_string()))
                {
                    Ok(()) => {}
                    Err(e) => errors.push(e),
                }
            }
            if store.is_empty() {
                extra_error = Some(format!(
                    "{ENV_CA_CERT} {} holds no certificate usable as a root ({})",
                    ca.path.display(),
                    if errors.is_empty() {
                        "none found".to_owned()
                    } else {
                        errors.join("; ")
                    }
                ));
            } else {
                match tls_config(store) {
                    Ok(c) => extra = Some((c, ca.path.clone())),
                    Err(e) => extra_error = Some(e.to_string()),
                }
            }
        }
        TlsRoots {
            webpki,
            extra,
            extra_error,
        }
    }
}

fn tls_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// A client like the library's (same proxies, same roots) that follows no
/// redirect: any answer at all proves the host answers HTTP.
fn probe_client(
    timeout: Duration,
    connect_timeout: Duration,
    ca_pem: Option<&[u8]>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "beacon-meter/",
            env!("CARGO_PKG_VERSION"),
            " (check)"
        ));
    if let Some(pem) = ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| chain(&e))? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| chain(&e))
}

// ---- probes ----------------------------------------------------------------

/// The proxy reqwest uses for `url`, per `*_PROXY` and `NO_PROXY`, shown
/// without credentials.
fn proxy_for(url: &Url) -> Option<String> {
    let uri: hyper::Uri = url.as_str().parse().ok()?;
    let intercept = hyper_util::client::proxy::matcher::Matcher::from_env().intercept(&uri)?;
    let p = intercept.uri();
    Some(format!(
        "{}://{}{}",
        p.scheme_str().unwrap_or("http"),
        p.host().unwrap_or("?"),
        p.port_u16().map(|n| format!(":{n}")).unwrap_or_default()
    ))
}

async fn probe_host(
    url: &Url,
    egress: &Egress,
    tls: &TlsRoots,
    client: Result<&reqwest::Client, &String>,
    wait: Duration,
    spinner: &Spinner,
) -> HostCheck {
    let proxy = proxy_for(url);
    let mut steps = Vec::new();
    let name = &egress.host;
    let port = egress.port;

    // DNS
    spinner.set(format!("resolving {name}"));
    let started = Instant::now();
    let addrs: Option<Vec<SocketAddr>> = match host_ip(url) {
        Some(ip) => {
            steps.push(ok(
                "dns",
                format!("{ip} is an IP address: no lookup needed"),
            ));
            Some(vec![SocketAddr::new(ip, port)])
        }
        None => {
            match tokio::time::timeout(wait, tokio::net::lookup_host((name.as_str(), port))).await {
                Ok(Ok(found)) => {
                    let mut list: Vec<SocketAddr> = Vec::new();
                    for a in found {
                        if !list.contains(&a) {
                            list.push(a);
                        }
                    }
                    if list.is_empty() {
                        steps.push(failed("dns", format!("{name} resolves to no address")));
                        None
                    } else {
                        let shown: Vec<String> = list.iter().map(|a| a.ip().to_string()).collect();
                        steps.push(ok(
                            "dns",
                            format!("{name} → {} ({})", shown.join(", "), ms(started)),
                        ));
                        Some(list)
                    }
                }
                Ok(Err(e)) => {
                    steps.push(failed("dns", format!("cannot resolve {name}: {e}")));
                    None
                }
                Err(_) => {
                    steps.push(failed(
                        "dns",
                        format!("resolving {name} timed out after {} s", wait.as_secs()),
                    ));
                    None
                }
            }
        }
    };

    // TCP
    let mut connected: Option<(TcpStream, SocketAddr)> = None;
    match &addrs {
        None => steps.push(skipped("tcp", "no address to connect to")),
        Some(list) => {
            let mut errors = Vec::new();
            for addr in list.iter().take(MAX_ADDRESSES) {
                spinner.set(format!("connecting to {addr}"));
                let started = Instant::now();
                match connect(*addr, wait).await {
                    Ok(s) => {
                        steps.push(ok("tcp", format!("connected to {addr} ({})", ms(started))));
                        connected = Some((s, *addr));
                        break;
                    }
                    Err(e) => errors.push(format!("{addr}: {e}")),
                }
            }
            if connected.is_none() {
                steps.push(failed(
                    "tcp",
                    format!(
                        "cannot connect to {name} port {port}: {}",
                        errors.join("; ")
                    ),
                ));
            }
        }
    }

    // TLS
    let tls_ok = match (egress.scheme.as_str(), connected) {
        ("https", Some((stream, addr))) => {
            let step = tls_step(url, stream, addr, tls, wait, spinner).await;
            let good = step.outcome == Outcome::Ok;
            steps.push(step);
            good
        }
        ("https", None) => {
            steps.push(skipped("tls", "no connection"));
            false
        }
        _ => {
            steps.push(skipped(
                "tls",
                "plain http (allowed only to a loopback address)",
            ));
            true
        }
    };
    let direct_ok = steps.iter().all(|s| s.outcome != Outcome::Failed) && tls_ok;

    // HTTP, through the proxy if one applies: that is the path the library
    // takes. Without a proxy it is pointless after a failed direct step.
    let http_ok = if direct_ok || proxy.is_some() {
        spinner.set(format!("GET {url}"));
        let step = http_step(url, client, proxy.as_deref()).await;
        let good = step.outcome == Outcome::Ok;
        steps.push(step);
        good
    } else {
        steps.push(skipped("http", "the host cannot be reached"));
        false
    };

    HostCheck {
        url: url.to_string(),
        scheme: egress.scheme.clone(),
        host: egress.host.clone(),
        port,
        proxy,
        steps,
        reachable: http_ok,
    }
}

fn host_ip(url: &Url) -> Option<std::net::IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

async fn connect(addr: SocketAddr, wait: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(wait, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {} s", wait.as_secs())),
    }
}

/// Handshakes with the built-in roots alone, then (if that fails and
/// `BEACON_CA_CERT` is set) with `BEACON_CA_CERT` alone.
async fn tls_step(
    url: &Url,
    stream: TcpStream,
    addr: SocketAddr,
    tls: &TlsRoots,
    wait: Duration,
    spinner: &Spinner,
) -> Step {
    let bare = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server_name = pki_types::ServerName::try_from(bare.to_owned()).ok();
    let Some(server_name) = server_name else {
        return failed("tls", format!("{url} has no host name usable for TLS"));
    };
    let host = url.host_str().unwrap_or_default();
    spinner.set(format!("TLS handshake with {host}"));

    let started = Instant::now();
    let builtin = match &tls.webpki {
        Some(c) => handshake(c.clone(), stream, server_name.clone(), wait).await,
        None => Err("the built-in roots could not be loaded".to_owned()),
    };
    if let Ok(version) = &builtin {
        return ok(
            "tls",
            format!(
                "{version}; {host}'s certificate verified by the built-in webpki roots \
                 (Mozilla's CA list) ({})",
                ms(started)
            ),
        );
    }
    let builtin_err = builtin.err().unwrap_or_default();
    if let Some((config, path)) = &tls.extra {
        let started = Instant::now();
        let retry = match connect(addr, wait).await {
            Ok(s) => handshake(config.clone(), s, server_name, wait).await,
            Err(e) => Err(format!("reconnecting failed: {e}")),
        };
        return match retry {
            Ok(version) => ok(
                "tls",
                format!(
                    "{version}; {host}'s certificate verified by {ENV_CA_CERT} {} (not by the \
                     built-in roots) ({})",
                    path.display(),
                    ms(started)
                ),
            ),
            Err(e) => failed(
                "tls",
                format!(
                    "handshake with {host} failed: with the built-in roots: {builtin_err}; \
                     with {ENV_CA_CERT} {} alone: {e}",
                    path.display()
                ),
            ),
        };
    }
    let mut detail = format!("handshake with {host} failed: {builtin_err}");
    if let Some(e) = &tls.extra_error {
        let _ = write!(detail, "; {e}");
    }
    failed("tls", detail)
}

async fn handshake(
    config: Arc<ClientConfig>,
    stream: TcpStream,
    name: pki_types::ServerName<'static>,
    wait: Duration,
) -> Result<String, String> {
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(wait, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => Ok(match tls.get_ref().1.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
            Some(v) => format!("{v:?}"),
            None => "TLS".to_owned(),
        }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {} s", wait.as_secs())),
    }
}

async fn http_step(
    url: &Url,
    client: Result<&reqwest::Client, &String>,
    proxy: Option<&str>,
) -> Step {
    let client = match client {
        Ok(c) => c,
        Err(e) => return failed("http", format!("no HTTP client: {e}")),
    };
    let via = proxy.map(|p| format!(" via proxy {p}")).unwrap_or_default();
    let started = Instant::now();
    match client.get(url.clone()).send().await {
        Ok(response) => ok(
            "http",
            format!(
                "answered HTTP {} to GET {url}{via} ({}); any answer counts",
                response.status(),
                ms(started)
            ),
        ),
        Err(e) => failed(
            "http",
            format!(
                "no HTTP answer to GET {url}{via}: {}",
                chain(&e.without_url())
            ),
        ),
    }
}

/// The problems of one host, each with its fix.
fn host_problems(host: &HostCheck, tls: &TlsRoots) -> Vec<String> {
    let mut out = Vec::new();
    if host.reachable {
        return out;
    }
    let target = format!("{}:{}", host.host, host.port);
    for s in host.steps.iter().filter(|s| s.outcome == Outcome::Failed) {
        out.push(match s.step {
            "dns" => format!(
                "{}; check the host name in the URL and this machine's DNS (or set HTTPS_PROXY \
                 if egress goes through a proxy)",
                s.detail
            ),
            "tcp" => format!(
                "{}; allow egress to {target} in the firewall (see the allowlist), check the \
                 URL, or set HTTPS_PROXY if egress goes through a proxy",
                s.detail
            ),
            "tls" => {
                let fix = if tls.extra.is_some() {
                    format!(
                        "check that {ENV_CA_CERT} is the CA that signs {}",
                        host.host
                    )
                } else {
                    format!(
                        "if a TLS-inspecting proxy or a private CA signs {}, set {ENV_CA_CERT} \
                         to that CA's certificate (PEM)",
                        host.host
                    )
                };
                format!("{}; {fix}", s.detail)
            }
            _ => format!(
                "{}; check that {target} is reachable from here{}",
                s.detail,
                host.proxy
                    .as_deref()
                    .map(|p| format!(" and that the proxy {p} lets it through"))
                    .unwrap_or_default()
            ),
        });
    }
    out
}

// ---- credentials -----------------------------------------------------------

async fn verify_credential(
    d: &crate::config::Endpoint,
    config: &Config,
    http: &HttpClient,
    host_reachable: bool,
    spinner: &Spinner,
) -> CredentialCheck {
    let (kind, variable) = match d.credential {
        Credential::License(_) => ("license", ENV_LICENSE_KEY),
        Credential::ApiKey(_) => (
            "api_key",
            config.sources.api_key.var().unwrap_or(API_KEY_VARS[0]),
        ),
    };
    let mut check = CredentialCheck {
        kind,
        variable,
        key: d.credential.secret().redacted(),
        url: d.verify_url.to_string(),
        outcome: CredentialOutcome::Skipped,
        detail: String::new(),
        expires_at: None,
        org_id: None,
    };
    if !host_reachable {
        check.detail = format!(
            "not verified: {} is unreachable",
            d.verify_url.host_str().unwrap_or("its host")
        );
        return check;
    }
    spinner.set(format!("verifying {variable} at {}", d.verify_url));
    match &d.credential {
        Credential::License(key) => {
            let verifier = match LicenseVerifier::new(
                http.clone(),
                &config.beacon_url,
                key.clone(),
                LicenseSettings::default(),
            ) {
                Ok(v) => v,
                Err(e) => {
                    check.outcome = CredentialOutcome::Invalid;
                    check.detail = e.to_string();
                    return check;
                }
            };
            match verifier.verify().await {
                Verification::Valid { expires_at, .. } => {
                    check.outcome = CredentialOutcome::Valid;
                    check.expires_at = Some(expires_at);
                    check.detail = format!(
                        "valid; the token is used until {} ({})",
                        crate::wire::format_timestamp(&expires_at),
                        from_now(expires_at)
                    );
                }
                Verification::Rejected { status, message } => {
                    check.outcome = CredentialOutcome::Rejected;
                    check.detail = format!(
                        "the Beacon rejected the license key (HTTP {status}): {message}; check \
                         {ENV_LICENSE_KEY} (and {ENV_BEACON_URL})"
                    );
                }
                Verification::Unreachable { reason } => {
                    check.outcome = CredentialOutcome::Unreachable;
                    check.detail = format!("the license could not be verified: {reason}");
                }
                Verification::Malformed { reason } => {
                    check.outcome = CredentialOutcome::Unexpected;
                    check.detail = format!(
                        "{} does not answer like a Beacon: {reason}; check {ENV_BEACON_URL}",
                        d.verify_url
                    );
                }
            }
        }
        Credential::ApiKey(key) => {
            let verifier =
                match ApiKeyVerifier::new(http.clone(), &config.auth_endpoint, key.clone()) {
                    Ok(v) => v,
                    Err(e) => {
                        check.outcome = CredentialOutcome::Invalid;
                        check.detail = e.to_string();
                        return check;
                    }
                };
            match verifier.verify().await {
                Ok(org) => {
                    check.outcome = CredentialOutcome::Valid;
                    check.org_id = Some(org.org_id);
                    check.detail = format!("valid; organization {}", org.org_id);
                }
                Err(e) => {
                    check.outcome = match e {
                        ApiKeyError::Rejected { .. } => CredentialOutcome::Rejected,
                        ApiKeyError::Unreachable { .. } => CredentialOutcome::Unreachable,
                        ApiKeyError::UnexpectedStatus { .. } | ApiKeyError::Malformed { .. } => {
                            CredentialOutcome::Unexpected
                        }
                        ApiKeyError::InvalidKey => CredentialOutcome::Invalid,
                    };
                    check.detail = e.to_string();
                }
            }
        }
    }
    check
}

// ---- rendering -------------------------------------------------------------

fn render(r: &CheckReport, term: Term, out: &mut dyn Write) -> io::Result<()> {
    if let Some(problem) = &r.config_error {
        writeln!(
            out,
            "{} {}",
            term.bad("Configuration error:"),
            problem.message
        )?;
        return result_line(r, term, out);
    }

    writeln!(
        out,
        "{}",
        term.bold("Configuration (from the environment; secrets redacted)")
    )?;
    for s in &r.settings {
        let value = s.value.as_deref().unwrap_or("(unset)");
        let mut extra = Vec::new();
        if s.origin == Origin::Default {
            extra.push("default".to_owned());
        }
        if let Some(n) = &s.note {
            extra.push(n.clone());
        }
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!("  {}", term.dim(&format!("({})", extra.join("; "))))
        };
        writeln!(out, "  {:<28} {value}{extra}", s.variable)?;
    }

    let tags: Vec<String> = r
        .tags
        .iter()
        .filter(|(k, v)| !v.is_empty() && !k.starts_with(crate::wire::tags::USER_APP_PREFIX))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !tags.is_empty() {
        writeln!(out, "\n{}", term.bold("Tags (from the environment)"))?;
        for t in tags {
            writeln!(out, "  {t}")?;
        }
    }

    writeln!(
        out,
        "\n{}",
        term.bold("Egress allowlist (for the firewall)")
    )?;
    if let Some(why) = &r.offline {
        writeln!(
            out,
            "  none: the deployment is offline ({why}); nothing is sent and no network call \
             was made"
        )?;
        return result_line(r, term, out);
    }
    if r.egress.is_empty() {
        writeln!(out, "  none: no credential is set")?;
    }
    for e in &r.egress {
        writeln!(
            out,
            "  {:<5}  {:<32}  {}",
            e.scheme,
            format!("{}:{}", e.host, e.port),
            term.dim(&e.purpose.join("; "))
        )?;
    }

    for h in &r.hosts {
        writeln!(
            out,
            "\n{}",
            term.bold(&format!("Host {}://{}:{}", h.scheme, h.host, h.port))
        )?;
        if let Some(p) = &h.proxy {
            writeln!(
                out,
                "  requests go through the proxy {p} (*_PROXY); DNS, TCP and TLS below are \
                 tried directly, for information"
            )?;
        }
        for s in &h.steps {
            writeln!(
                out,
                "  {}  {:<4}  {}",
                mark(s.outcome, term),
                s.step.to_uppercase(),
                s.detail
            )?;
        }
    }

    render_report_paths(r, term, out)?;

    if !r.credentials.is_empty() {
        writeln!(out, "\n{}", term.bold("Credentials"))?;
        for c in &r.credentials {
            let outcome = match c.outcome {
                CredentialOutcome::Valid => Outcome::Ok,
                CredentialOutcome::Skipped => Outcome::Skipped,
                _ => Outcome::Failed,
            };
            let label = if c.kind == "license" {
                "license"
            } else {
                "API key"
            };
            writeln!(
                out,
                "  {}  {label} {} ({}): {}",
                mark(outcome, term),
                c.key,
                c.variable,
                c.detail
            )?;
        }
    }
    result_line(r, term, out)
}

fn render_report_paths(r: &CheckReport, term: Term, out: &mut dyn Write) -> io::Result<()> {
    for p in &r.report_paths {
        let (label, dialect) = if p.kind == "license" {
            ("license", format!("{} dialect, {ENV_WIRE}", p.dialect))
        } else {
            ("API key", "the same in both dialects".to_owned())
        };
        writeln!(
            out,
            "\n{}",
            term.bold(&format!("Reports by {label}: POST {} ({dialect})", p.url))
        )?;
        for probe in &p.probes {
            let outcome = match probe.finding {
                PathFinding::Exists => Outcome::Ok,
                PathFinding::Missing | PathFinding::Failed => Outcome::Failed,
                PathFinding::Other | PathFinding::Skipped => Outcome::Skipped,
            };
            let whose = probe
                .dialect
                .map(|d| format!(" ({d} path)"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {}  GET {}{whose}: {}",
                mark(outcome, term),
                probe.url,
                probe.detail
            )?;
        }
        let body = serde_json::to_string_pretty(&p.body).map_err(io::Error::other)?;
        writeln!(out, "  body of the next report (credential redacted):")?;
        for line in body.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

fn result_line(r: &CheckReport, term: Term, out: &mut dyn Write) -> io::Result<()> {
    let painted = match r.verdict {
        Verdict::Ok => term.good("all good"),
        Verdict::ConfigError => term.bad("configuration error"),
        Verdict::Unreachable => term.bad("unreachable"),
        Verdict::CredentialRejected => term.bad("credential rejected"),
    };
    writeln!(out)?;
    if r.verdict != Verdict::Ok && r.config_error.is_none() {
        for p in &r.problems {
            writeln!(out, "{} {p}", term.bad("problem:"))?;
        }
    }
    let offline = if r.offline.is_some() {
        " (offline: no network checks)"
    } else {
        ""
    };
    writeln!(out, "Result: {painted}{offline} (exit {})", r.exit_code)
}

fn mark(o: Outcome, term: Term) -> String {
    match o {
        Outcome::Ok => term.good("ok  "),
        Outcome::Failed => term.bad("FAIL"),
        Outcome::Skipped => term.dim("skip"),
    }
}

fn ok(step: &'static str, detail: impl Into<String>) -> Step {
    Step {
        step,
        outcome: Outcome::Ok,
        detail: detail.into(),
    }
}

fn failed(step: &'static str, detail: impl Into<String>) -> Step {
    Step {
        step,
        outcome: Outcome::Failed,
        detail: detail.into(),
    }
}

fn skipped(step: &'static str, detail: impl Into<String>) -> Step {
    Step {
        step,
        outcome: Outcome::Skipped,
        detail: detail.into(),
    }
}

fn ms(started: Instant) -> String {
    format!("{} ms", started.elapsed().as_millis())
}

fn from_now(t: DateTime<Utc>) -> String {
    let secs = (t - Utc::now()).num_seconds();
    if secs < 0 {
        "already past".to_owned()
    } else if secs < 120 {
        format!("in {secs} s")
    } else if secs < 7200 {
        format!("in {} min", secs / 60)
    } else {
        format!("in {} h", secs / 3600)
    }
}

/// An error and its sources, `: `-separated, without repeats.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ENV_API_KEY, ENV_AUTH_ENDPOINT};

    const LICENSE: &str = "lcl_0123456789abcdef9f2a";
    const API_KEY: &str = "lsv2_pt_0123456789abcdef_77";

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs).unwrap()
    }

    fn empty_report() -> CheckReport {
        CheckReport {
            verdict: Verdict::Ok,
            exit_code: 0,
            problems: vec![],
            config_error: None,
            settings: vec![],
            tags: BTreeMap::new(),
            offline: None,
            egress: vec![],
            hosts: vec![],
            credentials: vec![],
            report_paths: vec![],
        }
    }

    #[test]
    fn settings_are_redacted_and_say_where_they_came_from() {
        let c = config(&[
            (ENV_LICENSE_KEY, LICENSE),
            (ENV_BEACON_URL, "http://127.0.0.1:9/"),
            ("LANGCHAIN_API_KEY", API_KEY),
            ("LANGSMITH_ENDPOINT", "https://eu.api.smith.langchain.com"),
        ]);
        let s = settings(&c);
        let shown = format!("{s:?} {}", serde_json::to_string(&s).unwrap());
        assert!(
            !shown.contains(LICENSE) && !shown.contains(API_KEY),
            "{shown}"
        );
        let get = |v: &str| s.iter().find(|x| x.setting == v).unwrap().clone();
        assert_eq!(get("license_key").value.as_deref(), Some("lcl_…9f2a"));
        assert_eq!(get("license_key").note.as_deref(), Some("online license"));
        assert_eq!(get("beacon_url").origin, Origin::Environment);
        assert_eq!(get("beacon_url").variable, ENV_BEACON_URL);
        // The API key and the auth endpoint name the variable they came from.
        let api = get("api_key");
        assert_eq!(
            (api.variable, api.origin),
            ("LANGCHAIN_API_KEY", Origin::Environment)
        );
        assert!(
            api.note.as_deref().unwrap().contains(
                "LANGSMITH_CONTROL_PLANE_API_KEY and LANGSMITH_API_KEY unset, so read from \
                 LANGCHAIN_API_KEY"
            ),
            "{api:?}"
        );
        let auth = get("auth_endpoint");
        assert_eq!(auth.variable, "LANGSMITH_ENDPOINT");
        assert_eq!(
            auth.value.as_deref(),
            Some("https://eu.api.smith.langchain.com/")
        );
        assert_eq!(get("wire").value.as_deref(), Some("published"));
        assert_eq!(get("wire").origin, Origin::Default);
        assert_eq!(get("ca_cert").origin, Origin::Unset);
        assert_eq!(get("interval").value.as_deref(), Some("300"));
        assert_eq!(s.len(), 11);

        let unset = settings(&config(&[]));
        let api = unset.iter().find(|x| x.setting == "api_key").unwrap();
        assert_eq!((api.variable, api.origin), (API_KEY_VARS[0], Origin::Unset));
        assert!(
            api.note.as_deref().unwrap().starts_with("none of"),
            "{api:?}"
        );
    }

    #[tokio::test]
    async fn an_offline_license_beside_an_api_key_is_neither_verified_nor_probed() {
        // Nothing listens here: only the API key's host is probed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = config(&[
            (ENV_LICENSE_KEY, "offline-0123456789abcdef"),
            ("LANGSMITH_API_KEY", API_KEY),
            (
                "LANGSMITH_AUTH_ENDPOINT",
                &format!("http://127.0.0.1:{port}"),
            ),
            (ENV_TIMEOUT, "2"),
        ]);
        let r = check_config(empty_report(), &c, &Tags::new(), &Spinner::none()).await;
        assert_eq!(r.offline, None);
        assert_eq!(r.egress.len(), 1);
        assert!(r.egress[0].purpose[0].contains("API-key"), "{:?}", r.egress);
        assert_eq!(r.credentials.len(), 1);
        assert_eq!(r.credentials[0].kind, "api_key");
        assert!(r.report_paths.iter().all(|p| p.kind == "api_key"));
    }

    #[tokio::test]
    async fn offline_checks_nothing_and_passes() {
        let c = config(&[(ENV_LICENSE_KEY, "offline-0123456789abcdef")]);
        let r = check_config(empty_report(), &c, &Tags::new(), &Spinner::none()).await;
        assert_eq!(r.verdict, Verdict::Ok);
        assert!(r.offline.as_deref().unwrap().contains("offline"));
        assert!(r.egress.is_empty() && r.hosts.is_empty() && r.credentials.is_empty());
    }

    #[tokio::test]
    async fn no_credential_is_a_configuration_error() {
        let r = check_config(empty_report(), &config(&[]), &Tags::new(), &Spinner::none()).await;
        assert_eq!(r.exit_code, exit::CONFIG);
        assert!(r.problems[0].contains(ENV_LICENSE_KEY), "{:?}", r.problems);
    }

    #[tokio::test]
    async fn unreachable_hosts_are_exit_3_and_shared_hosts_are_listed_once() {
        // A port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let c = config(&[
            (ENV_LICENSE_KEY, LICENSE),
            (ENV_API_KEY, API_KEY),
            (ENV_BEACON_URL, &url),
            (ENV_AUTH_ENDPOINT, &url),
            (ENV_TIMEOUT, "2"),
        ]);
        let r = check_config(empty_report(), &c, &Tags::new(), &Spinner::none()).await;
        assert_eq!(r.egress.len(), 1, "{:?}", r.egress);
        assert_eq!(r.egress[0].purpose.len(), 2);
        assert_eq!(r.hosts.len(), 1);
        assert!(!r.hosts[0].reachable);
        let tcp = r.hosts[0].steps.iter().find(|s| s.step == "tcp").unwrap();
        assert_eq!(tcp.outcome, Outcome::Failed, "{tcp:?}");
        assert!(
            r.credentials
                .iter()
                .all(|c| c.outcome == CredentialOutcome::Skipped)
        );
        assert_eq!(r.verdict, Verdict::Unreachable);
        assert_eq!(r.exit_code, exit::UNREACHABLE);
        assert!(
            r.problems.iter().any(|p| p.contains("firewall")),
            "{:?}",
            r.problems
        );
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains(LICENSE) && !text.contains(API_KEY));
    }

    #[test]
    fn the_verdict_prefers_rejection_to_unreachability() {
        let mut r = empty_report();
        r.hosts.push(HostCheck {
            url: "https://a/".into(),
            scheme: "https".into(),
            host: "a".into(),
            port: 443,
            proxy: None,
            steps: vec![],
            reachable: false,
        });
        r.credentials.push(CredentialCheck {
            kind: "license",
            variable: ENV_LICENSE_KEY,
            key: "…".into(),
            url: "https://b/".into(),
            outcome: CredentialOutcome::Rejected,
            detail: String::new(),
            expires_at: None,
            org_id: None,
        });
        assert_eq!(finish(r.clone()).exit_code, exit::REJECTED);
        r.credentials[0].outcome = CredentialOutcome::Valid;
        assert_eq!(finish(r.clone()).exit_code, exit::UNREACHABLE);
        r.hosts.clear();
        assert_eq!(finish(r).exit_code, exit::OK);
    }
}
