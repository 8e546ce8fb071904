//! The in-memory store: one atomic word per key in a sharded map.
//!
//! A check takes a shard's read lock (uncontended unless a new key is being inserted into that
//! same shard) and updates the key's word with one compare-and-swap, so concurrent requests
//! for different keys never wait on each other and requests for one key serialize only on
//! the CAS. Expired entries are swept from a shard when it has doubled in size since its last
//! sweep, which keeps memory proportional to the keys seen within one window.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use crate::decision::Quota;
use crate::policy::{Kind, Policy};

const SHARDS: usize = 64;
/// A shard is not swept before it holds this many keys.
const MIN_SWEEP_LEN: usize = 256;

/// The outcome of a check against a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) allowed: bool,
    pub(crate) quota: Quota,
}

/// Where the in-memory store reads the time.
///
/// Reading the precise monotonic clock costs about as much as the rest of a check, so the
/// store reads the kernel's coarse clock by default, as nginx's `limit_req` reads its cached
/// event-loop time: windows and refills then move in the kernel's tick (1 to 4 ms on Linux),
/// which no limit measured in requests per second can tell apart. Counts are exact either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The coarse monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux): a few nanoseconds to
    /// read, advancing once per kernel tick.
    #[default]
    Coarse,
    /// Tokio's clock: precise, and it follows `tokio::time::pause` and `advance`, so tests of
    /// services using the layer can drive windows and refills with a paused clock.
    Tokio,
}

/// A clock read as nanoseconds since it was made.
#[derive(Debug)]
pub(crate) enum Epoch {
    Coarse(coarsetime::Instant),
    Tokio(tokio::time::Instant),
}

impl Epoch {
    pub(crate) fn new(clock: Clock) -> Self {
        match clock {
            // Not `now()`: it also writes a process-wide cache, a cache line every core would
            // then contend on.
            Clock::Coarse => Self::Coarse(coarsetime::Instant::now_without_cache_update()),
            Clock::Tokio => Self::Tokio(tokio::time::Instant::now()),
        }
    }

    /// Nanoseconds since the epoch (u64 nanoseconds last 584 years).
    pub(crate) fn nanos(&self) -> u64 {
        match self {
            Self::Coarse(epoch) => coarsetime::Instant::now_without_cache_update()
                .duration_since(*epoch)
                .as_nanos(),
            Self::Tokio(epoch) => epoch.elapsed().as_nanos() as u64,
        }
    }
}

/// A route's in-memory limiter.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    algorithm: Algorithm,
    epoch: Epoch,
    table: Table,
}

impl MemoryLimiter {
    pub(crate) fn new(policy: &Policy, clock: Clock) -> Self {
        Self {
            algorithm: Algorithm::new(policy),
            epoch: Epoch::new(clock),
            table: Table::new(),
        }
    }

    /// Counts one request against `key` (a keyed hash of the client key).
    pub(crate) fn check(&self, key: u64) -> Outcome {
        let now = self.epoch.nanos();
        let algorithm = &self.algorithm;
        self.table.update(
            key,
            |word| algorithm.apply(word, key, now),
            |word, key| algorithm.is_expired(word, key, now),
        )
    }

    /// The number of keys held (live or not yet swept).
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

/// Keys (keyed hashes) to atomic words, in shards: see the module documentation.
#[derive(Debug)]
pub(crate) struct Table {
    shards: Box<[Shard]>,
}

impl Table {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    fn shard(&self, key: u64) -> &Shard {
        // hashbrown indexes buckets with the low bits and tags them with the top 7: pick the
        // shard from bits that neither uses, so each shard's map still sees well-spread hashes.
        &self.shards[(key >> 40) as usize % SHARDS]
    }

    /// Runs `f` on the word of `key` when the key is held.
    pub(crate) fn get<R>(&self, key: u64, f: impl FnOnce(&AtomicU64) -> R) -> Option<R> {
        let map = self
            .shard(key)
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.entries.get(&key).map(f)
    }

    /// Runs `f` on the word of `key`, inserting a zero word first when the key is new. A shard
    /// that has doubled since its last sweep drops the words `expired(word, key)` says are.
    pub(crate) fn update<R>(
        &self,
        key: u64,
        f: impl FnOnce(&AtomicU64) -> R,
        expired: impl Fn(u64, u64) -> bool,
    ) -> R {
        let shard = self.shard(key);
        {
            let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(word) = map.entries.get(&key) {
                return f(word);
            }
        }
        let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
        let map = &mut *map;
        let result = f(map.entries.entry(key).or_default());
        if map.entries.len() >= map.sweep_at {
            map.sweep(expired);
        }
        result
    }

