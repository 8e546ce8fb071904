//! What is stored and for how long, with tokio's paused clock: hits, misses and expiry,
//! `s-maxage` over `max-age`, `Age`, the responses never stored, `Vary`, revalidation,
//! the stale windows, HEAD after GET and the client's own conditional requests.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Upstream, cache, counters, fetch, get, response, send};
use gateway_cache::CachePolicy;
use http::Request;
use tokio::time::advance;

const MIB: u64 = 1 << 20;

#[tokio::test(start_paused = true)]
async fn a_fresh_entry_is_served_until_it_expires() {
    let upstream = Upstream::fixed(&[("cache-control", "max-age=60")], "v1");
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let first = fetch(&cache, "/a").await;
    assert_eq!(first.cache_status(), "gateway; fwd=miss; stored");
    assert_eq!(first.body, "v1");
    advance(Duration::from_secs(10)).await;
    let hit = fetch(&cache, "/a").await;
    assert_eq!(hit.cache_status(), "gateway; hit");
    assert_eq!(hit.body, "v1");
    assert_eq!(hit.header("age"), Some("10"));
    assert_eq!(hit.header("content-length"), Some("2"));
    assert_eq!(upstream.calls(), 1);
    // Other paths and queries are other entries.
    fetch(&cache, "/a?x=1").await;
    fetch(&cache, "/b").await;
    assert_eq!(upstream.calls(), 3);
    advance(Duration::from_secs(50)).await;
    let expired = fetch(&cache, "/a").await;
    assert_eq!(expired.cache_status(), "gateway; fwd=stale; stored");
    assert_eq!(upstream.calls(), 4);
    // hit, miss, stale, bypass, revalidated
    assert_eq!(counters(&cache), [1, 4, 0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn s_maxage_wins_over_max_age() {
    let upstream = Upstream::fixed(&[("cache-control", "max-age=1, s-maxage=100")], "shared");
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    fetch(&cache, "/a").await;
    advance(Duration::from_secs(50)).await;
    assert_eq!(fetch(&cache, "/a").await.cache_status(), "gateway; hit");
    assert_eq!(upstream.calls(), 1);
    advance(Duration::from_secs(51)).await;
    assert_eq!(
        fetch(&cache, "/a").await.cache_status(),
        "gateway; fwd=stale; stored"
    );
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn upstream_age_counts_against_freshness() {
    let upstream = Upstream::fixed(&[("cache-control", "max-age=60"), ("age", "50")], "old");
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    fetch(&cache, "/a").await;
    advance(Duration::from_secs(5)).await;
    let hit = fetch(&cache, "/a").await;
    assert_eq!(hit.header("age"), Some("55"));
    advance(Duration::from_secs(5)).await;
    assert_eq!(
        fetch(&cache, "/a").await.cache_status(),
        "gateway; fwd=stale; stored"
    );
}

#[tokio::test(start_paused = true)]
async fn default_ttl_covers_responses_without_freshness_only() {
    let upstream = Upstream::fixed(&[], "plain");
    let none = cache(&upstream, CachePolicy::new(), MIB);
    fetch(&none, "/a").await;
    assert_eq!(fetch(&none, "/a").await.cache_status(), "gateway; fwd=miss");
    assert_eq!(upstream.calls(), 2);

    let upstream = Upstream::fixed(&[], "plain");
    let ttl = cache(
        &upstream,
        CachePolicy::new().default_ttl(Duration::from_secs(5)),
        MIB,
    );
    fetch(&ttl, "/a").await;
    assert_eq!(fetch(&ttl, "/a").await.cache_status(), "gateway; hit");
    advance(Duration::from_secs(5)).await;
    fetch(&ttl, "/a").await;
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn private_no_store_and_cookies_are_never_stored() {
    for headers in [
        &[("cache-control", "private, max-age=60")][..],
        &[("cache-control", "no-store, max-age=60")],
        &[
            ("cache-control", "max-age=60"),
            ("set-cookie", "session=alice"),
        ],
    ] {
        let headers: &'static [(&'static str, &'static str)] = headers;
        let upstream = Upstream::fixed(headers, "secret");
        let cache = cache(
            &upstream,
            CachePolicy::new().default_ttl(Duration::from_secs(60)),
            MIB,
        );
        for _ in 0..3 {
            let got = fetch(&cache, "/me").await;
            assert_eq!(got.cache_status(), "gateway; fwd=miss", "{headers:?}");
        }
        assert_eq!(upstream.calls(), 3, "{headers:?}");
        assert_eq!(cache.store().stats().entries, 0);
    }
    // `public` lets a response with a cookie be stored, without the cookie.
    let upstream = Upstream::fixed(
        &[
            ("cache-control", "public, max-age=60"),
            ("set-cookie", "tracking=1"),
        ],
        "page",
    );
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    assert_eq!(
        fetch(&cache, "/p").await.header("set-cookie"),
        Some("tracking=1")
    );
    let hit = fetch(&cache, "/p").await;
    assert_eq!(hit.cache_status(), "gateway; hit");
    assert_eq!(hit.header("set-cookie"), None);
}

#[tokio::test(start_paused = true)]
async fn request_no_store_and_no_cache() {
    let upstream = Upstream::fixed(&[("cache-control", "max-age=60")], "v");
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let request = get("/a")
        .header("cache-control", "no-store")
        .body(())
        .unwrap();
    assert_eq!(
        send(&cache, request).await.cache_status(),
        "gateway; fwd=bypass"
    );
    assert_eq!(cache.store().stats().entries, 0);
    fetch(&cache, "/a").await;
    for directive in ["no-cache", "max-age=0"] {
        advance(Duration::from_secs(1)).await;
        let request = get("/a")
            .header("cache-control", directive)
            .body(())
            .unwrap();
        // Without a validator, a forced revalidation is a new fetch.
        assert_eq!(
            send(&cache, request).await.cache_status(),
            "gateway; fwd=stale; stored"
        );
    }
    assert_eq!(upstream.calls(), 4);
    let request = get("/other")
        .header("cache-control", "only-if-cached")
        .body(())
        .unwrap();
    assert_eq!(send(&cache, request).await.status, 504);
    assert_eq!(upstream.calls(), 4);
}

/// An upstream whose response varies on `Accept-Language`.
fn by_language() -> Upstream {
    Upstream::new(|request: Request<()>| async move {
        let language = request
            .headers()
            .get("accept-language")
            .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
        response(
            200,
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
            &language,
        )
    })
}

#[tokio::test(start_paused = true)]
async fn vary_keys_the_variants() {
    let upstream = by_language();
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let ask = |language: Option<&'static str>| {
        let mut request = get("/greeting");
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        send(&cache, request.body(()).unwrap())
    };
    assert_eq!(ask(Some("en")).await.body, "en");
    assert_eq!(ask(Some("fr")).await.body, "fr");
    assert_eq!(ask(None).await.body, "none");
    for (language, expected) in [(Some("en"), "en"), (Some("fr"), "fr"), (None, "none")] {
        let got = ask(language).await;
        assert_eq!(got.cache_status(), "gateway; hit");
        assert_eq!(got.body, expected);
    }
    assert_eq!(upstream.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn vary_star_is_never_served_from_the_cache() {
    let upstream = Upstream::fixed(&[("cache-control", "max-age=60"), ("vary", "*")], "x");
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    for _ in 0..3 {
        assert_eq!(
            fetch(&cache, "/a").await.cache_status(),
            "gateway; fwd=miss"
        );
    }
    assert_eq!(upstream.calls(), 3);
}

/// An upstream with an ETag that answers `If-None-Match` with 304, counting 304s.
fn with_etag(not_modified: Arc<AtomicUsize>) -> Upstream {
    Upstream::new(move |request: Request<()>| {
        let not_modified = not_modified.clone();
        async move {
            if request
                .headers()
                .get("if-none-match")
                .is_some_and(|v| v == "\"v1\"")
            {
                not_modified.fetch_add(1, Ordering::SeqCst);
                return response(
                    304,
                    &[("cache-control", "max-age=10"), ("etag", "\"v1\"")],
                    "",
                );
            }
            response(
                200,
                &[("cache-control", "max-age=10"), ("etag", "\"v1\"")],
                "body-v1",
            )
        }
    })
}

#[tokio::test(start_paused = true)]
async fn stale_entries_are_revalidated_and_a_304_refreshes_them() {
    let not_modified = Arc::new(AtomicUsize::new(0));
    let upstream = with_etag(not_modified.clone());
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    fetch(&cache, "/doc").await;
    advance(Duration::from_secs(11)).await;
    let revalidated = fetch(&cache, "/doc").await;
    assert_eq!(
        revalidated.cache_status(),
        "gateway; fwd=stale; fwd-status=304"
    );
    assert_eq!(revalidated.status, 200);
    assert_eq!(revalidated.body, "body-v1");
    assert_eq!(upstream.request(1)["if-none-match"], "\"v1\"");
    assert_eq!(not_modified.load(Ordering::SeqCst), 1);
    // The 304 started a new lifetime.
    advance(Duration::from_secs(5)).await;
    let hit = fetch(&cache, "/doc").await;
    assert_eq!(hit.cache_status(), "gateway; hit");
    assert_eq!(hit.header("age"), Some("5"));
    assert_eq!(upstream.calls(), 2);
    assert_eq!(counters(&cache), [1, 1, 0, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_clients_conditional_request_is_answered_304_from_a_fresh_entry() {
    let upstream = Upstream::fixed(
        &[
            ("cache-control", "max-age=60"),
            ("etag", "W/\"abc\""),
            ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ],
        "content",
    );
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    fetch(&cache, "/a").await;
    let conditional = |name: &'static str, value: &'static str| {
        send(&cache, get("/a").header(name, value).body(()).unwrap())
    };
    let matched = conditional("if-none-match", "\"x\", \"abc\"").await;
    assert_eq!(matched.status, 304);
    assert!(matched.body.is_empty());
    assert_eq!(matched.header("etag"), Some("W/\"abc\""));
    assert_eq!(conditional("if-none-match", "\"other\"").await.status, 200);
    assert_eq!(
        conditional("if-modified-since", "Wed, 02 Dec 2026 10:00:00 GMT")
            .await
            .status,
        304
    );
    assert_eq!(
        conditional("if-modified-since", "Mon, 30 Nov 2026 10:00:00 GMT")
            .await
            .status,
        200
    );
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_serves_stale_and_refreshes_once_in_the_background() {
    let version = Arc::new(AtomicUsize::new(0));
    let upstream = Upstream::new({
        let version = version.clone();
        move |_| {
            let v = version.fetch_add(1, Ordering::SeqCst);
            async move { response(200, &[("cache-control", "max-age=10")], &format!("v{v}")) }
        }
    });
    let policy = CachePolicy::new().stale_while_revalidate(Duration::from_secs(30));
    let cache = cache(&upstream, policy, MIB);
    fetch(&cache, "/a").await;
    advance(Duration::from_secs(15)).await;
    let stale = fetch(&cache, "/a").await;
    assert_eq!(stale.body, "v0");
    assert_eq!(
        stale.cache_status(),
        "gateway; hit; detail=stale-while-revalidate"
    );
    // A second stale request while the refresh is in flight starts no other.
    let again = fetch(&cache, "/a").await;
    assert_eq!(again.body, "v0");
    // Let the background refresh run.
    tokio::task::yield_now().await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(upstream.calls(), 2);
    let fresh = fetch(&cache, "/a").await;
    assert_eq!(fresh.body, "v1");
    assert_eq!(fresh.cache_status(), "gateway; hit");
    assert_eq!(upstream.calls(), 2);
    assert_eq!(counters(&cache)[2], 2, "two stale answers");
    // Past the window the stale entry is not served.
    advance(Duration::from_secs(41)).await;
    assert_eq!(fetch(&cache, "/a").await.body, "v2");
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_stands_in_for_a_failing_upstream() {
    let failing = Arc::new(AtomicUsize::new(0));
    let upstream = Upstream::new({
        let failing = failing.clone();
        move |_| {
            let status = if failing.load(Ordering::SeqCst) > 0 {
                503
            } else {
                200
            };
            async move { response(status, &[("cache-control", "max-age=10")], "good") }
        }
    });
    let policy = CachePolicy::new().stale_if_error(Duration::from_secs(60));
    let cache = cache(&upstream, policy, MIB);
    fetch(&cache, "/a").await;
    failing.store(1, Ordering::SeqCst);
    advance(Duration::from_secs(20)).await;
    let got = fetch(&cache, "/a").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "good");
    assert_eq!(
        got.cache_status(),
        "gateway; fwd=stale; detail=stale-if-error"
    );
    assert_eq!(upstream.calls(), 2);
    // Past the window the failure goes through.
    advance(Duration::from_secs(60)).await;
    assert_eq!(fetch(&cache, "/a").await.status, 503);
}

#[tokio::test(start_paused = true)]
async fn must_revalidate_rules_out_stale_serving() {
    let upstream = Upstream::new(|_| async { response(503, &[], "down") });
    let ok = Upstream::fixed(&[("cache-control", "max-age=10, must-revalidate")], "good");
    let store = gateway_cache::CacheStore::new(MIB, MIB);
    let policy = CachePolicy::new()
        .stale_if_error(Duration::from_secs(60))
        .stale_while_revalidate(Duration::from_secs(60))
        .scope("r");
    let warm = gateway_cache::Cache::new(ok, store.clone(), policy.clone());
    fetch(&warm, "/a").await;
    let failing = gateway_cache::Cache::new(upstream, store, policy);
    advance(Duration::from_secs(20)).await;
    assert_eq!(fetch(&failing, "/a").await.status, 503);
}

#[tokio::test(start_paused = true)]
async fn head_is_answered_from_a_get() {
    let upstream = Upstream::fixed(&[("cache-control", "max-age=60")], "twelve bytes");
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    fetch(&cache, "/a").await;
    let head = send(
        &cache,
        Request::head("/a")
            .header("host", "api.test")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(head.cache_status(), "gateway; hit");
    assert_eq!(head.header("content-length"), Some("12"));
    assert!(head.body.is_empty());
    assert_eq!(upstream.calls(), 1);
    // A HEAD miss goes upstream and stores nothing.
    let miss = send(
        &cache,
        Request::head("/b")
            .header("host", "api.test")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(miss.cache_status(), "gateway; fwd=miss");
    assert_eq!(
        fetch(&cache, "/b").await.cache_status(),
        "gateway; fwd=miss; stored"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_entry_replaced_by_an_uncacheable_response_is_dropped() {
    let private = Arc::new(AtomicUsize::new(0));
    let upstream = Upstream::new({
        let private = private.clone();
        move |_| {
            let cc = if private.load(Ordering::SeqCst) > 0 {
                "private"
            } else {
                "max-age=10"
            };
            async move { response(200, &[("cache-control", cc), ("etag", "\"a\"")], "x") }
        }
    });
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    fetch(&cache, "/a").await;
    assert_eq!(cache.store().stats().entries, 1);
    private.store(1, Ordering::SeqCst);
    advance(Duration::from_secs(11)).await;
    assert_eq!(
        fetch(&cache, "/a").await.cache_status(),
        "gateway; fwd=stale"
    );
    assert_eq!(cache.store().stats().entries, 0);
}
