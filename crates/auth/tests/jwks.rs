//! JWKS over real HTTP: fetch on demand, rotation on unknown `kid`, rate limiting, outages.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use gateway_auth::{Algorithm, AuthFailure, Authenticator, JwksError, JwtAuthLayer};
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout};
use tower::{Layer, ServiceExt};

/// No test may hang: every wait on the code under test is bounded.
const BOUND: Duration = Duration::from_secs(20);

fn jwks_auth(url: &str, cooldown: Duration) -> Authenticator {
    Authenticator::builder()
        .jwks_url(url)
        .jwks_cooldown(cooldown)
        .jwks_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn status(
    auth: &Authenticator,
    token: &str,
) -> (StatusCode, Option<AuthFailure>, Option<String>) {
    let service = JwtAuthLayer::new(auth.clone()).layer(tower::service_fn(echo));
    let request = Request::get("/").header("authorization", format!("Bearer {token}"));
    let response = timeout(
        BOUND,
        service.oneshot(request.body(Full::<Bytes>::default()).unwrap()),
    )
    .await
    .expect("the layer answered in time")
    .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        response.status(),
        response.extensions().get::<AuthFailure>().copied(),
        retry_after,
    )
}

fn rs256(key: &'static aws_lc_rs::signature::RsaKeyPair, kid: &str, sub: &str) -> String {
    TestKey::Rsa(key).sign("RS256", json!({"kid": kid}), &claims(json!({"sub": sub})))
}

