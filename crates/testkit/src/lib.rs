//! Test helpers shared by the workspace's crates (not published): servers
//! on loopback that the tests of more than one crate start.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
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

/// POSTs `body` as `application/json` to `url` with `client` (the
/// workspace's reqwest has no `json` feature).
pub async fn post_json(
    client: &reqwest::Client,
    url: reqwest::Url,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
}

/// The path of `name` in the workspace's shared test fixtures
/// (`tests/fixtures/`: the test CA, server and JWT keys, protocol examples).
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A mount that is undone when dropped (even when the test fails), for the
/// tests of a full or read-only filesystem. Mounting needs root (or
/// `CAP_SYS_ADMIN`); a test that cannot mount says so and skips.
pub struct Mount(PathBuf);

impl Mount {
    fn run(args: &[&str]) -> Result<(), String> {
        let out = Command::new("mount")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`mount {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// A tmpfs of `size` bytes on `dir`.
    pub fn tmpfs(dir: &Path, size: u64) -> Result<Mount, String> {
        let d = dir.to_str().expect("a UTF-8 temporary path");
        Mount::run(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", d])?;
        Ok(Mount(dir.to_owned()))
    }

    /// [`Mount::tmpfs`] for the test named `test`, or `None` after saying
    /// on stderr that the test is skipped and why (no root, no `mount`).
    pub fn tmpfs_or_skip(dir: &Path, size: u64, test: &str) -> Option<Mount> {
        Mount::tmpfs(dir, size)
            .inspect_err(|why| eprintln!("SKIPPED {test}: cannot mount a small tmpfs ({why})"))
            .ok()
    }

    /// `dir` bind-mounted on itself, read-only: reads work, every write
    /// (create, rename, delete) fails with EROFS.
    pub fn read_only(dir: &Path) -> Result<Mount, String> {
        let d = dir.to_str().expect("a UTF-8 temporary path");
        Mount::run(&["--bind", d, d])?;
        let m = Mount(dir.to_owned());
        Mount::run(&["-o", "remount,bind,ro", d])?;
        Ok(m)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes a file into `dir` until the filesystem is full.
pub fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create the filler");
    let chunk = vec![0xA5u8; 4096];
    loop {
        match f.write_all(&chunk).and_then(|_| f.sync_all()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return path, // ENOSPC
            Err(e) => panic!("filling the tmpfs failed: {e}"),
        }
    }
}

/// The resident memory of this process (`VmRSS`), in KiB, from
/// /proc/self/status; 0 where it cannot be read.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
