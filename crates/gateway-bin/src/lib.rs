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
//!
//! Where things are (`ARCHITECTURE.md` at the repository root has the whole map):
//! - `config/`: the TOML shape, its defaults, the loader and the cross-section checks;
//! - `serve/`: listeners, connections, graceful drain, TLS, the admin listener;
//! - `route/`: path normalization, the route table, the dispatcher, each route's layer stack;
//! - `observe/`: metrics, access log, trace context, span export, logging;
//! - `runtime.rs`: start, reload and shutdown; `commands.rs`: `check` and `token`.

mod commands;
pub mod config;
mod observe;
mod route;
mod runtime;
mod serve;

pub use commands::{check, mint_token};
pub use config::{Config, ConfigError};
pub use observe::logging;
#[cfg(feature = "otlp")]
pub use observe::otlp::ExportError;
pub use route::stack::BuildError;
pub use runtime::{RunningGateway, StartError};
pub use serve::tls::TlsError;
