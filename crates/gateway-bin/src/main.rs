//! `gateway`: run the API gateway from a TOML config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gateway_bin::logging::{self, LogFormat};
use gateway_bin::{Config, RunningGateway};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An API gateway built from tower middleware: routing, JWT auth, rate limiting, circuit
/// breaking and header transforms in front of your HTTP services.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    /// The config file.
    #[arg(
        long,
        short,
        global = true,
        env = "GATEWAY_CONFIG",
        default_value = "gateway.toml"
    )]
    config: PathBuf,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the config and exit: 0 when valid, 1 with file:line and field when not.
    Check,
    /// Print an HS256 token signed with the configured secret (development and demos).
    Token {
        /// A claim as NAME=VALUE; repeat for more (`--claim user_id=alice --claim role=admin`).
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        /// Lifetime of the token.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&cli.config),
        Command::Token { claims, ttl } => token(&cli.config, &claims, ttl),
        Command::Run => run(&cli.config, cli.log_format),
    }
}

fn check(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => match gateway_bin::check(&config) {
            Ok(()) => {
                println!(
                    "{}: ok ({} routes, {} upstreams)",
                    path.display(),
                    config.routes.len(),
                    config.upstreams.len()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{}: {error}", path.display());
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn token(path: &Path, claims: &[String], ttl: Duration) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    match gateway_bin::mint_token(&config, claims, ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gateway token: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &Path, log_format: LogFormat) -> ExitCode {
    let _log = logging::init(log_format);
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let gateway = match RunningGateway::start(config, Some(path.to_owned())) {
        Ok(gateway) => gateway,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("gateway: {error}");
            return ExitCode::FAILURE;
        }
    };
    let signal = gateway.control_handle().block_on(shutdown_signal());
    tracing::info!(signal, "received shutdown signal");
    gateway.shutdown();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return "ctrl-c";
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}
