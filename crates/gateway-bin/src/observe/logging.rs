//! Log output: `text` or `json` lines on stdout, filtered by `RUST_LOG`, written by a
//! background thread so no request ever waits on the terminal or a pipe.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// The format of log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Keeps the log writer thread alive; logs are flushed when it is dropped.
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

impl Drop for LogGuard {
    fn drop(&mut self) {
        crate::observe::access_log::sync(std::time::Duration::from_secs(2));
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`).
pub fn init(format: LogFormat) -> LogGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Under overload, drop log lines rather than stall requests.
        .lossy(true)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stdout());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.with_max_level(tracing::Level::TRACE))
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Access lines bypass the subscriber (see `access_log`), but follow its filter:
    // `RUST_LOG=info,access=off` turns them off.
    if tracing::enabled!(target: "access", tracing::Level::INFO) {
        crate::observe::access_log::init(match format {
            LogFormat::Text => crate::observe::access_log::Format::Text,
            LogFormat::Json => crate::observe::access_log::Format::Json,
        });
    }
    LogGuard(guard)
}
