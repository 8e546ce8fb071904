//! The running gateway: worker threads serving the public listener, a control thread for the
//! admin listener, config reloads and background tasks, and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::observe::metrics::{Registry, Snapshot};
use crate::route::stack::{self, BuildError, FrontService, Generation, Shared};
use crate::serve::admin::{self, AdminSource};
use crate::serve::admin_token::AdminToken;
use crate::serve::connection::{ConnectionService, Current};
use crate::serve::dashboard::history::{History, SAMPLE_EVERY};
use crate::serve::dashboard::reloads::ReloadLog;
use crate::serve::dashboard::status::{RouteSummary, Status};
use crate::serve::listener::{self, ConnectionGauge, ConnectionLimits};

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The layers could not be built from the config.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A listener could not be bound or a thread started.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// Information about the loaded config, for `/ready` and the dashboard.
struct Loaded {
    version: u64,
    loaded_at: SystemTime,
    generation: Generation,
    routes: Vec<RouteSummary>,
}

/// State shared by the workers, the admin listener and the reloader.
struct State {
    current: Arc<ArcSwap<Current<FrontService>>>,
    loaded: ArcSwap<Loaded>,
    shared: tokio::sync::Mutex<Shared>,
    registry: Arc<Registry>,
    gauge: Arc<ConnectionGauge>,
    listen: SocketAddr,
    config_path: Option<PathBuf>,
    ready: std::sync::atomic::AtomicBool,
    /// `[admin] token_env`'s token, replaced by a reload.
    admin_token: arc_swap::ArcSwapOption<AdminToken>,
    /// The dashboard's five minutes per route (sampled only with an admin listener).
    history: History,
    reloads: ReloadLog,
}

/// The admin token a config asks for; the loader checked the variable already, so a failure
/// here means the environment changed under the process.
fn admin_token(config: &Config) -> Result<Option<Arc<AdminToken>>, StartError> {
    config
        .admin
        .token_env
        .as_ref()
        .map(|name| {
            AdminToken::from_env(name.get_ref())
                .map(Arc::new)
                .map_err(|error| StartError::Io {
                    what: "reading [admin].token_env".into(),
                    source: std::io::Error::other(error),
                })
        })
        .transpose()
}

impl AdminSource for State {
    fn readiness(&self) -> (bool, serde_json::Value) {
        let loaded = self.loaded.load();
        let (dependencies_ready, mut detail) = loaded.generation.readiness();
        let listening = self.ready.load(std::sync::atomic::Ordering::Acquire);
        let loaded_at = loaded
            .loaded_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        detail["config"] =
            serde_json::json!({ "version": loaded.version, "loaded_at_unix": loaded_at });
        detail["listening"] = listening.into();
        let ready = listening && dependencies_ready;
        detail["status"] = if ready { "ready" } else { "not_ready" }.into();
        (ready, detail)
    }

    fn metrics(&self) -> String {
        let loaded = self.loaded.load();
        let circuits = loaded.generation.circuits();
        let (cache_bytes, cache_evictions) = loaded.generation.cache_stats();
        let targets = loaded.generation.target_health();
        let snapshot = Snapshot {
            targets: &targets,
            active_connections: self.gauge.get(),
            released_connections: self.gauge.released_count(),
            ratelimit_backend_errors: loaded.generation.ratelimit_backend_errors(),
            circuits: &circuits,
            cache_bytes,
            cache_evictions,
        };
        self.registry.render(&snapshot)
    }

    fn purge(&self, route: Option<(&str, &str)>) -> Result<u64, admin::PurgeError> {
        self.loaded.load().generation.purge(route)
    }

    fn status(&self) -> serde_json::Value {
        let loaded = self.loaded.load();
        Status {
            version: loaded.version,
            loaded_at: loaded.loaded_at,
            routes: &loaded.routes,
            generation: &loaded.generation,
            registry: &self.registry,
            history: &self.history,
            reloads: &self.reloads,
        }
        .to_json()
    }

    fn token(&self) -> Option<Arc<AdminToken>> {
        self.admin_token.load_full()
    }
}

