//! Picking a target: round robin, or the less loaded of two random targets, skipping ejected
//! targets unless all of them are.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use crate::set::TargetSet;

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
    /// skipped when another one exists. Targets that are ejected or fail their health
    /// checks are skipped unless no other is left (fail open); weight 0 takes a target out
    /// unless every target has weight 0.
    pub(crate) fn pick(&self, set: &TargetSet, avoid: Option<usize>) -> usize {
        let targets = &set.targets;
        let n = targets.len();
        if n <= 1 {
            return 0;
        }
        let usable = |i: usize| Some(i) != avoid && targets[i].is_usable();
        match (&set.schedule, self.policy) {
            (None, Balance::RoundRobin) => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| usable(i))
                    .unwrap_or_else(|| fallback(start % n, n, avoid))
            }
            (None, Balance::LeastRequest) => {
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
                    (false, false) => scan(n, a, usable).unwrap_or_else(|| fallback(a, n, avoid)),
                }
            }
            (Some(schedule), policy) => {
                let len = schedule.len();
                if len == 0 {
                    // Every weight is 0: nothing to prefer, rotate over all of them.
                    let start = self.next.fetch_add(1, Ordering::Relaxed);
                    return scan(n, start % n, usable)
                        .unwrap_or_else(|| fallback(start % n, n, avoid));
                }
                let weighted = |i: usize| usable(i) && targets[i].weight > 0;
                let (first, start) = match policy {
                    Balance::RoundRobin => {
                        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
                        (schedule[start] as usize, start)
                    }
                    Balance::LeastRequest => {
                        // Two draws in proportion to weight; the lower load per unit of
                        // weight wins (compared by cross-multiplying, without division).
                        let (ia, ib) = (random_below(len), random_below(len));
                        let (a, b) = (schedule[ia] as usize, schedule[ib] as usize);
                        let pick = match (weighted(a), weighted(b)) {
                            (true, true) => {
                                let load = |x: usize, y: usize| {
                                    targets[x].in_flight() as u64 * u64::from(targets[y].weight)
                                };
                                if load(b, a) < load(a, b) { b } else { a }
                            }
                            (true, false) => a,
                            (false, true) => b,
                            (false, false) => usize::MAX,
                        };
                        if pick != usize::MAX {
                            return pick;
                        }
                        (a, ia)
                    }
                };
                if weighted(first) {
                    return first;
                }
                // Walk the cycle on from there, so skipped targets' shares spread by
                // weight too; then any usable target, whatever its weight.
                (1..len)
                    .map(|k| schedule[(start + k) % len] as usize)
                    .find(|&i| weighted(i))
                    .or_else(|| scan(n, first, usable))
                    .unwrap_or_else(|| fallback(first, n, avoid))
            }
        }
    }
}

/// The first usable index from `from` on, wrapping around.
fn scan(n: usize, from: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
    (0..n).map(|k| (from + k) % n).find(|&i| usable(i))
}

