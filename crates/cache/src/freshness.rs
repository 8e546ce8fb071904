//! Freshness and age arithmetic (RFC 9111 section 4.2), done once when a response is stored
//! and then read with a monotonic clock.
//!
//! The wall clock is needed only while storing (`Date`, `Expires`, the apparent age); after
//! that an entry's age grows with [`Instant`], tokio's monotonic clock, so tests can pause
//! and advance it.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{AGE, DATE, EXPIRES};
use tokio::time::Instant;

use crate::control::{Directives, MAX_DELTA};

/// When the exchange that produced a response happened.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exchange {
    /// When the request was sent upstream (monotonic).
    pub(crate) request_time: Instant,
    /// When the response headers arrived (monotonic).
    pub(crate) response_time: Instant,
    /// The wall-clock time at `response_time`, to compare with the response's dates.
    pub(crate) response_wall: SystemTime,
}

impl Exchange {
    /// An exchange that started at `request_time` and whose response arrived now.
    pub(crate) fn since(request_time: Instant) -> Self {
        Self {
            request_time,
            response_time: Instant::now(),
            response_wall: SystemTime::now(),
        }
    }
}

/// The route's defaults for what a response does not say itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Defaults {
    pub(crate) ttl: Duration,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
}

/// The freshness of a stored response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// `response_time`: residency is counted from here.
    stored_at: Instant,
    /// The corrected initial age: what the response's age was when it arrived.
    initial_age: Duration,
    /// How long the response is fresh, counted in age.
    lifetime: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
    /// Once stale, never served without a successful validation (`must-revalidate`,
    /// `proxy-revalidate`, `s-maxage`, `no-cache`).
    must_revalidate: bool,
}

/// How a stored response's lifetime was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// `s-maxage`, `max-age` or `Expires`.
    Explicit(Duration),
    /// The route's `default_ttl` (no explicit freshness).
    Default(Duration),
}

impl Lifetime {
    pub(crate) fn get(self) -> Duration {
        match self {
            Self::Explicit(d) | Self::Default(d) => d,
        }
    }
}

/// The freshness lifetime of a response (RFC 9111 section 4.2.1): `s-maxage` (a shared
/// cache's own), else `max-age`, else `Expires - Date`, else the route's default. `no-cache`
/// makes it zero: such a response is stored only to be revalidated.
pub(crate) fn lifetime(
    headers: &HeaderMap,
    directives: &Directives,
    response_wall: SystemTime,
    defaults: &Defaults,
) -> Lifetime {
    if directives.no_cache {
        return Lifetime::Explicit(Duration::ZERO);
    }
    if let Some(seconds) = directives.s_maxage.or(directives.max_age) {
        return Lifetime::Explicit(Duration::from_secs(seconds.into()));
    }
    if let Some(expires) = headers.get(EXPIRES) {
        // An invalid date (`0`, `-1`) means "already expired".
        let Some(expires) = http_date(expires) else {
            return Lifetime::Explicit(Duration::ZERO);
        };
        let date = date(headers).unwrap_or(response_wall);
        return Lifetime::Explicit(cap(expires.duration_since(date).unwrap_or_default()));
    }
    Lifetime::Default(defaults.ttl)
}

impl Freshness {
    /// The freshness of a response that arrived in `exchange` with `lifetime`.
    pub(crate) fn new(
        headers: &HeaderMap,
        directives: &Directives,
        exchange: Exchange,
        lifetime: Lifetime,
        defaults: &Defaults,
    ) -> Self {
        // RFC 9111 section 4.2.3.
        let date = date(headers).unwrap_or(exchange.response_wall);
        let apparent_age = exchange
            .response_wall
            .duration_since(date)
            .unwrap_or_default();
        let age_value = headers
            .get(AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::ZERO, |s| {
                Duration::from_secs(s.min(u64::from(MAX_DELTA)))
            });
        let response_delay = exchange
            .response_time
            .saturating_duration_since(exchange.request_time);
        let corrected_age_value = age_value + response_delay;
        let seconds = |d: Option<u32>, default: Duration| {
            d.map_or(default, |s| Duration::from_secs(s.into()))
        };
        Self {
            stored_at: exchange.response_time,
            initial_age: cap(apparent_age.max(corrected_age_value)),
            lifetime: lifetime.get(),
            stale_while_revalidate: seconds(
                directives.stale_while_revalidate,
                defaults.stale_while_revalidate,
            ),
            stale_if_error: seconds(directives.stale_if_error, defaults.stale_if_error),
            must_revalidate: directives.must_revalidate
                || directives.proxy_revalidate
                || directives.s_maxage.is_some()
                || directives.no_cache,
        }
    }

