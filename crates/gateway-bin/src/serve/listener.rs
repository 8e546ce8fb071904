//! Listeners and worker threads: one event loop per worker, each accepting on its own
//! `SO_REUSEPORT` socket, serving HTTP/1.1 and HTTP/2 with graceful shutdown.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::serve::header_timer::HeaderTimer;
use crate::serve::keep_alive;

/// Limits the HTTP server enforces before a request reaches the gateway service.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    /// Time allowed to read a request head.
    pub(crate) header_read_timeout: Duration,
    /// Largest request head; 431 beyond.
    pub(crate) max_header_size: usize,
    /// Most header fields in an HTTP/1.1 request head; 431 beyond.
    pub(crate) max_headers: usize,
    /// How long an idle HTTP/1.1 connection waits for its next head before it gives its
    /// request buffers back (`serve/keep_alive/`).
    pub(crate) release_idle_after: Duration,
}

/// The request header count hyper enforces when none is set.
const HYPER_MAX_HEADERS: usize = 100;

/// Binds `count` listening sockets on `addr` sharing the port with `SO_REUSEPORT`, so the
/// kernel spreads connections over the workers. Port 0 picks one free port for all of them.
pub(crate) fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<Vec<StdListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        let listener: StdListener = socket.into();
        // Later sockets join the port the first one got.
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Open client connections, for the `gateway_active_connections` gauge, and how many of
/// them are idle without request buffers (`gateway_released_connections`).
#[derive(Debug, Default)]
pub(crate) struct ConnectionGauge {
    open: AtomicI64,
    released: AtomicI64,
}

impl ConnectionGauge {
    /// The current number of open connections.
    pub(crate) fn get(&self) -> i64 {
        self.open.load(Ordering::Relaxed)
    }

    /// The current number of idle connections that gave their request buffers back.
    pub(crate) fn released_count(&self) -> i64 {
        self.released.load(Ordering::Relaxed)
    }

    /// Counts a connection as released for as long as the returned guard lives.
    pub(crate) fn count_released(self: &Arc<Self>) -> ReleasedGuard {
        self.released.fetch_add(1, Ordering::Relaxed);
        ReleasedGuard(self.clone())
    }
}

/// One released connection in the gauge; dropped when it is served again or closed.
pub(crate) struct ReleasedGuard(Arc<ConnectionGauge>);

impl Drop for ReleasedGuard {
    fn drop(&mut self) {
        self.0.released.fetch_sub(1, Ordering::Relaxed);
    }
}

struct ConnectionGuard(Arc<ConnectionGauge>);

impl ConnectionGuard {
    fn new(gauge: Arc<ConnectionGauge>) -> Self {
        gauge.open.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Applies the gateway's HTTP/1 settings to hyper's builder or hyper-util's (two types with
/// the same methods).
macro_rules! http1_settings {
    ($builder:expr, $limits:expr) => {{
        let limits: &ConnectionLimits = $limits;
        $builder
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_size.max(8192))
            // Small proxied bodies are cheaper copied into one buffer than written with writev.
            .writev(false);
        // hyper's own limit is 100, parsed on the stack; setting any limit makes it size the
        // parse buffer per request, so it is only set when it differs.
        if limits.max_headers != HYPER_MAX_HEADERS {
            $builder.max_headers(limits.max_headers);
        }
    }};
}

/// hyper's HTTP/1 server with the gateway's settings; each connection adds its own timer.
pub(crate) fn http1_builder(limits: &ConnectionLimits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    http1_settings!(builder, limits);
    builder
}

/// Builds the connection server with the gateway's protocol settings; each connection served
/// by it sets its own header read timer (`serve/keep_alive/`).
pub(crate) fn connection_builder(limits: ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(HeaderTimer::default());
    http1_settings!(builder.http1(), &limits);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// The next connection, or `None` once `stop` flips. A failed accept (out of file
/// descriptors and the like) backs off instead of spinning.
async fn next_connection(
    listener: &TcpListener,
    stop: &mut watch::Receiver<bool>,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(accepted) => return Some(accepted),
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// This worker's periodic chores: flushes its buffered access log lines every 100 ms (lines
/// wait at most that long), and every second closes its pooled upstream connections that
/// expired or whose target is gone (removed by DNS, or by a reload), which request traffic
/// alone would leave open on a quiet worker, and gives its freed memory back
/// (`serve/memory.rs`).
async fn housekeeping(connections: Arc<ConnectionGauge>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut memory = super::memory::Reclaimer::default();
    for round in 0u64.. {
        tick.tick().await;
        crate::observe::access_log::flush_thread();
        if round % 10 == 0 {
            gateway_proxy::sweep_idle_connections();
            memory.tick(connections.get());
        }
    }
}

/// The TLS handshake of a new connection, bounded by the header read timeout.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    timeout: Duration,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Accepts connections on `listener` until `stop` flips, serving each with a service made by
/// `make_service(peer, over_tls)`, over TLS when `tls()` gives an acceptor (asked per
/// connection, so reloaded certificates apply to new connections); then waits for in-flight
/// requests up to `grace`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve<M, T, S, B>(
    listener: StdListener,
    limits: ConnectionLimits,
    gauge: Arc<ConnectionGauge>,
    make_service: M,
    tls: T,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> io::Result<()>
where
    M: Fn(SocketAddr, bool) -> S,
    T: Fn() -> Option<tokio_rustls::TlsAcceptor>,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Unpin
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::from_std(listener)?;
    let serving = Arc::new(keep_alive::Serving::new(limits, gauge.clone()));
    let drain = crate::serve::drain::Drain::default();
    let chores = tokio::spawn(housekeeping(gauge.clone()));
    loop {
        let Some((stream, peer)) = next_connection(&listener, &mut stop).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let guard = ConnectionGuard::new(gauge.clone());
        match tls() {
            None => {
                let service = make_service(peer, false);
                let connection = keep_alive::Connection::new(stream, service, serving.clone());
                let connection = drain.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, error = %error, "connection ended with an error");
                    }
                    drop(guard);
                });
            }
            Some(acceptor) => {
                let service = make_service(peer, true);
                let serving = serving.clone();
                let drain = drain.clone();
                let handshake_timeout = limits.header_read_timeout;
                tokio::spawn(async move {
                    let Some(stream) = handshake(&acceptor, stream, handshake_timeout, peer).await
                    else {
                        return;
                    };
                    let connection = keep_alive::Connection::new(stream, service, serving);
                    if let Err(error) = drain.watch(connection).await {
                        tracing::debug!(%peer, error = %error, "connection ended with an error");
                    }
                    drop(guard);
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, drain.shutdown()).await.is_err() {
        tracing::warn!(grace = ?grace, "grace period over; closing the remaining connections");
    }
    chores.abort();
    crate::observe::access_log::flush_thread();
    Ok(())
}
