//! The endpoints.

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use beacon_meter::secret::Secret;
use beacon_meter::wire::{AuthResponse, ErrorBody, OrgConfig, VerifyResponse};
use std::pin::Pin;
use std::sync::Arc;
use uuid::Uuid;

use super::state::SinkState;
use super::store::{MAX_MEASURES_PER_TENANT, StoreFailure, Stored};
use super::validate::{self, CredentialField, Dialect, Invalid, Submission};
use crate::otlp;
use crate::token;

/// Marks a response that must not be sent; `server::handle` returns it as
/// the service's error, on which hyper closes the connection unanswered.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("connection dropped by the sink's fault injection")]
pub(crate) struct DropConnection;

pub(crate) fn router(shared: Arc<SinkState>) -> Router {
    Router::new()
        .route("/v1/beacon/verify", post(verify))
        .route("/auth", post(auth))
        .route("/api/v1/auth", post(auth))
        // The published path, then the reference reporter's (langgraph-api).
        .route("/v1/metadata/submit", submit_to(Dialect::Published))
        .route(
            "/v1/beacon/metadata/submit",
            submit_to(Dialect::LanggraphApi),
        )
        .route("/api/v1/metadata/submit", submit_to(Dialect::LanggraphApi))
        .route("/v1/metrics", post(otlp_metrics))
        .route("/v1/summary", get(summary))
        .route("/v1/reports", get(reports))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

/// `{"detail": message}` with `status`.
pub(crate) fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody::new(message))).into_response()
}

fn dropped() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

async fn not_found() -> Response {
    detail(
        StatusCode::NOT_FOUND,
        "no such endpoint; the sink serves POST /v1/beacon/verify, POST /auth \
         (also /api/v1/auth), POST /v1/metadata/submit (also /v1/beacon/metadata/submit \
         and /api/v1/metadata/submit), POST /v1/metrics (OTLP/HTTP), GET /v1/summary and \
         GET /v1/reports",
    )
}

async fn method_not_allowed() -> Response {
    detail(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

/// Reads a whole body of at most [`SinkConfig::max_body`] bytes, or
/// answers for it: `413` for a larger one, which is read on and discarded up
/// to a bound, so that the client, still sending, gets to read the `413`
/// instead of a reset connection.
///
/// [`SinkConfig::max_body`]: super::SinkConfig::max_body
async fn read_body(
    shared: &SinkState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, Response> {
    read_body_max(shared.config.max_body, headers, body).await
}

/// [`read_body`] with the limit `max`.
async fn read_body_max(
    max: usize,
    headers: &HeaderMap,
    mut body: Body,
) -> Result<Vec<u8>, Response> {
    let drain_cap = max.saturating_mul(4).saturating_add(1 << 20);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut buf = Vec::new();
    let mut total = 0usize;
    if declared.is_some_and(|n| n > drain_cap as u64) {
        total = usize::MAX;
    }
    while total <= drain_cap {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            let reason = format!("could not read the request body: {e}");
            detail(StatusCode::BAD_REQUEST, reason)
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > max {
            buf = Vec::new();
        } else {
            buf.extend_from_slice(&data);
        }
    }
    if total <= max {
        return Ok(buf);
    }
    let reason = format!("request body is larger than this sink's limit of {max} bytes");
    let mut response = detail(StatusCode::PAYLOAD_TOO_LARGE, reason);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Err(response)
}

async fn add_latency(shared: &SinkState) {
    let latency = shared.faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

/// A refusal: its status and the reason for its `detail`.
type Refusal = (StatusCode, String);

impl From<Invalid> for Refusal {
    /// A body that is not JSON is as unprocessable as one of the wrong
    /// shape: both `422`, and the reason says which it was.
    fn from(Invalid(reason): Invalid) -> Refusal {
        (StatusCode::UNPROCESSABLE_ENTITY, reason)
    }
}

/// `POST /v1/beacon/verify` `{"license": "..."}` -> `{"token": JWT}`.
async fn verify(State(shared): State<Arc<SinkState>>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read_body(&shared, &headers, body).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    add_latency(&shared).await;
    let license = match validate::parse_json(&bytes).and_then(validate::validate_verify) {
        Ok(l) => l,
        Err(e) => return detail(StatusCode::UNPROCESSABLE_ENTITY, e.0),
    };
    if !shared.config.accepts_license(license.expose()) {
        let why = if shared.config.licenses.is_none() {
            "license is not accepted: this sink accepts online licenses (keys starting with \"lcl_\")"
        } else {
            "license is not accepted: it is not in this sink's list of licenses"
        };
        return detail(StatusCode::FORBIDDEN, why);
    }
    let token = token::issue(
        &shared.key,
        chrono::Utc::now().timestamp(),
        shared.config.token_lifetime,
    );
    shared.count(|s| &mut s.verifications);
    let token = VerifyResponse {
        token: Secret::new(token),
    };
    (StatusCode::OK, axum::Json(token)).into_response()
}

/// `POST /v1/metrics`: an OTLP/HTTP protobuf metrics export; the checks
/// are listed in [`crate::otlp`].
async fn otlp_metrics(
    State(shared): State<Arc<SinkState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_body_max(otlp::MAX_OTLP_BODY, &headers, body).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let protobuf = header(header::CONTENT_TYPE.as_str())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-protobuf"));
    let encoded = header(header::CONTENT_ENCODING.as_str())
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"));
    if !protobuf || encoded {
        return detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send OTLP/HTTP protobuf, uncompressed (Content-Type: application/x-protobuf, no \
             Content-Encoding); OTLP JSON and gzip are not taken",
        );
    }
    let Some(key) = headers.get(beacon_meter::wire::METRICS_LICENSE_HEADER) else {
        return detail(
            StatusCode::UNAUTHORIZED,
            "missing X-Langchain-License-Key header",
        );
    };
    if !key.to_str().is_ok_and(|k| shared.config.accepts_license(k)) {
        return detail(
            StatusCode::FORBIDDEN,
            "X-Langchain-License-Key is not a license this sink accepts",
        );
    }
    let points = match otlp::decode(&bytes) {
        Ok(p) => p,
        Err(reason) => return detail(StatusCode::BAD_REQUEST, reason),
    };
    let storing = shared.clone();
    let stored = tokio::task::spawn_blocking(move || storing.store.accept_points(&points))
        .await
        .unwrap_or_else(|e| Err(StoreFailure::Task(e)));
    match stored {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response(),
        Err(e) => detail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the sink could not store the metrics ({}); retry later",
                beacon_meter::error_chain(&e)
            ),
        ),
    }
}

/// `POST /auth` with `X-Api-Key` -> `{"org_config": {...}}`.
async fn auth(State(shared): State<Arc<SinkState>>, headers: HeaderMap) -> Response {
    add_latency(&shared).await;
    let Some(key) = headers.get("x-api-key") else {
        return detail(StatusCode::UNAUTHORIZED, "missing X-Api-Key header");
    };
    let known = key.to_str().is_ok_and(|k| shared.config.accepts_api_key(k));
    if !known {
        return detail(
            StatusCode::UNAUTHORIZED,
            "X-Api-Key is not accepted by this sink",
        );
    }
    shared.count(|s| &mut s.auths);
    let other = [
        ("name", json!("local sink")),
        ("is_personal", json!(false)),
        ("tier", json!("enterprise")),
        ("max_identities", Value::Null),
        ("feature_flags", json!({"beacon_meter_sink": true})),
    ];
    let body = AuthResponse {
        org_config: OrgConfig {
            org_id: shared.config.org_id.to_string(),
            other: other.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        },
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn forced(status: u16, retry_after: u64) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let response = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        status.into_response()
    } else {
        detail(
            status,
            format!(
                "status {} forced by the sink's fault injection",
                status.as_u16()
            ),
        )
    };
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        with_retry_after(response, retry_after)
    } else {
        response
    }
}