    /// The response's current age: its age on arrival plus the time it has been stored.
    pub(crate) fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored_at)
    }

    /// Whether the entry may be served without validation, given the request's `max-age`
    /// and `min-fresh`.
    pub(crate) fn is_fresh_for(&self, now: Instant, request: &Directives) -> bool {
        let age = self.age(now);
        let min_fresh = Duration::from_secs(request.min_fresh.unwrap_or(0).into());
        let within_request_max_age = request
            .max_age
            .is_none_or(|max| age <= Duration::from_secs(max.into()));
        age + min_fresh < self.lifetime && within_request_max_age && !request.no_cache
    }

    /// How far past its lifetime the entry is (zero while fresh).
    pub(crate) fn staleness(&self, now: Instant) -> Duration {
        self.age(now).saturating_sub(self.lifetime)
    }

    /// Seconds of freshness left: negative once stale.
    #[cfg(test)]
    pub(crate) fn ttl_seconds(&self, now: Instant) -> i64 {
        let age = self.age(now);
        if age < self.lifetime {
            (self.lifetime - age).as_secs() as i64
        } else {
            -((age - self.lifetime).as_secs() as i64)
        }
    }

    /// Whether a stale entry may be served while one background request refreshes it.
    pub(crate) fn may_serve_while_revalidating(&self, now: Instant) -> bool {
        !self.must_revalidate && self.staleness(now) < self.stale_while_revalidate
    }

    /// Whether a stale entry may be served instead of an upstream failure.
    pub(crate) fn may_serve_on_error(&self, now: Instant) -> bool {
        !self.must_revalidate && self.staleness(now) < self.stale_if_error
    }

    /// How much longer, from `now`, the entry can be of any use without validation: its
    /// remaining freshness plus the longer of its stale windows.
    pub(crate) fn useful_for(&self, now: Instant) -> Duration {
        let stale = if self.must_revalidate {
            Duration::ZERO
        } else {
            self.stale_while_revalidate.max(self.stale_if_error)
        };
        (self.lifetime + stale).saturating_sub(self.age(now))
    }
}

/// Ages and lifetimes beyond 2^31 seconds are that (RFC 9111 section 1.2.2).
fn cap(d: Duration) -> Duration {
    d.min(Duration::from_secs(MAX_DELTA.into()))
}

fn date(headers: &HeaderMap) -> Option<SystemTime> {
    headers.get(DATE).and_then(http_date)
}

