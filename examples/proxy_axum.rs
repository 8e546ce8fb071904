//! The reverse proxy as an axum 0.8 fallback: the routes axum knows are served locally, every
//! other request goes upstream.
//!
//! ```sh
//! UPSTREAM_URL=http://127.0.0.1:9001 cargo run --example proxy_axum   # listens on 127.0.0.1:8082
//! ```
//!
//! Without `UPSTREAM_URL` it starts a small upstream of its own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::routing::get;
use bytes::Bytes;
use gateway::core::PeerAddr;
use gateway::proxy::{Proxy, Upstream};
use http_body_util::Full;
use hyper_util::rt::TokioIo;

async fn demo_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(
                |request: http::Request<hyper::body::Incoming>| async move {
                    let text = format!("upstream saw {} {}\n", request.method(), request.uri());
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    format!("http://{addr}")
}

/// Hands axum's connection info to the proxy as the peer address (for X-Forwarded-For).
async fn peer_addr(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> axum::response::Response {
    request.extensions_mut().insert(PeerAddr(peer));
    next.run(request).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = match std::env::var("UPSTREAM_URL") {
        Ok(url) => url,
        Err(_) => demo_upstream().await,
    };
    let upstream = Upstream::builder("app", [target.as_str()])
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let app = Router::new()
        .route("/local", get(|| async { "served by axum\n" }))
        .fallback_service(Proxy::new(upstream))
        .layer(middleware::from_fn(peer_addr));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8082").await?;
    let addr = listener.local_addr()?;
    println!(
        "try: curl -i http://{addr}/local   (axum)   and   curl -i http://{addr}/anything   (-> {target})"
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
