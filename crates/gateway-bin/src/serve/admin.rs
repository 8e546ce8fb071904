//! The admin listener: `GET /health` (liveness), `GET /ready` (readiness with detail) and
//! `GET /metrics` (Prometheus text). Never served on the public port.

use std::convert::Infallible;
use std::net::TcpListener as StdListener;
use std::sync::Arc;

use bytes::Bytes;
use gateway_core::Problem;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the admin endpoints report; implemented by the running gateway.
pub(crate) trait AdminSource: Send + Sync + 'static {
    /// Readiness and its JSON detail.
    fn readiness(&self) -> (bool, serde_json::Value);
    /// Every metric in the Prometheus text format.
    fn metrics(&self) -> String;
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn handle(source: &dyn AdminSource, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = Problem::new(StatusCode::METHOD_NOT_ALLOWED).into_response();
        response
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/health" => respond(StatusCode::OK, "application/json", r#"{"status":"ok"}"#),
        "/ready" => {
            let (ready, detail) = source.readiness();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            respond(
                status,
                "application/json",
                serde_json::to_vec(&detail).unwrap_or_default(),
            )
        }
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            source.metrics(),
        ),
        _ => Problem::new(StatusCode::NOT_FOUND)
            .with_detail("admin endpoints: /health, /ready, /metrics")
            .into_response(),
    }
}

/// Serves the admin endpoints until `stop` flips.
pub(crate) async fn serve(
    listener: StdListener,
    source: Arc<dyn AdminSource>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let source = source.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let response = handle(&*source, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
