//! The admin listener: `GET /health` (liveness), `GET /ready` (readiness with detail),
//! `GET /metrics` (Prometheus text), `POST /cache/purge` (drops stored responses), and the
//! dashboard (`GET /`, its assets, `GET /api/status`). Never served on the public port.
//!
//! With `[admin] token_env`, every path but `/health` needs the bearer token: probes keep
//! working without a secret, the rest tells an attacker about the topology.

use std::convert::Infallible;
use std::net::TcpListener as StdListener;
use std::sync::Arc;

use bytes::Bytes;
use gateway_core::Problem;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::admin_token::AdminToken;
use super::dashboard;

/// What the admin endpoints report; implemented by the running gateway.
pub(crate) trait AdminSource: Send + Sync + 'static {
    /// Readiness and its JSON detail.
    fn readiness(&self) -> (bool, serde_json::Value);
    /// Every metric in the Prometheus text format.
    fn metrics(&self) -> String;
    /// Drops every stored response (`None`) or those of one route's path, as clients send
    /// it; how many were dropped.
    fn purge(&self, route: Option<(&str, &str)>) -> Result<u64, PurgeError>;
    /// The dashboard's status document (`GET /api/status`).
    fn status(&self) -> serde_json::Value;
    /// The bearer token admin requests need, when `[admin] token_env` is set.
    fn token(&self) -> Option<Arc<AdminToken>>;
}

/// Why a purge was refused.
pub(crate) use crate::route::stack::PurgeError;

/// The body of `POST /cache/purge`: `{"route": "users", "path": "/api/users/42"}` or
/// `{"all": true}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    route: Option<String>,
    path: Option<String>,
    #[serde(default)]
    all: bool,
}

/// The largest purge request body read.
const MAX_PURGE_BODY: usize = 64 << 10;

async fn purge(source: &dyn AdminSource, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let bad = |detail: String| {
        Problem::new(StatusCode::BAD_REQUEST)
            .with_detail(detail)
            .into_response()
    };
    let body = match Limited::new(request.into_body(), MAX_PURGE_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(error) => return bad(format!("cannot read the request body: {error}")),
    };
    let parsed: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return bad(format!(
                "expected {{\"route\": NAME, \"path\": PATH}} or {{\"all\": true}}: {error}"
            ));
        }
    };
    let target = match (&parsed.route, &parsed.path, parsed.all) {
        (None, None, true) => None,
        (Some(route), Some(path), false) => Some((route.as_str(), path.as_str())),
        _ => {
            return bad("give either `route` and `path`, or `\"all\": true`".to_owned());
        }
    };
    match source.purge(target) {
        Ok(purged) => respond(
            StatusCode::OK,
            "application/json",
            serde_json::json!({ "purged": purged }).to_string(),
        ),
        Err(PurgeError::NoCache) => Problem::new(StatusCode::NOT_FOUND)
            .with_detail("the gateway has no [cache] section")
            .into_response(),
        Err(PurgeError::UnknownRoute) => Problem::new(StatusCode::NOT_FOUND)
            .with_detail("no route with a cache has that name")
            .into_response(),
        Err(PurgeError::BadPath(detail)) => bad(detail),
    }
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
    if request.uri().path() == "/cache/purge" {
        // A POST is answered by `purge`; any other method gets here.
        let mut response = Problem::new(StatusCode::METHOD_NOT_ALLOWED).into_response();
        response
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
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
        "/api/status" => {
            let mut response = respond(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec(&source.status()).unwrap_or_default(),
            );
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
            response
        }
        path => dashboard::asset(path).unwrap_or_else(|| {
            Problem::new(StatusCode::NOT_FOUND)
                .with_detail(
                    "admin endpoints: / (dashboard), /api/status, /health, /ready, /metrics, \
                     POST /cache/purge",
                )
                .into_response()
        }),
    }
}

/// Whether a request may reach the admin path it asks for: `/health` always, the rest only
/// with the token when one is configured.
fn authorized(source: &dyn AdminSource, request: &Request<Incoming>) -> bool {
    request.uri().path() == "/health"
        || source
            .token()
            .is_none_or(|token| token.admits(request.headers()))
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED)
        .with_detail("the admin listener needs `Authorization: Bearer <token>` ([admin] token_env)")
        .into_response();
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gateway-admin\""),
    );
    response
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
            let source = source.clone();
            async move {
                let response = if !authorized(&*source, &request) {
                    unauthorized()
                } else if request.method() == Method::POST && request.uri().path() == "/cache/purge"
                {
                    purge(&*source, request).await
                } else {
                    handle(&*source, &request)
                };
                Ok::<_, Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
