//! The gateway: a TOML config composed into the layer crates' tower services, served by
//! thread-per-core workers, with an admin listener, hot reload and graceful shutdown.
//!
//! The `gateway` binary is a thin command line over [`RunningGateway`]; tests and the
//! quickstart example start the same thing in-process:
//!
//! ```no_run
//! use std::path::Path;
//! use gateway_bin::{Config, RunningGateway};
//!
//! let config = Config::load(Path::new("gateway.toml")).expect("valid config");
//! let gateway = RunningGateway::start(config, Some("gateway.toml".into())).expect("started");
//! println!("listening on {}", gateway.local_addr());
//! gateway.shutdown();
//! ```

pub mod access_log;
pub mod admin;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod drain;
pub mod header_timer;
pub mod logging;
pub mod metrics;
pub mod observe;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod request_body;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod stack;
pub mod timed;
pub mod tls;
pub mod traceparent;

pub use config::{Config, ConfigError};
pub use runtime::{RunningGateway, StartError};
