//! The accept loop. The sink serves HTTP/1.1 connections with hyper itself
//! rather than through `axum::serve`, because it must be able to close a
//! connection without answering: a response marked
//! [`DropConnection`](super::routes::DropConnection) becomes a service
//! error, on which hyper closes the connection without writing anything.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::connections::{Admitted, Conn, Registry, Throttle};
use super::routes::{DropConnection, detail, router};
use super::state::{MAX_REQUEST_HEAD, RecordedRequest, SinkState, redact_headers};

/// Accepts connections until `shutdown` changes (or its sender is gone),
/// then lets open connections finish for up to `grace` and closes the rest.
/// At most `registry`'s limit of connections are served (see
/// [`super::connections`]).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<SinkState>,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let grace = shared.config.shutdown_grace;
    let service = TowerToHyperService::new(router(shared.clone()));
    let mut connections = JoinSet::new();
    let (mut accept_failed, mut all_busy) = (Throttle::default(), Throttle::default());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Some(admitted) = registry.admit() else {
                        all_busy.warn(|held| tracing::warn!(
                            limit = registry.limit(),
                            held_back = held,
                            "sink is at its connection limit with every connection busy; \
                             closing new connections"
                        ));
                        continue;
                    };
                    connections.spawn(connection(
                        stream,
                        tls.clone(),
                        service.clone(),
                        shared.clone(),
                        shutdown.clone(),
                        admitted,
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment
                    // rather than spin, and say so once per interval.
                    accept_failed.warn(|held| tracing::warn!(
                        error = %e,
                        held_back = held,
                        "sink could not accept a connection"
                    ));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// One accepted connection: the TLS handshake first if the sink serves
/// HTTPS (bounded by the request timeout), then HTTP.
async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    service: TowerToHyperService<Router>,
    shared: Arc<SinkState>,
    shutdown: watch::Receiver<bool>,
    admitted: Admitted,
) {
    let _ = stream.set_nodelay(true);
    let conn = admitted.conn.clone();
    let Some(tls) = tls else {
        return serve_connection(stream, service, shared, shutdown, conn).await;
    };
    let limit = shared.config.request_timeout;
    let handshake = tokio::time::timeout(limit, tls.accept(stream));
    let handshake = tokio::select! {
        done = handshake => done,
        () = conn.shed.notified() => return,
    };
    match handshake {
        Ok(Ok(stream)) => serve_connection(stream, service, shared, shutdown, conn).await,
        Ok(Err(e)) => tracing::debug!(error = %e, "sink TLS handshake failed"),
        Err(_) => tracing::debug!("sink TLS handshake timed out"),
    }
}

async fn serve_connection<S>(
    stream: S,
    service: TowerToHyperService<Router>,
    shared: Arc<SinkState>,
    mut shutdown: watch::Receiver<bool>,
    conn: Arc<Conn>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = shared.config.request_timeout;
    let marks = conn.clone();
    let service = service_fn(move |request| {
        let (service, shared, marks) = (service.clone(), shared.clone(), marks.clone());
        async move {
            marks.set_busy(true);
            let answer = handle(service, shared, request).await;
            marks.set_busy(false);
            answer
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // Bounds the head: hyper answers a larger one 431 and closes.
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    if *shutdown.borrow_and_update() {
        connection.as_mut().graceful_shutdown();
    }
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "sink connection ended");
            }
        }
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
        // Shed at the limit: idle when chosen, so closing it loses no
        // answer; a request that started since is let finish.
        () = conn.shed.notified() => {
            if conn.is_busy() {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

/// `431` if the request's head is over [`MAX_REQUEST_HEAD`] bytes (hyper's
/// read buffer bounds it too, but only to within one read), else `None`.
/// Such a request is not recorded.
fn head_too_large(request: &Request<Incoming>) -> Option<Response<Body>> {
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let size = request.method().as_str().len() + request.uri().to_string().len() + 12 + headers;
    if size <= MAX_REQUEST_HEAD {
        return None;
    }
    let mut response = detail(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        format!("the request head is {size} bytes; this sink reads at most {MAX_REQUEST_HEAD}"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

/// Serves one request: routes it, bounds its time, records it, and turns a
/// [`DropConnection`] answer into a dropped connection.
async fn handle(
    service: TowerToHyperService<Router>,
    shared: Arc<SinkState>,
    request: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    if let Some(too_large) = head_too_large(&request) {
        return Ok(too_large);
    }
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let headers = redact_headers(request.headers());
    let limit = shared
        .config
        .request_timeout
        .saturating_add(shared.faults().latency);
    let response = match tokio::time::timeout(limit, service.call(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_elapsed) => {
            let mut response = detail(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request took longer than this sink's limit of {} ms",
                    limit.as_millis()
                ),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    };
    let drop_it = response.extensions().get::<DropConnection>().is_some();
    shared.record_request(RecordedRequest {
        method,
        path,
        headers,
        status: (!drop_it).then(|| response.status().as_u16()),
    });
    if drop_it {
        Err(DropConnection)
    } else {
        Ok(response)
    }
}
