//! A local Beacon server: the demo's target, a test double for the client
//! and reporter, and a way for an air-gapped operator to see exactly what
//! would be sent.
//!
//! It builds on `beacon-meter`'s wire format alone (the `wire` feature):
//! nothing of the reporter, the client or the spool, which the compiler
//! checks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), beacon_meter_sink::SinkError> {
//! use beacon_meter_sink::SinkConfig;
//!
//! let sink = SinkConfig::ephemeral().start().await?;
//! println!("Beacon at {}", sink.base_url());
//! // ... point a reporter at sink.base_url() ...
//! println!("{:?}", sink.summary().measures);
//! sink.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//!
//! * `POST /v1/beacon/verify` `{"license": "..."}`: `200 {"token": JWT}` for
//!   an accepted license ([`SinkConfig::licenses`]), else `403`. The JWT is
//!   HS256, signed with a key drawn at random when the sink starts; its
//!   claims are `sub: "license"`, `iss`, `iat`, `exp` (`iat` plus
//!   [`SinkConfig::token_lifetime`]) and `jti`.
//! * `POST /auth` (also `POST /api/v1/auth`) with `X-Api-Key`: `200
//!   {"org_config": {"org_id": ..., "name": "local sink", ...}}` for a key
//!   in [`SinkConfig::api_keys`] (with a few extra fields a client must
//!   ignore), else `401`.
//! * `POST /v1/metadata/submit` (published), `POST /v1/beacon/metadata/submit`
//!   and `POST /api/v1/metadata/submit` (the reference reporter's paths): a
//!   usage report. All three apply the same rules, in order:
//!   1. body larger than [`SinkConfig::max_body`]: `413`;
//!   2. the [`Faults`] (forced status, `503`, dropped connection);
//!   3. `Content-Type` not `application/json`: `422`;
//!   4. not JSON, or an object with a duplicate key: `422`;
//!   5. not exactly the protocol's keys and types: `422` (exactly one of
//!      `license`, `license_key`, `api_key`; `from_timestamp` <
//!      `to_timestamp`, both RFC 3339 with `T`, `Z` or a numeric offset, at
//!      most nine fractional digits, years 0000 to 9999 in UTC too, the
//!      window at most 366 days; `tags` all strings, any names and values
//!      (`"True"`, `"unknown"`, ...), tenant and project ids UUIDs when not
//!      empty (in any form `uuid` reads, stored lower case with dashes);
//!      `measures` at most [`MAX_MEASURES_PER_REPORT`] integers in
//!      `0..=u64::MAX`, any names, floats refused; `logs` an array of
//!      objects);
//!   6. credential unknown: `401`;
//!   7. `Idempotency-Key` present but not one UUID: `422`;
//!   8. key seen before: same body `204` (counted as a duplicate, not
//!      again), different body `422`;
//!   9. a report that would give its tenant more than
//!      [`MAX_MEASURES_PER_TENANT`] distinct measure names: `422`;
//!   10. otherwise accepted: `204`, stored, appended to the JSONL file.
//!       (No key: accepted and counted in
//!       [`Summary::without_idempotency_key`], since a retry of it cannot
//!       be told from a new report.)
//!
//!   A report's *dialect* is `langgraph-api` if it came to one of the
//!   reference reporter's paths, carries `license_key`, or has a timestamp
//!   not written with `Z`; else `published`. It is counted in
//!   [`Summary::by_dialect`] and stored in the record's `"dialect"` field.
//! * `GET /v1/summary`: the [`Summary`].
//! * `GET /v1/reports?offset=N&limit=M`: stored records, in arrival order,
//!   at most [`MAX_PAGE`] per request.
//!
//!   Both read endpoints reveal every tenant's usage. With
//!   [`SinkConfig::admin_token`] set they need `Authorization: Bearer
//!   <token>` (compared in constant time); without one they are open only
//!   on a loopback [`SinkConfig::bind`]. Otherwise: `401`.
//!
//! Every refusal is `{"detail": "<reason naming the field>"}`; no answer,
//! log line, stored report or recorded request contains a credential in
//! full: stored reports, the JSONL file and [`SinkHandle::reports`] carry
//! the credential field with its redacted form (`lcl_…9f2a`), both
//! timestamps normalised to UTC (`2025-01-06T09:00:00.5Z`), the
//! `"dialect"`, and everything else in the report as received, except that
//! the report's credential and every configured one are redacted wherever
//! else they appear (a key sent as a tag, say).
//!
//! A request must be complete within [`SinkConfig::request_timeout`] (plus
//! the injected latency) or it is answered `408` and its connection closed.
//! A request head over [`MAX_REQUEST_HEAD`] bytes is answered `431`. At
//! most [`SinkConfig::max_connections`] connections are served at once
//! (the oldest idle one makes room for a new one).
//!
//! # Files
//!
//! The database ([`SinkConfig::db`], with its `-wal` and `-shm`) and the
//! JSONL export are created mode 0600: they hold every tenant's usage. At
//! start the database is checked (`PRAGMA quick_check`), and a damaged or
//! empty file is refused ([`StoreError::Damaged`] says how to recover).