impl State {
    /// Loads the config file again and swaps it in; on error the old config stays.
    async fn reload(&self) -> Result<u64, StartError> {
        let Some(path) = &self.config_path else {
            return Err(StartError::Io {
                what: "reload".into(),
                source: std::io::Error::other("the gateway was started without a config file"),
            });
        };
        let result = async {
            let config = Config::load(path)?;
            if config.server.listen != self.listen {
                tracing::warn!(
                    old = %self.listen,
                    new = %config.server.listen,
                    "[server].listen changed: the new address takes effect only after a restart"
                );
            }
            // The lock also serializes reloads (SIGHUP, file watch, API).
            let mut shared = self.shared.lock().await;
            let token = admin_token(&config)?;
            let generation = stack::build(&config, &mut shared, &self.registry).await?;
            let version = self.loaded.load().version + 1;
            self.current.store(Arc::new(generation.current()));
            self.loaded.store(Arc::new(Loaded {
                version,
                loaded_at: SystemTime::now(),
                generation,
                routes: RouteSummary::of_config(&config),
            }));
            self.admin_token.store(token);
            Ok::<_, StartError>(version)
        }
        .await;
        self.registry.reload(result.is_ok());
        self.reloads.record(match &result {
            Ok(version) => Ok(*version),
            Err(error) => Err(error),
        });
        match &result {
            Ok(version) => tracing::info!(version, "config reloaded"),
            Err(error) => {
                tracing::error!(%error, "config reload failed; still serving the previous config")
            }
        }
        result
    }
}

/// A gateway serving requests.
pub struct RunningGateway {
    state: Arc<State>,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    workers: Vec<thread::JoinHandle<()>>,
    control: tokio::runtime::Runtime,
    grace: Duration,
}

impl ConnectionLimits {
    /// The limits `[server]` sets.
    fn of(config: &Config) -> Self {
        Self {
            header_read_timeout: config.server.header_read_timeout.get(),
            max_header_size: usize::try_from(config.server.max_header_size.bytes())
                .unwrap_or(usize::MAX),
            max_headers: *config.server.max_headers.get_ref(),
            release_idle_after: config.server.release_idle_after.get(),
        }
    }
}

/// One listening socket per worker on `[server].listen`, and the address they share.
fn bind_public(config: &Config) -> Result<(Vec<std::net::TcpListener>, SocketAddr), StartError> {
    let workers_count = config
        .server
        .workers
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()));
    let listeners = listener::bind_reuseport(config.server.listen, workers_count).map_err(
        io_error(format!("binding [server].listen {}", config.server.listen)),
    )?;
    let addr = listeners[0]
        .local_addr()
        .map_err(io_error("reading the listener address"))?;
    Ok((listeners, addr))
}

/// Starts worker `index`: a thread with its own event loop serving `listener`.
fn spawn_worker(
    index: usize,
    listener: std::net::TcpListener,
    state: Arc<State>,
    limits: ConnectionLimits,
    stop_rx: watch::Receiver<bool>,
    grace: Duration,
) -> Result<thread::JoinHandle<()>, StartError> {
    thread::Builder::new()
        .name(format!("gateway-worker-{index}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "worker runtime failed to start");
                    return;
                }
            };
            let current = state.current.clone();
            let for_tls = current.clone();
            let make_service = move |peer, tls| ConnectionService::new(peer, tls, current.clone());
            let tls = move || for_tls.load().tls.clone();
            if let Err(error) = runtime.block_on(listener::serve(
                listener,
                limits,
                state.gauge.clone(),
                make_service,
                tls,
                stop_rx,
                grace,
            )) {
                tracing::error!(%error, "worker stopped");
            }
        })
        .map_err(io_error("starting a worker thread"))
}

