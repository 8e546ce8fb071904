//! The Redis store: checks are counted by Lua scripts through a fred pool, at most one round
//! trip per check.
//!
//! Checks that arrive while others are being sent are batched into one script call (one
//! `EVALSHA` with many keys): Redis then runs one script per batch instead of one per request,
//! and the client writes one command instead of many (fred flushes the socket after every
//! script command, so unbatched scripts cost a system call each). A check waits for no timer
//! to fill a batch: the batch is whatever queued up while the previous one was on its way, one
//! request when the load is light.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use fred::clients::Pool;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, Options, ReconnectPolicy, TcpConfig, Value,
};
use fred::types::ConnectHandle;
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand};
use tokio::sync::{Notify, oneshot};

use crate::config::RedisConfig;
use crate::decision::Quota;
use crate::memory::Outcome;
use crate::policy::Kind;

/// Counts hits in fixed windows that start at each key's first hit.
///
/// For each key i: KEYS[i] the counter; ARGV[2i-1] the window in ms; ARGV[2i] the cost.
/// Returns {count after the hit, ms until the window ends} per key, flattened.
/// INCRBY and PEXPIRE run atomically in the script: no read-then-write race between gateways,
/// and a counter can never be left without an expiry. A key listed twice is counted twice, in
/// order, as two calls would.
const FIXED_WINDOW_LUA: &str = r#"
local out = {}
for i, key in ipairs(KEYS) do
  local window = ARGV[2 * i - 1]
  local count = redis.call('INCRBY', key, ARGV[2 * i])
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = tonumber(window)
  end
  out[2 * i - 1] = count
  out[2 * i] = ttl
end
return out
"#;

/// Grants up to the asked number of hits in fixed windows, never beyond the limit (leases).
///
/// For each key i: KEYS[i] the counter; ARGV[3i-2] the window in ms; ARGV[3i-1] the hits
/// asked for; ARGV[3i] the limit. Returns {hits granted, count after, ms until the window
/// ends} per key, flattened. A refused ask counts nothing.
const FIXED_WINDOW_LEASE_LUA: &str = r#"
local out = {}
for i, key in ipairs(KEYS) do
  local window = ARGV[3 * i - 2]
  local count = tonumber(redis.call('GET', key) or '0')
  local grant = math.min(tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]) - count)
  if grant > 0 then
    count = redis.call('INCRBY', key, grant)
  else
    grant = 0
  end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    if count > 0 then redis.call('PEXPIRE', key, window) end
    ttl = tonumber(window)
  end
  out[3 * i - 2] = grant
  out[3 * i - 1] = count
  out[3 * i] = ttl
end
return out
"#;

/// Token buckets kept as their theoretical arrival time (TAT), in µs of the Redis server clock
/// (`TIME`, read once per call), so gateway clocks do not matter.
///
/// For each key i: KEYS[i] the bucket; ARGV[3i-2] µs per token; ARGV[3i-1] capacity;
/// ARGV[3i] tokens asked for (1 for a check, B for a lease: granted as far as the bucket
/// holds). Returns {tokens granted, whole tokens left, µs until full, µs until one token} per
/// key, flattened. All values are integers below 2^53, exact in Lua's doubles. A key expires
/// when its bucket would be full, which is the state of a missing key.
const TOKEN_BUCKET_LUA: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = interval * tonumber(ARGV[3 * i - 1])
  local tat = tonumber(redis.call('GET', key))
  if not tat or tat < now then tat = now end
  local available = math.floor((burst - (tat - now)) / interval)
  local grant = math.min(tonumber(ARGV[3 * i]), available)
  local o = 4 * i - 4
  if grant > 0 then
    local next_tat = tat + interval * grant
    local ahead = next_tat - now
    redis.call('SET', key, string.format('%d', next_tat), 'PX', math.ceil(ahead / 1000))
    out[o + 1] = grant
    out[o + 2] = available - grant
    out[o + 3] = ahead
    out[o + 4] = 0
  else
    out[o + 1] = 0
    out[o + 2] = 0
    out[o + 3] = tat - now
    out[o + 4] = tat - now + interval - burst
  end
end
return out
"#;

/// The most keys one script call counts: a script blocks Redis while it runs.
const MAX_BATCH: usize = 128;

/// Why Redis gave no answer.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("not connected to Redis")]
    Disconnected,
    #[error("no answer from Redis within {0:?}")]
    Timeout(Duration),
    #[error("Redis error: {0}")]
    Redis(#[from] FredError),
    #[error("unexpected reply from the rate-limit script: {0:?}")]
    UnexpectedReply(Value),
}