#![warn(missing_docs)]

mod connections;
mod files;
mod metrics;
pub mod otlp;
mod routes;
mod server;
mod sink_config;
mod state;
mod store;
mod tls;
mod token;
mod usage;
mod validate;

pub use connections::{DEFAULT_MAX_CONNECTIONS, RESERVED_FDS};
pub use files::warn_if_shared;
pub use metrics::{PeriodStats, Series, metrics};
pub use routes::MAX_PAGE;
pub use sink_config::{DEFAULT_ORG_ID, Faults, MIN_ADMIN_TOKEN_CHARS, SinkConfig, TlsFiles};
pub use state::{
    MAX_RECORDED_BYTES, MAX_RECORDED_REQUESTS, MAX_REQUEST_HEAD, RecordedRequest, Summary,
};
pub use store::{HOST_TAG, MAX_MEASURES_PER_TENANT, StoreError, TENANT_TAG};
pub use usage::{Period, UsageRow, usage};
pub use validate::MAX_MEASURES_PER_REPORT;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use state::SinkState;
use store::Store;

/// Why a sink could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The listening socket could not be opened.
    #[error("the sink could not listen on {addr}: {source}; pick another address or port")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The JSONL file could not be opened for appending.
    #[error("the sink could not open its JSONL file {}: {source}; check the path and its permissions", path.display())]
    Jsonl {
        /// The file asked for.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The TLS certificate or key could not be used: `message` names the
    /// file and the fix, `source` is the cause (an I/O, PEM or rustls
    /// error) when there is one.
    #[error("{message}")]
    Tls {
        /// What is wrong, naming the file.
        message: String,
        /// The cause, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A configuration value the sink cannot work with.
    #[error("invalid sink configuration: {0}")]
    InvalidConfig(String),
    /// A license or API key that cannot be a key (its value is not shown).
    #[error(
        "invalid sink configuration: {field} entry number {index} is empty or contains \
         whitespace or control characters; pass the key exactly as issued \
         (the value is not shown because it is a secret)"
    )]
    BadKey {
        /// The [`SinkConfig`] field: `licenses` or `api_keys`.
        field: &'static str,
        /// Which entry of the list, from 1.
        index: usize,
    },
    /// [`SinkConfig::admin_token`] is too short or holds whitespace or
    /// control characters (its value is not shown).
    #[error(
        "invalid sink configuration: admin_token must be one token of at least \
         {MIN_ADMIN_TOKEN_CHARS} characters, without spaces; use a long random string \
         (e.g. `openssl rand -hex 32`), or none"
    )]
    WeakAdminToken,
    /// The system's random generator failed (to draw the JWT signing key).
    #[error("the sink could not draw a random JWT signing key from the system")]
    Random,
}