impl RunningGateway {
    /// Builds the layers from `config`, binds the listeners and starts serving.
    ///
    /// `config_path` is the file reloads read (SIGHUP, file changes, [`reload`](Self::reload)).
    pub fn start(config: Config, config_path: Option<PathBuf>) -> Result<Self, StartError> {
        let control = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gateway-control")
            .enable_all()
            .build()
            .map_err(io_error("starting the control runtime"))?;
        let registry = Arc::new(Registry::default());
        let mut shared = Shared::default();
        let generation = control.block_on(stack::build(&config, &mut shared, &registry))?;
        let (listeners, addr) = bind_public(&config)?;
        let admin_listener = config
            .admin
            .listen
            .map(|admin| {
                std::net::TcpListener::bind(admin)
                    .map_err(io_error(format!("binding [admin].listen {admin}")))
            })
            .transpose()?;
        let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        let token = admin_token(&config)?;

        let state = Arc::new(State {
            current: Arc::new(ArcSwap::from_pointee(generation.current())),
            loaded: ArcSwap::from_pointee(Loaded {
                version: 1,
                loaded_at: SystemTime::now(),
                generation,
                routes: RouteSummary::of_config(&config),
            }),
            shared: tokio::sync::Mutex::new(shared),
            registry,
            gauge: Arc::new(ConnectionGauge::default()),
            listen: config.server.listen,
            config_path,
            ready: false.into(),
            admin_token: arc_swap::ArcSwapOption::new(token),
            history: History::default(),
            reloads: ReloadLog::default(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let limits = ConnectionLimits::of(&config);
        let grace = config.server.shutdown_grace.get();

        let workers = listeners
            .into_iter()
            .enumerate()
            .map(|(index, listener)| {
                spawn_worker(
                    index,
                    listener,
                    state.clone(),
                    limits,
                    stop_rx.clone(),
                    grace,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(listener) = admin_listener {
            let source: Arc<dyn AdminSource> = state.clone();
            let admin_stop = stop_rx.clone();
            control.spawn(async move {
                if let Err(error) = admin::serve(listener, source, admin_stop).await {
                    tracing::error!(%error, "admin listener stopped");
                }
            });
            control.spawn(sample_history(state.clone(), stop_rx.clone()));
        }
        if state.config_path.is_some() {
            control.spawn(watch_config(state.clone(), stop_rx));
        }
        state
            .ready
            .store(true, std::sync::atomic::Ordering::Release);
        tracing::info!(%addr, admin = ?admin_addr, workers = workers.len(), "gateway listening");
        Ok(Self {
            state,
            addr,
            admin_addr,
            stop,
            workers,
            control,
            grace,
        })
    }

    /// The public listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Reloads the config file now; on error the running config stays.
    pub fn reload(&self) -> Result<u64, StartError> {
        let state = self.state.clone();
        self.control.block_on(async move { state.reload().await })
    }

    /// A handle to the control runtime, for tasks tied to the gateway's life (signals).
    pub fn control_handle(&self) -> tokio::runtime::Handle {
        self.control.handle().clone()
    }

    /// Stops accepting, lets in-flight requests finish (up to `[server].shutdown_grace`), and
    /// returns when every worker is done.
    pub fn shutdown(self) {
        self.state
            .ready
            .store(false, std::sync::atomic::Ordering::Release);
        let _ = self.stop.send(true);
        tracing::info!(grace = ?self.grace, "shutting down: finishing in-flight requests");
        for worker in self.workers {
            let _ = worker.join();
        }
        // The last requests' spans, before the process exits (skipped if a reload holds it).
        if let Ok(shared) = self.state.shared.try_lock() {
            shared.flush_spans();
        }
        self.control.shutdown_timeout(Duration::from_secs(1));
    }
}

/// Samples the routes' counters for the dashboard's history until the gateway stops: off
/// the request path, on the control runtime, and only when there is an admin listener to
/// show it.
async fn sample_history(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            at = tick.tick() => state.history.sample(&state.registry, at.into_std()),
        }
    }
}

/// Reloads on SIGHUP and when the config file's content changes (polled, so it also sees
/// atomic renames and symlink swaps that file-watch APIs miss; debounced).
async fn watch_config(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let Some(path) = state.config_path.clone() else {
        return;
    };
    let read = |path: &PathBuf| std::fs::read(path).ok();
    let mut last = tokio::task::spawn_blocking({
        let path = path.clone();
        move || read(&path)
    })
    .await
    .ok()
    .flatten();
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hangup_signal = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup_signal = std::future::pending::<Option<()>>();
        let forced = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = hangup_signal => true,
            _ = tick.tick() => false,
        };
        let path_for_read = path.clone();
        let content = tokio::task::spawn_blocking(move || read(&path_for_read))
            .await
            .ok()
            .flatten();
        if !forced && (content.is_none() || content == last) {
            continue;
        }
        if !forced {
            // Editors write in several steps: wait for the content to settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        last = content;
        let _ = state.reload().await;
    }
}
