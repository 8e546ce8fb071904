//! Usage with axum 0.8: the layers on a `Router`, in-process and served over a socket.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use gateway_core::{PeerAddr, RequestId};
use gateway_headers::{
    HeaderRules, HeadersLayer, RequestHeadersLayer, ResponseHeadersLayer, SetRequestIdLayer,
};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// A handler that returns the headers it received, one `name: value` a line.
async fn echo(headers: HeaderMap, request_id: Option<axum::Extension<RequestId>>) -> String {
    let mut text = String::new();
    for (name, value) in &headers {
        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
    }
    if let Some(axum::Extension(id)) = request_id {
        text.push_str(&format!("extension: {}\n", id.0.to_str().unwrap()));
    }
    text
}

fn app() -> Router {
    let request = HeaderRules::builder()
        .remove("Cookie")
        .set("X-Method", "{method}")
        .set("X-Client-IP", "{client_ip}")
        .build()
        .unwrap();
    let response = HeaderRules::builder()
        .set("X-Frame-Options", "DENY")
        .set("X-Path", "{path}")
        .build()
        .unwrap();
    Router::new()
        .route("/echo", get(echo))
        .layer(RequestHeadersLayer::new(request))
        // Response rules on the outside cover the router's own 404 too.
        .layer(ResponseHeadersLayer::new(response))
        .layer(SetRequestIdLayer::new())
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn router_with_the_layers_in_process() {
    let request = Request::get("/echo")
        .header("cookie", "c=1")
        .body(Body::empty())
        .unwrap();
    let response = app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["x-path"], "/echo");
    let text = body_text(response).await;
    assert!(text.contains("x-method: GET\n"), "{text}");
    assert!(!text.contains("cookie"), "{text}");
    assert!(text.contains(&format!("x-request-id: {id}\n")), "{text}");
    assert!(text.contains(&format!("extension: {id}\n")), "{text}");
    // No peer address in-process: no client IP, so no header.
    assert!(!text.contains("x-client-ip"), "{text}");
}

#[tokio::test]
async fn the_router_s_404_gets_the_response_rules() {
    let request = Request::get("/missing").body(Body::empty()).unwrap();
    let response = app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["x-path"], "/missing");
    assert_eq!(response.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn combined_layer_on_a_route() {
    let layer = HeadersLayer::new()
        .request(
            HeaderRules::builder()
                .set("X-Route", "users")
                .build()
                .unwrap(),
        )
        .response(
            HeaderRules::builder()
                .set("Cache-Control", "no-store")
                .build()
                .unwrap(),
        );
    let app = Router::new().route("/users", get(echo).layer(layer));
    let response = app
        .oneshot(Request::get("/users").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(body_text(response).await.contains("x-route: users\n"));
}

/// Served by `axum::serve`, with the peer address from `ConnectInfo` turned into the
/// `PeerAddr` extension the templates read.
#[tokio::test]
async fn served_over_a_socket_with_the_client_ip() {
    let app = app().layer(axum::middleware::map_request(
        |ConnectInfo(peer): ConnectInfo<SocketAddr>, mut request: Request| async move {
            request.extensions_mut().insert(PeerAddr(peer));
            request
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: test\r\nCookie: a=1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("x-frame-options: DENY\r\n"), "{text}");
    assert!(text.contains("x-client-ip: 127.0.0.1\n"), "{text}");
    assert!(!text.contains("cookie"), "{text}");
    server.abort();
}
