//! `check`'s report paths: for each destination, the exact URL and body
//! its reports get, and a probe of the path with a `GET`, which no Beacon
//! can count as a report. A report endpoint takes `POST` only, so `405`
//! means the path exists and `404` that it does not; any other answer is
//! shown as it is. For the license destination both dialects' paths are
//! probed, so a wrong `BEACON_WIRE` is named with its fix.

use super::CredentialKind;
use super::preview::Preview;
use beacon_meter::config::{Config, ENV_WIRE};
use beacon_meter::wire::Dialect;
use serde::Serialize;
use url::Url;

/// What a `GET` on a report path says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathFinding {
    /// `405`: something takes `POST` there, so the path exists.
    Exists,
    /// `404`: nothing is there.
    Missing,
    /// Another status: it cannot be told from it.
    Other,
    /// No answer.
    Failed,
    /// Not probed: the host is unreachable.
    Skipped,
}

/// One probed report path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathProbe {
    /// The dialect whose path this is (`None` for the API key's path, the
    /// same in both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<&'static str>,
    /// The URL probed.
    pub url: String,
    /// The status of the answer, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What it says.
    pub finding: PathFinding,
    /// What was seen, in words.
    pub detail: String,
}

/// One destination's reports: where they go, what they carry, and whether
/// the path is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportPath {
    /// Which credential's reports.
    pub kind: CredentialKind,
    /// The wire dialect (`BEACON_WIRE`).
    pub dialect: &'static str,
    /// The URL the reports are POSTed to.
    pub url: String,
    /// The next report's body exactly as it would be sent, the credential
    /// redacted.
    pub body: serde_json::Value,
    /// The probes: the report path, then (license) the other dialect's.
    pub probes: Vec<PathProbe>,
    /// Why reports would not be taken, with the fix, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The report paths of `config`'s destinations, whose next reports are
/// `previews` (one per destination, from [`super::preview::build`]).
/// `reachable(url)` says whether the URL's host answered; `client` follows
/// no redirect.
pub(super) async fn report_paths(
    config: &Config,
    previews: &[Preview],
    client: Result<&reqwest::Client, &String>,
    reachable: impl Fn(&Url) -> bool,
) -> Vec<ReportPath> {
    let mut out = Vec::new();
    for d in config.credentials() {
        let kind = CredentialKind::of(&d.credential);
        let Some(preview) = previews.iter().find(|p| p.destination == d.destination()) else {
            continue;
        };
        // The report path first; for a license, the other dialect's too.
        let mut targets = vec![(d.submit_url.clone(), d.dialect)];
        if kind == CredentialKind::License {
            let other = d.dialect.other();
            targets.push((config.license_report_url(other), other));
        }
        let mut probes = Vec::new();
        for (url, dialect) in targets {
            let (status, finding, detail) = if reachable(&url) {
                probe(&url, client).await
            } else {
                let why = "not probed: the host is unreachable".to_owned();
                (None, PathFinding::Skipped, why)
            };
            let dialect = (kind == CredentialKind::License).then_some(dialect.name());
            let url = url.to_string();
            probes.push(PathProbe {
                dialect,
                url,
                status,
                finding,
                detail,
            });
        }
        let problem = judge(&probes, d.dialect, &d.no_report_path_hint());
        out.push(ReportPath {
            kind,
            dialect: d.dialect.name(),
            url: d.submit_url.to_string(),
            body: preview.wire_json(),
            probes,
            problem,
        });
    }
    out
}

/// `GET url`: the status of the answer (if any), what it says, and that
/// in words.
async fn probe(
    url: &Url,
    client: Result<&reqwest::Client, &String>,
) -> (Option<u16>, PathFinding, String) {
    let answer = match client {
        Ok(c) => c.get(url.clone()).send().await,
        Err(e) => return (None, PathFinding::Failed, format!("no HTTP client: {e}")),
    };
    let status = match answer {
        Ok(response) => response.status().as_u16(),
        Err(e) => {
            let detail = format!("no HTTP answer to GET: {}", e.without_url());
            return (None, PathFinding::Failed, detail);
        }
    };
    let (finding, detail) = match status {
        405 => (
            PathFinding::Exists,
            "HTTP 405 to GET: the path exists (it takes POST only)".to_owned(),
        ),
        404 => (
            PathFinding::Missing,
            "HTTP 404 to GET: nothing is at this path".to_owned(),
        ),
        s => (
            PathFinding::Other,
            format!(
                "HTTP {s} to GET: neither 405 (the path exists) nor 404 (it does not), so this \
                 cannot tell whether reports are taken here"
            ),
        ),
    };
    (Some(status), finding, detail)
}

