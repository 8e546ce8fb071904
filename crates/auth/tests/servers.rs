//! The layer in real servers over real sockets: an axum 0.8 `Router` and plain hyper 1.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use common::*;
use gateway_auth::{AuthMode, Authenticator, JwtAuthLayer};
use gateway_core::Identity;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

async fn get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> (StatusCode, HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = Request::get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.request(request.body(Empty::new()).unwrap()),
    )
    .await
    .expect("the server answered in time")
    .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn me(Extension(identity): Extension<Identity>, headers: HeaderMap) -> String {
    format!(
        "{} {}",
        identity.subject().unwrap_or("-"),
        headers["x-user-role"].to_str().unwrap()
    )
}

async fn public(headers: HeaderMap) -> String {
    format!("x-user-id={:?}", headers.get("x-user-id"))
}

#[tokio::test]
async fn axum_router() {
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let app = Router::new()
        .merge(
            Router::new()
                .route("/me", get(me))
                .route_layer(JwtAuthLayer::new(auth.clone())),
        )
        .merge(
            Router::new()
                .route("/admin", get(me))
                .route_layer(JwtAuthLayer::new(auth.clone()).roles(["admin"])),
        )
        .merge(
            Router::new()
                .route("/public", get(public))
                .layer(JwtAuthLayer::new(auth).mode(AuthMode::None)),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let token = hs256(&claims(json!({"user_id": "alice", "role": "user"})));
    let bearer = ("authorization", format!("Bearer {token}"));
    let (status, _, body) = get_with(
        addr,
        "/me",
        &[bearer.clone(), ("x-user-id", "mallory".into())],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "alice user"));

    let (status, headers, body) = get_with(addr, "/me", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"gateway\"");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body.contains("no bearer token"), "{body}");

    let (status, headers, _) = get_with(addr, "/admin", &[bearer]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );

    let (status, _, body) = get_with(addr, "/public", &[("x-user-id", "mallory".into())]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "x-user-id=None"));
    server.abort();
}

#[tokio::test]
async fn plain_hyper_service_fn() {
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let layered =
        JwtAuthLayer::new(auth).layer(tower::service_fn(|request: Request<Incoming>| async move {
            let user = request
                .headers()
                .get("x-user-id")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                user.unwrap_or_default(),
            ))))
        }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let layered = layered.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| layered.clone().oneshot(request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let token = hs256(&claims(json!({"sub": "svc-7"})));
    let (status, _, body) =
        get_with(addr, "/", &[("authorization", format!("Bearer {token}"))]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "svc-7"));
    let (status, headers, _) =
        get_with(addr, "/", &[("authorization", "Bearer x.y.z".into())]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_"),
        "{headers:?}"
    );
    server.abort();
}