/// Every target is ejected or unhealthy (or the one left just failed): use one anyway,
/// preferring one that is not `avoid`.
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
    use crate::target::{PoolSettings, Target, TargetSpec};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::Instant;

    fn targets(n: usize) -> TargetSet {
        weighted(&vec![1; n])
    }

    fn weighted(weights: &[u32]) -> TargetSet {
        let settings = PoolSettings {
            idle_timeout: Duration::from_secs(1),
            max_idle: 1,
            max_response_head: 8192,
            body_timeout: None,
            body_timeouts: Default::default(),
        };
        let targets = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| {
                let url = format!("http://127.0.0.1:{}", 1000 + i).parse().unwrap();
                Arc::new(Target::new(
                    i as u64,
                    TargetSpec::configured(url, weight),
                    None,
                    settings.clone(),
                    Instant::now(),
                ))
            })
            .collect();
        TargetSet::new(targets)
    }

    fn shares(set: &TargetSet, balancer: &Balancer, picks: usize) -> Vec<usize> {
        let mut counts = vec![0; set.len()];
        for _ in 0..picks {
            counts[balancer.pick(set, None)] += 1;
        }
        counts
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

        targets.targets[1].eject(Duration::from_secs(60));
        let picks: Vec<usize> = (0..4).map(|_| balancer.pick(&targets, None)).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_ne!(balancer.pick(&targets, Some(0)), 0);
    }

    #[tokio::test]
    async fn all_ejected_still_picks_one() {
        let targets = targets(2);
        for target in &targets.targets {
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
        targets.targets[0].begin();
        let balancer = Balancer::new(Balance::LeastRequest);
        assert!((0..100).all(|_| balancer.pick(&targets, None) == 1));
    }

    #[test]
    fn least_request_picks_two_distinct_targets() {
        // With three targets and one of them busy, the busy one can only win when both
        // choices land on it, which distinct choices rule out.
        let targets = targets(3);
        targets.targets[2].begin();
        let balancer = Balancer::new(Balance::LeastRequest);
        assert!((0..1000).all(|_| balancer.pick(&targets, None) != 2));
    }

    #[test]
    fn weighted_round_robin_follows_the_weights_exactly() {
        let set = weighted(&[9, 1]);
        let balancer = Balancer::new(Balance::RoundRobin);
        assert_eq!(shares(&set, &balancer, 1000), [900, 100]);
        // Weight 0 is out of rotation, yet still a target.
        let set = weighted(&[2, 0, 1]);
        assert_eq!(shares(&set, &balancer, 300), [200, 0, 100]);
    }

    #[test]
    fn weighted_least_request_follows_the_weights_when_idle() {
        let set = weighted(&[9, 1]);
        let balancer = Balancer::new(Balance::LeastRequest);
        let counts = shares(&set, &balancer, 10_000);
        // Equal loads tie, and ties go to the first draw: the shares are the weights'.
        assert!((8_700..=9_300).contains(&counts[0]), "{counts:?}");
        let set = weighted(&[1, 0]);
        assert_eq!(shares(&set, &balancer, 100), [100, 0]);
    }

    #[test]
    fn weighted_least_request_compares_load_per_weight() {
        // 4 in flight on weight 4 is lighter than 2 in flight on weight 1.
        let set = weighted(&[4, 1]);
        for _ in 0..4 {
            set.targets[0].begin();
        }
        for _ in 0..2 {
            set.targets[1].begin();
        }
        let balancer = Balancer::new(Balance::LeastRequest);
        let counts = shares(&set, &balancer, 10_000);
        // The busier target per unit of weight wins only when both draws land on it
        // (1/25 of the time).
        assert!(counts[1] < 700, "{counts:?}");
    }

    #[test]
    fn unhealthy_targets_leave_rotation_until_none_is_left() {
        for policy in [Balance::RoundRobin, Balance::LeastRequest] {
            for weights in [&[1, 1, 1][..], &[3, 2, 1]] {
                let set = weighted(weights);
                let balancer = Balancer::new(policy);
                set.targets[1].set_healthy(false);
                let counts = shares(&set, &balancer, 300);
                assert_eq!(counts[1], 0, "{policy:?} {weights:?}: {counts:?}");
                assert!(counts[0] > 0 && counts[2] > 0, "{policy:?}: {counts:?}");
                // Every target unhealthy: fail open rather than refuse.
                for target in &set.targets {
                    target.set_healthy(false);
                }
                let counts = shares(&set, &balancer, 300);
                assert_eq!(counts.iter().sum::<usize>(), 300);
                assert!(counts.iter().filter(|&&c| c > 0).count() >= 2, "{counts:?}");
            }
        }
    }

    #[test]
    fn a_weighted_target_that_is_skipped_hands_its_share_on() {
        let set = weighted(&[9, 1, 0]);
        set.targets[0].set_healthy(false);
        let balancer = Balancer::new(Balance::RoundRobin);
        // The healthy weighted target takes everything; weight 0 stays out while another
        // target can serve.
        assert_eq!(shares(&set, &balancer, 100), [0, 100, 0]);
        set.targets[1].eject(Duration::from_secs(60));
        let counts = shares(&set, &balancer, 10);
        assert_eq!(
            counts[2], 10,
            "only the weight-0 target is usable: {counts:?}"
        );
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