/// The handler of a report path of dialect `path_dialect`.
fn submit_to(path_dialect: Dialect) -> axum::routing::MethodRouter<Arc<SinkState>> {
    post(
        move |State(shared): State<Arc<SinkState>>, headers: HeaderMap, body: Body| {
            submit(shared, path_dialect, headers, body)
        },
    )
}

/// A report posted to a path of dialect `path_dialect`; the order of checks
/// is listed in the `sink` module docs.
async fn submit(
    shared: Arc<SinkState>,
    path_dialect: Dialect,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_body(&shared, &headers, body).await {
        Ok(b) => b,
        Err(answer) => {
            shared.count(|s| &mut s.rejects);
            return answer;
        }
    };
    add_latency(&shared).await;

    let faults = shared.faults();
    if let Some(status) = faults.forced_status {
        shared.count(|s| &mut s.faults_injected);
        return forced(status, faults.retry_after_secs);
    }
    if shared.chance(|f| f.failure_rate) {
        shared.count(|s| &mut s.faults_injected);
        return with_retry_after(
            detail(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable (injected by the sink's failure_rate); retry later",
            ),
            faults.retry_after_secs,
        );
    }
    if shared.chance(|f| f.drop_rate) {
        shared.count(|s| &mut s.faults_injected);
        return dropped();
    }

    let submission = match check(&shared, &headers, &bytes, path_dialect) {
        Ok(checked) => checked,
        Err((status, reason)) => {
            shared.count(|s| &mut s.rejects);
            return detail(status, without_known_keys(&shared, reason));
        }
    };
    // The commit waits for an fsync: off the async workers.
    let storing = shared.clone();
    let stored = tokio::task::spawn_blocking(move || storing.accept(&submission))
        .await
        .unwrap_or_else(|e| Stored::Failed(StoreFailure::Task(e)));
    match stored {
        Stored::New if shared.chance(|f| f.accept_then_drop_rate) => {
            shared.count(|s| &mut s.faults_injected);
            dropped()
        }
        Stored::New | Stored::Duplicate => StatusCode::NO_CONTENT.into_response(),
        // `accept` counted the reject.
        Stored::Conflict => detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency-Key was already used for a different report body; \
             a retry must resend the same body, a new report needs a new key",
        ),
        Stored::TooManyNames(n) => detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "this report would give its tenant {n} distinct measure names; a tenant may \
                 have at most {MAX_MEASURES_PER_TENANT}"
            ),
        ),
        // Logged by the store; nothing was stored, so a retry is safe.
        Stored::Failed(e) => detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the sink could not store the report ({}); retry later",
                beacon_meter::error_chain(&e)
            ),
        ),
    }
}

