//! The client honours `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`.
//!
//! A test binary of its own, with a single test, because it sets process
//! environment variables: no other test may read the environment meanwhile.
#![cfg(feature = "reporter")]

use beacon_meter::client::{ClientSettings, HttpClient, SubmitOutcome};
use beacon_meter::secret::Secret;
use beacon_meter::wire::{Credential, Dialect, ReportBody};
use chrono::{TimeZone, Utc};
use reqwest::Url;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that records the request line of each request and answers
/// every one with `status`.
async fn recording_server(
    status: u16,
) -> (u16, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf);
                let first = text.lines().next().unwrap_or("").to_owned();
                seen.lock().unwrap().push(first);
                let answer = format!(
                    "HTTP/1.1 {status} Test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, lines, task)
}

/// The published report URL under `base` (what the configuration builds).
fn report_url(base: &Url) -> Url {
    base.join("v1/metadata/submit").unwrap()
}

fn body() -> ReportBody {
    ReportBody {
        from_timestamp: Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap(),
        to_timestamp: Utc.with_ymd_and_hms(2025, 1, 6, 10, 0, 0).unwrap(),
        tags: BTreeMap::new(),
        measures: BTreeMap::new(),
        logs: vec![],
    }
}

#[test]
fn proxies_come_from_the_environment() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The proxy refuses every tunnel and every proxied request.
        let (proxy_port, proxied, _proxy) = recording_server(502).await;
        let (direct_port, direct, _direct) = recording_server(204).await;
        let proxy = format!("http://127.0.0.1:{proxy_port}");
        for name in [
            "https_proxy",
            "http_proxy",
            "all_proxy",
            "no_proxy",
            "ALL_PROXY",
        ] {
            // SAFETY: this binary's only test; the runtime is single-threaded
            // and nothing else reads the environment while it is changed.
            unsafe { std::env::remove_var(name) };
        }
        // SAFETY: as above.
        unsafe {
            std::env::set_var("HTTPS_PROXY", &proxy);
            std::env::set_var("HTTP_PROXY", &proxy);
            std::env::set_var("NO_PROXY", "127.0.0.1");
        }
        let client = HttpClient::new(
            ClientSettings::default()
                .timeout(Duration::from_secs(3))
                .connect_timeout(Duration::from_secs(1)),
        )
        .unwrap();
        let credential = Credential::License(Secret::new("lcl_proxytest0123456789"));
        let key = uuid::Uuid::new_v4();

        // https through HTTPS_PROXY: a CONNECT tunnel, refused by the proxy.
        // (The name is never resolved here: only the proxy would.)
        let far = Url::parse("https://beacon.example.com").unwrap();
        let outcome = client
            .submit(
                &report_url(&far),
                Dialect::Published,
                &credential,
                &body(),
                key,
            )
            .await
            .unwrap();
        assert!(
            matches!(
                outcome,
                SubmitOutcome::Retry {
                    in_doubt: false,
                    ..
                }
            ),
            "{outcome:?}"
        );

        // Loopback http by name: through HTTP_PROXY.
        let by_name = Url::parse(&format!("http://localhost:{direct_port}")).unwrap();
        let outcome = client
            .submit(
                &report_url(&by_name),
                Dialect::Published,
                &credential,
                &body(),
                key,
            )
            .await
            .unwrap();
        assert!(
            matches!(outcome, SubmitOutcome::Retry { in_doubt: true, .. }),
            "{outcome:?}"
        );

        // Listed in NO_PROXY: direct.
        let by_ip = Url::parse(&format!("http://127.0.0.1:{direct_port}")).unwrap();
        let outcome = client
            .submit(
                &report_url(&by_ip),
                Dialect::Published,
                &credential,
                &body(),
                key,
            )
            .await
            .unwrap();
        assert_eq!(outcome, SubmitOutcome::Accepted { status: 204 });

        let proxied = proxied.lock().unwrap().clone();
        assert_eq!(
            proxied,
            vec![
                "CONNECT beacon.example.com:443 HTTP/1.1".to_owned(),
                format!("POST http://localhost:{direct_port}/v1/metadata/submit HTTP/1.1"),
            ]
        );
        assert_eq!(
            *direct.lock().unwrap(),
            vec!["POST /v1/metadata/submit HTTP/1.1".to_owned()]
        );
    });
}