/// The problem, if the report path (`probes[0]`) is missing: with the
/// other dialect named when its path (`probes[1]`, license only) exists.
fn judge(probes: &[PathProbe], dialect: Dialect, hint: &str) -> Option<String> {
    let here = probes.first()?;
    if here.finding != PathFinding::Missing {
        return None;
    }
    let other = dialect.other();
    Some(match probes.get(1) {
        Some(there) if there.finding == PathFinding::Exists => format!(
            "nothing takes reports at {} (HTTP 404 to GET), but {} exists (HTTP 405): this \
             Beacon speaks the {other} dialect; set {ENV_WIRE}={other}",
            here.url, there.url
        ),
        _ => format!(
            "nothing takes reports at {} (HTTP 404 to GET); {hint}",
            here.url
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::preview;
    use crate::doctor::tests::{API_KEY, LICENSE};
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use beacon_meter::wire::Tags;
    use std::path::Path;

    /// A loopback server taking POST at `paths` only (so GET there is 405,
    /// anywhere else 404); stops when the test's runtime ends.
    async fn server(paths: &[&'static str]) -> String {
        let mut app = Router::new();
        for p in paths {
            app = app.route(p, post(|| async { StatusCode::NO_CONTENT }));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    async fn paths_for(base: &str, wire: &str) -> Vec<ReportPath> {
        let config = Config::from_pairs(&[
            ("LANGGRAPH_CLOUD_LICENSE_KEY", LICENSE),
            ("LANGSMITH_API_KEY", API_KEY),
            ("BEACON_URL", base),
            ("LANGSMITH_AUTH_ENDPOINT", &format!("{base}/api/v1")),
            (ENV_WIRE, wire),
        ])
        .unwrap();
        let previews = preview::build(
            &config,
            &Tags::new(),
            Path::new("/nonexistent/spool"),
            chrono::Utc::now(),
        );
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        report_paths(&config, &previews.reports, Ok(&client), |_| true).await
    }

    #[tokio::test]
    async fn a_wrong_dialect_is_named_with_its_fix() {
        let base = server(&["/v1/beacon/metadata/submit", "/api/v1/metadata/submit"]).await;
        let r = paths_for(&base, "published").await;
        assert_eq!(r.len(), 2);
        let license = &r[0];
        assert_eq!(license.url, format!("{base}/v1/metadata/submit"));
        assert_eq!(license.probes[0].finding, PathFinding::Missing);
        assert_eq!(license.probes[1].finding, PathFinding::Exists);
        assert_eq!(license.probes[1].dialect, Some("langgraph-api"));
        let problem = license.problem.as_deref().unwrap();
        assert!(
            problem.contains("set BEACON_WIRE=langgraph-api"),
            "{problem}"
        );
        assert_eq!(license.body["license"], "lcl_…9f2a");
        // The API key's path follows the /api/v1 rule, and exists.
        let api = &r[1];
        assert_eq!(api.url, format!("{base}/api/v1/metadata/submit"));
        assert_eq!(api.probes.len(), 1);
        assert_eq!(api.probes[0].finding, PathFinding::Exists);
        assert_eq!(api.problem, None);
        assert_eq!(api.body["api_key"], "lsv2…f_77");

        // The right dialect: no problem, and the body names license_key.
        let r = paths_for(&base, "langgraph-api").await;
        assert_eq!(r[0].problem, None);
        assert_eq!(r[0].probes[0].finding, PathFinding::Exists);
        assert_eq!(r[0].body["license_key"], "lcl_…9f2a");
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains(LICENSE) && !text.contains(API_KEY), "{text}");
    }

    #[tokio::test]
    async fn no_path_at_all_points_at_the_urls_and_other_answers_are_shown() {
        let base = server(&[]).await;
        let r = paths_for(&base, "published").await;
        let problem = r[0].problem.as_deref().unwrap();
        assert!(
            problem.contains("BEACON_URL") && !problem.contains("set BEACON_WIRE="),
            "{problem}"
        );
        let problem = r[1].problem.as_deref().unwrap();
        assert!(problem.contains("LANGSMITH_AUTH_ENDPOINT"), "{problem}");

        // A server that answers GET with 200 everywhere: said as it is.
        let app = Router::new().fallback(|| async { "hello" });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let r = paths_for(&format!("http://{addr}"), "published").await;
        assert_eq!(r[0].probes[0].finding, PathFinding::Other);
        assert_eq!(r[0].probes[0].status, Some(200));
        assert!(r[0].probes[0].detail.contains("cannot tell"));
        assert_eq!(r[0].problem, None);
    }
}
