//! The response cache through the gateway binary, against a real upstream that counts its
//! requests: hits, misses and expiry, `s-maxage` over `max-age`, the responses never stored,
//! `Vary`, revalidation with an ETag, the stale windows, coalescing of 100 concurrent misses,
//! users on `per_user` routes, POST invalidation, purges, eviction by bytes, HEAD after GET,
//! a streamed body reaching the first client before it ends, metrics and a reload.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;
use support::jwt::{jwt_section, token};
use support::{Served, ServedBody, TempDir, TestGateway, config, get, metric, send};
use tokio::sync::Notify;

type Body = ServedBody;

/// What the upstream shares with the test.
#[derive(Default)]
struct State {
    /// Requests by path (as the upstream saw it).
    requests: Mutex<HashMap<String, usize>>,
    /// The `If-None-Match` of each request to `/etag`.
    validators: Mutex<Vec<Option<String>>>,
    /// `/flaky` answers 503 while set.
    failing: AtomicBool,
    /// Releases the rest of `/stream`.
    release: Notify,
    total: AtomicUsize,
}

/// An HTTP/1.1 and HTTP/2 upstream whose paths name their responses (see `answer`).
struct CountingUpstream {
    served: Served,
    state: Arc<State>,
}

impl CountingUpstream {
    async fn start() -> Self {
        let state = Arc::new(State::default());
        let served = Served::start({
            let state = state.clone();
            move |request| answer(request, state.clone())
        })
        .await;
        Self { served, state }
    }

    fn url(&self) -> String {
        self.served.url()
    }

    /// Requests the upstream got for `path`.
    fn requests(&self, path: &str) -> usize {
        self.state
            .requests
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn response(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Body> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(body.into()).map_err(|e| match e {}).boxed())
        .unwrap()
}

const MINUTE: (&str, &str) = ("cache-control", "max-age=60");

async fn answer(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let n = {
        let mut requests = state.requests.lock().unwrap();
        let count = requests.entry(path.clone()).or_insert(0);
        *count += 1;
        *count
    };
    state.total.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let counted = format!("{path} #{n}");
    Ok(match path.as_str() {
        "/fresh" => response(200, &[("cache-control", "max-age=1")], counted),
        "/shared" => response(200, &[("cache-control", "max-age=1, s-maxage=60")], counted),
        "/private" => response(200, &[("cache-control", "private, max-age=60")], counted),
        "/no-store" => response(200, &[("cache-control", "no-store")], counted),
        "/cookie" => response(200, &[MINUTE, ("set-cookie", "session=abc")], counted),
        "/vary" => {
            let language = header("accept-language").unwrap_or_else(|| "none".into());
            response(200, &[MINUTE, ("vary", "Accept-Language")], language)
        }
        "/vary-star" => response(200, &[MINUTE, ("vary", "*")], counted),
        "/etag" => {
            let validator = header("if-none-match");
            state.validators.lock().unwrap().push(validator.clone());
            if validator.as_deref() == Some("\"v1\"") {
                // The 304 gives the entry a new, longer lifetime.
                response(304, &[MINUTE, ("etag", "\"v1\"")], "")
            } else {
                response(
                    200,
                    &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
                    "etag body",
                )
            }
        }
        "/swr" => response(200, &[("cache-control", "max-age=1")], counted),
        "/flaky" if state.failing.load(Ordering::SeqCst) => response(503, &[], "down"),
        "/flaky" => response(200, &[("cache-control", "max-age=1")], counted),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            response(200, &[MINUTE], counted)
        }
        "/me" => {
            let user = header("x-user-id").unwrap_or_else(|| "anonymous".into());
            response(200, &[("cache-control", "public, max-age=60")], user)
        }
        "/item" if request.method() == http::Method::POST => response(201, &[], "created"),
        "/item" => response(200, &[MINUTE], counted),
        big if big.starts_with("/big/") => response(200, &[MINUTE], vec![b'x'; 30_000]),
        "/stream" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
            tokio::spawn(async move {
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"first;"))))
                    .await;
                state.release.notified().await;
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"second"))))
                    .await;
            });
            let body = StreamBody::new(tokio_stream(rx)).boxed();
            Response::builder()
                .header("cache-control", "max-age=60")
                .body(body)
                .unwrap()
        }
        _ => response(200, &[MINUTE], counted),
    })
}

