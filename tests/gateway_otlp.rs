//! OpenTelemetry export (`--features otlp`): the gateway's spans reach a real OTLP/HTTP
//! receiver, decoded from protobuf as a collector does, and nest correctly in the callers'
//! and upstreams' traces.
#![cfg(feature = "otlp")]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::upstream::Upstream;
use support::{TestGateway, config, json, send};

/// An OTLP/HTTP traces receiver: keeps every export it is sent.
struct Collector {
    addr: SocketAddr,
    exports: Arc<Mutex<Vec<(http::HeaderMap, ExportTraceServiceRequest)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exports = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let exports = exports.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let exports = exports.clone();
                    let service = hyper::service::service_fn(move |request| {
                        receive(request, exports.clone())
                    });
                    tokio::spawn(async move {
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self {
            addr,
            exports,
            task,
        }
    }

    fn spans(&self) -> Vec<Span> {
        let exports = self.exports.lock().unwrap();
        exports
            .iter()
            .flat_map(|(_, export)| &export.resource_spans)
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| scope.spans.clone())
            .collect()
    }
}

type Exports = Arc<Mutex<Vec<(http::HeaderMap, ExportTraceServiceRequest)>>>;

async fn receive(
    request: Request<Incoming>,
    exports: Exports,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let wrong = |status| {
        let mut response = Response::new(Full::default());
        *response.status_mut() = status;
        Ok(response)
    };
    if request.method() != http::Method::POST || request.uri().path() != "/v1/traces" {
        return wrong(StatusCode::NOT_FOUND);
    }
    if request.headers()["content-type"] != "application/x-protobuf" {
        return wrong(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let headers = request.headers().clone();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
        return wrong(StatusCode::BAD_REQUEST);
    };
    exports.lock().unwrap().push((headers, export));
    let mut response = Response::new(Full::new(Bytes::from(
        ExportTraceServiceResponse::default().encode_to_vec(),
    )));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    Ok(response)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The upstream's view of a request: the `traceparent` it was sent.
async fn traceparent_seen(gw: &TestGateway, path: &str, traceparent: Option<&str>) -> String {
    let mut request = Request::get(gw.url(path));
    if let Some(value) = traceparent {
        request = request.header("traceparent", value);
    }
    let (parts, body) = send(request.body(Full::default()).unwrap()).await;
    assert_eq!(parts.status, StatusCode::OK);
    json(&body)["headers"]["traceparent"][0]
        .as_str()
        .expect("the upstream got a traceparent")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_and_nest_in_the_callers_trace() {
    let collector = Collector::start().await;
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(&config(&format!(
        "[tracing]\notlp_endpoint = \"http://{}/v1/traces\"\notlp_headers = {{ \"x-tenant\" = \"team-a\" }}\n\
         service_name = \"edge\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"users\"\npath = \"/users\"\nupstream = \"app\"\nstrip_prefix = true\n",
        collector.addr,
        upstream.url()
    )));

    // A sampled caller: the gateway's span joins its trace and becomes the upstream's parent.
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let joined = traceparent_seen(&gw, "/users/1?x=1", Some(caller)).await;
    assert!(
        joined.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && joined.ends_with("-01"),
        "{joined}"
    );
    assert_ne!(
        joined, caller,
        "the upstream's parent is the gateway's span"
    );
    // No caller context: a new trace.
    let started = traceparent_seen(&gw, "/users/2", None).await;
    assert!(started.ends_with("-01"), "{started}");
    // A caller that does not sample: followed, nothing exported.
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let not_sampled = traceparent_seen(&gw, "/users/3", Some(unsampled)).await;
    assert!(not_sampled.ends_with("-00"), "{not_sampled}");
    // An upstream error marks the span as failed.
    let (parts, _) = send(
        Request::get(gw.url("/users/status/503"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);

    // Shutdown sends what is still queued.
    tokio::task::spawn_blocking(move || gw.shutdown())
        .await
        .unwrap();
    let spans = collector.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");

    let exports = collector.exports.lock().unwrap();
    let (headers, export) = &exports[0];
    assert_eq!(headers["x-tenant"], "team-a");
    let resource = export.resource_spans[0].resource.as_ref().unwrap();
    let service = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.as_ref());
    assert_eq!(service, Some(&Value::StringValue("edge".into())));
    drop(exports);

    let by_path = |path: &str| {
        spans
            .iter()
            .find(|span| attribute(span, "url.path") == Some(&Value::StringValue(path.to_owned())))
            .unwrap_or_else(|| panic!("no span for {path}: {spans:#?}"))
    };
    let first = by_path("/users/1");
    assert_eq!(first.name, "GET users");
    assert_eq!(first.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(hex(&first.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&first.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(
        joined,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            hex(&first.span_id)
        )
    );
    assert_eq!(
        attribute(first, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    assert_eq!(
        attribute(first, "http.route"),
        Some(&Value::StringValue("users".into()))
    );
    assert_eq!(
        attribute(first, "gateway.upstream"),
        Some(&Value::StringValue("app".into()))
    );
    assert_eq!(
        attribute(first, "client.address"),
        Some(&Value::StringValue("127.0.0.1".into()))
    );
    assert!(first.end_time_unix_nano >= first.start_time_unix_nano);
    assert!(first.start_time_unix_nano > 0);

    let second = by_path("/users/2");
    assert!(
        second.parent_span_id.is_empty(),
        "a new trace has no parent"
    );
    assert_eq!(
        started,
        format!("00-{}-{}-01", hex(&second.trace_id), hex(&second.span_id))
    );

    let failed = by_path("/users/status/503");
    assert_eq!(
        failed.status.as_ref().map(|status| status.code),
        Some(2),
        "STATUS_CODE_ERROR"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_ratio_zero_exports_nothing_but_still_propagates() {
    let collector = Collector::start().await;
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(&config(&format!(
        "[tracing]\notlp_endpoint = \"http://{}/v1/traces\"\nsample_ratio = 0.0\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        collector.addr,
        upstream.url()
    )));
    for _ in 0..20 {
        let seen = traceparent_seen(&gw, "/a", None).await;
        assert!(seen.ends_with("-00"), "{seen}");
    }
    // A caller's sampled trace is still recorded.
    traceparent_seen(
        &gw,
        "/b",
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    )
    .await;
    tokio::task::spawn_blocking(move || gw.shutdown())
        .await
        .unwrap();
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(hex(&spans[0].trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_the_export_to_a_new_endpoint() {
    let first = Collector::start().await;
    let second = Collector::start().await;
    let upstream = Upstream::start("app").await;
    let config_for = |collector: &Collector| {
        config(&format!(
            "[tracing]\notlp_endpoint = \"http://{}/v1/traces\"\n\n\
             [upstreams.app]\ntargets = [\"{}\"]\n\n\
             [[routes]]\npath = \"/\"\nupstream = \"app\"\n",
            collector.addr,
            upstream.url()
        ))
    };
    let gw = TestGateway::start(&config_for(&first));
    traceparent_seen(&gw, "/before", None).await;
    std::fs::write(&gw.config_path, config_for(&second)).unwrap();
    gw.reload().unwrap();
    traceparent_seen(&gw, "/after", None).await;
    tokio::task::spawn_blocking(move || gw.shutdown())
        .await
        .unwrap();
    // The replaced exporter sends what it queued when it is let go, on a thread of its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while first.spans().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let path = |span: &Span| attribute(span, "url.path").cloned();
    let before: Vec<_> = first.spans().iter().map(path).collect();
    let after: Vec<_> = second.spans().iter().map(path).collect();
    assert_eq!(before, [Some(Value::StringValue("/before".into()))]);
    assert_eq!(after, [Some(Value::StringValue("/after".into()))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_costs_requests_nothing() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(&config(&format!(
        "[tracing]\notlp_endpoint = \"http://{closed}/v1/traces\"\nexport_timeout = \"300ms\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        upstream.url()
    )));
    for i in 0..50 {
        let seen = traceparent_seen(&gw, &format!("/r{i}"), None).await;
        assert!(seen.ends_with("-01"), "{seen}");
    }
    // Shutdown tries to send what is queued once more and gives up after export_timeout.
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || gw.shutdown())
        .await
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
}
