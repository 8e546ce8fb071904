//! The layer's behaviour: header stripping, modes, roles, token sources, rejections, cache.

mod common;

use bytes::Bytes;
use common::*;
use gateway_auth::{AuthFailure, AuthMode, Authenticator, JwtAuthLayer};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

fn authenticator() -> Authenticator {
    Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap()
}

async fn call(
    layer: &JwtAuthLayer,
    request: Request<Full<Bytes>>,
) -> (StatusCode, Response<Bytes>) {
    let service = layer.layer(tower::service_fn(echo));
    let response = service.oneshot(request).await.unwrap();
    let status = response.status();
    let (parts, body) = response.into_parts();
    (
        status,
        Response::from_parts(parts, body.collect().await.unwrap().to_bytes()),
    )
}

fn request(token: Option<&str>, spoof: bool) -> Request<Full<Bytes>> {
    let mut builder = Request::get("/orders");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if spoof {
        builder = builder
            .header("x-user-id", "admin")
            .header("X-User-ID", "root")
            .header("x-user-role", "admin");
    }
    builder.body(Full::default()).unwrap()
}

fn json_body(response: &Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

fn failure(response: &Response<Bytes>) -> Option<AuthFailure> {
    response.extensions().get::<AuthFailure>().copied()
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let auth = authenticator();
    let token = hs256(&claims(json!({"user_id": "alice", "role": "user"})));
    for mode in [AuthMode::None, AuthMode::Optional, AuthMode::Required] {
        let layer = JwtAuthLayer::new(auth.clone()).mode(mode);

        // Authenticated: the verified values replace every client-sent copy.
        let (status, response) = call(&layer, request(Some(&token), true)).await;
        let seen = json_body(&response);
        if mode == AuthMode::None {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                seen,
                json!({"subject": null, "x-user-id": "", "x-user-role": ""}),
                "{mode:?}"
            );
        } else {
            assert_eq!(
                seen,
                json!({"subject": "alice", "x-user-id": "alice", "x-user-role": "user"}),
                "{mode:?}"
            );
        }

        // A claim the token lacks: the spoofed header is removed, not kept.
        let roleless = hs256(&claims(json!({"user_id": "bob"})));
        let (_, response) = call(&layer, request(Some(&roleless), true)).await;
        if mode != AuthMode::None {
            assert_eq!(json_body(&response)["x-user-role"], "", "{mode:?}");
            assert_eq!(json_body(&response)["x-user-id"], "bob", "{mode:?}");
        }

        // Anonymous: stripped, nothing set.
        let (status, response) = call(&layer, request(None, true)).await;
        if mode == AuthMode::Required {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        } else {
            assert_eq!(
                json_body(&response),
                json!({"subject": null, "x-user-id": "", "x-user-role": ""})
            );
        }
    }
}

#[tokio::test]
async fn missing_token_is_a_bare_challenge() {
    let layer = JwtAuthLayer::new(authenticator());
    let (status, response) = call(&layer, request(None, false)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"gateway\""
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(failure(&response), Some(AuthFailure::MissingToken));
    let problem = json_body(&response);
    assert_eq!(problem["status"], 401);
    assert_eq!(problem["detail"], "no bearer token in the request");
}

#[tokio::test]
async fn malformed_header_and_invalid_token_challenges() {
    let layer = JwtAuthLayer::new(authenticator());
    let bad_header = Request::get("/")
        .header("authorization", "Bearer  two-spaces")
        .body(Full::default())
        .unwrap();
    let (status, response) = call(&layer, bad_header).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"gateway\", error=\"invalid_request\", error_description=\"the bearer credentials in the request are malformed or ambiguous\""
    );
    assert_eq!(failure(&response), Some(AuthFailure::Malformed));

    let obs_text = Request::get("/")
        .header(
            "authorization",
            http::HeaderValue::from_bytes(b"Bearer a\xff.b.c").unwrap(),
        )
        .body(Full::default())
        .unwrap();
    let (status, response) = call(&layer, obs_text).await;
    assert_eq!(
        (status, failure(&response)),
        (StatusCode::UNAUTHORIZED, Some(AuthFailure::Malformed))
    );

    let expired = hs256(&claims(json!({"exp": now() - 3600})));
    let (status, response) = call(&layer, request(Some(&expired), false)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"gateway\", error=\"invalid_token\", error_description=\"the token has expired\""
    );
    assert_eq!(json_body(&response)["detail"], "the token has expired");
    assert_eq!(failure(&response), Some(AuthFailure::Expired));
}

