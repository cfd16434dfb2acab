//! The probes of one host: DNS, TCP, the TLS handshake and any HTTP answer
//! (any status counts), each a [`Step`], and the problems they show. The
//! TLS step names the roots that verified the certificate, the built-in
//! webpki roots or `BEACON_CA_CERT`, found by handshaking with each alone.

use super::{Egress, HostCheck, MAX_ADDRESSES, Outcome, Progress, Step, StepKind, ms};
use beacon_meter::config::{Config, ENV_CA_CERT};
use beacon_meter::error_chain;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types};
use url::Url;

/// The two trust sources, each alone.
pub(super) struct TlsRoots {
    webpki: Option<Arc<ClientConfig>>,
    /// `BEACON_CA_CERT` alone and its path, or why it cannot be used; `None`
    /// if it is not set.
    extra: Option<Result<(Arc<ClientConfig>, PathBuf), String>>,
}

impl TlsRoots {
    pub(super) fn new(config: &Config) -> TlsRoots {
        use pki_types::pem::PemObject as _;
        let roots = webpki_roots::TLS_SERVER_ROOTS.to_vec();
        let webpki = tls_config(RootCertStore { roots }).ok();
        let extra = config.ca_cert().map(|ca| {
            let mut store = RootCertStore::empty();
            let errors: Vec<String> = pki_types::CertificateDer::pem_slice_iter(&ca.pem)
                .filter_map(|cert| {
                    let added = cert.map_err(|e| e.to_string());
                    added
                        .and_then(|c| store.add(c).map_err(|e| e.to_string()))
                        .err()
                })
                .collect();
            if store.is_empty() {
                let why = errors.is_empty().then(|| "none found".to_owned());
                let why = why.unwrap_or_else(|| errors.join("; "));
                let path = ca.path.display();
                return Err(format!(
                    "{ENV_CA_CERT} {path} holds no certificate usable as a root ({why})"
                ));
            }
            let config = tls_config(store).map_err(|e| e.to_string())?;
            Ok((config, ca.path.clone()))
        });
        TlsRoots { webpki, extra }
    }
}

fn tls_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    // ring, the provider reqwest's rustls uses here too, so the probe
    // negotiates what the reporter would. rustls 0.23.48 deprecates ring's
    // provider for lacking post-quantum key exchange; the alternative,
    // aws-lc-rs, is a C and CMake build for every user, and a probe that
    // offered more than the reporter would prove nothing about it.
    #[allow(deprecated)]
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
pub(super) fn probe_client(
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
        for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| error_chain(&e))? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| error_chain(&e))
}

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

/// Probes `url`'s host: each step, and whether the library can reach it.
pub(super) async fn probe_host(
    url: &Url,
    egress: &Egress,
    tls: &TlsRoots,
    client: Result<&reqwest::Client, &String>,
    wait: Duration,
    progress: Progress<'_>,
) -> HostCheck {
    let proxy = proxy_for(url);
    let mut steps = Vec::new();
    let (dns, addrs) = resolve(url, egress, wait, progress).await;
    steps.push(dns);
    let (tcp, connected) = match &addrs {
        None => (skipped(StepKind::Tcp, "no address to connect to"), None),
        Some(list) => connect_any(list, egress, wait, progress).await,
    };
    steps.push(tcp);
    let tls_ok = match (egress.scheme.as_str(), connected) {
        ("https", Some((stream, addr))) => {
            steps.push(tls_step(url, stream, addr, tls, wait, progress).await);
            steps[2].outcome == Outcome::Ok
        }
        ("https", None) => {
            steps.push(skipped(StepKind::Tls, "no connection"));
            false
        }
        _ => {
            let why = "plain http (allowed only to a loopback address)";
            steps.push(skipped(StepKind::Tls, why));
            true
        }
    };
    let direct_ok = steps.iter().all(|s| s.outcome != Outcome::Failed) && tls_ok;
    // HTTP, through the proxy if one applies: that is the path the library
    // takes. Without a proxy it is pointless after a failed direct step.
    let http = if direct_ok || proxy.is_some() {
        progress(format!("GET {url}"));
        http_step(url, client, proxy.as_deref()).await
    } else {
        skipped(StepKind::Http, "the host cannot be reached")
    };
    let reachable = http.outcome == Outcome::Ok;
    steps.push(http);
    HostCheck {
        url: url.to_string(),
        scheme: egress.scheme.clone(),
        host: egress.host.clone(),
        port: egress.port,
        proxy,
        steps,
        reachable,
    }
}

