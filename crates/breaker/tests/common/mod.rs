//! Helpers shared by the integration tests: a scripted in-process service and response checks.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use gateway_breaker::{
    Breaker, BreakerConfig, BreakerLayer, BreakerRejected, BreakerState, CircuitBreaker,
};
use gateway_core::{ResponseBody, UpstreamFailure};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};

pub type Body = Full<Bytes>;
pub type Reply = Result<Response<Body>, ScriptError>;
type BoxFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// The inner service's error, for requests scripted to fail with one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError(pub &'static str);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ScriptError {}

/// What the scripted service does with one request.
#[derive(Clone, Copy, Debug)]
pub enum Script {
    /// Answer with this status.
    Status(u16),
    /// Answer 502 marked as an upstream failure (what the proxy does when it cannot connect).
    Unreachable,
    /// Fail with an error.
    Error,
    /// Never answer.
    Hang,
}

impl Script {
    fn header(self) -> String {
        match self {
            Script::Status(code) => code.to_string(),
            Script::Unreachable => "unreachable".into(),
            Script::Error => "error".into(),
            Script::Hang => "hang".into(),
        }
    }
}

/// A service that does what each request's `x-script` header says, and counts its calls.
#[derive(Clone, Default)]
pub struct Scripted {
    calls: Arc<AtomicUsize>,
}

impl Scripted {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn service(
        &self,
    ) -> impl Service<
        Request<()>,
        Response = Response<Body>,
        Error = ScriptError,
        Future = BoxFuture,
    >
    + Clone
    + Send
    + 'static
    + use<> {
        let calls = self.calls.clone();
        tower::service_fn(move |request: Request<()>| -> BoxFuture {
            calls.fetch_add(1, Ordering::SeqCst);
            let script = request.headers()["x-script"].to_str().unwrap().to_owned();
            Box::pin(async move {
                let mut response = Response::new(Full::new(Bytes::from_static(b"upstream")));
                match script.as_str() {
                    "unreachable" => {
                        *response.status_mut() = StatusCode::BAD_GATEWAY;
                        response
                            .extensions_mut()
                            .insert(UpstreamFailure::Unreachable);
                    }
                    "error" => return Err(ScriptError("inner service failed")),
                    "hang" => std::future::pending::<()>().await,
                    code => {
                        *response.status_mut() =
                            StatusCode::from_u16(code.parse().unwrap()).unwrap()
                    }
                }
                Ok(response)
            })
        })
    }
}

pub fn request(script: Script) -> Request<()> {
    Request::builder()
        .header("x-script", script.header())
        .body(())
        .unwrap()
}

/// A breaker around a fresh scripted service.
pub fn guarded(
    config: BreakerConfig,
) -> (
    CircuitBreaker,
    Scripted,
    impl Service<Request<()>, Response = Response<ResponseBody<Body>>, Error = ScriptError> + Clone,
) {
    let breaker = CircuitBreaker::named("test", config).unwrap();
    let upstream = Scripted::default();
    let service: Breaker<_> =
        tower::Layer::layer(&BreakerLayer::new(breaker.clone()), upstream.service());
    (breaker, upstream, service)
}

/// Sends one scripted request through `service` and returns its status.
pub async fn status<S>(service: &S, script: Script) -> StatusCode
where
    S: Service<Request<()>, Response = Response<ResponseBody<Body>>, Error = ScriptError> + Clone,
{
    service
        .clone()
        .oneshot(request(script))
        .await
        .unwrap()
        .status()
}

/// Checks a refusal: 503, problem+json, the marker, and returns `Retry-After` in seconds.
pub async fn assert_refused(response: Response<ResponseBody<Body>>, state: BreakerState) -> u64 {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let marker = *response
        .extensions()
        .get::<BreakerRejected>()
        .expect("refusals carry BreakerRejected");
    assert_eq!(marker.state, state);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry_after,
        marker.retry_after.as_millis().div_ceil(1000) as u64
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 503);
    assert_eq!(problem["title"], "Service Unavailable");
    retry_after
}

/// Sends one request that the breaker must refuse; returns `Retry-After`.
pub async fn refused<S>(service: &S, state: BreakerState) -> u64
where
    S: Service<Request<()>, Response = Response<ResponseBody<Body>>, Error = ScriptError> + Clone,
{
    let response = service
        .clone()
        .oneshot(request(Script::Status(200)))
        .await
        .unwrap();
    assert_refused(response, state).await
}

/// Aborts the test process if the guard is not dropped in time: tests on tokio's paused clock
/// cannot use tokio timeouts (the clock would jump to them), so this bounds them on real time.
pub struct Watchdog(Option<mpsc::Sender<()>>);

impl Watchdog {
    pub fn new(limit: Duration) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("test did not finish within {limit:?}");
                std::process::exit(101);
            }
        });
        Self(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.take();
    }
}
