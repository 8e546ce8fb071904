//! Leases: tokens an instance took from Redis in one call and spends locally.
//!
//! With `lease = B`, a check that finds no live lease for its key asks Redis for up to B
//! tokens (never more than the limit has left: the scripts grant partially), takes one and
//! keeps the rest here until the window ends (fixed window) or for the time the tokens stand
//! for (token bucket). A key Redis refused is refused here until its retry time, so refused
//! traffic does not reach Redis either. Redis then sees about 1/B of the checks.
//!
//! One lease request per key is out at a time: checks of the key that arrive meanwhile ask
//! Redis for their own token only, so a burst of them does not pile up B tokens each.
//!
//! Admissions never exceed the limit, across any number of instances: every token admitted
//! was granted by Redis first. The cost is the other way: tokens an instance holds are not
//! available to the others, so at most B − 1 tokens per instance and key can go unused in a
//! window, and a client spread over instances can be refused by one while another still holds
//! its tokens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::decision::Quota;
use crate::memory::{Clock, Epoch, Outcome, Table};

/// The largest lease: the remaining count has 23 bits of a word.
pub(crate) const MAX_LEASE: u32 = (1 << 23) - 1;
const LOW_BITS: u32 = 24;
/// Set while one check of the key is asking Redis for a lease.
const ASKING: u64 = 1 << 23;
const REMAINING_MASK: u64 = ASKING - 1;

/// What a check does about its key's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// Decided locally: a token of the lease, or the key's remembered refusal.
    Decided(Outcome),
    /// No live lease: ask Redis for this many tokens. `true` when this check is the one
    /// asking for the key's lease, and so must settle it with [`LeaseTable::keep`] or
    /// [`LeaseTable::release`].
    Ask(u32, bool),
}

/// One route's leases, by key.
///
/// A word is `valid until (ms since epoch) << 24 | asking bit | tokens left`. A live word with
/// no tokens left and no asking bit is a refusal until then; a lease whose last token is
/// taken is cleared to zero.
#[derive(Debug)]
pub(crate) struct LeaseTable {
    tokens: u32,
    limit: u32,
    /// How long an ask may be out before another check may ask again.
    ask_for: Duration,
    epoch: Epoch,
    table: Table,
}

impl LeaseTable {
    /// Leases of `tokens` tokens for a route limited to `limit` requests; a lease request
    /// takes at most `ask_for` (the Redis timeout).
    pub(crate) fn new(tokens: u32, limit: u32, ask_for: Duration, clock: Clock) -> Self {
        Self {
            tokens: tokens.min(MAX_LEASE),
            limit,
            ask_for,
            epoch: Epoch::new(clock),
            table: Table::new(),
        }
    }

    /// How many tokens a lease request asks Redis for.
    pub(crate) fn tokens(&self) -> u32 {
        self.tokens
    }

    fn now_ms(&self) -> u64 {
        self.epoch.nanos() / 1_000_000
    }

    /// Decides `key` from its live lease, or says how many tokens to ask Redis for.
    pub(crate) fn take(&self, key: u64) -> Take {
        let now = self.now_ms();
        self.table.update(
            key,
            |word| {
                let mut current = word.load(Ordering::Acquire);
                loop {
                    let until = current >> LOW_BITS;
                    let live = until > now;
                    let (next, take) = if live && current & ASKING != 0 {
                        return Take::Ask(1, false);
                    } else if live {
                        let left = (current & REMAINING_MASK) as u32;
                        let reset = Duration::from_millis(until - now);
                        if left == 0 {
                            return Take::Decided(self.outcome(false, 0, reset));
                        }
                        // The last token ends the lease (a zero word has ended), so that the
                        // next check asks Redis instead of reading "no tokens" as a refusal.
                        let next = if left == 1 { 0 } else { current - 1 };
                        (next, Take::Decided(self.outcome(true, left - 1, reset)))
                    } else {
                        let asking_until = now + (self.ask_for.as_millis() as u64).max(1);
                        (
                            asking_until << LOW_BITS | ASKING,
                            Take::Ask(self.tokens, true),
                        )
                    };
                    match word.compare_exchange_weak(
                        current,
                        next,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return take,
                        Err(actual) => current = actual,
                    }
                }
            },
            |word, _| word >> LOW_BITS <= now,
        )
    }