#[tokio::test]
async fn keys_are_fetched_on_first_use_and_rotated_on_unknown_kid() {
    let server = JwksServer::start(vec![TestKey::Rsa(rsa()).jwk("k1")]).await;
    let auth = jwks_auth(&server.url(), Duration::ZERO);
    assert_eq!(server.hits(), 0, "building never touches the network");

    assert_eq!(
        status(&auth, &rs256(rsa(), "k1", "a")).await.0,
        StatusCode::OK
    );
    let hits_after_first = server.hits();
    assert!(hits_after_first >= 1);

    // The IdP rotates: k1 is gone, k2 signs. The first k2 token triggers a fetch.
    server.set_keys(vec![TestKey::Rsa(rsa2()).jwk("k2")]);
    assert_eq!(
        status(&auth, &rs256(rsa2(), "k2", "b")).await.0,
        StatusCode::OK
    );
    assert!(server.hits() > hits_after_first);

    // k1 is no longer trusted, even for a token verified (and cached) before the rotation.
    let (code, reason, _) = status(&auth, &rs256(rsa(), "k1", "a")).await;
    assert_eq!(
        (code, reason),
        (StatusCode::UNAUTHORIZED, Some(AuthFailure::UnknownKey))
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_one_fetch_per_cooldown() {
    let server = JwksServer::start(vec![TestKey::Rsa(rsa()).jwk("k1")]).await;
    let auth = jwks_auth(&server.url(), Duration::from_secs(3600));
    assert_eq!(auth.refresh_jwks().await.unwrap(), 1);
    assert_eq!(server.hits(), 1);

    let bogus: Vec<String> = (0..50)
        .map(|i| rs256(rsa(), &format!("bogus-{i}"), "x"))
        .collect();
    let results = futures_join_all(bogus.iter().map(|token| status(&auth, token))).await;
    for (code, reason, _) in results {
        assert_eq!(
            (code, reason),
            (StatusCode::UNAUTHORIZED, Some(AuthFailure::UnknownKey))
        );
    }
    assert_eq!(server.hits(), 1, "the cooldown held back every refetch");
    assert!(matches!(
        auth.refresh_jwks().await,
        Err(JwksError::CoolingDown)
    ));
    // Known keys still work meanwhile.
    assert_eq!(
        status(&auth, &rs256(rsa(), "k1", "ok")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_fetch() {
    let server = JwksServer::start(vec![TestKey::Rsa(rsa()).jwk("k1")]).await;
    let auth = jwks_auth(&server.url(), Duration::ZERO);
    let tokens: Vec<String> = (0..20)
        .map(|i| rs256(rsa(), "k1", &format!("u{i}")))
        .collect();
    let results = futures_join_all(tokens.iter().map(|token| status(&auth, token))).await;
    assert!(results.iter().all(|(code, _, _)| *code == StatusCode::OK));
    // The requests that waited saw the first fetch land and did not fetch again (the
    // background refresher may add one).
    assert!(server.hits() <= 2, "{} fetches", server.hits());
}

#[tokio::test]
async fn a_fetch_outlives_the_request_that_started_it() {
    let server = JwksServer::start(vec![TestKey::Rsa(rsa()).jwk("k1")]).await;
    let auth = jwks_auth(&server.url(), Duration::from_secs(3600));
    let service = JwtAuthLayer::new(auth.clone()).layer(tower::service_fn(echo));
    let request = Request::get("/")
        .header(
            "authorization",
            format!("Bearer {}", rs256(rsa(), "k1", "a")),
        )
        .body(Full::<Bytes>::default())
        .unwrap();
    // Polled once (the fetch starts), then dropped, as when the client goes away.
    let mut abandoned = Box::pin(service.oneshot(request));
    let first =
        std::future::poll_fn(|cx| std::task::Poll::Ready(abandoned.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "the request waits for keys");
    drop(abandoned);

    // The fetch completes anyway: the next request needs no fetch of its own (the cooldown
    // would forbid one).
    let mut code = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..200 {
        code = status(&auth, &rs256(rsa(), "k1", "b")).await.0;
        if code == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(code, StatusCode::OK);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn known_keys_survive_an_outage() {
    let server = JwksServer::start(vec![TestKey::Rsa(rsa()).jwk("k1")]).await;
    let auth = jwks_auth(&server.url(), Duration::ZERO);
    assert_eq!(
        status(&auth, &rs256(rsa(), "k1", "before")).await.0,
        StatusCode::OK
    );
    server.stop();

    // A token never seen (not cached) still verifies with the keys in memory.
    assert_eq!(
        status(&auth, &rs256(rsa(), "k1", "during")).await.0,
        StatusCode::OK
    );
    // An unknown kid: the refetch fails fast (connection refused), the request gets 401.
    let (code, reason, _) = status(&auth, &rs256(rsa2(), "k2", "x")).await;
    assert_eq!(
        (code, reason),
        (StatusCode::UNAUTHORIZED, Some(AuthFailure::UnknownKey))
    );
    assert!(matches!(
        auth.refresh_jwks().await,
        Err(JwksError::Request(_))
    ));
}

#[tokio::test]
async fn a_garbage_document_is_refused_and_the_last_good_keys_stay() {
    let server = JwksServer::start(vec![]).await;
    let auth = jwks_auth(&server.url(), Duration::ZERO);
    let garbage = [
        "<html><body>502 Bad Gateway</body></html>",
        "{\"keys\": \"nope\"}",
        "{\"keys\": [{\"kty\": \"RSA\", \"kid\": \"k1\", \"n\": \"!!\", \"e\": \"AQAB\"}]}",
        "{\"keys\": [",
        "",
    ];
    // No good document yet: every kind of garbage is an error, and requests get 503.
    for document in garbage {
        server.set_document(document);
        let refreshed = auth.refresh_jwks().await;
        assert!(
            matches!(
                refreshed,
                Err(JwksError::Document(_) | JwksError::NoUsableKeys)
            ),
            "{document:?}: {refreshed:?}"
        );
        let (code, reason, _) = status(&auth, &rs256(rsa(), "k1", "x")).await;
        assert_eq!(
            (code, reason),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(AuthFailure::KeysUnavailable)
            ),
            "{document:?}"
        );
    }
    server.set_keys(vec![TestKey::Rsa(rsa()).jwk("k1")]);
    auth.refresh_jwks().await.unwrap();
    assert_eq!(
        status(&auth, &rs256(rsa(), "k1", "good")).await.0,
        StatusCode::OK
    );
    // Garbage after a good document replaces nothing: the keys in memory keep verifying.
    for document in garbage {
        server.set_document(document);
        assert!(auth.refresh_jwks().await.is_err(), "{document:?}");
        assert_eq!(
            status(&auth, &rs256(rsa(), "k1", document)).await.0,
            StatusCode::OK,
            "{document:?}"
        );
    }
}

#[tokio::test]
async fn no_keys_yet_means_503_with_retry_after() {
    let url = format!("http://{}/jwks.json", dead_port().await);
    let auth = jwks_auth(&url, Duration::from_secs(7));
    let started = std::time::Instant::now();
    let (code, reason, retry_after) = status(&auth, &rs256(rsa(), "k1", "x")).await;
    assert_eq!(
        (code, reason),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(AuthFailure::KeysUnavailable)
        )
    );
    assert_eq!(retry_after.as_deref(), Some("7"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused connections fail fast"
    );

    // Malformed tokens are still told apart from missing keys.
    let (code, reason, _) = status(&auth, "not-a-token").await;
    assert_eq!(
        (code, reason),
        (StatusCode::UNAUTHORIZED, Some(AuthFailure::MalformedToken))
    );
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_never_answers_costs_one_timeout() {
    // Accepts connections and keeps them open without a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let auth = jwks_auth(&url, Duration::from_secs(60));
    let started = Instant::now();
    let (code, reason, _) = status(&auth, &rs256(rsa(), "k1", "x")).await;
    assert_eq!(
        (code, reason),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(AuthFailure::KeysUnavailable)
        )
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // Within the cooldown, no second wait: an immediate 503.
    let started = Instant::now();
    assert_eq!(
        status(&auth, &rs256(rsa(), "k1", "y")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    hold.abort();
}

#[tokio::test(start_paused = true)]
async fn the_background_refresher_picks_up_new_keys_on_schedule() {
    let server = JwksServer::start(vec![TestKey::Rsa(rsa()).jwk("k1")]).await;
    let auth = Authenticator::builder()
        .jwks_url(&server.url())
        .jwks_refresh(Duration::from_secs(60))
        .jwks_cooldown(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(auth.refresh_jwks().await.unwrap(), 1);
    assert!(auth.start_jwks_refresh());
    assert!(
        !auth.start_jwks_refresh(),
        "one refresher per authenticator"
    );

    server.set_keys(vec![
        TestKey::Rsa(rsa()).jwk("k1"),
        TestKey::Rsa(rsa2()).jwk("k2"),
    ]);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(server.hits(), 1, "not before the interval");
    // k2 is unknown and the cooldown forbids an on-demand fetch.
    assert_eq!(
        status(&auth, &rs256(rsa2(), "k2", "x")).await.1,
        Some(AuthFailure::UnknownKey)
    );

    tokio::time::sleep(Duration::from_secs(31)).await;
    for _ in 0..100 {
        if server.hits() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.hits(), 2);
    // Wait for the fetched document to be put in place.
    let mut code = StatusCode::UNAUTHORIZED;
    for _ in 0..100 {
        code = auth
            .authenticate(&rs256(rsa2(), "k2", "y"))
            .await
            .map_or(StatusCode::UNAUTHORIZED, |_| StatusCode::OK);
        if code == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(code, StatusCode::OK);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn key_selection_and_filtering() {
    let ec = p256();
    let ed = ed25519();
    let mut enc = TestKey::Rsa(rsa2()).jwk("enc");
    enc["use"] = "enc".into();
    let mut pss_only = TestKey::Rsa(rsa()).jwk("pss");
    pss_only["alg"] = "PS256".into();
    let oct = json!({"kty": "oct", "kid": "oct", "k": b64(SECRET)});
    let server = JwksServer::start(vec![ec.jwk("ec"), ed.jwk("ed"), enc, pss_only, oct]).await;
    let auth = Authenticator::builder()
        .jwks_url(&server.url())
        .algorithms([
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::RS256,
            Algorithm::PS256,
        ])
        .jwks_cooldown(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(
        auth.refresh_jwks().await.unwrap(),
        3,
        "the enc and oct keys are skipped"
    );

    assert!(
        auth.authenticate(&ec.sign("ES256", json!({"kid": "ec"}), &claims(json!({}))))
            .await
            .is_ok()
    );
    assert!(
        auth.authenticate(&ed.sign("EdDSA", json!({"kid": "ed"}), &claims(json!({}))))
            .await
            .is_ok()
    );
    let pss = TestKey::Rsa(rsa()).sign("PS256", json!({"kid": "pss"}), &claims(json!({})));
    assert!(auth.authenticate(&pss).await.is_ok());
    // The key declares PS256: an RS256 token naming it is refused.
    let rs = TestKey::Rsa(rsa()).sign("RS256", json!({"kid": "pss"}), &claims(json!({})));
    assert_eq!(
        auth.authenticate(&rs).await,
        Err(AuthFailure::AlgorithmNotAllowed)
    );
    // An ES256 token naming the Ed25519 key.
    let wrong = ec.sign("ES256", json!({"kid": "ed"}), &claims(json!({})));
    assert_eq!(
        auth.authenticate(&wrong).await,
        Err(AuthFailure::AlgorithmNotAllowed)
    );
    // The published secret of the skipped `oct` key mints nothing.
    let hs = hmac_token("HS256", SECRET, json!({"kid": "oct"}), &claims(json!({})));
    assert_eq!(
        auth.authenticate(&hs).await,
        Err(AuthFailure::AlgorithmNotAllowed)
    );
    // A token without kid uses the only key that serves its algorithm...
    let no_kid = ec.sign("ES256", json!({}), &claims(json!({})));
    assert!(auth.authenticate(&no_kid).await.is_ok());
    // ...and none when several could: they are never tried in turn.
    server.set_keys(vec![ec.jwk("ec"), p256().jwk("ec2")]);
    let auth = Authenticator::builder()
        .jwks_url(&server.url())
        .algorithms([Algorithm::ES256])
        .build()
        .unwrap();
    assert_eq!(auth.refresh_jwks().await.unwrap(), 2);
    assert_eq!(
        auth.authenticate(&no_kid).await,
        Err(AuthFailure::UnknownKey)
    );
}

/// Runs futures concurrently on the current task (no extra dependency for `join_all`).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let set: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    let mut set: Vec<Option<_>> = set.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
