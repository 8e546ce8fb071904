//! Leases: tokens an instance took from Redis in one call and spends locally.
//!
//! With `lease = B`, a check that finds no live lease for its key asks Redis for up to B
//! tokens (never more than the limit has left: the scripts grant partially), takes one and
//! keeps the rest here until the window ends (fixed window) or for the time the tokens stand
//! for (token bucket). A key Redis refused is refused here until its retry time, so refused
//! traffic does not reach Redis either. Redis then sees about 1/B of the checks.
//!
//! Admissions never exceed the limit, across any number of instances: every token admitted
//! was granted by Redis first. The cost is the other way: tokens an instance holds are not
//! available to the others. Each call can leave up to B − 1 tokens unused at the end of its
//! window. Usually one call per key is out at a time, but every check that finds the lease
//! empty asks (a hot key must not wait for one round trip per B tokens), so a burst can take
//! a lease per check in flight. A client spread over instances can be refused by one while
//! another still holds its tokens.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::decision::Quota;
use crate::memory::{Clock, Epoch, Outcome, Table};
use crate::policy::MAX_LEASE;

const REMAINING_BITS: u32 = 24;
const REMAINING_MASK: u64 = (1 << REMAINING_BITS) - 1;
// A lease's tokens left fit the word's remaining count.
const _: () = assert!(MAX_LEASE as u64 == REMAINING_MASK);

/// One route's leases, by key.
///
/// A word is `valid until (ms since epoch) << 24 | tokens left`; a live word with no tokens
/// left is a refusal until then (a lease whose last token is taken is cleared to zero).
#[derive(Debug)]
pub(crate) struct LeaseTable {
    tokens: u32,
    limit: u32,
    epoch: Epoch,
    table: Table,
}

impl LeaseTable {
    /// Leases of `tokens` tokens for a route limited to `limit` requests.
    pub(crate) fn new(tokens: u32, limit: u32, clock: Clock) -> Self {
        Self {
            tokens: tokens.min(MAX_LEASE),
            limit,
            epoch: Epoch::new(clock),
            table: Table::new(),
        }
    }

    /// How many tokens a call asks Redis for.
    pub(crate) fn tokens(&self) -> u32 {
        self.tokens
    }

    fn now_ms(&self) -> u64 {
        self.epoch.nanos() / 1_000_000
    }

    /// Decides `key` from its live lease: a token taken, or refused until the lease ends.
    /// `None` when there is no live lease: ask Redis.
    pub(crate) fn take(&self, key: u64) -> Option<Outcome> {
        let now = self.now_ms();
        self.table
            .get(key, |word| {
                let mut current = word.load(Ordering::Acquire);
                loop {
                    let until = current >> REMAINING_BITS;
                    if until <= now {
                        return None;
                    }
                    let left = (current & REMAINING_MASK) as u32;
                    let reset = Duration::from_millis(until - now);
                    if left == 0 {
                        return Some(self.outcome(false, 0, reset));
                    }
                    // The last token ends the lease (a zero word has ended), so that the
                    // next check asks Redis instead of reading "no tokens" as a refusal.
                    let next = if left == 1 { 0 } else { current - 1 };
                    match word.compare_exchange_weak(
                        current,
                        next,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Some(self.outcome(true, left - 1, reset)),
                        Err(actual) => current = actual,
                    }
                }
            })
            .flatten()
    }

    /// Keeps what Redis granted beyond the token this check used (`left`), valid for `valid`;
    /// with `left == 0` and a refusal, the key is refused locally for `valid`.
    ///
    /// Tokens from two calls that raced are added up; the lease then ends at the earlier of
    /// the two ends, so no token outlives the window it was granted in. A refusal that raced
    /// a grant leaves the granted tokens alone.
    pub(crate) fn keep(&self, key: u64, left: u32, valid: Duration) {
        let now = self.now_ms();
        let until = now + (valid.as_millis() as u64).max(1);
        let left = u64::from(left.min(MAX_LEASE));
        self.table.update(
            key,
            |word| {
                let mut current = word.load(Ordering::Acquire);
                loop {
                    let (current_until, current_left) =
                        (current >> REMAINING_BITS, current & REMAINING_MASK);
                    let live = current_until > now && current_left > 0;
                    let next = if live && left == 0 {
                        // A refusal that raced a grant: the granted tokens are still good.
                        return;
                    } else if live {
                        let sum = (current_left + left).min(REMAINING_MASK);
                        current_until.min(until) << REMAINING_BITS | sum
                    } else {
                        until << REMAINING_BITS | left
                    };
                    match word.compare_exchange_weak(
                        current,
                        next,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return,
                        Err(actual) => current = actual,
                    }
                }
            },
            |word, _| word >> REMAINING_BITS <= now,
        );
    }

    fn outcome(&self, allowed: bool, left: u32, reset: Duration) -> Outcome {
        Outcome {
            allowed,
            quota: Quota {
                limit: self.limit,
                remaining: left,
                reset,
                retry_after: (!allowed).then_some(reset),
            },
        }
    }

    /// The number of keys held (live or not yet swept).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_spent_then_refuses_until_it_ends() {
        let leases = LeaseTable::new(10, 100, Clock::Tokio);
        assert_eq!(leases.take(7), None, "no lease yet: ask Redis");
        // Redis granted 3: one for the asking request, 2 kept.
        leases.keep(7, 2, Duration::from_secs(1));
        let first = leases.take(7).unwrap();
        assert!(first.allowed);
        assert_eq!(first.quota.remaining, 1);
        assert!(leases.take(7).unwrap().allowed);
        assert_eq!(leases.take(7), None, "spent: ask Redis again");

        // Redis refused: refused locally until the retry time, then Redis is asked again.
        leases.keep(7, 0, Duration::from_millis(300));
        let refused = leases.take(7).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.quota.retry_after, Some(Duration::from_millis(300)));
        tokio::time::advance(Duration::from_millis(299)).await;
        assert!(!leases.take(7).unwrap().allowed);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(leases.take(7), None);
        assert_eq!(leases.take(8), None, "keys have their own leases");
    }

    #[tokio::test(start_paused = true)]
    async fn raced_grants_add_up_and_end_with_the_earlier_window() {
        let leases = LeaseTable::new(10, 100, Clock::Tokio);
        leases.keep(1, 4, Duration::from_millis(500));
        leases.keep(1, 4, Duration::from_millis(900));
        let taken = (0..20).filter_map(|_| leases.take(1)).filter(|o| o.allowed);
        assert_eq!(taken.count(), 8);
        leases.keep(1, 5, Duration::from_millis(500));
        leases.keep(1, 0, Duration::from_millis(900));
        assert!(
            leases.take(1).unwrap().allowed,
            "a raced refusal keeps the tokens"
        );
        leases.keep(1, 5, Duration::from_millis(900));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(leases.take(1), None, "no token outlives the earlier window");
    }

    #[tokio::test(start_paused = true)]
    async fn ended_leases_are_swept() {
        let leases = LeaseTable::new(10, 100, Clock::Tokio);
        for key in 0..50_000u64 {
            leases.keep(
                key.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                3,
                Duration::from_millis(10),
            );
        }
        tokio::time::advance(Duration::from_millis(20)).await;
        for key in 0..50_000u64 {
            leases.keep(
                (key + 1_000_000).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                3,
                Duration::from_millis(10),
            );
        }
        assert!(
            leases.len() < 100_000,
            "ended leases were swept: {}",
            leases.len()
        );
    }
}