/// A receiver as a stream of frames, without a stream crate.
fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A gateway with an admin listener, a store of `max_size`, and routes over `upstream`:
/// `/c` (cache with defaults), `/swr` (stale-while-revalidate), `/flaky` (stale-if-error),
/// `/u` (per-user, auth required), `/nc` (no cache).
fn gateway(upstream: &CountingUpstream, max_size: &str, dir: &TempDir) -> TestGateway {
    TestGateway::start(&config(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n{jwt}\
         [cache]\nmax_size = \"{max_size}\"\n\n\
         [upstreams.app]\ntargets = [\"{url}\"]\n\n\
         [[routes]]\nname = \"cached\"\npath = \"/c\"\nupstream = \"app\"\nstrip_prefix = true\n\
         [routes.cache]\n\n\
         [[routes]]\nname = \"swr\"\npath = \"/swr\"\nupstream = \"app\"\n\
         [routes.cache]\nstale_while_revalidate = \"30s\"\n\n\
         [[routes]]\nname = \"flaky\"\npath = \"/flaky\"\nupstream = \"app\"\n\
         [routes.cache]\nstale_if_error = \"30s\"\n\n\
         [[routes]]\nname = \"users\"\npath = \"/u\"\nupstream = \"app\"\nstrip_prefix = true\n\
         auth = \"required\"\n[routes.cache]\nauthorized = \"per_user\"\n\n\
         [[routes]]\nname = \"plain\"\npath = \"/nc\"\nupstream = \"app\"\nstrip_prefix = true\n",
        jwt = jwt_section(dir),
        url = upstream.url(),
    )))
}

/// GET through the gateway with extra headers.
async fn fetch(
    gw: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Bytes) {
    let mut request = Request::get(gw.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(Full::default()).unwrap()).await
}

fn cache_status(parts: &http::response::Parts) -> &str {
    parts
        .headers
        .get("cache-status")
        .map_or("", |v| v.to_str().unwrap())
}

async fn metrics(gw: &TestGateway) -> String {
    let (_, body) = get(&format!("http://{}/metrics", gw.admin.unwrap())).await;
    String::from_utf8(body.to_vec()).unwrap()
}

