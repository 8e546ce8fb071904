//! What the gateway tells about the requests it serves: metrics, the access log, W3C trace
//! context, OpenTelemetry span export, upstream timing and the log writer.

pub(crate) mod access_log;
pub mod logging;
pub(crate) mod metrics;
#[cfg(feature = "otlp")]
pub(crate) mod otlp;
mod record;
pub(crate) mod timed;
pub(crate) mod traceparent;

pub(crate) use record::{Observed, ObservedBody, Record, Tagged};
