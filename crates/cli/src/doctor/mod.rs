//! Is this deployment ready to report? The probes behind `beacon-meter
//! check`, and the next reports behind `beacon-meter preview`, as typed
//! results; rendering them is the CLI's job.
//!
//! Reads the environment exactly as the library does ([`Config::from_env`],
//! [`beacon_meter::config::tags_from_env`]) and finds, in order:
//!
//! 1. the effective configuration, secrets redacted, each value with the
//!    variable it came from ([`settings()`]);
//! 2. the egress allowlist the configuration needs (scheme, host, port),
//!    for the firewall team; none when offline;
//! 3. for each host, the DNS, TCP, TLS and HTTP steps (`net.rs`); the HTTP
//!    request goes through the `*_PROXY` proxy when one applies, as the
//!    library's requests do;
//! 4. for each destination, its report URL and body and a probe of the path
//!    ([`ReportPath`]);
//! 5. the license verification (token expiry) and the API-key verification
//!    (organization id). An offline license beside an API key is never
//!    sent, so never verified.
//!
//! An offline deployment makes no network call of any kind: it is said so
//! and every probe is skipped.

mod credentials;
mod net;
mod paths;
pub mod preview;
mod settings;

pub use paths::{PathFinding, PathProbe, ReportPath};
pub use settings::settings;

use beacon_meter::client::{ClientSettings, HttpClient};
use beacon_meter::config::{API_KEY_VARS, Config, ENV_CA_CERT, ENV_LICENSE_KEY, ENV_OFFLINE};
use beacon_meter::spool::Spool;
use beacon_meter::wire::{Credential, Plan, Tags};
use chrono::{DateTime, Utc};
use net::TlsRoots;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use url::Url;

/// Told what is being probed now, for a progress display.
pub type Progress<'a> = &'a dyn Fn(String);

/// Longest wait for one connection step (DNS, TCP, TLS), whatever
/// `BEACON_TIMEOUT_SECS` says.
const MAX_CONNECT_WAIT: Duration = Duration::from_secs(10);
/// At most this many resolved addresses are tried.
const MAX_ADDRESSES: usize = 4;

/// The overall result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything needed works (or the deployment is offline).
    #[default]
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
    /// The exit status of `beacon-meter check`: 0, 2, 3 or 4.
    pub const fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::ConfigError => 2,
            Verdict::Unreachable => 3,
            Verdict::CredentialRejected => 4,
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
    /// Set in code, by a `ConfigBuilder` method (not by the doctor's own
    /// run, which reads the environment; here for embedders who hand the
    /// doctor's functions a built configuration).
    Code,
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

/// The steps of a host probe, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Name resolution.
    Dns,
    /// TCP connect.
    Tcp,
    /// TLS handshake.
    Tls,
    /// Any HTTP answer.
    Http,
}

/// One probe step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Which step.
    pub step: StepKind,
    /// What became of it.
    pub outcome: Outcome,
    /// What was seen.
    pub detail: String,
}

impl Step {
    fn new(step: StepKind, outcome: Outcome, detail: impl Into<String>) -> Step {
        let detail = detail.into();
        Step {
            step,
            outcome,
            detail,
        }
    }
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

/// Which credential a verification or a report path is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// The enterprise license (`LANGGRAPH_CLOUD_LICENSE_KEY`).
    License,
    /// The LangSmith API key.
    ApiKey,
}

impl CredentialKind {
    /// The kind of `credential`.
    pub fn of(credential: &Credential) -> CredentialKind {
        match credential {
            Credential::License(_) => CredentialKind::License,
            Credential::ApiKey(_) => CredentialKind::ApiKey,
        }
    }
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
    /// Which credential.
    pub kind: CredentialKind,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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

/// The check of the process environment; `progress` is told each probe as
/// it starts.
pub async fn check_env(progress: Progress<'_>) -> CheckReport {
    let report = CheckReport::default();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return config_failure(report, Some(e.origin().to_string()), e.to_string()),
    };
    let tags = match beacon_meter::config::tags_from_env() {
        Ok(tags) => tags,
        Err(e) => {
            let var = match &e {
                beacon_meter::wire::TagError::NotAUuid { var, .. }
                | beacon_meter::wire::TagError::NotUnicode { var } => Some((*var).to_owned()),
                _ => None,
            };
            let report = CheckReport {
                settings: settings(&config),
                ..report
            };
            return config_failure(report, var, e.to_string());
        }
    };
    check_config(&config, &tags, progress).await
}

/// `report` with the configuration problem `message`, blamed on `variable`.
fn config_failure(
    mut report: CheckReport,
    variable: Option<String>,
    message: String,
) -> CheckReport {
    report.problems.push(message.clone());
    report.config_error = Some(ConfigProblem { variable, message });
    finish(report)
}

