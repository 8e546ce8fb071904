//! Credentials and users, invalidation by unsafe methods, purges and eviction by bytes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Upstream, cache, counters, fetch, get, send};
use gateway_cache::config::Authorized;
use gateway_cache::{Cache, CachePolicy, CacheStore};
use gateway_core::Identity;
use http::Request;

const MIB: u64 = 1 << 20;

fn user(name: &str) -> Identity {
    let serde_json::Value::Object(claims) = serde_json::json!({ "sub": name }) else {
        unreachable!()
    };
    Identity::new(Arc::new(claims))
}

/// An upstream that echoes the caller's `Authorization`, cacheable for a minute.
fn echo_user() -> Upstream {
    Upstream::new(|request: Request<()>| async move {
        let who = request
            .headers()
            .get("authorization")
            .map_or("anonymous".to_owned(), |v| v.to_str().unwrap().to_owned());
        common::response(200, &[("cache-control", "public, max-age=60")], &who)
    })
}

fn as_user(token: &str, identity: Option<Identity>) -> Request<()> {
    let mut request = get("/me").header("authorization", token).body(()).unwrap();
    if let Some(identity) = identity {
        request.extensions_mut().insert(identity);
    }
    request
}

#[tokio::test]
async fn requests_with_credentials_bypass_a_never_route() {
    let upstream = echo_user();
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    for _ in 0..2 {
        let got = send(&cache, as_user("alice", Some(user("alice")))).await;
        assert_eq!(got.cache_status(), "gateway; fwd=bypass");
        assert_eq!(got.body, "alice");
    }
    let cookie = get("/me").header("cookie", "session=1").body(()).unwrap();
    assert_eq!(
        send(&cache, cookie).await.cache_status(),
        "gateway; fwd=bypass"
    );
    assert_eq!(cache.store().stats().entries, 0);
    // An anonymous request stores; an authorized one is still not answered from it.
    fetch(&cache, "/me").await;
    assert_eq!(
        send(&cache, as_user("bob", Some(user("bob")))).await.body,
        "bob"
    );
    assert_eq!(upstream.calls(), 5);
    assert_eq!(counters(&cache)[3], 4);
}

#[tokio::test]
async fn per_user_entries_are_never_shared_across_users() {
    let upstream = echo_user();
    let policy = CachePolicy::new().authorized(Authorized::PerUser);
    let cache = cache(&upstream, policy, MIB);
    assert_eq!(
        send(&cache, as_user("alice", Some(user("alice"))))
            .await
            .body,
        "alice"
    );
    assert_eq!(
        send(&cache, as_user("bob", Some(user("bob")))).await.body,
        "bob"
    );
    for name in ["alice", "bob"] {
        let got = send(&cache, as_user(name, Some(user(name)))).await;
        assert_eq!(got.cache_status(), "gateway; hit");
        assert_eq!(got.body, name);
    }
    // Credentials without a verified identity cannot be keyed: bypass.
    let unverified = send(&cache, as_user("mallory", None)).await;
    assert_eq!(unverified.cache_status(), "gateway; fwd=bypass");
    assert_eq!(unverified.body, "mallory");
    // Anonymous requests share an entry of their own.
    assert_eq!(fetch(&cache, "/me").await.body, "anonymous");
    assert_eq!(fetch(&cache, "/me").await.cache_status(), "gateway; hit");
    assert_eq!(upstream.calls(), 4);
}

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_its_target() {
    let upstream = Upstream::fixed(&[("cache-control", "max-age=60")], "doc");
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    fetch(&cache, "/doc").await;
    fetch(&cache, "/doc?v=2").await;
    fetch(&cache, "/other").await;
    let post = Request::post("/doc")
        .header("host", "api.test")
        .body(())
        .unwrap();
    assert_eq!(
        send(&cache, post).await.cache_status(),
        "gateway; fwd=method"
    );
    assert_eq!(
        fetch(&cache, "/doc").await.cache_status(),
        "gateway; fwd=miss; stored"
    );
    // Only that URI: another query and another path stay.
    assert_eq!(
        fetch(&cache, "/doc?v=2").await.cache_status(),
        "gateway; hit"
    );
    assert_eq!(fetch(&cache, "/other").await.cache_status(), "gateway; hit");

    // What `Location` names on the same host goes too; another host's is left alone.
    let created = Upstream::new(|_| async {
        common::response(
            201,
            &[
                ("location", "/other"),
                ("content-location", "http://elsewhere.test/doc?v=2"),
            ],
            "",
        )
    });
    let poster = Cache::new(
        created,
        cache.store().clone(),
        CachePolicy::new().scope("route"),
    );
    let post = Request::post("/new")
        .header("host", "api.test")
        .body(())
        .unwrap();
    send(&poster, post).await;
    assert_eq!(
        fetch(&cache, "/other").await.cache_status(),
        "gateway; fwd=miss; stored"
    );
    assert_eq!(
        fetch(&cache, "/doc?v=2").await.cache_status(),
        "gateway; hit"
    );

    // A failed unsafe request invalidates nothing.
    let failing = Upstream::new(|_| async { common::response(500, &[], "no") });
    let store = cache.store().clone();
    let failing = Cache::new(failing, store, CachePolicy::new().scope("route"));
    let delete = Request::delete("/other")
        .header("host", "api.test")
        .body(())
        .unwrap();
    assert_eq!(send(&failing, delete).await.status, 500);
    assert_eq!(fetch(&cache, "/other").await.cache_status(), "gateway; hit");
}