    /// Keeps what Redis granted beyond the token this check used (`left`), valid for `valid`;
    /// with `left == 0` (a refusal), the key is refused locally for `valid`.
    ///
    /// Tokens from two grants that raced are added up; the lease then ends at the earlier of
    /// the two ends, so no token outlives the window it was granted in. A refusal that raced
    /// a grant leaves the granted tokens alone.
    pub(crate) fn keep(&self, key: u64, left: u32, valid: Duration) {
        let now = self.now_ms();
        let until = now + (valid.as_millis() as u64).max(1);
        let left = u64::from(left.min(MAX_LEASE));
        self.settle(key, |current| {
            let (current_until, current_left) = (current >> LOW_BITS, current & REMAINING_MASK);
            let live = current_until > now && current & ASKING == 0 && current_left > 0;
            if live && left == 0 {
                None
            } else if live {
                let sum = (current_left + left).min(REMAINING_MASK);
                Some(current_until.min(until) << LOW_BITS | sum)
            } else {
                Some(until << LOW_BITS | left)
            }
        });
    }

    /// Ends this check's ask without keeping anything (Redis granted just the one token the
    /// check used, or did not answer): the next check asks again.
    pub(crate) fn release(&self, key: u64) {
        self.settle(key, |current| (current & ASKING != 0).then_some(0));
    }

    /// Replaces the word of `key` with what `next` makes of it (`None`: leave it).
    fn settle(&self, key: u64, next: impl Fn(u64) -> Option<u64>) {
        let now = self.now_ms();
        let update = |word: &AtomicU64| {
            let mut current = word.load(Ordering::Acquire);
            while let Some(next) = next(current) {
                match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return,
                    Err(actual) => current = actual,
                }
            }
        };
        self.table
            .update(key, update, |word, _| word >> LOW_BITS <= now);
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

    fn leases() -> LeaseTable {
        LeaseTable::new(10, 100, Duration::from_millis(50), Clock::Tokio)
    }

    fn allowed(take: Take) -> bool {
        matches!(take, Take::Decided(outcome) if outcome.allowed)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_spent_then_refuses_until_it_ends() {
        let leases = leases();
        assert_eq!(
            leases.take(7),
            Take::Ask(10, true),
            "no lease yet: ask Redis"
        );
        // Redis granted 3: one for the asking check, 2 kept.
        leases.keep(7, 2, Duration::from_secs(1));
        let Take::Decided(first) = leases.take(7) else {
            panic!("a live lease decides")
        };
        assert!(first.allowed);
        assert_eq!(first.quota.remaining, 1);
        assert!(allowed(leases.take(7)));
        assert_eq!(
            leases.take(7),
            Take::Ask(10, true),
            "spent: ask Redis again"
        );

        // Redis refused: refused locally until the retry time, then Redis is asked again.
        leases.keep(7, 0, Duration::from_millis(300));
        let Take::Decided(refused) = leases.take(7) else {
            panic!("a refusal is remembered")
        };
        assert!(!refused.allowed);
        assert_eq!(refused.quota.retry_after, Some(Duration::from_millis(300)));
        tokio::time::advance(Duration::from_millis(299)).await;
        assert!(matches!(leases.take(7), Take::Decided(o) if !o.allowed));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(leases.take(7), Take::Ask(10, true));
        assert_eq!(
            leases.take(8),
            Take::Ask(10, true),
            "keys have their own leases"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_check_at_a_time_asks_for_a_lease() {
        let leases = leases();
        assert_eq!(leases.take(1), Take::Ask(10, true));
        // Meanwhile the key's other checks ask for their own token only.
        assert_eq!(leases.take(1), Take::Ask(1, false));
        assert_eq!(leases.take(1), Take::Ask(1, false));
        // Released (Redis granted only the asking check's token): the next check asks.
        leases.release(1);
        assert_eq!(leases.take(1), Take::Ask(10, true));
        // An ask that never settles (the check went away) lapses after the Redis timeout.
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(leases.take(1), Take::Ask(10, true));
        // A grant replaces the ask.
        leases.keep(1, 9, Duration::from_secs(1));
        assert!(allowed(leases.take(1)));
        // Releasing a key that is not asking changes nothing.
        leases.release(1);
        assert!(allowed(leases.take(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn raced_grants_add_up_and_end_with_the_earlier_window() {
        let leases = leases();
        leases.keep(1, 4, Duration::from_millis(500));
        leases.keep(1, 4, Duration::from_millis(900));
        let taken = (0..20).filter(|_| allowed(leases.take(1))).count();
        assert_eq!(taken, 8);
        leases.keep(1, 5, Duration::from_millis(500));
        leases.keep(1, 0, Duration::from_millis(900));
        assert!(allowed(leases.take(1)), "a raced refusal keeps the tokens");
        leases.keep(1, 5, Duration::from_millis(900));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(
            leases.take(1),
            Take::Ask(10, true),
            "no token outlives the earlier window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ended_leases_are_swept() {
        let leases = leases();
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