async fn admin_post(
    gw: &TestGateway,
    path: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let request = Request::post(format!("http://{}{path}", gw.admin.unwrap()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let (parts, body) = send(request).await;
    (parts.status, support::json(&body))
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_miss_expiry_and_s_maxage_over_max_age() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    let (parts, body) = fetch(&gw, "/c/fresh", &[]).await;
    assert_eq!(cache_status(&parts), "gateway; fwd=miss; stored");
    assert_eq!(body, "/fresh #1");
    let (parts, body) = fetch(&gw, "/c/fresh", &[]).await;
    assert_eq!(cache_status(&parts), "gateway; hit");
    assert_eq!(body, "/fresh #1");
    assert!(parts.headers.contains_key("age"));
    let (_, body) = fetch(&gw, "/c/shared", &[]).await;
    assert_eq!(body, "/shared #1");
    assert_eq!(upstream.requests("/fresh"), 1);
    // max-age=1 expires; s-maxage=60 (over max-age=1) does not.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (parts, body) = fetch(&gw, "/c/fresh", &[]).await;
    assert_eq!(body, "/fresh #2");
    // Without a validator an expired entry is of no further use: it is already gone.
    assert_eq!(cache_status(&parts), "gateway; fwd=miss; stored");
    let (parts, body) = fetch(&gw, "/c/shared", &[]).await;
    assert_eq!(cache_status(&parts), "gateway; hit");
    assert_eq!(body, "/shared #1");
    assert_eq!(upstream.requests("/shared"), 1);
    // A route without [routes.cache] never caches.
    fetch(&gw, "/nc/fresh", &[]).await;
    let (parts, _) = fetch(&gw, "/nc/fresh", &[]).await;
    assert!(!parts.headers.contains_key("cache-status"));

    let text = metrics(&gw).await;
    assert_eq!(
        metric(
            &text,
            "gateway_cache_requests_total{route=\"cached\",result=\"hit\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "gateway_cache_requests_total{route=\"cached\",result=\"miss\"}"
        ),
        Some(3.0)
    );
    assert!(metric(&text, "gateway_cache_bytes").unwrap() > 0.0);
    assert_eq!(metric(&text, "gateway_cache_evictions_total"), Some(0.0));
    let (_, ready) = get(&format!("http://{}/ready", gw.admin.unwrap())).await;
    let ready = support::json(&ready);
    assert_eq!(ready["cache"]["entries"], 2, "{ready}");
    assert!(ready["cache"]["bytes"].as_u64().unwrap() > 0, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_no_store_and_set_cookie_are_never_stored() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    for path in ["/private", "/no-store", "/cookie"] {
        for round in 1..=2 {
            let (parts, body) = fetch(&gw, &format!("/c{path}"), &[]).await;
            assert_eq!(cache_status(&parts), "gateway; fwd=miss", "{path}");
            assert_eq!(body, format!("{path} #{round}"));
        }
        assert_eq!(upstream.requests(path), 2, "{path}");
    }
    let (parts, _) = fetch(&gw, "/c/cookie", &[]).await;
    assert_eq!(parts.headers["set-cookie"], "session=abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_variants_and_vary_star() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    for _ in 0..2 {
        for language in ["en", "fr"] {
            let (_, body) = fetch(&gw, "/c/vary", &[("accept-language", language)]).await;
            assert_eq!(body, language);
        }
    }
    assert_eq!(upstream.requests("/vary"), 2);
    let (parts, _) = fetch(&gw, "/c/vary", &[("accept-language", "fr")]).await;
    assert_eq!(cache_status(&parts), "gateway; hit");
    for round in 1..=3 {
        let (parts, body) = fetch(&gw, "/c/vary-star", &[]).await;
        assert_eq!(cache_status(&parts), "gateway; fwd=miss");
        assert_eq!(body, format!("/vary-star #{round}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revalidation_with_an_etag_gets_a_304_from_the_upstream() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    fetch(&gw, "/c/etag", &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (parts, body) = fetch(&gw, "/c/etag", &[]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, "etag body");
    assert_eq!(cache_status(&parts), "gateway; fwd=stale; fwd-status=304");
    assert_eq!(
        *upstream.state.validators.lock().unwrap(),
        vec![None, Some("\"v1\"".to_owned())]
    );
    // The 304 refreshed the entry.
    let (parts, _) = fetch(&gw, "/c/etag", &[]).await;
    assert_eq!(cache_status(&parts), "gateway; hit");
    // A client's own conditional request is answered 304 from the fresh entry.
    let (parts, body) = fetch(&gw, "/c/etag", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(parts.status, 304);
    assert!(body.is_empty());
    assert_eq!(upstream.requests("/etag"), 2);
    let text = metrics(&gw).await;
    assert_eq!(
        metric(
            &text,
            "gateway_cache_requests_total{route=\"cached\",result=\"revalidated\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_sends_one_background_request() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    fetch(&gw, "/swr", &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let url = gw.url("/swr");
    let stale: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let mut stale_answers = 0;
    for answer in stale {
        let (parts, body) = answer.await.unwrap();
        // Stale, unless the refresh the first of them started was already done.
        match cache_status(&parts) {
            "gateway; hit; detail=stale-while-revalidate" => {
                assert_eq!(body, "/swr #1");
                stale_answers += 1;
            }
            other => {
                assert_eq!(other, "gateway; hit");
                assert_eq!(body, "/swr #2");
            }
        }
    }
    assert!(stale_answers >= 1);
    settle().await;
    assert_eq!(upstream.requests("/swr"), 2, "one background refresh");
    // Answered from the refreshed entry (stale again already if this machine is slow:
    // it lives a second).
    let (parts, body) = fetch(&gw, "/swr", &[]).await;
    assert!(
        cache_status(&parts).starts_with("gateway; hit"),
        "{parts:?}"
    );
    assert_eq!(body, "/swr #2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_the_stale_entry_when_the_upstream_fails() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    fetch(&gw, "/flaky", &[]).await;
    upstream.state.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (parts, body) = fetch(&gw, "/flaky", &[]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, "/flaky #1");
    assert_eq!(
        cache_status(&parts),
        "gateway; fwd=stale; detail=stale-if-error"
    );
    assert_eq!(upstream.requests("/flaky"), 2);
    // The cached route without stale_if_error passes the failure on.
    fetch(&gw, "/c/flaky", &[]).await;
    assert_eq!(fetch(&gw, "/c/flaky", &[]).await.0.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_send_one_upstream_request() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    let url = gw.url("/c/slow");
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let mut collapsed = 0;
    for client in clients {
        let (parts, body) = client.await.unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body, "/slow #1");
        if cache_status(&parts) == "gateway; fwd=miss; collapsed" {
            collapsed += 1;
        }
    }
    assert_eq!(upstream.requests("/slow"), 1);
    assert!(collapsed >= 90, "{collapsed} collapsed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_requests_are_never_shared_across_users() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    let (alice, bob) = (
        token(json!({"user_id": "alice"})),
        token(json!({"user_id": "bob"})),
    );
    let as_user = |token: &str| format!("Bearer {token}");
    for _ in 0..2 {
        let (_, body) = fetch(&gw, "/u/me", &[("authorization", &as_user(&alice))]).await;
        assert_eq!(body, "alice");
        let (_, body) = fetch(&gw, "/u/me", &[("authorization", &as_user(&bob))]).await;
        assert_eq!(body, "bob");
    }
    assert_eq!(upstream.requests("/me"), 2);
    let (parts, _) = fetch(&gw, "/u/me", &[("authorization", &as_user(&bob))]).await;
    assert_eq!(cache_status(&parts), "gateway; hit");
    // No token: refused by auth before the cache.
    assert_eq!(fetch(&gw, "/u/me", &[]).await.0.status, 401);
    // On an `authorized = "never"` route a token bypasses the cache.
    for _ in 0..2 {
        let (parts, _) = fetch(&gw, "/c/me", &[("authorization", &as_user(&alice))]).await;
        assert_eq!(cache_status(&parts), "gateway; fwd=bypass");
    }
    assert_eq!(upstream.requests("/me"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_invalidates_and_the_admin_purges() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    fetch(&gw, "/c/item", &[]).await;
    let post = Request::post(gw.url("/c/item"))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(post).await.0.status, 201);
    let (parts, body) = fetch(&gw, "/c/item", &[]).await;
    assert_eq!(cache_status(&parts), "gateway; fwd=miss; stored");
    // The upstream counts the POST too.
    assert_eq!(body, "/item #3");

    // Purge by route and the path clients use (the route strips `/c`).
    fetch(&gw, "/c/other", &[]).await;
    let (status, answer) = admin_post(
        &gw,
        "/cache/purge",
        json!({ "route": "cached", "path": "/c/item" }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["purged"], 1);
    assert_eq!(fetch(&gw, "/c/item", &[]).await.1, "/item #4");
    assert_eq!(
        cache_status(&fetch(&gw, "/c/other", &[]).await.0),
        "gateway; hit"
    );
    let (status, _) = admin_post(
        &gw,
        "/cache/purge",
        json!({ "route": "nope", "path": "/x" }),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = admin_post(&gw, "/cache/purge", json!({ "path": "/x" })).await;
    assert_eq!(status, 400);
    let (status, answer) = admin_post(&gw, "/cache/purge", json!({ "all": true })).await;
    assert_eq!(status, 200);
    assert_eq!(answer["purged"], 2);
    assert_eq!(fetch(&gw, "/c/other", &[]).await.1, "/other #2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_evicts_by_bytes() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "100KiB", &dir);
    for n in 0..10 {
        fetch(&gw, &format!("/c/big/{n}"), &[]).await;
    }
    let text = metrics(&gw).await;
    let bytes = metric(&text, "gateway_cache_bytes").unwrap();
    assert!(bytes <= 100.0 * 1024.0, "{bytes}");
    assert!(
        metric(&text, "gateway_cache_evictions_total").unwrap() >= 6.0,
        "{text}"
    );
    let mut refetched = 0;
    for n in 0..10 {
        if cache_status(&fetch(&gw, &format!("/c/big/{n}"), &[]).await.0) != "gateway; hit" {
            refetched += 1;
        }
    }
    assert!(refetched >= 6, "{refetched}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_after_get_is_a_hit_without_a_body() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    let (_, body) = fetch(&gw, "/c/page", &[]).await;
    let head = Request::head(gw.url("/c/page"))
        .body(Full::default())
        .unwrap();
    let (parts, head_body) = send(head).await;
    assert_eq!(cache_status(&parts), "gateway; hit");
    assert_eq!(parts.headers["content-length"], body.len().to_string());
    assert!(head_body.is_empty());
    assert_eq!(upstream.requests("/page"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_reaches_the_first_client_before_it_ends() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    let response = support::client()
        .request(
            Request::get(gw.url("/c/stream"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first chunk must arrive while the upstream holds the rest")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first;");
    upstream.state.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");
    let (parts, whole) = fetch(&gw, "/c/stream", &[]).await;
    assert_eq!(cache_status(&parts), "gateway; hit");
    assert_eq!(whole, "first;second");
    assert_eq!(upstream.requests("/stream"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_and_its_counters_survive_a_reload() {
    let upstream = CountingUpstream::start().await;
    let dir = TempDir::new();
    let gw = gateway(&upstream, "1MiB", &dir);
    fetch(&gw, "/c/kept", &[]).await;
    fetch(&gw, "/c/kept", &[]).await;
    // An unrelated change: the store (and its entry) stays.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace(
            "[[routes]]\nname = \"plain\"",
            "[[routes]]\nname = \"plain2\"",
        ),
    )
    .unwrap();
    gw.reload().unwrap();
    let (parts, body) = fetch(&gw, "/c/kept", &[]).await;
    assert_eq!(cache_status(&parts), "gateway; hit");
    assert_eq!(body, "/kept #1");
    let metrics_text = metrics(&gw).await;
    assert_eq!(
        metric(
            &metrics_text,
            "gateway_cache_requests_total{route=\"cached\",result=\"hit\"}"
        ),
        Some(2.0)
    );
    // A changed [cache] builds a new, empty store.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace("max_size = \"1MiB\"", "max_size = \"2MiB\""),
    )
    .unwrap();
    gw.reload().unwrap();
    assert_eq!(fetch(&gw, "/c/kept", &[]).await.1, "/kept #2");
}