/// An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms).
pub(crate) fn http_date(value: &http::HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::CACHE_CONTROL;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn fmt(t: SystemTime) -> String {
        httpdate::fmt_http_date(t)
    }

    /// A response that arrived at `wall` (monotonic `at`) after `delay` upstream.
    fn freshness(
        map: &HeaderMap,
        at: Instant,
        wall: SystemTime,
        delay: Duration,
        defaults: Defaults,
    ) -> Freshness {
        let directives = Directives::of(map);
        let exchange = Exchange {
            request_time: at - delay,
            response_time: at,
            response_wall: wall,
        };
        let lifetime = lifetime(map, &directives, wall, &defaults);
        Freshness::new(map, &directives, exchange, lifetime, &defaults)
    }

    #[tokio::test(start_paused = true)]
    async fn age_grows_with_the_paused_clock_and_max_age_expires() {
        let now = Instant::now();
        let map = headers(&[("cache-control", "max-age=60".into())]);
        let f = freshness(
            &map,
            now,
            SystemTime::now(),
            Duration::ZERO,
            Defaults::default(),
        );
        let request = Directives::default();
        assert_eq!(f.age(Instant::now()), Duration::ZERO);
        assert!(f.is_fresh_for(Instant::now(), &request));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(f.is_fresh_for(Instant::now(), &request));
        assert_eq!(f.ttl_seconds(Instant::now()), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!f.is_fresh_for(Instant::now(), &request));
        assert_eq!(f.age(Instant::now()), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(f.ttl_seconds(Instant::now()), -5);
    }

    #[test]
    fn s_maxage_wins_over_max_age_and_expires() {
        let wall = SystemTime::now();
        let map = headers(&[
            ("cache-control", "max-age=10, s-maxage=100".into()),
            ("expires", fmt(wall + Duration::from_secs(1000))),
        ]);
        let directives = Directives::of(&map);
        assert_eq!(
            lifetime(&map, &directives, wall, &Defaults::default()),
            Lifetime::Explicit(Duration::from_secs(100))
        );
        let f = freshness(
            &map,
            Instant::now(),
            wall,
            Duration::ZERO,
            Defaults::default(),
        );
        // s-maxage carries proxy-revalidate: no stale serving.
        assert!(f.must_revalidate);
        let map = headers(&[("cache-control", "max-age=10".into())]);
        assert_eq!(
            lifetime(&map, &Directives::of(&map), wall, &Defaults::default()),
            Lifetime::Explicit(Duration::from_secs(10))
        );
    }

    #[test]
    fn expires_counts_from_the_date_header() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let map = headers(&[
            ("date", fmt(wall - Duration::from_secs(30))),
            ("expires", fmt(wall + Duration::from_secs(90))),
        ]);
        let directives = Directives::of(&map);
        let lifetime = lifetime(&map, &directives, wall, &Defaults::default());
        assert_eq!(lifetime, Lifetime::Explicit(Duration::from_secs(120)));
        // Generated 30 s before it arrived: it arrives 30 s old, 90 s of freshness left.
        let at = Instant::now();
        let f = freshness(&map, at, wall, Duration::ZERO, Defaults::default());
        assert_eq!(f.age(at), Duration::from_secs(30));
        assert_eq!(f.ttl_seconds(at), 90);
    }

    #[test]
    fn invalid_expires_is_already_expired() {
        let wall = SystemTime::now();
        let map = headers(&[("expires", "0".into())]);
        assert_eq!(
            lifetime(&map, &Directives::of(&map), wall, &Defaults::default()),
            Lifetime::Explicit(Duration::ZERO)
        );
    }

    #[test]
    fn age_header_and_response_delay_add_up() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let map = headers(&[
            ("cache-control", "max-age=100".into()),
            ("age", "40".into()),
        ]);
        let at = Instant::now();
        let f = freshness(&map, at, wall, Duration::from_secs(2), Defaults::default());
        assert_eq!(f.age(at), Duration::from_secs(42));
        assert_eq!(f.ttl_seconds(at), 58);
        // An upstream clock behind ours (Date in the past) raises the apparent age.
        let map = headers(&[
            ("cache-control", "max-age=100".into()),
            ("age", "5".into()),
            ("date", fmt(wall - Duration::from_secs(70))),
        ]);
        let f = freshness(&map, at, wall, Duration::ZERO, Defaults::default());
        assert_eq!(f.age(at), Duration::from_secs(70));
    }

    #[test]
    fn default_ttl_applies_only_without_explicit_freshness() {
        let defaults = Defaults {
            ttl: Duration::from_secs(30),
            ..Defaults::default()
        };
        let wall = SystemTime::now();
        let map = HeaderMap::new();
        assert_eq!(
            lifetime(&map, &Directives::of(&map), wall, &defaults),
            Lifetime::Default(Duration::from_secs(30))
        );
        let map = headers(&[("cache-control", "max-age=5".into())]);
        assert_eq!(
            lifetime(&map, &Directives::of(&map), wall, &defaults),
            Lifetime::Explicit(Duration::from_secs(5))
        );
        let map = headers(&[("cache-control", "no-cache".into())]);
        assert_eq!(
            lifetime(&map, &Directives::of(&map), wall, &defaults),
            Lifetime::Explicit(Duration::ZERO)
        );
    }

    #[test]
    fn stale_windows_and_must_revalidate() {
        let defaults = Defaults {
            ttl: Duration::ZERO,
            stale_while_revalidate: Duration::from_secs(10),
            stale_if_error: Duration::from_secs(100),
        };
        let at = Instant::now();
        let wall = SystemTime::now();
        let map = headers(&[("cache-control", "max-age=60".into())]);
        let f = freshness(&map, at, wall, Duration::ZERO, defaults);
        let later = |s| at + Duration::from_secs(s);
        assert!(f.may_serve_while_revalidating(later(65)));
        assert!(!f.may_serve_while_revalidating(later(70)));
        assert!(f.may_serve_on_error(later(159)));
        assert!(!f.may_serve_on_error(later(160)));
        assert_eq!(f.useful_for(later(60)), Duration::from_secs(100));

        // The response's own directive wins over the route's.
        let map = headers(&[(
            "cache-control",
            "max-age=60, stale-while-revalidate=30".into(),
        )]);
        let f = freshness(&map, at, wall, Duration::ZERO, defaults);
        assert!(f.may_serve_while_revalidating(later(85)));

        for directive in [
            "max-age=60, must-revalidate",
            "max-age=60, proxy-revalidate",
        ] {
            let map = headers(&[("cache-control", directive.into())]);
            let f = freshness(&map, at, wall, Duration::ZERO, defaults);
            assert!(!f.may_serve_while_revalidating(later(61)), "{directive}");
            assert!(!f.may_serve_on_error(later(61)), "{directive}");
            assert_eq!(f.useful_for(later(60)), Duration::ZERO);
        }
    }

    #[test]
    fn request_directives_narrow_freshness() {
        let at = Instant::now();
        let map = headers(&[(CACHE_CONTROL.as_str(), "max-age=60".into())]);
        let f = freshness(
            &map,
            at,
            SystemTime::now(),
            Duration::ZERO,
            Defaults::default(),
        );
        let later = at + Duration::from_secs(20);
        let request = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CACHE_CONTROL, HeaderValue::from_static(v));
            Directives::of(&h)
        };
        assert!(f.is_fresh_for(later, &request("max-age=30")));
        assert!(!f.is_fresh_for(later, &request("max-age=10")));
        assert!(!f.is_fresh_for(later, &request("max-age=0")));
        assert!(!f.is_fresh_for(later, &request("no-cache")));
        assert!(f.is_fresh_for(later, &request("min-fresh=30")));
        assert!(!f.is_fresh_for(later, &request("min-fresh=40")));
    }
}