/// Every credential this sink is configured with.
fn known_keys(shared: &SinkState) -> impl Iterator<Item = &Secret> {
    let config = &shared.config;
    config.licenses.iter().flatten().chain(&config.api_keys)
}

/// `reason` with every credential this sink is configured with redacted (a
/// refusal quotes values, and a client may have put a key in the wrong
/// field; the report's own credential is already taken care of by
/// `validate_report`).
fn without_known_keys(shared: &SinkState, reason: String) -> String {
    known_keys(shared).fold(reason, |r, k| k.scrub(&r))
}

/// Everything that can refuse a report before it is stored.
fn check(
    shared: &SinkState,
    headers: &HeaderMap,
    bytes: &[u8],
    path_dialect: Dialect,
) -> Result<Submission, Refusal> {
    if !is_json(headers) {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "Content-Type header must be application/json".into(),
        ));
    }
    let report = validate::validate_report(validate::parse_json(bytes)?)?;
    let field = report.credential_field;
    let known = match field {
        CredentialField::ApiKey => shared.config.accepts_api_key(&report.credential),
        _ => shared.config.accepts_license(&report.credential),
    };
    if !known {
        let why = match field {
            CredentialField::ApiKey => "it is not in this sink's list of API keys",
            _ if shared.config.licenses.is_none() => {
                "this sink accepts online licenses (keys starting with \"lcl_\"); offline licenses never report"
            }
            _ => "it is not in this sink's list of licenses",
        };
        return Err((
            StatusCode::UNAUTHORIZED,
            format!("`{}` is not accepted: {why}", field.name()),
        ));
    }
    let mut keys = headers.get_all("idempotency-key").iter();
    let key = match (keys.next(), keys.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                "Idempotency-Key header must appear at most once".into(),
            ));
        }
        (Some(v), None) => match v.to_str().ok().and_then(|s| Uuid::try_parse(s.trim()).ok()) {
            Some(uuid) => Some(uuid),
            None => {
                return Err((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Idempotency-Key header must be a UUID".into(),
                ));
            }
        },
    };
    let dialect = report.dialect(path_dialect);
    let keys: Vec<&Secret> = known_keys(shared).collect();
    Ok(Submission {
        key,
        dialect,
        record: report.record(dialect, &keys),
        report,
    })
}

/// `None` if the request may read the summary and reports, else the `401`.
fn refused_read(shared: &SinkState, headers: &HeaderMap) -> Option<Response> {
    if shared.may_read(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) {
        return None;
    }
    let why = if shared.config.admin_token.is_some() {
        "this endpoint needs `Authorization: Bearer <admin token>` with the sink's admin token"
    } else {
        "this sink listens beyond loopback and has no admin token, so its summary and reports \
         are not served; start it with --admin-token-file"
    };
    let mut response = detail(StatusCode::UNAUTHORIZED, why);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

/// `GET /v1/summary`. Read on a blocking thread, like every store read:
/// the store's lock may be held by a commit, and an async worker waiting
/// for it would stall every connection it serves.
async fn summary(State(shared): State<Arc<SinkState>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refused_read(&shared, &headers) {
        return refused;
    }
    let reading = shared.clone();
    match tokio::task::spawn_blocking(move || reading.summary()).await {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(e) => detail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The query of `GET /v1/reports`.
#[derive(Debug, serde::Deserialize)]
struct Page {
    /// Records to skip. Default 0.
    #[serde(default)]
    offset: u64,
    /// Records to return, at most (and by default) [`MAX_PAGE`].
    limit: Option<u64>,
}

/// The most records one `GET /v1/reports` returns.
pub const MAX_PAGE: u64 = 1000;

/// `GET /v1/reports?offset=N&limit=M`: stored records in arrival order,
/// credentials redacted, at most [`MAX_PAGE`] at a time.
async fn reports(
    State(shared): State<Arc<SinkState>>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(refused) = refused_read(&shared, &headers) {
        return refused;
    }
    let Ok(axum::extract::Query(page)) = query else {
        return detail(
            StatusCode::BAD_REQUEST,
            "the query must be offset=N&limit=M with non-negative integers",
        );
    };
    let limit = page.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let reading = shared.clone();
    match tokio::task::spawn_blocking(move || reading.store.records(page.offset, limit)).await {
        Ok(Ok(records)) => axum::Json(Value::Array(records)).into_response(),
        Ok(Err(e)) => detail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => detail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
