//! OpenTelemetry export (the `otlp` feature): one server span per sampled request, batched by
//! the OpenTelemetry SDK and sent over OTLP/HTTP (protobuf) from a background thread, so a
//! worker never waits on the collector. A full queue drops spans, never requests.
//!
//! The export calls go through this project's own proxy (`gateway-proxy`) on a small runtime
//! of their own: keep-alive, `https://` with the system's or a configured CA, connect and
//! response timeouts, all without another HTTP client in the binary.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use gateway_proxy::{Proxy, Upstream, UpstreamRoots};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor,
};

use crate::config::TracingSection;
use crate::observe::access_log::Entry;
use crate::observe::traceparent::SpanIds;

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The endpoint is not a usable URL, or its CA file cannot be read.
    #[error("[tracing] otlp_endpoint: {0}")]
    Endpoint(String),
    /// The OTLP exporter rejected its settings.
    #[error("[tracing]: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The export thread could not be started.
    #[error("[tracing]: cannot start the export thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running span exporter for one `[tracing]` section.
pub(crate) struct Exporter {
    section: TracingSection,
    processor: Option<BatchSpanProcessor>,
    scope: InstrumentationScope,
    runtime: ExportRuntime,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("endpoint", self.section.otlp_endpoint.get_ref())
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Starts the export thread and the batching for `section`.
    pub(crate) fn start(section: &TracingSection) -> Result<Arc<Self>, ExportError> {
        let endpoint: http::Uri = section
            .otlp_endpoint
            .get_ref()
            .parse()
            .map_err(|e| ExportError::Endpoint(format!("{e}")))?;
        let (Some(scheme), Some(authority)) = (endpoint.scheme_str(), endpoint.authority()) else {
            return Err(ExportError::Endpoint("needs a scheme and a host".into()));
        };
        let timeout = section.export_timeout.get();
        let upstream = Upstream::builder("otlp", [format!("{scheme}://{authority}")])
            .tls_roots(match &section.otlp_ca {
                Some(path) => UpstreamRoots::CaFile(path.clone()),
                None => UpstreamRoots::System,
            })
            .connect_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| ExportError::Endpoint(e.to_string()))?;
        let runtime = ExportRuntime::start()?;
        let client = ExportClient {
            runtime: runtime.handle.clone(),
            proxy: Proxy::new(upstream),
        };

        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(section.otlp_endpoint.get_ref().clone())
            .with_timeout(timeout);
        // Without headers in the config, OTEL_EXPORTER_OTLP_HEADERS still applies.
        if !section.otlp_headers.is_empty() {
            builder = builder.with_headers(
                section
                    .otlp_headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect::<HashMap<_, _>>(),
            );
        }
        let mut processor = BatchSpanProcessor::builder(builder.build()?).build();
        processor.set_resource(
            &Resource::builder()
                .with_service_name(section.service_name.clone())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        Ok(Arc::new(Self {
            section: section.clone(),
            processor: Some(processor),
            scope: InstrumentationScope::builder("gateway")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            runtime,
        }))
    }

    /// The section it was started from: a reload with the same one keeps this exporter.
    pub(crate) fn section(&self) -> &TracingSection {
        &self.section
    }

    /// `[tracing].sample_ratio`.
    pub(crate) fn sample_ratio(&self) -> f64 {
        *self.section.sample_ratio.get_ref()
    }

    /// Sends what is queued and waits for it (shutdown).
    pub(crate) fn flush(&self) {
        if let Some(processor) = &self.processor
            && let Err(error) = processor.force_flush()
        {
            tracing::warn!(%error, "OpenTelemetry spans could not be flushed");
        }
    }

    fn record(&self, span: SpanData) {
        if let Some(processor) = &self.processor {
            processor.on_end(span);
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // Shutting down sends what is queued and waits for it: never on the thread that
        // happened to drop the last reference (a worker, after a reload).
        if let Some(processor) = self.processor.take() {
            let stop = self.runtime.stop.take();
            let timeout = self.section.export_timeout.get();
            let _ = std::thread::Builder::new()
                .name("otlp-shutdown".into())
                .spawn(move || {
                    let _ = processor.shutdown_with_timeout(timeout);
                    drop(stop);
                });
        }
    }
}

/// A sampled request's span, finished when its response ends.
#[derive(Clone, Debug)]
pub(crate) struct TraceSpan {
    ids: SpanIds,
    exporter: Arc<Exporter>,
}

impl TraceSpan {
    /// A span with these ids, exported through `exporter`.
    pub(crate) fn new(ids: SpanIds, exporter: Arc<Exporter>) -> Self {
        Self { ids, exporter }
    }

    /// Records the finished span.
    pub(crate) fn finish(self, request: &Entry<'_>) {
        let end_time = SystemTime::now();
        let start_time = end_time.checked_sub(request.duration).unwrap_or(end_time);
        let mut attributes = vec![
            KeyValue::new("http.request.method", static_method(request.method)),
            KeyValue::new("url.path", request.path.to_owned()),
            KeyValue::new("http.route", request.route),
            KeyValue::new("http.response.status_code", i64::from(request.status)),
            KeyValue::new("client.address", request.client_ip.to_string()),
            KeyValue::new("http.response.body.size", request.bytes as i64),
        ];
        if !request.upstream.is_empty() {
            attributes.push(KeyValue::new("gateway.upstream", request.upstream));
        }
        if let Some(id) = request.request_id {
            attributes.push(KeyValue::new("gateway.request_id", id.to_owned()));
        }
        if !request.complete {
            // The client went away before the response ended.
            attributes.push(KeyValue::new("gateway.response.complete", false));
        }
        let status = if request.status >= 500 {
            Status::error(format!("HTTP {}", request.status))
        } else {
            Status::Unset
        };
        self.exporter.record(SpanData {
            span_context: SpanContext::new(
                TraceId::from(self.ids.trace_id),
                SpanId::from(self.ids.span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: self.ids.parent_id.map_or(SpanId::INVALID, SpanId::from),
            parent_span_is_remote: self.ids.parent_id.is_some(),
            span_kind: SpanKind::Server,
            name: format!("{} {}", request.method, request.route).into(),
            start_time,
            end_time,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.exporter.scope.clone(),
        });
    }
}

/// The method as a string the span can keep without allocating, for the standard ones.
fn static_method(method: &str) -> opentelemetry::Value {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|standard| **standard == method) {
        Some(standard) => (*standard).into(),
        None => method.to_owned().into(),
    }
}

/// A thread running the runtime the export calls are made on; it ends when `stop` is dropped.
struct ExportRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ExportRuntime {
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }
}

/// The OTLP exporter's HTTP client: the batch thread's calls are handed to the export runtime.
struct ExportClient {
    runtime: tokio::runtime::Handle,
    proxy: Proxy,
}

impl fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportClient").finish_non_exhaustive()
    }
}

/// The collector's answer is a small status message; anything larger is not read whole.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<Bytes>, opentelemetry_http::HttpError> {
        let proxy = self.proxy.clone();
        let call = self.runtime.spawn(async move {
            let response = match proxy.forward(request.map(Full::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, opentelemetry_http::HttpError>(Response::from_parts(parts, body))
        });
        call.await?
    }
}