/// The checks of a readable configuration: settings, tags, offline,
/// egress, probes, verifications.
pub async fn check_config(config: &Config, tags: &Tags, progress: Progress<'_>) -> CheckReport {
    let plan = Plan::for_license(config.license_key().is_some());
    let mut report = CheckReport {
        settings: settings(config),
        tags: tags.clone().plan(plan).evaluate().tags,
        ..CheckReport::default()
    };
    if let Some(why) = preview::offline_reason(config) {
        report.offline = Some(why);
        return finish(report);
    }
    if config.credentials().is_empty() {
        report.problems.push(format!(
            "no credential is set, so nothing would be reported: set {ENV_LICENSE_KEY} (enterprise \
             license) or one of {} (LangSmith API key), or {ENV_OFFLINE}=true for an \
             air-gapped deployment",
            API_KEY_VARS.join(", ")
        ));
        report.verdict = Verdict::ConfigError;
        report.exit_code = Verdict::ConfigError.exit_code();
        return report;
    }
    probe_all(report, config, tags, progress).await
}

/// Probes every host, report path and credential `config` needs.
async fn probe_all(
    mut report: CheckReport,
    config: &Config,
    tags: &Tags,
    progress: Progress<'_>,
) -> CheckReport {
    let destinations = config.credentials();
    let targets = egress_targets(config, &destinations);
    report.egress = targets.iter().map(|(_, e)| e.clone()).collect();
    let tls = TlsRoots::new(config);
    let wait = config.timeout().min(MAX_CONNECT_WAIT);
    let ca_pem = config.ca_cert().map(|c| c.pem.clone());
    let http = match HttpClient::new(
        ClientSettings::default()
            .timeout(config.timeout())
            .connect_timeout(wait)
            .ca_cert_pem_opt(ca_pem.clone()),
    ) {
        Ok(h) => h,
        Err(e) => {
            let var = config.ca_cert().map(|_| ENV_CA_CERT.to_owned());
            return config_failure(report, var, e.to_string());
        }
    };
    let client = net::probe_client(config.timeout(), wait, ca_pem.as_deref());
    for (url, egress) in &targets {
        let host = net::probe_host(url, egress, &tls, client.as_ref(), wait, progress).await;
        report.problems.extend(net::host_problems(&host, &tls));
        report.hosts.push(host);
    }

    progress("probing the report paths".to_owned());
    let spool_dir = config
        .spool_dir()
        .map_or_else(Spool::default_dir, ToOwned::to_owned);
    let previews = preview::build(config, tags, &spool_dir, Utc::now());
    let hosts = &report.hosts;
    report.report_paths = paths::report_paths(config, &previews.reports, client.as_ref(), |u| {
        reachable(hosts, u)
    })
    .await;
    let path_problems = report.report_paths.iter().filter_map(|p| p.problem.clone());
    report.problems.extend(path_problems);

    for d in &destinations {
        let up = reachable(&report.hosts, &d.verify_url);
        let check = credentials::verify(d, config, &http, up, progress).await;
        if !matches!(
            check.outcome,
            CredentialOutcome::Valid | CredentialOutcome::Skipped
        ) {
            report.problems.push(check.detail.clone());
        }
        report.credentials.push(check);
    }
    finish(report)
}

/// Which hosts `destinations` need, for what: one entry per scheme, host
/// and port, with every purpose.
fn egress_targets(
    config: &Config,
    destinations: &[beacon_meter::config::Endpoint],
) -> Vec<(Url, Egress)> {
    let mut targets: Vec<(Url, Egress)> = Vec::new();
    for d in destinations {
        let (base, var) = config.base_url(&d.credential);
        let what = match CredentialKind::of(&d.credential) {
            CredentialKind::License => "license",
            CredentialKind::ApiKey => "API-key",
        };
        let purpose = format!("{what} verification and usage reports ({var})");
        add_target(&mut targets, base, purpose);
    }
    // The second channel, when it would export (online, with a license).
    if let (Some(m), Some(_)) = (config.metrics_export(), config.license_key()) {
        let purpose = format!(
            "operational metrics over OTLP/HTTP ({})",
            beacon_meter::config::ENV_METRICS_ENDPOINT
        );
        add_target(&mut targets, &m.endpoint, purpose);
    }
    targets
}