/// The DNS step: `url`'s addresses (no lookup for an IP address), without
/// repeats.
async fn resolve(
    url: &Url,
    egress: &Egress,
    wait: Duration,
    progress: Progress<'_>,
) -> (Step, Option<Vec<SocketAddr>>) {
    let (name, port) = (&egress.host, egress.port);
    if let Some(ip) = host_ip(url) {
        let step = ok(
            StepKind::Dns,
            format!("{ip} is an IP address: no lookup needed"),
        );
        return (step, Some(vec![SocketAddr::new(ip, port)]));
    }
    progress(format!("resolving {name}"));
    let started = Instant::now();
    let found = tokio::time::timeout(wait, tokio::net::lookup_host((name.as_str(), port))).await;
    let detail = match found {
        Ok(Ok(found)) => {
            let mut seen = std::collections::HashSet::new();
            let list: Vec<SocketAddr> = found.filter(|a| seen.insert(*a)).collect();
            if !list.is_empty() {
                let shown: Vec<String> = list.iter().map(|a| a.ip().to_string()).collect();
                let detail = format!("{name} → {} ({})", shown.join(", "), ms(started));
                return (ok(StepKind::Dns, detail), Some(list));
            }
            format!("{name} resolves to no address")
        }
        Ok(Err(e)) => format!("cannot resolve {name}: {e}"),
        Err(_) => format!("resolving {name} timed out after {} s", wait.as_secs()),
    };
    (failed(StepKind::Dns, detail), None)
}

