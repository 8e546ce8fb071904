//! Picking a target: round robin, or the less loaded of two random targets, skipping ejected
//! targets unless all of them are.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use crate::target::Target;

/// How an upstream spreads requests over its targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each target in turn (`"round_robin"`).
    #[default]
    RoundRobin,
    /// The target with fewer requests in flight of two picked at random (`"least_request"`,
    /// power of two choices).
    LeastRequest,
}

/// The selection state of one upstream.
#[derive(Debug)]
pub(crate) struct Balancer {
    policy: Balance,
    next: AtomicUsize,
}

impl Balancer {
    pub(crate) fn new(policy: Balance) -> Self {
        Self {
            policy,
            next: AtomicUsize::new(0),
        }
    }

    /// The index of the target for the next attempt; `avoid` is a target that just failed,
    /// skipped when another one exists.
    pub(crate) fn pick(&self, targets: &[Arc<Target>], avoid: Option<usize>) -> usize {
        let n = targets.len();
        if n <= 1 {
            return 0;
        }
        let usable = |i: usize| Some(i) != avoid && !targets[i].is_ejected();
        match self.policy {
            Balance::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| usable(i))
                    .unwrap_or_else(|| fallback(start % n, n, avoid))
            }
            Balance::LeastRequest => {
                let a = random_below(n);
                // A second, distinct index.
                let b = (a + 1 + random_below(n - 1)) % n;
                match (usable(a), usable(b)) {
                    (true, true) => {
                        if targets[b].in_flight() < targets[a].in_flight() {
                            b
                        } else {
                            a
                        }
                    }
                    (true, false) => a,
                    (false, true) => b,
                    (false, false) => (0..n)
                        .map(|k| (a + k) % n)
                        .find(|&i| usable(i))
                        .unwrap_or_else(|| fallback(a, n, avoid)),
                }
            }
        }
    }
}

/// Every target is ejected (or the one left just failed): use one anyway, preferring one
/// that is not `avoid`.
fn fallback(candidate: usize, n: usize, avoid: Option<usize>) -> usize {
    if Some(candidate) == avoid {
        (candidate + 1) % n
    } else {
        candidate
    }
}

thread_local! {
    // xorshift64* state; seeded from the std hasher's per-thread random keys.
    static RNG: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish() | 1);
}

/// A number in `0..n` (`n > 0`), from a cheap thread-local generator.
fn random_below(n: usize) -> usize {
    let x = RNG
        .try_with(|rng| {
            let mut x = rng.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            rng.set(x);
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        })
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    // Multiply-shift maps the 64 random bits onto 0..n without a division.
    ((u128::from(x >> 32) * n as u128) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::PoolSettings;
    use std::time::Duration;
    use tokio::time::Instant;

    fn targets(n: usize) -> Vec<Arc<Target>> {
        let settings = PoolSettings {
            idle_timeout: Duration::from_secs(1),
            max_idle: 1,
            max_response_head: 8192,
            body_timeout: None,
            body_timeouts: Default::default(),
        };
        (0..n)
            .map(|i| {
                let url = format!("http://127.0.0.1:{}", 1000 + i).parse().unwrap();
                Arc::new(Target::new(
                    i as u64,
                    url,
                    None,
                    settings.clone(),
                    Instant::now(),
                ))
            })
            .collect()
    }

    #[test]
    fn random_below_stays_in_range_and_covers_it() {
        let mut seen = [0usize; 5];
        for _ in 0..10_000 {
            seen[random_below(5)] += 1;
        }
        assert!(seen.iter().all(|&count| count > 1_000), "{seen:?}");
    }

    #[tokio::test]
    async fn round_robin_skips_ejected_and_avoided_targets() {
        let targets = targets(3);
        let balancer = Balancer::new(Balance::RoundRobin);
        let picks: Vec<usize> = (0..6).map(|_| balancer.pick(&targets, None)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);

        targets[1].eject(Duration::from_secs(60));
        let picks: Vec<usize> = (0..4).map(|_| balancer.pick(&targets, None)).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_ne!(balancer.pick(&targets, Some(0)), 0);
    }

    #[tokio::test]
    async fn all_ejected_still_picks_one() {
        let targets = targets(2);
        for target in &targets {
            target.eject(Duration::from_secs(60));
        }
        for policy in [Balance::RoundRobin, Balance::LeastRequest] {
            let balancer = Balancer::new(policy);
            assert!(balancer.pick(&targets, None) < 2);
            assert_eq!(balancer.pick(&targets, Some(1)), 0);
        }
    }

    #[test]
    fn least_request_prefers_the_less_loaded() {
        let targets = targets(2);
        targets[0].begin();
        let balancer = Balancer::new(Balance::LeastRequest);
        assert!((0..100).all(|_| balancer.pick(&targets, None) == 1));
    }

    #[test]
    fn least_request_picks_two_distinct_targets() {
        // With three targets and one of them busy, the busy one can only win when both
        // choices land on it, which distinct choices rule out.
        let targets = targets(3);
        targets[2].begin();
        let balancer = Balancer::new(Balance::LeastRequest);
        assert!((0..1000).all(|_| balancer.pick(&targets, None) != 2));
    }

    #[test]
    fn balance_deserializes_from_snake_case() {
        fn parse(s: &str) -> serde::de::value::StrDeserializer<'_, serde::de::value::Error> {
            serde::de::value::StrDeserializer::new(s)
        }
        assert_eq!(
            Balance::deserialize(parse("least_request")).unwrap(),
            Balance::LeastRequest
        );
        assert_eq!(
            Balance::deserialize(parse("round_robin")).unwrap(),
            Balance::RoundRobin
        );
        assert!(Balance::deserialize(parse("random")).is_err());
    }
}
