//! The targets an upstream balances over: fixed when every target is an IP address,
//! swapped whole when discovery changes them.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::target::Target;

/// Longest weighted schedule kept; larger weight sums are scaled down to fit.
const MAX_SCHEDULE: u64 = 4096;

/// One version of an upstream's targets, with the order weights give them.
#[derive(Debug)]
pub(crate) struct TargetSet {
    pub(crate) targets: Box<[Arc<Target>]>,
    /// Target indices in smooth weighted round-robin order, each appearing as often as its
    /// weight (after dividing by the weights' GCD); `None` when every weight is equal and
    /// non-zero, where plain rotation is the same and cheaper.
    pub(crate) schedule: Option<Box<[u32]>>,
}

impl TargetSet {
    pub(crate) fn new(targets: Vec<Arc<Target>>) -> Self {
        let weights: Vec<u64> = targets.iter().map(|t| u64::from(t.weight)).collect();
        let uniform = weights.first().is_some_and(|&first| first > 0)
            && weights.iter().all(|&w| w == weights[0]);
        let schedule = (!uniform).then(|| smooth_schedule(&weights));
        Self {
            targets: targets.into_boxed_slice(),
            schedule,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.targets.len()
    }
}

/// The targets of an upstream, as requests see them.
#[derive(Debug)]
pub(crate) enum Targets {
    /// Never changes: read without any atomic.
    Fixed(TargetSet),
    /// Replaced by discovery; a request works on the version it loaded.
    Discovered(ArcSwap<TargetSet>),
}

impl Targets {
    /// Runs `f` on the current set.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&TargetSet) -> R) -> R {
        match self {
            Self::Fixed(set) => f(set),
            Self::Discovered(current) => f(&current.load()),
        }
    }

    /// The current set, owned (for background tasks and status).
    pub(crate) fn snapshot(&self) -> Arc<TargetSet> {
        match self {
            Self::Fixed(set) => Arc::new(TargetSet {
                targets: set.targets.clone(),
                schedule: set.schedule.clone(),
            }),
            Self::Discovered(current) => current.load_full(),
        }
    }

    /// Replaces the set (no-op on a fixed one, which has no discovery).
    pub(crate) fn replace(&self, set: TargetSet) {
        if let Self::Discovered(current) = self {
            current.store(Arc::new(set));
        }
    }
}

/// Smooth weighted round robin (each step: every target gains its weight, the richest is
/// picked and pays the total), unrolled into one cycle so that picking is an index.
fn smooth_schedule(weights: &[u64]) -> Box<[u32]> {
    let weights = fit(weights);
    let total: u64 = weights.iter().sum();
    let mut credit = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            credit[i] += w as i64;
            if w > 0 && (weights[best] == 0 || credit[i] > credit[best]) {
                best = i;
            }
        }
        credit[best] -= total as i64;
        order.push(best as u32);
    }
    order.into_boxed_slice()
}

/// Weights reduced by their GCD, and scaled down (keeping non-zero ones at least 1) when
/// their sum would make the cycle longer than [`MAX_SCHEDULE`].
fn fit(weights: &[u64]) -> Vec<u64> {
    let gcd = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    let mut reduced: Vec<u64> = weights.iter().map(|&w| w / gcd).collect();
    let total: u64 = reduced.iter().sum();
    if total > MAX_SCHEDULE {
        for w in &mut reduced {
            if *w > 0 {
                *w = (*w * MAX_SCHEDULE / total).max(1);
            }
        }
    }
    reduced
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(schedule: &[u32], n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &i in schedule {
            counts[i as usize] += 1;
        }
        counts
    }

    #[test]
    fn each_target_appears_as_often_as_its_weight() {
        let schedule = smooth_schedule(&[9, 1]);
        assert_eq!(counts(&schedule, 2), [9, 1]);
        let schedule = smooth_schedule(&[5, 3, 2]);
        assert_eq!(counts(&schedule, 3), [5, 3, 2]);
        // Reduced by the GCD: the same shares in a shorter cycle.
        let schedule = smooth_schedule(&[300, 100]);
        assert_eq!(counts(&schedule, 2), [3, 1]);
    }

    #[test]
    fn smooth_order_interleaves_instead_of_bursting() {
        // Not "a a a a a b b b c c": the heavy target never runs more than twice in a row
        // here, and every target shows up in each half of the cycle.
        let schedule = smooth_schedule(&[5, 3, 2]);
        assert_eq!(&*schedule, [0, 1, 2, 0, 0, 1, 0, 2, 1, 0]);
        let schedule = smooth_schedule(&[2, 1]);
        assert_eq!(&*schedule, [0, 1, 0]);
    }

    #[test]
    fn zero_weights_never_appear() {
        let schedule = smooth_schedule(&[0, 2, 0, 1]);
        assert_eq!(counts(&schedule, 4), [0, 2, 0, 1]);
        assert!(smooth_schedule(&[0, 0]).is_empty());
    }

    #[test]
    fn huge_weight_sums_are_scaled_into_a_bounded_cycle() {
        let schedule = smooth_schedule(&[1_000_000, 999_999, 1]);
        assert!(
            schedule.len() as u64 <= MAX_SCHEDULE + 3,
            "{}",
            schedule.len()
        );
        let counts = counts(&schedule, 3);
        assert!(counts[2] >= 1, "a non-zero weight keeps a slot: {counts:?}");
        assert!(counts[0].abs_diff(counts[1]) <= 2, "{counts:?}");
    }
}
