//! The reverse proxy alone in a plain hyper 1 server.
//!
//! ```sh
//! UPSTREAM_URL=http://127.0.0.1:9001 cargo run --example proxy_hyper   # listens on 127.0.0.1:8081
//! ```
//!
//! Without `UPSTREAM_URL` it starts a small upstream of its own.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use gateway::core::PeerAddr;
use gateway::proxy::{Balance, Proxy, Upstream};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

async fn demo_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                let text = format!("upstream saw {} {}\n", request.method(), request.uri());
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    format!("http://{addr}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = match std::env::var("UPSTREAM_URL") {
        Ok(url) => url,
        Err(_) => demo_upstream().await,
    };
    let upstream = Upstream::builder("app", [target.as_str()])
        .balance(Balance::LeastRequest)
        .connect_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(30))
        .build()?;
    let proxy = Proxy::new(upstream);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
    println!(
        "proxying http://{} -> {target}; try: curl -i http://{}/hello",
        listener.local_addr()?,
        listener.local_addr()?
    );
    loop {
        let (stream, peer) = listener.accept().await?;
        let proxy = proxy.clone();
        let service = service_fn(move |mut request| {
            // The peer address feeds X-Forwarded-For and X-Real-IP.
            request.extensions_mut().insert(PeerAddr(peer));
            proxy.forward(request)
        });
        tokio::spawn(async move {
            // Upgrades on, so WebSocket requests are tunnelled.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
