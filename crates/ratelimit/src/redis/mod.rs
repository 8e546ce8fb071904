//! The Redis store: checks are counted by Lua scripts through a fred pool, at most one round
//! trip per check.
//!
//! Checks that arrive while others are being sent are batched into one script call (one
//! `EVALSHA` with many keys): Redis then runs one script per batch instead of one per request,
//! and the client writes one command instead of many (fred flushes the socket after every
//! script command, so unbatched scripts cost a system call each). A check waits for no timer
//! to fill a batch: the batch is whatever queued up while the previous one was on its way, one
//! request when the load is light.

mod batch;
mod error;
mod script;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{Builder, ClientLike, Config, ReconnectPolicy, TcpConfig};
use fred::types::ConnectHandle;
use tokio::sync::oneshot;

use self::batch::{Pending, Shared};
use self::script::Granted;
use crate::policy::Kind;
pub use error::ConnectError;
pub(crate) use error::StoreError;

/// How to reach Redis and how long to wait for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoreOptions<'a> {
    /// `redis://` or `redis-cluster://`, already checked.
    pub(crate) url: &'a str,
    /// Treat the URL as a cluster seed node.
    pub(crate) cluster: bool,
    /// The most a check waits, in the queue and on the wire together.
    pub(crate) timeout: Duration,
    /// The TCP connect (and handshake) timeout.
    pub(crate) connect_timeout: Duration,
    /// Connections in the pool.
    pub(crate) pool_size: usize,
}

pub(crate) struct RedisStore {
    shared: Arc<Shared>,
    tasks: Vec<ConnectHandle>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("connections", &self.shared.pool.size())
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

impl RedisStore {
    /// Starts connecting in the background and returns at once: until a connection is up,
    /// checks fail with [`StoreError::Disconnected`] and the `on_error` policy applies.
    pub(crate) fn connect(config: &StoreOptions<'_>) -> Result<Self, ConnectError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConnectError::NoRuntime);
        }
        let url = config.url;
        let mut client_config = if config.cluster {
            Config::from_url_clustered(url)
        } else {
            Config::from_url(url)
        }
        .map_err(ConnectError::Config)?;
        // Keep retrying an unreachable server in the background instead of failing startup.
        client_config.fail_fast = false;
        let connect_timeout = config.connect_timeout;
        let pool = Builder::from_config(client_config)
            .with_connection_config(|connection| {
                connection.connection_timeout = connect_timeout;
                connection.internal_command_timeout = connect_timeout;
                // A command whose connection broke may have run: resending it could count a
                // request twice. The request falls back to `on_error` instead.
                connection.max_command_attempts = 1;
                // A server that stops answering (paused, network partition) is dropped and
                // reconnected, so checks fail fast instead of each waiting for its timeout.
                connection.unresponsive.max_timeout =
                    Some(connect_timeout.max(Duration::from_millis(500)));
                connection.unresponsive.interval = Duration::from_millis(100);
                connection.tcp = TcpConfig {
                    nodelay: Some(true),
                    ..TcpConfig::default()
                };
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 25, 2_000, 2))
            .build_pool(config.pool_size)
            .map_err(ConnectError::Config)?;
        let tasks = pool.connect_pool();
        Ok(Self {
            shared: Arc::new(Shared {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                pool,
                timeout: config.timeout,
                cluster: config.cluster,
                scripts: script::scripts(),
                queues: Mutex::default(),
            }),
            tasks,
        })
    }

    /// Whether a connection is up.
    pub(crate) fn is_connected(&self) -> bool {
        self.shared.pool.next_connected().is_connected()
    }

    /// Waits until a connection is up, at most `timeout`.
    pub(crate) async fn wait_connected(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            while !self.is_connected() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .is_ok()
    }

    /// Counts `cost` hits against `key` under `policy`, waiting at most the configured
    /// timeout (in the queue and on the wire together).
    ///
    /// With `lease`, `cost` is the most hits to take: Redis grants what the limit has left,
    /// up to that.
    pub(crate) async fn check(
        &self,
        key: Bytes,
        policy: Kind,
        cost: u32,
        lease: bool,
    ) -> Result<Granted, StoreError> {
        let (reply, answer) = oneshot::channel();
        batch::enqueue(
            &self.shared,
            Pending {
                key,
                policy,
                cost,
                lease,
                reply,
            },
        );
        let timeout = self.shared.timeout;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            // The batcher is gone (the runtime that started it shut down).
            Ok(Err(_)) => Err(StoreError::Disconnected),
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // The connection tasks would otherwise reconnect forever.
        for task in &self.tasks {
            task.abort();
        }
        // Each thread's batcher wakes, finds the store gone and stops.
        let queues = self
            .shared
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for queue in queues.iter().filter_map(Weak::upgrade) {
            queue.closed.store(true, Ordering::Release);
            queue.wake.notify_one();
        }
    }
}