    /// The number of keys held (live or not yet swept).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .map
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }
}

// Each shard on its own cache lines, so that readers of neighbouring shards do not contend.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    map: RwLock<Map>,
}

#[derive(Debug)]
struct Map {
    entries: HashMap<u64, AtomicU64, BuildHasherDefault<PrehashedKey>>,
    sweep_at: usize,
}

impl Default for Map {
    fn default() -> Self {
        Self {
            entries: HashMap::default(),
            sweep_at: MIN_SWEEP_LEN,
        }
    }
}

impl Map {
    fn sweep(&mut self, expired: impl Fn(u64, u64) -> bool) {
        self.entries
            .retain(|key, word| !expired(word.load(Ordering::Relaxed), *key));
        let len = self.entries.len();
        self.sweep_at = (len * 2).max(MIN_SWEEP_LEN);
        // Give back the memory of a burst of keys that has passed.
        if self.entries.capacity() > self.sweep_at * 2 {
            self.entries.shrink_to(self.sweep_at);
        }
    }
}

/// The keys are already keyed hashes: hashing them again would only cost time.
#[derive(Default)]
struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in rather than panic.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Clone, Copy, Debug)]
enum Algorithm {
    /// The word is `window index << 32 | count`. Each key's windows are offset by a phase taken
    /// from its hash, so that keys do not all reset at the same instant.
    FixedWindow { limit: u32, window: u64 },
    /// The word is the bucket's theoretical arrival time (TAT) in ns since `epoch`: the bucket
    /// is full when TAT <= now and holds `(burst - (TAT - now)) / interval` tokens otherwise.
    TokenBucket {
        capacity: u32,
        interval: u64,
        burst: u64,
    },
}

impl Algorithm {
    fn new(policy: &Policy) -> Self {
        match policy.kind() {
            Kind::FixedWindow { limit, window_ms } => Self::FixedWindow {
                limit,
                window: window_ms * 1_000_000,
            },
            Kind::TokenBucket {
                capacity,
                interval_us,
            } => Self::TokenBucket {
                capacity,
                interval: interval_us * 1_000,
                burst: interval_us * 1_000 * u64::from(capacity),
            },
        }
    }

    fn apply(&self, word: &AtomicU64, key: u64, now: u64) -> Outcome {
        match *self {
            Self::FixedWindow { limit, window } => fixed_window(word, limit, window, key, now),
            Self::TokenBucket {
                capacity,
                interval,
                burst,
            } => token_bucket(word, capacity, interval, burst, now),
        }
    }

    fn is_expired(&self, value: u64, key: u64, now: u64) -> bool {
        match *self {
            Self::FixedWindow { window, .. } => {
                (value >> 32) as u32 != window_index(key, window, now).0
            }
            Self::TokenBucket { .. } => value <= now,
        }
    }
}

/// The key's current window index (truncated to 32 bits) and the time left in it.
fn window_index(key: u64, window: u64, now: u64) -> (u32, u64) {
    let shifted = now + key % window;
    ((shifted / window) as u32, window - shifted % window)
}

fn fixed_window(word: &AtomicU64, limit: u32, window: u64, key: u64, now: u64) -> Outcome {
    let (index, reset) = window_index(key, window, now);
    let reset = Duration::from_nanos(reset);
    let mut current = word.load(Ordering::Acquire);
    loop {
        let count = if (current >> 32) as u32 == index {
            current as u32
        } else {
            0
        };
        if count >= limit {
            // Refused requests are not counted, so the counter cannot overflow.
            return Outcome {
                allowed: false,
                quota: Quota {
                    limit,
                    remaining: 0,
                    reset,
                    retry_after: Some(reset),
                },
            };
        }
        let next = u64::from(index) << 32 | u64::from(count + 1);
        match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                return Outcome {
                    allowed: true,
                    quota: Quota {
                        limit,
                        remaining: limit - count - 1,
                        reset,
                        retry_after: None,
                    },
                };
            }
            Err(actual) => current = actual,
        }
    }
}