impl SinkConfig {
    /// Starts a sink: checks the configuration, opens the JSONL file if
    /// any, binds the listening socket and serves in the background until
    /// the returned handle is shut down or dropped.
    pub async fn start(self) -> Result<SinkHandle, SinkError> {
        let config = self;
        config.validate()?;
        let registry = connections::Registry::new(connections::limit(config.max_connections)?);
        let jsonl = config.jsonl.as_ref().map(|path| {
            let open = files::append_private(path, "JSONL export");
            open.map_err(|source| SinkError::Jsonl {
                path: path.clone(),
                source,
            })
        });
        let jsonl = jsonl.transpose()?;
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let store = Store::open(config.db.as_deref(), jsonl)?;
        let key = token::new_key().map_err(|_| SinkError::Random)?;
        let bind = |source| SinkError::Bind {
            addr: config.bind,
            source,
        };
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let shared = Arc::new(SinkState::new(config, key, store).map_err(|_| SinkError::Random)?);
        let (shutdown, watching) = watch::channel(false);
        let https = tls.is_some();
        let task = tokio::spawn(server::serve(
            listener,
            tls,
            shared.clone(),
            registry,
            watching,
        ));
        tracing::info!(%addr, https, "Beacon sink listening");
        Ok(SinkHandle {
            addr,
            https,
            shared,
            shutdown,
            task,
        })
    }
}

/// A running sink. Dropping it stops the sink too (without waiting);
/// [`SinkHandle::shutdown`] stops it and waits.
pub struct SinkHandle {
    addr: SocketAddr,
    https: bool,
    shared: Arc<SinkState>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl fmt::Debug for SinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SinkHandle {
    /// The address the sink listens on (with the actual port when bound to
    /// port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/` (`https://` with [`SinkConfig::tls`]): the base URL
    /// for both the Beacon and the auth endpoint.
    pub fn base_url(&self) -> url::Url {
        let scheme = if self.https { "https" } else { "http" };
        url::Url::parse(&format!("{scheme}://{}/", self.addr))
            .expect("a socket address always makes a valid URL")
    }

    /// The totals, as served by `GET /v1/summary`.
    pub fn summary(&self) -> Summary {
        self.shared.summary()
    }

    /// Every stored report (deduplicated, in arrival order, as records:
    /// credential redacted, timestamps in UTC, with their dialect). This
    /// reads them all into memory: for a large database use
    /// [`SinkHandle::reports_page`]. Blocks while a report is committed.
    pub fn reports(&self) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        loop {
            match self.shared.store.records(all.len() as u64, MAX_PAGE) {
                Ok(page) if page.is_empty() => return all,
                Ok(page) => all.extend(page),
                Err(e) => {
                    tracing::error!(error = %e, "sink could not read its reports");
                    return all;
                }
            }
        }
    }

    /// Up to `limit` stored records after skipping `offset`, in arrival
    /// order: what `GET /v1/reports?offset=..&limit=..` serves.
    pub fn reports_page(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        self.shared.store.records(offset, limit)
    }

    /// Replaces the faults (and reseeds their generator with
    /// [`Faults::seed`]). Rates outside `[0, 1]` are clamped into it.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// Sets or clears [`Faults::forced_status`] alone.
    pub fn set_forced_status(&self, status: Option<u16>) {
        self.shared.set_forced_status(status);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// The most recent requests served (at most [`MAX_RECORDED_REQUESTS`],
    /// and at most [`MAX_RECORDED_BYTES`] of them), in the order they were
    /// answered, with secret headers redacted.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// The claims of `token` if this sink issued it (the signature is
    /// checked, the expiry is not).
    pub fn verify_token(&self, token: &str) -> Option<serde_json::Value> {
        token::verify(&self.shared.key, token)
    }

    /// Stops accepting connections, lets requests in flight finish for up to
    /// [`SinkConfig::shutdown_grace`], then closes what is left.
    pub async fn shutdown(self) {
        let SinkHandle {
            shutdown,
            mut task,
            shared,
            ..
        } = self;
        let _ = shutdown.send(true);
        // The serve loop bounds itself by the grace period; the extra second
        // only guards against a connection task that ignores being aborted.
        let bound = shared
            .config
            .shutdown_grace
            .saturating_add(std::time::Duration::from_secs(1));
        if tokio::time::timeout(bound, &mut task).await.is_err() {
            task.abort();
        }
        tracing::info!("Beacon sink stopped");
    }
}