/// The error of connecting to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL or options were refused by the client.
    #[error("invalid Redis configuration: {0}")]
    Config(#[source] FredError),
    /// Connecting starts background tasks, which needs a Tokio runtime.
    #[error("the Redis rate-limit backend must be created inside a Tokio runtime")]
    NoRuntime,
}

pub(crate) struct RedisStore {
    shared: Arc<Shared>,
    tasks: Vec<ConnectHandle>,
}

/// What the batchers need of their store.
struct Shared {
    /// Tells the store apart in the threads' queue lists.
    id: u64,
    pool: Pool,
    timeout: Duration,
    cluster: bool,
    /// By [`ScriptKind`].
    scripts: [Script; 3],
    /// Every thread's queue, to stop their batchers when the store goes.
    queues: Mutex<Vec<Weak<Queue>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("connections", &self.shared.pool.size())
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

/// One thread's checks waiting to be sent, and its batcher's wake-up.
///
/// A queue per thread: on a gateway worker (a current-thread runtime) the checks of all the
/// requests that thread is serving collect in its queue while the batcher waits its turn on
/// the same thread, so enqueuing never wakes another thread and a batch costs one hand-off to
/// the Redis connection, not one per request.
#[derive(Default)]
struct Queue {
    checks: Mutex<Vec<Pending>>,
    wake: Notify,
    /// The batcher has stopped (its store was dropped or its runtime shut down).
    closed: AtomicBool,
}

thread_local! {
    /// This thread's queue of each store (by store id).
    static QUEUES: RefCell<Vec<(u64, Arc<Queue>)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

/// One check waiting for its batch.
struct Pending {
    key: Bytes,
    policy: Kind,
    /// Hits counted, or with `lease`, hits asked for.
    cost: u32,
    lease: bool,
    reply: oneshot::Sender<Result<Granted, StoreError>>,
}

/// What Redis answered for one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Granted {
    pub(crate) outcome: Outcome,
    /// Hits granted: the cost when allowed, 0 when refused; with a lease, possibly fewer than
    /// asked for.
    pub(crate) hits: u32,
}

/// Which script counts a check: an index into [`Shared::scripts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScriptKind {
    FixedWindow = 0,
    FixedWindowLease = 1,
    /// Checks and leases alike: the script grants what it can of what is asked for.
    TokenBucket = 2,
}

impl ScriptKind {
    fn of(policy: Kind, lease: bool) -> Self {
        match (policy, lease) {
            (Kind::FixedWindow { .. }, false) => Self::FixedWindow,
            (Kind::FixedWindow { .. }, true) => Self::FixedWindowLease,
            (Kind::TokenBucket { .. }, _) => Self::TokenBucket,
        }
    }

    /// Numbers in the reply per key.
    fn reply_width(self) -> usize {
        match self {
            Self::FixedWindow => 2,
            Self::FixedWindowLease => 3,
            Self::TokenBucket => 4,
        }
    }
}