fn token_bucket(word: &AtomicU64, capacity: u32, interval: u64, burst: u64, now: u64) -> Outcome {
    let mut current = word.load(Ordering::Acquire);
    loop {
        let tat = current.max(now);
        let next = tat + interval;
        if next - now > burst {
            let ahead = tat - now;
            return Outcome {
                allowed: false,
                quota: Quota {
                    limit: capacity,
                    remaining: (burst.saturating_sub(ahead) / interval) as u32,
                    reset: Duration::from_nanos(ahead),
                    retry_after: Some(Duration::from_nanos(next - now - burst)),
                },
            };
        }
        match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                let ahead = next - now;
                return Outcome {
                    allowed: true,
                    quota: Quota {
                        limit: capacity,
                        remaining: ((burst - ahead) / interval) as u32,
                        reset: Duration::from_nanos(ahead),
                        retry_after: None,
                    },
                };
            }
            Err(actual) => current = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(limiter: &MemoryLimiter, key: u64, n: usize) -> usize {
        (0..n).filter(|_| limiter.check(key).allowed).count()
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_window_allows_exactly_the_limit_then_rolls_over() {
        let limiter = MemoryLimiter::new(
            &Policy::fixed_window(5, Duration::from_secs(1)).unwrap(),
            Clock::Tokio,
        );
        let first = limiter.check(42);
        assert!(first.allowed);
        assert_eq!(first.quota.remaining, 4);
        assert_eq!(allowed(&limiter, 42, 10), 4);
        let refused = limiter.check(42);
        assert!(!refused.allowed);
        let reset = refused.quota.reset;
        assert_eq!(refused.quota.retry_after, Some(reset));
        assert!(reset > Duration::ZERO && reset <= Duration::from_secs(1));
        // Another key has its own count.
        assert_eq!(allowed(&limiter, 7, 10), 5);

        tokio::time::advance(reset - Duration::from_nanos(1)).await;
        assert!(!limiter.check(42).allowed);
        tokio::time::advance(Duration::from_nanos(1)).await;
        assert_eq!(allowed(&limiter, 42, 10), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn token_bucket_refills_fractionally() {
        // 2.5 tokens per second: one every 400ms.
        let limiter = MemoryLimiter::new(&Policy::token_bucket(3, 2.5).unwrap(), Clock::Tokio);
        assert_eq!(allowed(&limiter, 1, 10), 3);
        let refused = limiter.check(1);
        assert_eq!(refused.quota.retry_after, Some(Duration::from_millis(400)));
        assert_eq!(refused.quota.reset, Duration::from_millis(1200));

        tokio::time::advance(Duration::from_millis(399)).await;
        assert!(!limiter.check(1).allowed);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(allowed(&limiter, 1, 10), 1);

        tokio::time::advance(Duration::from_millis(800)).await;
        let outcome = limiter.check(1);
        assert!(outcome.allowed);
        assert_eq!(outcome.quota.remaining, 1);
        // A bucket never holds more than its capacity, however long it was idle.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(allowed(&limiter, 1, 10), 3);
    }

    #[test]
    fn the_coarse_clock_rolls_windows_over() {
        let limiter = MemoryLimiter::new(
            &Policy::fixed_window(2, Duration::from_millis(20)).unwrap(),
            Clock::Coarse,
        );
        // Two right away (a boundary between them only starts a fresh window); then refused
        // until the coarse clock carries the key into its next window.
        assert_eq!(allowed(&limiter, 9, 2), 2);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !limiter.check(9).allowed {
            assert!(
                std::time::Instant::now() < deadline,
                "the window never rolled over"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            allowed(&limiter, 9, 5),
            1,
            "one more in the new window, then refused"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expired_keys_are_swept() {
        let limiter = MemoryLimiter::new(
            &Policy::fixed_window(1, Duration::from_millis(10)).unwrap(),
            Clock::Tokio,
        );
        for key in 0..100_000u64 {
            limiter.check(key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        let peak = limiter.len();
        assert_eq!(peak, 100_000);
        for round in 1..4u64 {
            tokio::time::advance(Duration::from_millis(20)).await;
            for key in 0..100_000u64 {
                limiter.check((key + round * 1_000_000).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            }
            // Old rounds are gone: at most twice the live keys remain.
            assert!(
                limiter.len() <= 200_000,
                "round {round}: {} keys",
                limiter.len()
            );
        }
    }
}
