//! Test helpers shared by the workspace's crates (not published): servers
//! on loopback that the tests of more than one crate start.
#![warn(missing_docs)]

use std::sync::{Arc, Mutex};

/// The runtime the tests (and their child processes) run on: two worker
/// threads, like this machine's cores, with I/O and timers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// Every request a loopback server saw (method, URI, headers, body), and
/// its URL. It answers `POST …/auth` with an organization, a report path
/// with `204`, anything else with `404`.
pub async fn recording_server() -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::http::StatusCode;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let mut text = format!("{} {}\n", parts.method, parts.uri);
            for (k, v) in &parts.headers {
                text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
            }
            text.push_str(&String::from_utf8_lossy(&bytes));
            log.lock().unwrap().push(text);
            let path = parts.uri.path();
            if path.ends_with("/auth") {
                (
                    StatusCode::OK,
                    r#"{"org_config":{"org_id":"3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1"}}"#,
                )
            } else if path.ends_with("/metadata/submit") {
                (StatusCode::NO_CONTENT, "")
            } else {
                (StatusCode::NOT_FOUND, "")
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// An HTTP client for tests that talk to a server on loopback: no proxy
/// (a proxy variable in the environment must not reroute 127.0.0.1) and a
/// 10 s timeout, so a server that hangs fails the test instead of blocking
/// it.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client builds")
}

/// The path of `name` in the workspace's shared test fixtures
/// (`tests/fixtures/`: the test CA, server and JWT keys, protocol examples).
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}