impl RedisStore {
    /// Starts connecting in the background and returns at once: until a connection is up,
    /// checks fail with [`StoreError::Disconnected`] and the `on_error` policy applies.
    pub(crate) fn connect(config: &RedisConfig) -> Result<Self, ConnectError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConnectError::NoRuntime);
        }
        let url = config.url.as_str();
        let mut client_config = if config.cluster {
            Config::from_url_clustered(url)
        } else {
            Config::from_url(url)
        }
        .map_err(ConnectError::Config)?;
        // Keep retrying an unreachable server in the background instead of failing startup.
        client_config.fail_fast = false;
        let connect_timeout = config.connect_timeout.0;
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
            .build_pool(config.pool_size.0)
            .map_err(ConnectError::Config)?;
        let tasks = pool.connect_pool();
        Ok(Self {
            shared: Arc::new(Shared {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                pool,
                timeout: config.timeout.0,
                cluster: config.cluster,
                scripts: [
                    Script::from_lua(FIXED_WINDOW_LUA),
                    Script::from_lua(FIXED_WINDOW_LEASE_LUA),
                    Script::from_lua(TOKEN_BUCKET_LUA),
                ],
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
        self.enqueue(Pending {
            key,
            policy,
            cost,
            lease,
            reply,
        });
        let timeout = self.shared.timeout;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            // The batcher is gone (the runtime that started it shut down).
            Ok(Err(_)) => Err(StoreError::Disconnected),
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }

    /// Puts a check in this thread's queue, starting the thread's batcher on first use.
    fn enqueue(&self, check: Pending) {
        QUEUES.with_borrow_mut(|queues| {
            // Forget the queues of dropped stores and stopped batchers.
            queues.retain(|(_, queue)| !queue.closed.load(Ordering::Acquire));
            let queue = match queues.iter().find(|(id, _)| *id == self.shared.id) {
                Some((_, queue)) => queue,
                None => {
                    let queue = Arc::new(Queue::default());
                    let mut all = self
                        .shared
                        .queues
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    all.retain(|queue| queue.strong_count() > 0);
                    all.push(Arc::downgrade(&queue));
                    drop(all);
                    tokio::spawn(batch_checks(
                        Arc::downgrade(&self.shared),
                        Arc::clone(&queue),
                    ));
                    queues.push((self.shared.id, queue));
                    &queues[queues.len() - 1].1
                }
            };
            let first = {
                let mut checks = queue.checks.lock().unwrap_or_else(PoisonError::into_inner);
                checks.push(check);
                checks.len() == 1
            };
            // The batcher is woken once per batch; a wake-up while it is busy is kept.
            if first {
                queue.wake.notify_one();
            }
        });
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

/// Marks its queue closed when the batcher stops, also when its runtime drops it.
struct CloseOnDrop(Arc<Queue>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        // Checks left behind get `Disconnected` from their dropped reply senders.
        self.0
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Takes the queued checks whenever there are some and sends them, one script call per
/// algorithm (and per hash slot in a cluster), without waiting for earlier batches' answers.
async fn batch_checks(shared: Weak<Shared>, queue: Arc<Queue>) {
    let queue = CloseOnDrop(queue);
    let mut taken = Vec::new();
    loop {
        queue.0.wake.notified().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        std::mem::swap(
            &mut taken,
            &mut *queue
                .0
                .checks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        // Checks whose requests already gave up need no round trip.
        taken.retain(|pending| !pending.reply.is_closed());
        while !taken.is_empty() {
            let batch = take_batch(&mut taken, shared.cluster);
            tokio::spawn(run_batch(Arc::clone(&shared), batch));
        }
    }
}

/// Removes from `checks` up to [`MAX_BATCH`] checks that one script call can count: those of
/// the first check's algorithm (and, in a cluster, its hash slot).
fn take_batch(checks: &mut Vec<Pending>, cluster: bool) -> Vec<Pending> {
    let first = &checks[0];
    let script = ScriptKind::of(first.policy, first.lease);
    let slot = cluster.then(|| fred::util::redis_keyslot(&first.key));
    let mut batch = Vec::with_capacity(checks.len().min(MAX_BATCH));
    let mut index = 0;
    while index < checks.len() && batch.len() < MAX_BATCH {
        let check = &checks[index];
        let same = ScriptKind::of(check.policy, check.lease) == script
            && slot.is_none_or(|slot| fred::util::redis_keyslot(&check.key) == slot);
        if same {
            batch.push(checks.swap_remove(index));
        } else {
            index += 1;
        }
    }
    batch
}

/// Sends one batch and hands each check its outcome.
async fn run_batch(shared: Arc<Shared>, batch: Vec<Pending>) {
    // A check whose connection broke is not sent again, and not kept for after a reconnect
    // either: by then `on_error` has answered its request, and running it would count a
    // request twice.
    let client = shared.pool.next_connected().with_options(&Options {
        fail_fast: true,
        timeout: Some(shared.timeout),
        ..Options::default()
    });
    let kind = ScriptKind::of(batch[0].policy, batch[0].lease);
    let (script, per_key) = (&shared.scripts[kind as usize], kind.reply_width());
    // `EVALSHA script numkeys KEYS.. ARGV..`, or with the source for `EVAL`. As custom
    // commands because fred's script calls take no per-command options; routed in a cluster
    // by the slot of the keys (a batch's keys share one).
    let slot = ClusterHash::Custom(fred::util::redis_keyslot(&batch[0].key));
    let command = |name: &'static str, script: Value| {
        let mut args = Vec::with_capacity(2 + batch.len() * 4);
        args.push(script);
        args.push(Value::Integer(batch.len() as i64));
        args.extend(batch.iter().map(|check| Value::Bytes(check.key.clone())));
        for check in &batch {
            push_args(&mut args, check.policy, check.cost, check.lease);
        }
        client.custom::<Value, Value>(CustomCommand::new_static(name, slot.clone(), false), args)
    };
    let call = async {
        match command("EVALSHA", Value::from(script.sha1().clone())).await {
            // The server lost its scripts (restart, SCRIPT FLUSH): send the source, which also
            // caches it again for the next EVALSHA.
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                let lua = script.lua().cloned().unwrap_or_default();
                command("EVAL", Value::from(lua)).await
            }
            reply => reply,
        }
    };
    // fred drops a command that timed out before it was written; one already written cannot
    // be called back, and its late reply goes nowhere.
    let Ok(reply) = tokio::time::timeout(shared.timeout, call).await else {
        return;
    };
    let numbers = match reply {
        Ok(Value::Array(values)) if values.len() == batch.len() * per_key => {
            let numbers: Option<Vec<i64>> = values.iter().map(Value::as_i64).collect();
            numbers.ok_or(StoreError::UnexpectedReply(Value::Array(values)))
        }
        Ok(other) => Err(StoreError::UnexpectedReply(other)),
        Err(e) => Err(StoreError::Redis(e)),
    };
    match numbers {
        Ok(numbers) => {
            for (check, numbers) in batch.into_iter().zip(numbers.chunks_exact(per_key)) {
                let _ = check
                    .reply
                    .send(parse_reply(kind, check.policy, check.cost, numbers));
            }
        }
        Err(error) => {
            for check in batch {
                let _ = check.reply.send(Err(error.clone()));
            }
        }
    }
}

/// Appends one key's ARGV (see the scripts above).
fn push_args(args: &mut Vec<Value>, policy: Kind, cost: u32, lease: bool) {
    match policy {
        Kind::FixedWindow { window_ms, limit } => {
            args.push(Value::Integer(window_ms as i64));
            args.push(Value::Integer(i64::from(cost)));
            if lease {
                args.push(Value::Integer(i64::from(limit)));
            }
        }
        Kind::TokenBucket {
            capacity,
            interval_us,
        } => {
            args.push(Value::Integer(interval_us as i64));
            args.push(Value::Integer(i64::from(capacity)));
            args.push(Value::Integer(i64::from(cost)));
        }
    }
}

/// One key's outcome from its numbers in the reply of a `kind` script.
fn parse_reply(
    kind: ScriptKind,
    policy: Kind,
    cost: u32,
    numbers: &[i64],
) -> Result<Granted, StoreError> {
    let unexpected = || {
        StoreError::UnexpectedReply(Value::Array(
            numbers.iter().map(|&n| Value::Integer(n)).collect(),
        ))
    };
    let non_negative = |n: i64| u64::try_from(n).unwrap_or(0);
    let granted = |hits: u64, limit: u32, remaining: u64, reset: Duration, retry: Duration| {
        let allowed = hits > 0;
        Granted {
            outcome: Outcome {
                allowed,
                quota: Quota {
                    limit,
                    remaining: remaining.min(u64::from(limit)) as u32,
                    reset,
                    retry_after: (!allowed).then_some(retry),
                },
            },
            hits: hits.min(u64::from(cost)) as u32,
        }
    };
    match (kind, policy, numbers) {
        (ScriptKind::FixedWindow, Kind::FixedWindow { limit, .. }, &[count, ttl_ms]) => {
            let count = non_negative(count);
            let hits = if count <= u64::from(limit) { cost } else { 0 };
            let reset = Duration::from_millis(non_negative(ttl_ms));
            let remaining = u64::from(limit).saturating_sub(count);
            Ok(granted(hits.into(), limit, remaining, reset, reset))
        }
        (
            ScriptKind::FixedWindowLease,
            Kind::FixedWindow { limit, .. },
            &[grant, count, ttl_ms],
        ) => {
            let reset = Duration::from_millis(non_negative(ttl_ms));
            let remaining = u64::from(limit).saturating_sub(non_negative(count));
            Ok(granted(non_negative(grant), limit, remaining, reset, reset))
        }
        (
            ScriptKind::TokenBucket,
            Kind::TokenBucket { capacity, .. },
            &[grant, remaining, reset_us, retry_us],
        ) => Ok(granted(
            non_negative(grant),
            capacity,
            non_negative(remaining),
            Duration::from_micros(non_negative(reset_us)),
            Duration::from_micros(non_negative(retry_us)),
        )),
        _ => Err(unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_and_checked() {
        let fixed = Kind::FixedWindow {
            limit: 5,
            window_ms: 1000,
        };
        let parse = |kind, policy, numbers: &[i64]| parse_reply(kind, policy, 1, numbers);
        let at_limit = parse(ScriptKind::FixedWindow, fixed, &[5, 300]).unwrap();
        assert!(at_limit.outcome.allowed);
        assert_eq!((at_limit.hits, at_limit.outcome.quota.remaining), (1, 0));
        let over = parse(ScriptKind::FixedWindow, fixed, &[6, 300]).unwrap();
        assert!(!over.outcome.allowed);
        assert_eq!(over.hits, 0);
        assert_eq!(
            over.outcome.quota.retry_after,
            Some(Duration::from_millis(300))
        );
        assert!(parse(ScriptKind::FixedWindow, fixed, &[6]).is_err());

        let bucket = Kind::TokenBucket {
            capacity: 3,
            interval_us: 400_000,
        };
        let refused = parse(ScriptKind::TokenBucket, bucket, &[0, 0, 1_200_000, 400_000]).unwrap();
        assert!(!refused.outcome.allowed);
        assert_eq!(
            refused.outcome.quota.retry_after,
            Some(Duration::from_millis(400))
        );
        assert_eq!(refused.outcome.quota.reset, Duration::from_millis(1200));
        assert!(parse(ScriptKind::TokenBucket, bucket, &[1, 2]).is_err());
        assert!(
            parse(ScriptKind::FixedWindow, bucket, &[1, 2]).is_err(),
            "a reply is read with its own script's layout"
        );
    }

    #[test]
    fn lease_replies_say_how_many_hits_were_granted() {
        let fixed = Kind::FixedWindow {
            limit: 25,
            window_ms: 1000,
        };
        // 10 asked, 5 left under the limit: 5 granted.
        let partial = parse_reply(ScriptKind::FixedWindowLease, fixed, 10, &[5, 25, 700]).unwrap();
        assert!(partial.outcome.allowed);
        assert_eq!((partial.hits, partial.outcome.quota.remaining), (5, 0));
        let none = parse_reply(ScriptKind::FixedWindowLease, fixed, 10, &[0, 25, 700]).unwrap();
        assert!(!none.outcome.allowed);
        assert_eq!(
            none.outcome.quota.retry_after,
            Some(Duration::from_millis(700))
        );

        let bucket = Kind::TokenBucket {
            capacity: 20,
            interval_us: 1000,
        };
        let granted = parse_reply(ScriptKind::TokenBucket, bucket, 8, &[8, 12, 8000, 0]).unwrap();
        assert_eq!((granted.hits, granted.outcome.quota.remaining), (8, 12));
        // A reply can never grant more than was asked for.
        let odd = parse_reply(ScriptKind::TokenBucket, bucket, 8, &[9, 0, 9000, 0]).unwrap();
        assert_eq!(odd.hits, 8);
    }

    fn pending(key: &str, policy: Kind) -> Pending {
        Pending {
            key: Bytes::copy_from_slice(key.as_bytes()),
            policy,
            cost: 1,
            lease: false,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn batches_group_one_script_and_one_slot() {
        let fixed = Kind::FixedWindow {
            limit: 5,
            window_ms: 1000,
        };
        let bucket = Kind::TokenBucket {
            capacity: 3,
            interval_us: 400_000,
        };
        let mut checks: Vec<_> = (0..300)
            .map(|i| {
                pending(
                    &format!("{{a}}:{i}"),
                    if i % 3 == 0 { bucket } else { fixed },
                )
            })
            .collect();
        let sizes: Vec<_> = std::iter::from_fn(|| {
            (!checks.is_empty()).then(|| {
                let batch = take_batch(&mut checks, false);
                let kinds: std::collections::HashSet<_> = batch
                    .iter()
                    .map(|check| matches!(check.policy, Kind::TokenBucket { .. }))
                    .collect();
                assert_eq!(kinds.len(), 1, "one script per batch");
                batch.len()
            })
        })
        .collect();
        assert_eq!(sizes, [100, 128, 72], "at most MAX_BATCH keys per call");

        // In a cluster, a script's keys must share a hash slot.
        let mut checks = vec![
            pending("{a}:1", fixed),
            pending("{b}:1", fixed),
            pending("{a}:2", fixed),
        ];
        let batch = take_batch(&mut checks, true);
        let keys: Vec<_> = batch.iter().map(|check| check.key.clone()).collect();
        assert_eq!(keys, ["{a}:1", "{a}:2"]);
        assert_eq!(checks.len(), 1);
    }
}
