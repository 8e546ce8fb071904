//! Per-request cost of the reverse proxy.
//!
//! - `headers/*`: the hop-by-hop pass on a browser-like request head, with and without a
//!   `Connection: keep-alive` (and `Keep-Alive`) to remove.
//! - `roundtrip/*`: a whole GET over loopback to a local hyper upstream (100-byte body), on
//!   one current-thread runtime: `direct` is a pooled hyper connection straight to the
//!   upstream, `proxy` goes through [`Proxy`] (pool, headers, balancing, timeouts). The
//!   difference is what the proxy adds in user space on top of hyper's client.
//!
//! `cargo bench --bench proxy`; results in `benches/README.md`.

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gateway_core::PeerAddr;
use gateway_proxy::headers::strip_hop_by_hop;
use gateway_proxy::{Proxy, Upstream};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn browser_head(connection: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let pairs = [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("accept", "application/json, text/plain, */*"),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://app.example.com/orders/42"),
        (
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
        ),
        ("cookie", "session=6a1f0c9e; theme=dark"),
        ("x-request-id", "0f9d6e1c-3b1a-4c9f-9d1e-2b6f7a8c9d0e"),
        ("sec-fetch-mode", "cors"),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if connection {
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    }
    headers
}

fn headers(c: &mut Criterion) {
    let mut group = c.benchmark_group("headers");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for (name, connection) in [
        ("strip_none_present", false),
        ("strip_connection_keep_alive", true),
    ] {
        let head = browser_head(connection);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || head.clone(),
                |headers| black_box(strip_hop_by_hop(headers, false)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// A hyper upstream answering every request with 100 bytes.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Bytes::from(vec![b'x'; 100]);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            let body = body.clone();
            let service = service_fn(move |_request| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .writev(false)
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("/small")
        .header("host", "gateway.test")
        .header("user-agent", "bench")
        .header("accept", "*/*")
        .body(Empty::new())
        .unwrap()
}

fn roundtrip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(upstream());
    let mut group = c.benchmark_group("roundtrip");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);

    let mut direct = rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    });
    group.bench_function("direct", |b| {
        b.to_async(&rt).iter(|| {
            let response = direct.send_request(get());
            async move {
                let body = response.await.unwrap().into_body();
                black_box(body.collect().await.unwrap());
            }
        })
    });

    let proxy = Proxy::new(
        Upstream::builder("bench", [format!("http://{addr}")])
            .build()
            .unwrap(),
    );
    let peer = PeerAddr(SocketAddr::from(([192, 0, 2, 1], 40000)));
    group.bench_function("proxy", |b| {
        b.to_async(&rt).iter(|| {
            let mut request = get();
            request.extensions_mut().insert(peer);
            let response = proxy.forward(request);
            async move {
                let body = response.await.unwrap().into_body();
                black_box(body.collect().await.unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, headers, roundtrip);
criterion_main!(benches);