/// The TCP step: the first of `list` (at most [`MAX_ADDRESSES`]) that
/// takes a connection.
async fn connect_any(
    list: &[SocketAddr],
    egress: &Egress,
    wait: Duration,
    progress: Progress<'_>,
) -> (Step, Option<(TcpStream, SocketAddr)>) {
    let mut errors = Vec::new();
    for addr in list.iter().take(MAX_ADDRESSES) {
        progress(format!("connecting to {addr}"));
        let started = Instant::now();
        match connect(*addr, wait).await {
            Ok(s) => {
                let step = ok(
                    StepKind::Tcp,
                    format!("connected to {addr} ({})", ms(started)),
                );
                return (step, Some((s, *addr)));
            }
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    let detail = format!(
        "cannot connect to {} port {}: {}",
        egress.host,
        egress.port,
        errors.join("; ")
    );
    (failed(StepKind::Tcp, detail), None)
}

fn host_ip(url: &Url) -> Option<std::net::IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

async fn connect(addr: SocketAddr, wait: Duration) -> Result<TcpStream, String> {
    within(wait, TcpStream::connect(addr)).await
}

/// `step`'s result, or "timed out" after `wait`; errors as text.
async fn within<T, E: std::fmt::Display>(
    wait: Duration,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(wait, step).await {
        Ok(result) => result.map_err(|e| e.to_string()),
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
    progress: Progress<'_>,
) -> Step {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(server_name) = pki_types::ServerName::try_from(bare.to_owned()) else {
        let detail = format!("{url} has no host name usable for TLS");
        return failed(StepKind::Tls, detail);
    };
    progress(format!("TLS handshake with {host}"));
    let started = Instant::now();
    let builtin_err = match &tls.webpki {
        Some(c) => match handshake(c.clone(), stream, server_name.clone(), wait).await {
            Ok(version) => {
                let detail = format!(
                    "{version}; {host}'s certificate verified by the built-in webpki roots \
                     (Mozilla's CA list) ({})",
                    ms(started)
                );
                return ok(StepKind::Tls, detail);
            }
            Err(e) => e,
        },
        None => "the built-in roots could not be loaded".to_owned(),
    };
    let (config, path) = match &tls.extra {
        Some(Ok((config, path))) => (config, path.display()),
        unusable => {
            let why = match unusable {
                Some(Err(e)) => format!("; {e}"),
                _ => String::new(),
            };
            let detail = format!("handshake with {host} failed: {builtin_err}{why}");
            return failed(StepKind::Tls, detail);
        }
    };
    let started = Instant::now();
    let retry = match connect(addr, wait).await {
        Ok(s) => handshake(config.clone(), s, server_name, wait).await,
        Err(e) => Err(format!("reconnecting failed: {e}")),
    };
    match retry {
        Ok(version) => ok(
            StepKind::Tls,
            format!(
                "{version}; {host}'s certificate verified by {ENV_CA_CERT} {path} (not by the \
                 built-in roots) ({})",
                ms(started)
            ),
        ),
        Err(e) => failed(
            StepKind::Tls,
            format!(
                "handshake with {host} failed: with the built-in roots: {builtin_err}; \
                 with {ENV_CA_CERT} {path} alone: {e}"
            ),
        ),
    }
}

async fn handshake(
    config: Arc<ClientConfig>,
    stream: TcpStream,
    name: pki_types::ServerName<'static>,
    wait: Duration,
) -> Result<String, String> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = within(wait, connector.connect(name, stream)).await?;
    Ok(match tls.get_ref().1.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_owned(),
    })
}

async fn http_step(
    url: &Url,
    client: Result<&reqwest::Client, &String>,
    proxy: Option<&str>,
) -> Step {
    let client = match client {
        Ok(c) => c,
        Err(e) => return failed(StepKind::Http, format!("no HTTP client: {e}")),
    };
    let via = proxy.map(|p| format!(" via proxy {p}")).unwrap_or_default();
    let started = Instant::now();
    match client.get(url.clone()).send().await {
        Ok(response) => ok(
            StepKind::Http,
            format!(
                "answered HTTP {} to GET {url}{via} ({}); any answer counts",
                response.status(),
                ms(started)
            ),
        ),
        Err(e) => failed(
            StepKind::Http,
            format!(
                "no HTTP answer to GET {url}{via}: {}",
                error_chain(&e.without_url())
            ),
        ),
    }
}

/// The problems of one host, each with its fix.
pub(super) fn host_problems(host: &HostCheck, tls: &TlsRoots) -> Vec<String> {
    if host.reachable {
        return Vec::new();
    }
    let (name, target) = (&host.host, format!("{}:{}", host.host, host.port));
    let via = host
        .proxy
        .as_deref()
        .map(|p| format!(" and that the proxy {p} lets it through"));
    let failed = host.steps.iter().filter(|s| s.outcome == Outcome::Failed);
    failed
        .map(|s| {
            let fix = match s.step {
                StepKind::Dns => "check the host name in the URL and this machine's DNS (or set \
                                  HTTPS_PROXY if egress goes through a proxy)"
                    .to_owned(),
                StepKind::Tcp => format!(
                    "allow egress to {target} in the firewall (see the allowlist), check the URL, \
                     or set HTTPS_PROXY if egress goes through a proxy"
                ),
                StepKind::Tls if matches!(tls.extra, Some(Ok(_))) => {
                    format!("check that {ENV_CA_CERT} is the CA that signs {name}")
                }
                StepKind::Tls => format!(
                    "if a TLS-inspecting proxy or a private CA signs {name}, set {ENV_CA_CERT} to \
                     that CA's certificate (PEM)"
                ),
                StepKind::Http => {
                    let via = via.as_deref().unwrap_or_default();
                    format!("check that {target} is reachable from here{via}")
                }
            };
            format!("{}; {fix}", s.detail)
        })
        .collect()
}

fn ok(step: StepKind, detail: impl Into<String>) -> Step {
    Step::new(step, Outcome::Ok, detail)
}

fn failed(step: StepKind, detail: impl Into<String>) -> Step {
    Step::new(step, Outcome::Failed, detail)
}

fn skipped(step: StepKind, detail: impl Into<String>) -> Step {
    Step::new(step, Outcome::Skipped, detail)
}