#[tokio::test]
async fn purge_by_route_and_path_and_all() {
    let store = CacheStore::new(MIB, MIB);
    let upstream = Upstream::fixed(&[("cache-control", "max-age=60"), ("vary", "accept")], "x");
    let users = Cache::new(
        upstream.clone(),
        store.clone(),
        CachePolicy::new().scope("users"),
    );
    let posts = Cache::new(
        upstream.clone(),
        store.clone(),
        CachePolicy::new().scope("posts"),
    );
    for accept in ["text/html", "application/json"] {
        let request = get("/42?x=1").header("accept", accept).body(()).unwrap();
        send(&users, request).await;
    }
    fetch(&users, "/42").await;
    fetch(&users, "/43").await;
    fetch(&posts, "/42").await;
    // Two variants and their Vary record, and /42 without query, all purged; /43 and the
    // other route's /42 stay.
    assert!(store.purge("users", "/42") >= 4);
    assert_eq!(
        fetch(&users, "/42").await.cache_status(),
        "gateway; fwd=miss; stored"
    );
    assert_eq!(fetch(&users, "/43").await.cache_status(), "gateway; hit");
    assert_eq!(fetch(&posts, "/42").await.cache_status(), "gateway; hit");
    assert_eq!(store.purge("users", "/nothing"), 0);
    store.purge_all();
    assert_eq!(store.stats().entries, 0);
    assert_eq!(
        fetch(&posts, "/42").await.cache_status(),
        "gateway; fwd=miss; stored"
    );
    // The purged entries' removals, reported late, leave the new entry indexed: an unsafe
    // request still finds it.
    store.stats();
    let post = Request::post("/42")
        .header("host", "api.test")
        .body(())
        .unwrap();
    send(&posts, post).await;
    assert_eq!(
        fetch(&posts, "/42").await.cache_status(),
        "gateway; fwd=miss; stored"
    );
}

#[tokio::test]
async fn the_store_is_bounded_in_bytes() {
    let body: &'static str = Box::leak("x".repeat(3000).into_boxed_str());
    let upstream = Upstream::new(move |_| async move {
        common::response(200, &[("cache-control", "max-age=60")], body)
    });
    let max_size = 10_000;
    let store = CacheStore::new(max_size, max_size);
    let cache = Cache::new(upstream.clone(), store.clone(), CachePolicy::new());
    for n in 0..10 {
        fetch(&cache, &format!("/item/{n}")).await;
    }
    let stats = store.stats();
    assert!(stats.bytes <= max_size, "{stats:?}");
    assert!(stats.entries <= 3, "{stats:?}");
    assert!(stats.entries >= 1, "{stats:?}");
    assert!(stats.evictions >= 7, "{stats:?}");
    // What was evicted is fetched again.
    let mut misses = 0;
    for n in 0..10 {
        if fetch(&cache, &format!("/item/{n}")).await.cache_status() != "gateway; hit" {
            misses += 1;
        }
    }
    assert!(misses >= 7);
    let _ = Duration::ZERO;
}
