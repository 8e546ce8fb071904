//! The sliding window of the failure rate: ten time buckets, striped across threads so that
//! recording a call writes a cache line that no other thread writes.
//!
//! Each (stripe, bucket) cell is one atomic word holding the bucket's tag (its index in time,
//! modulo 2^24), its failures and its calls; a cell whose tag is not a bucket of the current
//! window is stale and reads as empty, so buckets never need a sweeper.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::RatePolicy;
use crate::striped::{Padded, stripe_count, this_thread_stripe};

/// Buckets per window: the window slides by a tenth of its length.
const BUCKETS: usize = 10;

const COUNT_BITS: u32 = 20;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const TAG_SHIFT: u32 = 2 * COUNT_BITS;
const TAG_MASK: u64 = (1 << (64 - TAG_SHIFT)) - 1;

/// The cells one thread writes: all its buckets on one cache line.
type Row = Padded<[AtomicU64; BUCKETS]>;

/// Calls and failures over the last window.
#[derive(Debug)]
pub(crate) struct Window {
    bucket_ms: u64,
    threshold: f64,
    min_calls: u64,
    rows: Box<[Row]>,
}

impl Window {
    pub(crate) fn new(policy: &RatePolicy) -> Self {
        Self {
            bucket_ms: (policy.window_ms / BUCKETS as u64).max(1),
            threshold: policy.threshold,
            min_calls: policy.min_calls,
            rows: (0..stripe_count())
                .map(|_| Padded(Default::default()))
                .collect(),
        }
    }

    /// Counts one call at `now_ms` in the calling thread's stripe.
    pub(crate) fn record(&self, now_ms: u64, failed: bool) {
        let index = now_ms / self.bucket_ms;
        let tag = index & TAG_MASK;
        let cell = &self.rows[this_thread_stripe(self.rows.len())].0[index as usize % BUCKETS];
        let mut current = cell.load(Ordering::Relaxed);
        loop {
            let (calls, failures) = if current >> TAG_SHIFT == tag {
                counts(current)
            } else {
                (0, 0)
            };
            // Saturate rather than wrap: the rate stays about right even at absurd call rates.
            let next = tag << TAG_SHIFT
                | ((failures + u64::from(failed)).min(COUNT_MAX) << COUNT_BITS)
                | (calls + 1).min(COUNT_MAX);
            match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Whether the window's failure rate calls for opening the circuit at `now_ms`.
    pub(crate) fn should_trip(&self, now_ms: u64) -> bool {
        let (calls, failures) = self.totals(now_ms);
        calls >= self.min_calls && failures as f64 >= self.threshold * calls as f64
    }

    /// Calls and failures in the window ending at `now_ms`.
    pub(crate) fn totals(&self, now_ms: u64) -> (u64, u64) {
        let newest = now_ms / self.bucket_ms;
        let mut totals = (0, 0);
        for row in self.rows.iter() {
            for age in 0..(BUCKETS as u64).min(newest + 1) {
                let index = newest - age;
                let cell = row.0[index as usize % BUCKETS].load(Ordering::Relaxed);
                if cell >> TAG_SHIFT == index & TAG_MASK {
                    let (calls, failures) = counts(cell);
                    totals.0 += calls;
                    totals.1 += failures;
                }
            }
        }
        totals
    }

    /// Forgets every call (on close: the failures that opened the circuit are history).
    pub(crate) fn clear(&self) {
        for row in self.rows.iter() {
            for cell in &row.0 {
                // Zero counts, whatever the tag says.
                cell.store(0, Ordering::Relaxed);
            }
        }
    }
}

fn counts(cell: u64) -> (u64, u64) {
    (cell & COUNT_MAX, (cell >> COUNT_BITS) & COUNT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(threshold: f64, window_ms: u64, min_calls: u64) -> Window {
        Window::new(&RatePolicy {
            threshold,
            window_ms,
            min_calls,
        })
    }

    #[test]
    fn counts_within_the_window_only() {
        let w = window(0.5, 1000, 1);
        w.record(0, true);
        w.record(50, false);
        w.record(950, true);
        assert_eq!(w.totals(950), (3, 2));
        // At 1000ms the first bucket (0-99ms) has slid out.
        assert_eq!(w.totals(1000), (1, 1));
        assert_eq!(w.totals(1999), (0, 0));
    }

    #[test]
    fn a_reused_bucket_starts_from_zero() {
        let w = window(0.5, 1000, 1);
        w.record(10, true);
        w.record(1010, false);
        assert_eq!(w.totals(1010), (1, 0));
    }

    #[test]
    fn trips_at_the_rate_once_min_calls_are_in() {
        let w = window(0.5, 10_000, 4);
        w.record(0, true);
        w.record(0, true);
        w.record(0, true);
        assert!(!w.should_trip(0), "3 calls are fewer than min_calls");
        w.record(0, false);
        assert!(w.should_trip(0), "3 of 4 failed");
        w.clear();
        assert_eq!(w.totals(0), (0, 0));
    }

    #[test]
    fn stripes_add_up() {
        let w = window(0.5, 10_000, 1);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..1000 {
                        w.record(5, i % 4 == 0);
                    }
                });
            }
        });
        assert_eq!(w.totals(5), (4000, 1000));
    }
}
