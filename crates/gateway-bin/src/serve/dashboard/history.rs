//! The dashboard's last five minutes per route: a background task samples the counters the
//! metrics already keep and stores what changed since the previous sample in a fixed-size
//! ring, so nothing is added to the request path and memory stays bounded per route.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::observe::metrics::{BUCKETS, Registry};

/// Time between two samples.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// Samples kept per route: five minutes at [`SAMPLE_EVERY`].
pub(crate) const SAMPLES: usize = 150;

/// A ring of `N` slots keeping the newest values; once full, a push overwrites the oldest.
#[derive(Debug)]
pub(crate) struct Ring<T, const N: usize> {
    slots: [T; N],
    /// The slot the next push writes.
    next: usize,
    len: usize,
}

impl<T: Default, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| T::default()),
            next: 0,
            len: 0,
        }
    }
}

impl<T, const N: usize> Ring<T, N> {
    /// Stores `value`, dropping the oldest when the ring is full.
    pub(crate) fn push(&mut self, value: T) {
        if N == 0 {
            return;
        }
        self.slots[self.next] = value;
        self.next = (self.next + 1) % N;
        self.len = (self.len + 1).min(N);
    }

    /// How many values are held (at most `N`).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The values held, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        // The oldest sits at `next` once the ring wrapped, at 0 before.
        let start = (self.next + N - self.len) % N.max(1);
        (0..self.len).map(move |i| &self.slots[(start + i) % N])
    }
}

/// What one route did during one sample interval (28 bytes, so 150 of them are ~4 KiB).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Sample {
    /// Requests finished per second.
    pub(crate) requests_per_second: f32,
    /// Median request duration in milliseconds; NaN when no request finished.
    pub(crate) p50_ms: f32,
    /// 99th percentile request duration in milliseconds; NaN when no request finished.
    pub(crate) p99_ms: f32,
    /// Requests finished by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub(crate) statuses: [u32; 5],
}

/// A route's counters at the previous sample.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    statuses: [u64; 5],
    buckets: [u64; BUCKETS.len() + 1],
}

/// One route's ring and the totals it is differenced against.
#[derive(Debug, Default)]
struct RouteHistory {
    /// The address of the metrics read last: a route rebuilt with another upstream gets new
    /// metrics counting from zero, and its first sample must not be taken against the old.
    series: usize,
    last: Totals,
    samples: Ring<Sample, SAMPLES>,
}

/// Every route's history, keyed by route name (as the metrics are, so it outlives reloads).
#[derive(Debug, Default)]
pub(crate) struct History {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    routes: HashMap<String, RouteHistory>,
    last_sample: Option<Instant>,
    newest_at: Option<SystemTime>,
}

/// One route's samples as the status reports them.
pub(crate) struct RouteSamples {
    /// Oldest first.
    pub(crate) samples: Vec<Sample>,
    /// When the newest sample was taken.
    pub(crate) newest_at: Option<SystemTime>,
}

impl History {
    /// Reads every route's counters and appends what changed since the last call. The first
    /// sight of a route only records its totals: a sample needs an interval.
    pub(crate) fn sample(&self, registry: &Registry, now: Instant) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let elapsed = inner
            .last_sample
            .map(|last| now.saturating_duration_since(last));
        inner.last_sample = Some(now);
        inner.newest_at = Some(SystemTime::now());
        for route in registry.routes() {
            let series = std::ptr::from_ref(route).addr();
            let totals = Totals {
                statuses: route.status_classes(),
                buckets: route.duration().counts(),
            };
            match (inner.routes.get_mut(route.name()), elapsed) {
                (Some(history), Some(elapsed)) => {
                    if history.series != series {
                        history.series = series;
                        history.last = Totals::default();
                    }
                    let sample = difference(&history.last, &totals, elapsed);
                    history.samples.push(sample);
                    history.last = totals;
                }
                (Some(history), None) => {
                    history.series = series;
                    history.last = totals;
                }
                (None, _) => {
                    inner.routes.insert(
                        route.name().to_owned(),
                        RouteHistory {
                            series,
                            last: totals,
                            samples: Ring::default(),
                        },
                    );
                }
            }
        }
    }

    /// A route's samples, oldest first (empty for a route not sampled yet).
    pub(crate) fn of(&self, route: &str) -> RouteSamples {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        RouteSamples {
            samples: inner
                .routes
                .get(route)
                .map(|history| {
                    let mut samples = Vec::with_capacity(history.samples.len());
                    samples.extend(history.samples.iter().copied());
                    samples
                })
                .unwrap_or_default(),
            newest_at: inner.newest_at,
        }
    }
}

