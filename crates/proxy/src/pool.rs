//! Upstream connections: per thread and target, a stack of idle HTTP/1.1 connections and one
//! shared HTTP/2 connection.
//!
//! The pools are thread-local, so taking and returning a connection costs no lock and no
//! atomic read-modify-write; a connection is driven by its own task, never one per request.
//! With one current-thread runtime per core (the gateway's model) a connection is always
//! used on the thread that made it. On a multi-thread runtime a response body may end on
//! another thread: its connection then joins that thread's pool, which is just as good.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::request_body::UpstreamBody;
use crate::target::Target;

/// The sending half of an HTTP/1.1 upstream connection.
pub(crate) type H1Sender = http1::SendRequest<UpstreamBody>;
/// The sending half of an HTTP/2 upstream connection (cheap to clone: one per stream).
pub(crate) type H2Sender = http2::SendRequest<UpstreamBody>;

struct IdleConn {
    sender: H1Sender,
    since: Instant,
}

impl IdleConn {
    /// Closed by the upstream, or idle for `idle_timeout` already: not worth keeping.
    fn is_stale(&self, now: Instant, idle_timeout: Duration) -> bool {
        self.sender.is_closed() || now.saturating_duration_since(self.since) >= idle_timeout
    }
}

struct TargetPool {
    /// The target, to notice when it is gone (an upstream rebuilt by a config reload).
    owner: Weak<Target>,
    /// Connections ready for a request, most recently used at the back: taking from the
    /// back reuses warm connections and lets the oldest ones expire at the front.
    idle: VecDeque<IdleConn>,
    h2: Option<H2Sender>,
}

/// Target ids are unique integers: a multiplication spreads them well enough.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Pools = HashMap<u64, TargetPool, BuildHasherDefault<IdHasher>>;

thread_local! {
    static POOLS: RefCell<Pools> = RefCell::new(Pools::default());
    /// The value of `RETIRED` when this thread last dropped the pools of gone targets.
    static SWEPT: Cell<u64> = const { Cell::new(0) };
}

/// Counts targets dropped (removed by a re-resolution, or rebuilt by a reload): a thread
/// that sees it change drops its pools of targets that no longer exist.
static RETIRED: AtomicU64 = AtomicU64::new(0);

/// A target was dropped: its idle connections should go.
pub(crate) fn note_retired() {
    RETIRED.fetch_add(1, Ordering::Relaxed);
}

/// Drops this thread's idle connections to targets that no longer exist, and those idle
/// longer than their upstream's `idle_timeout`.
///
/// Pools are swept as a side effect of their use; call this now and then (say every
/// second) on each thread that proxies, so that a thread gone quiet closes them too, and
/// the memory of its connections is returned.
pub fn sweep_idle_connections() {
    let now = Instant::now();
    let _ = POOLS.try_with(|pools| {
        let Ok(mut pools) = pools.try_borrow_mut() else {
            return;
        };
        pools.retain(|_, pool| {
            let Some(target) = pool.owner.upgrade() else {
                return false;
            };
            pool.idle
                .retain(|conn| !conn.is_stale(now, target.pool.idle_timeout));
            if pool.h2.as_ref().is_some_and(H2Sender::is_closed) {
                pool.h2 = None;
            }
            !pool.idle.is_empty() || pool.h2.is_some()
        });
        let _ = SWEPT.try_with(|swept| swept.set(RETIRED.load(Ordering::Relaxed)));
    });
}

/// Runs `f` on this thread's pool of a target. `None` while the thread is being torn down
/// (or on re-entry), in which case nothing is pooled.
fn with_pool<R>(target: &Arc<Target>, f: impl FnOnce(&mut TargetPool) -> R) -> Option<R> {
    POOLS
        .try_with(|pools| {
            let mut pools = pools.try_borrow_mut().ok()?;
            let retired = RETIRED.load(Ordering::Relaxed);
            let swept = SWEPT
                .try_with(|swept| swept.replace(retired))
                .unwrap_or(retired);
            if retired != swept {
                pools.retain(|_, pool| pool.owner.strong_count() > 0);
            }
            let pool = pools.entry(target.id).or_insert_with(|| TargetPool {
                owner: Arc::downgrade(target),
                idle: VecDeque::new(),
                h2: None,
            });
            Some(f(pool))
        })
        .ok()
        .flatten()
}

/// An idle HTTP/1.1 connection of this thread that is ready for a request; closed and
/// expired ones are dropped on the way.
pub(crate) fn checkout(target: &Arc<Target>, now: Instant) -> Option<H1Sender> {
    with_pool(target, |pool| {
        while let Some(conn) = pool.idle.pop_back() {
            if conn.sender.is_ready()
                && now.saturating_duration_since(conn.since) < target.pool.idle_timeout
            {
                return Some(conn.sender);
            }
        }
        None
    })
    .flatten()
}