/// Adds `url`'s scheme, host and port to `targets` for `purpose`, or the
/// purpose to the entry already there for them.
fn add_target(targets: &mut Vec<(Url, Egress)>, url: &Url, purpose: String) {
    let egress = Egress {
        scheme: url.scheme().to_owned(),
        host: url.host_str().unwrap_or_default().to_owned(),
        port: url.port_or_known_default().unwrap_or(443),
        purpose: vec![purpose],
    };
    let key = |e: &Egress| (e.scheme.clone(), e.host.clone(), e.port);
    match targets.iter_mut().find(|(_, e)| key(e) == key(&egress)) {
        Some((_, e)) => e.purpose.extend(egress.purpose),
        None => targets.push((url.clone(), egress)),
    }
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

/// How long ago `started` was, for a step's detail.
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

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_meter::config::{ENV_API_KEY, ENV_AUTH_ENDPOINT, ENV_BEACON_URL, ENV_TIMEOUT};

    pub(crate) const LICENSE: &str = "lcl_0123456789abcdef9f2a";
    pub(crate) const API_KEY: &str = "lsv2_pt_0123456789abcdef_77";

    pub(crate) fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs).unwrap()
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
        let r = check_config(&c, &Tags::new(), &|_| {}).await;
        assert_eq!(r.offline, None);
        assert_eq!(r.egress.len(), 1);
        assert!(r.egress[0].purpose[0].contains("API-key"), "{:?}", r.egress);
        assert_eq!(r.credentials.len(), 1);
        assert_eq!(r.credentials[0].kind, CredentialKind::ApiKey);
        assert!(
            r.report_paths
                .iter()
                .all(|p| p.kind == CredentialKind::ApiKey)
        );
    }

    #[tokio::test]
    async fn offline_checks_nothing_and_passes() {
        let c = config(&[(ENV_LICENSE_KEY, "offline-0123456789abcdef")]);
        let r = check_config(&c, &Tags::new(), &|_| {}).await;
        assert_eq!(r.verdict, Verdict::Ok);
        assert!(r.offline.as_deref().unwrap().contains("offline"));
        assert!(r.egress.is_empty() && r.hosts.is_empty() && r.credentials.is_empty());
    }

    #[tokio::test]
    async fn no_credential_is_a_configuration_error() {
        let r = check_config(&config(&[]), &Tags::new(), &|_| {}).await;
        assert_eq!(r.exit_code, 2);
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
        let r = check_config(&c, &Tags::new(), &|_| {}).await;
        assert_eq!(r.egress.len(), 1, "{:?}", r.egress);
        assert_eq!(r.egress[0].purpose.len(), 2);
        assert_eq!(r.hosts.len(), 1);
        assert!(!r.hosts[0].reachable);
        let tcp = r.hosts[0]
            .steps
            .iter()
            .find(|s| s.step == StepKind::Tcp)
            .unwrap();
        assert_eq!(tcp.outcome, Outcome::Failed, "{tcp:?}");
        assert!(
            r.credentials
                .iter()
                .all(|c| c.outcome == CredentialOutcome::Skipped)
        );
        assert_eq!(r.verdict, Verdict::Unreachable);
        assert_eq!(r.exit_code, 3);
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
        let mut r = CheckReport::default();
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
            kind: CredentialKind::License,
            variable: ENV_LICENSE_KEY,
            key: "…".into(),
            url: "https://b/".into(),
            outcome: CredentialOutcome::Rejected,
            detail: String::new(),
            expires_at: None,
            org_id: None,
        });
        assert_eq!(finish(r.clone()).exit_code, 4);
        r.credentials[0].outcome = CredentialOutcome::Valid;
        assert_eq!(finish(r.clone()).exit_code, 3);
        r.hosts.clear();
        assert_eq!(finish(r).exit_code, 0);
    }

    #[test]
    fn the_metrics_endpoint_is_in_the_egress_allowlist_only_when_it_exports() {
        use beacon_meter::config::{ENV_METRICS_ENABLED, ENV_METRICS_ENDPOINT};
        let on = [
            (ENV_METRICS_ENABLED, "true"),
            (ENV_METRICS_ENDPOINT, "https://otel.example:4318/v1/metrics"),
        ];
        let c = config(&[&on[..], &[(ENV_LICENSE_KEY, "lcl_0123456789abcdef")]].concat());
        let targets = egress_targets(&c, &c.credentials());
        let otel = targets
            .iter()
            .find(|(_, e)| e.host == "otel.example")
            .expect("listed");
        assert_eq!(otel.1.port, 4318);
        assert!(otel.1.purpose[0].contains("OTLP"), "{:?}", otel.1);
        let c = config(&[&on[..], &[(API_KEY_VARS[1], "lsv2_pt_0123456789abcdef")]].concat());
        let targets = egress_targets(&c, &c.credentials());
        assert!(
            targets.iter().all(|(_, e)| e.host != "otel.example"),
            "no license, no export"
        );
    }
}