/// What happened between two readings of a route's counters.
fn difference(before: &Totals, now: &Totals, elapsed: Duration) -> Sample {
    let delta = |now: u64, before: u64| now.saturating_sub(before);
    let statuses: [u64; 5] = std::array::from_fn(|i| delta(now.statuses[i], before.statuses[i]));
    let buckets: [u64; BUCKETS.len() + 1] =
        std::array::from_fn(|i| delta(now.buckets[i], before.buckets[i]));
    let finished: u64 = buckets.iter().sum();
    let seconds = elapsed.as_secs_f64();
    Sample {
        requests_per_second: if seconds > 0.0 {
            (finished as f64 / seconds) as f32
        } else {
            0.0
        },
        p50_ms: quantile_ms(&buckets, 0.5).map_or(f32::NAN, |ms| ms as f32),
        p99_ms: quantile_ms(&buckets, 0.99).map_or(f32::NAN, |ms| ms as f32),
        statuses: statuses.map(|count| u32::try_from(count).unwrap_or(u32::MAX)),
    }
}

/// The `q` quantile of bucket counts, interpolated linearly inside its bucket as Prometheus'
/// `histogram_quantile` does (above the largest bound: that bound); `None` without counts.
pub(crate) fn quantile_ms(buckets: &[u64; BUCKETS.len() + 1], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    let mut lower = 0.0;
    for (index, &count) in buckets.iter().enumerate() {
        let Some(&upper) = BUCKETS.get(index) else {
            return Some(lower * 1e3);
        };
        if count > 0 && (below + count) as f64 >= rank {
            let within = (rank - below as f64) / count as f64;
            return Some((lower + (upper - lower) * within) * 1e3);
        }
        below += count;
        lower = upper;
    }
    Some(lower * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_values_in_order_once_it_wraps() {
        let mut ring: Ring<u32, 3> = Ring::default();
        assert_eq!(ring.iter().count(), 0);
        ring.push(1);
        ring.push(2);
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), [1, 2]);
        for value in 3..=7 {
            ring.push(value);
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), [5, 6, 7]);
    }

    #[test]
    fn ring_size_is_fixed_by_its_type() {
        let mut ring: Ring<Sample, SAMPLES> = Ring::default();
        let before = std::mem::size_of_val(&ring);
        for _ in 0..SAMPLES * 3 {
            ring.push(Sample::default());
        }
        assert_eq!(ring.len(), SAMPLES);
        assert_eq!(std::mem::size_of_val(&ring), before);
        // A few KiB per route, as promised.
        assert!(before < 5 << 10, "{before} bytes");
    }

    #[test]
    fn a_sample_is_the_difference_of_two_readings() {
        let registry = Registry::default();
        let route = registry.route("users", "app");
        let history = History::default();
        let start = Instant::now();
        route.record(&http::Method::GET, 200, Duration::from_millis(3));
        history.sample(&registry, start);
        assert!(history.of("users").samples.is_empty());

        for _ in 0..3 {
            route.record(&http::Method::GET, 200, Duration::from_millis(3));
        }
        route.record(&http::Method::POST, 503, Duration::from_millis(300));
        history.sample(&registry, start + Duration::from_secs(2));
        let samples = history.of("users").samples;
        assert_eq!(samples.len(), 1);
        let sample = samples[0];
        assert_eq!(sample.statuses, [0, 3, 0, 0, 1]);
        assert_eq!(sample.requests_per_second, 2.0);
        assert!((2.5..=5.0).contains(&sample.p50_ms), "{sample:?}");
        assert!((250.0..=500.0).contains(&sample.p99_ms), "{sample:?}");

        history.sample(&registry, start + Duration::from_secs(4));
        let quiet = *history.of("users").samples.last().unwrap();
        assert_eq!(quiet.requests_per_second, 0.0);
        assert!(quiet.p50_ms.is_nan());
    }

    #[test]
    fn a_route_rebuilt_with_another_upstream_counts_from_zero() {
        let registry = Registry::default();
        let history = History::default();
        let start = Instant::now();
        let before = registry.route("users", "old");
        for _ in 0..10 {
            before.record(&http::Method::GET, 200, Duration::from_millis(1));
        }
        history.sample(&registry, start);
        let after = registry.route("users", "new");
        for _ in 0..4 {
            after.record(&http::Method::GET, 500, Duration::from_millis(1));
        }
        history.sample(&registry, start + Duration::from_secs(2));
        let sample = history.of("users").samples[0];
        assert_eq!(sample.statuses, [0, 0, 0, 0, 4]);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let mut buckets = [0; BUCKETS.len() + 1];
        assert_eq!(quantile_ms(&buckets, 0.5), None);
        // Ten observations in (5ms, 10ms].
        buckets[4] = 10;
        let median = quantile_ms(&buckets, 0.5).unwrap();
        assert!((median - 7.5).abs() < 1e-9, "{median}");
        buckets[BUCKETS.len()] = 1000;
        assert_eq!(quantile_ms(&buckets, 0.99), Some(10_000.0));
    }
}