/// Returns an HTTP/1.1 connection whose exchange ended to this thread's pool.
pub(crate) fn checkin(target: &Arc<Target>, sender: H1Sender) {
    if sender.is_closed() || target.pool.max_idle == 0 {
        return;
    }
    let now = Instant::now();
    with_pool(target, |pool| {
        while pool
            .idle
            .front()
            .is_some_and(|oldest| oldest.is_stale(now, target.pool.idle_timeout))
        {
            pool.idle.pop_front();
        }
        if pool.idle.len() >= target.pool.max_idle {
            pool.idle.pop_front();
        }
        pool.idle.push_back(IdleConn { sender, since: now });
    });
}

/// This thread's HTTP/2 connection to a target, if it is open.
pub(crate) fn shared_h2(target: &Arc<Target>) -> Option<H2Sender> {
    with_pool(target, |pool| match &pool.h2 {
        Some(sender) if !sender.is_closed() => Some(sender.clone()),
        _ => {
            pool.h2 = None;
            None
        }
    })
    .flatten()
}

/// Makes `sender` this thread's HTTP/2 connection to a target.
pub(crate) fn share_h2(target: &Arc<Target>, sender: &H2Sender) {
    with_pool(target, |pool| pool.h2 = Some(sender.clone()));
}

/// Forgets this thread's HTTP/2 connection to a target (it could not send).
pub(crate) fn forget_h2(target: &Arc<Target>) {
    with_pool(target, |pool| pool.h2 = None);
}

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    #[error("handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

async fn tcp(target: &Target, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let connect = async {
        match target.addr {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((target.url.host(), target.url.port())).await,
        }
    };
    let stream = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
    // Requests and responses are written whole: waiting for more data only adds latency.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A new HTTP/1.1 connection, its driver spawned on the current runtime.
pub(crate) async fn open_h1(
    target: &Target,
    timeout: Duration,
    upgrades: bool,
) -> Result<H1Sender, ConnectError> {
    let stream = tcp(target, timeout).await?;
    match &target.tls {
        None => handshake_h1(stream, upgrades, target.pool.max_response_head).await,
        Some(tls) => {
            let handshake = tls.connect(target.url.host(), stream, false);
            let stream = tokio::time::timeout(timeout, handshake)
                .await
                .map_err(|_| ConnectError::Timeout(timeout))??;
            handshake_h1(stream, upgrades, target.pool.max_response_head).await
        }
    }
}

async fn handshake_h1<T>(
    stream: T,
    upgrades: bool,
    max_head: usize,
) -> Result<H1Sender, ConnectError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::Builder::new()
        // Head and small bodies in one buffer, one write.
        .writev(false)
        // A larger response head fails the exchange (502) instead of growing the buffer.
        .max_header_size(max_head)
        .handshake(TokioIo::new(stream))
        .await?;
    if upgrades {
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
    } else {
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
    }
    Ok(sender)
}

/// A new HTTP/2 connection (prior knowledge in clear text, ALPN `h2` over TLS), its driver
/// spawned on the current runtime.
pub(crate) async fn open_h2(target: &Target, timeout: Duration) -> Result<H2Sender, ConnectError> {
    let stream = tcp(target, timeout).await?;
    match &target.tls {
        None => handshake_h2(stream, target.pool.max_response_head).await,
        Some(tls) => {
            let handshake = tls.connect(target.url.host(), stream, true);
            let stream = tokio::time::timeout(timeout, handshake)
                .await
                .map_err(|_| ConnectError::Timeout(timeout))??;
            handshake_h2(stream, target.pool.max_response_head).await
        }
    }
}

async fn handshake_h2<T>(stream: T, max_head: usize) -> Result<H2Sender, ConnectError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX))
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "upstream h2 connection ended with an error");
        }
    });
    Ok(sender)
}

/// One request's claim on a target: counted in flight until dropped, and holding the
/// HTTP/1.1 connection until the response body ends.
#[derive(Debug)]
pub(crate) struct Lease {
    target: Arc<Target>,
    conn: Option<H1Sender>,
}

impl Lease {
    pub(crate) fn new(target: Arc<Target>) -> Self {
        target.begin();
        Self { target, conn: None }
    }

    pub(crate) fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// Keeps `conn` until the exchange ends; it is pooled on [`release`](Self::release).
    pub(crate) fn hold(&mut self, conn: H1Sender) {
        self.conn = Some(conn);
    }

    /// The exchange ended cleanly: the connection can serve another request.
    pub(crate) fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if conn.is_ready() {
            checkin(&self.target, conn);
            return;
        }
        if conn.is_closed() {
            return;
        }
        // The connection's task, running on another thread, has not taken note of the end
        // of the exchange yet (never the case on a current-thread runtime, where it runs
        // first). Pool the connection once it has, rather than opening more meanwhile.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let target = self.target.clone();
        runtime.spawn(async move {
            let ready = tokio::time::timeout(target.pool.idle_timeout, conn.ready()).await;
            if let Ok(Ok(())) = ready {
                checkin(&target, conn);
            }
        });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A connection still held here is mid-exchange and is closed with it.
        self.target.end();
    }
}
