//! The Redis store: one Lua script call (one round trip) per check, through a fred pool.

use std::time::Duration;

use bytes::Bytes;
use fred::clients::Pool;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, LuaInterface, ReconnectPolicy, TcpConfig,
    Value,
};
use fred::types::ConnectHandle;
use fred::types::scripts::Script;

use crate::config::RedisConfig;
use crate::decision::Quota;
use crate::memory::Outcome;
use crate::policy::Kind;

/// Counts one hit in a fixed window that starts at the key's first hit.
///
/// KEYS[1] the counter; ARGV[1] the window in ms; ARGV[2] the cost.
/// Returns {count after this hit, ms until the window ends}.
/// INCRBY and PEXPIRE run atomically in the script: no read-then-write race between gateways,
/// and a counter can never be left without an expiry.
const FIXED_WINDOW_LUA: &str = r#"
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"#;

/// A token bucket kept as its theoretical arrival time (TAT), in µs of the Redis server clock
/// (`TIME`), so gateway clocks do not matter.
///
/// KEYS[1] the bucket; ARGV[1] µs per token; ARGV[2] capacity; ARGV[3] cost in tokens.
/// Returns {1 if allowed else 0, whole tokens left, µs until full, µs until allowed}.
/// All values are integers below 2^53, exact in Lua's doubles. The key expires when the bucket
/// would be full, which is the state of a missing key.
const TOKEN_BUCKET_LUA: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local burst = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local next_tat = tat + interval * tonumber(ARGV[3])
local ahead = next_tat - now
if ahead > burst then
  return {0, math.floor((burst - (tat - now)) / interval), tat - now, ahead - burst}
end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil(ahead / 1000))
return {1, math.floor((burst - ahead) / interval), ahead, 0}
"#;

/// Why Redis gave no answer.
#[derive(Debug, thiserror::Error)]
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
    pool: Pool,
    timeout: Duration,
    fixed_window: Script,
    token_bucket: Script,
    tasks: Vec<ConnectHandle>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("connections", &self.pool.size())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
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
            pool,
            timeout: config.timeout.0,
            fixed_window: Script::from_lua(FIXED_WINDOW_LUA),
            token_bucket: Script::from_lua(TOKEN_BUCKET_LUA),
            tasks,
        })
    }

    /// Whether at least one connection is up.
    pub(crate) fn is_connected(&self) -> bool {
        self.pool.next_connected().is_connected()
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

    /// Runs the policy's script for `key` (one `EVALSHA`; after a `NOSCRIPT`, one `EVAL`
    /// that also caches the script again), within the configured timeout.
    pub(crate) async fn check(
        &self,
        key: Bytes,
        policy: Kind,
        cost: u32,
    ) -> Result<Outcome, StoreError> {
        let client = self.pool.next_connected();
        if !client.is_connected() {
            return Err(StoreError::Disconnected);
        }
        let script = match policy {
            Kind::FixedWindow { .. } => &self.fixed_window,
            Kind::TokenBucket { .. } => &self.token_bucket,
        };
        let args = || script_args(policy, cost);
        let call = async {
            match client
                .evalsha::<Value, _, _, _>(script.sha1().clone(), key.clone(), args())
                .await
            {
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    // The server lost its script cache (restart, failover, SCRIPT FLUSH).
                    let lua = script.lua().cloned().unwrap_or_default();
                    client.eval::<Value, _, _, _>(lua, key, args()).await
                }
                result => result,
            }
        };
        let reply = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))??;
        parse_reply(policy, reply)
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // The connection tasks would otherwise reconnect forever.
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The ARGV of the policy's script (see the scripts above).
fn script_args(policy: Kind, cost: u32) -> Vec<Value> {
    match policy {
        Kind::FixedWindow { window_ms, .. } => {
            vec![
                Value::Integer(window_ms as i64),
                Value::Integer(i64::from(cost)),
            ]
        }
        Kind::TokenBucket {
            capacity,
            interval_us,
        } => vec![
            Value::Integer(interval_us as i64),
            Value::Integer(i64::from(capacity)),
            Value::Integer(i64::from(cost)),
        ],
    }
}

fn parse_reply(policy: Kind, reply: Value) -> Result<Outcome, StoreError> {
    let numbers: Option<Vec<i64>> = match &reply {
        Value::Array(values) => values.iter().map(Value::as_i64).collect(),
        _ => None,
    };
    let unexpected = || StoreError::UnexpectedReply(reply.clone());
    let numbers = numbers.ok_or_else(unexpected)?;
    let non_negative = |n: i64| u64::try_from(n).unwrap_or(0);
    match (policy, numbers.as_slice()) {
        (Kind::FixedWindow { limit, .. }, &[count, ttl_ms]) => {
            let count = non_negative(count);
            let allowed = count <= u64::from(limit);
            let reset = Duration::from_millis(non_negative(ttl_ms));
            Ok(Outcome {
                allowed,
                quota: Quota {
                    limit,
                    remaining: (u64::from(limit).saturating_sub(count)) as u32,
                    reset,
                    retry_after: (!allowed).then_some(reset),
                },
            })
        }
        (Kind::TokenBucket { capacity, .. }, &[allowed, remaining, reset_us, retry_us]) => {
            let allowed = allowed == 1;
            Ok(Outcome {
                allowed,
                quota: Quota {
                    limit: capacity,
                    remaining: non_negative(remaining).min(u64::from(capacity)) as u32,
                    reset: Duration::from_micros(non_negative(reset_us)),
                    retry_after: (!allowed).then(|| Duration::from_micros(non_negative(retry_us))),
                },
            })
        }
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
        let reply = |ns: &[i64]| Value::Array(ns.iter().map(|n| Value::Integer(*n)).collect());
        let at_limit = parse_reply(fixed, reply(&[5, 300])).unwrap();
        assert!(at_limit.allowed);
        assert_eq!(at_limit.quota.remaining, 0);
        let over = parse_reply(fixed, reply(&[6, 300])).unwrap();
        assert!(!over.allowed);
        assert_eq!(over.quota.retry_after, Some(Duration::from_millis(300)));
        assert!(parse_reply(fixed, reply(&[6])).is_err());
        assert!(parse_reply(fixed, Value::String("OK".into())).is_err());

        let bucket = Kind::TokenBucket {
            capacity: 3,
            interval_us: 400_000,
        };
        let refused = parse_reply(bucket, reply(&[0, 0, 1_200_000, 400_000])).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.quota.retry_after, Some(Duration::from_millis(400)));
        assert_eq!(refused.quota.reset, Duration::from_millis(1200));
    }
}