#[tokio::test]
async fn roles_are_enforced_with_403() {
    let layer = JwtAuthLayer::new(authenticator()).roles(["admin", "ops"]);
    let user = hs256(&claims(json!({"role": "user"})));
    let (status, response) = call(&layer, request(Some(&user), false)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"gateway\", error=\"insufficient_scope\", error_description=\"the token role does not grant access to this resource\""
    );
    assert_eq!(failure(&response), Some(AuthFailure::InsufficientRole));

    let no_role = hs256(&claims(json!({})));
    assert_eq!(
        call(&layer, request(Some(&no_role), false)).await.0,
        StatusCode::FORBIDDEN
    );
    let many = hs256(&claims(json!({"role": ["user", "ops"]})));
    assert_eq!(
        call(&layer, request(Some(&many), false)).await.0,
        StatusCode::OK
    );
    let admin = hs256(&claims(json!({"role": "admin"})));
    assert_eq!(
        call(&layer, request(Some(&admin), false)).await.0,
        StatusCode::OK
    );

    // A custom roles claim.
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .roles_claim("groups")
        .build()
        .unwrap();
    let layer = JwtAuthLayer::new(auth).roles(["admin"]);
    let grouped = hs256(&claims(json!({"role": "admin", "groups": ["staff"]})));
    assert_eq!(
        call(&layer, request(Some(&grouped), false)).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn optional_mode() {
    let layer = JwtAuthLayer::new(authenticator()).mode(AuthMode::Optional);
    let (status, response) = call(&layer, request(None, false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&response)["subject"], Value::Null);

    let token = hs256(&claims(json!({"sub": "s-1"})));
    let (status, response) = call(&layer, request(Some(&token), false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&response)["subject"], "s-1");

    let (status, response) = call(&layer, request(Some("not.a.token"), false)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(failure(&response), Some(AuthFailure::MalformedToken));
}

#[tokio::test]
async fn mode_none_ignores_tokens() {
    let layer = JwtAuthLayer::new(authenticator()).mode(AuthMode::None);
    let (status, response) = call(&layer, request(Some("garbage"), false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&response)["subject"], Value::Null);
}

#[tokio::test]
async fn cookie_and_query_sources() {
    let token = hs256(&claims(json!({"user_id": "carol"})));
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .token_from_cookie("session")
        .token_from_query("access_token")
        .build()
        .unwrap();
    let layer = JwtAuthLayer::new(auth);

    let by_cookie = Request::get("/")
        .header("cookie", format!("theme=dark; session={token}"))
        .body(Full::default())
        .unwrap();
    let (status, response) = call(&layer, by_cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&response)["x-user-id"], "carol");

    let by_query = Request::get(format!("/items?page=1&access_token={token}"))
        .body(Full::default())
        .unwrap();
    let (status, response) = call(&layer, by_query).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&response)["x-user-id"], "carol");

    // Not configured: not looked at.
    let plain = JwtAuthLayer::new(authenticator());
    let by_query = Request::get(format!("/items?access_token={token}"))
        .body(Full::default())
        .unwrap();
    assert_eq!(call(&plain, by_query).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn custom_forwarding_and_realm() {
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .realm("orders-api")
        .forward("X-User-Role", ["role"])
        .forward("X-Tenant", ["tenant", "org"])
        .build()
        .unwrap();
    let layer = JwtAuthLayer::new(auth.clone());
    let service = layer.layer(tower::service_fn(
        |request: Request<Full<Bytes>>| async move {
            let tenant = request
                .headers()
                .get("x-tenant")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                tenant.unwrap_or_default(),
            ))))
        },
    ));
    let token = hs256(&claims(json!({"org": 42})));
    let request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .header("x-tenant", "spoof");
    let response = service
        .clone()
        .oneshot(request.body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "42"
    );

    let response = service
        .oneshot(Request::new(Full::default()))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"orders-api\""
    );
}

#[tokio::test]
async fn the_cache_never_lets_a_different_token_through() {
    let auth = authenticator();
    let layer = JwtAuthLayer::new(auth.clone());
    let alice = hs256(&claims(json!({"user_id": "alice"})));
    let bob = hs256(&claims(json!({"user_id": "bob"})));
    for _ in 0..3 {
        for (token, user) in [(&alice, "alice"), (&bob, "bob")] {
            let (status, response) = call(&layer, request(Some(token), false)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(json_body(&response)["x-user-id"], user);
        }
    }
    assert_eq!(auth.cached_tokens(), 2);

    // Every one-character change of a cached token is a different token.
    let positions = [5, alice.len() / 2, alice.len() - 2];
    for i in positions {
        let mut bytes = alice.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        let (status, response) = call(&layer, request(Some(&forged), false)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "position {i}");
        assert_ne!(failure(&response), None);
    }
    let with_suffix = format!("{alice}A");
    assert_eq!(
        call(&layer, request(Some(&with_suffix), false)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_tiny_cache_stays_correct_under_eviction() {
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .cache_size(1)
        .build()
        .unwrap();
    let layer = JwtAuthLayer::new(auth.clone());
    let tokens: Vec<String> = (0..40)
        .map(|i| hs256(&claims(json!({"user_id": format!("u{i}")}))))
        .collect();
    for round in 0..2 {
        for (i, token) in tokens.iter().enumerate() {
            let (status, response) = call(&layer, request(Some(token), false)).await;
            assert_eq!(status, StatusCode::OK, "round {round}");
            assert_eq!(json_body(&response)["x-user-id"], format!("u{i}"));
        }
    }
    assert!(auth.cached_tokens() <= 16, "{}", auth.cached_tokens());
}

#[tokio::test]
async fn identity_is_shared_by_other_layers() {
    let auth = authenticator();
    let token = hs256(&claims(json!({"user_id": "dave", "plan": "pro"})));
    let service = JwtAuthLayer::new(auth).layer(tower::service_fn(
        |request: Request<Full<Bytes>>| async move {
            let identity = request
                .extensions()
                .get::<gateway_core::Identity>()
                .cloned()
                .unwrap();
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{}:{}",
                identity.subject().unwrap(),
                identity.claim_text("plan").unwrap()
            )))))
        },
    ));
    let response = service.oneshot(request(Some(&token), false)).await.unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "dave:pro"
    );
}
