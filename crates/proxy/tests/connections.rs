//! Targets and connections: balancing, ejection, retries, pooling.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use gateway_proxy::{Balance, Proxy, Upstream};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Pauses tokio's clock, moves it forward, and resumes it: idle-time logic is tested
/// without sleeping, while no I/O is in flight.
async fn skip(duration: Duration) {
    tokio::time::pause();
    tokio::time::advance(duration).await;
    tokio::time::resume();
}

#[tokio::test]
async fn round_robin_spreads_requests_evenly() {
    bounded(async {
        let targets = [echo().await, echo().await, echo().await];
        let upstream = Upstream::builder("users", targets.iter().map(UpstreamServer::url))
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream)).await;
        let mut client = h1_client(gateway).await;
        for _ in 0..30 {
            let response = client.send_request(get("/")).await.unwrap();
            assert_eq!(response.status(), 200);
            text(response).await;
        }
        let counts: Vec<usize> = targets.iter().map(UpstreamServer::requests).collect();
        assert_eq!(counts, [10, 10, 10]);
    })
    .await;
}

#[tokio::test]
async fn least_request_prefers_the_less_loaded_target() {
    bounded(async {
        // `busy` holds every request until released; `idle` answers at once.
        let (release, released) = watch::channel(false);
        let busy = upstream(move |_request| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|&r| r).await;
                Response::new(full("busy"))
            }
        })
        .await;
        let idle = echo().await;
        let upstream = Upstream::builder("users", [busy.url(), idle.url()])
            .balance(Balance::LeastRequest)
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream.clone())).await;

        let mut held = Vec::new();
        for i in 1..=20 {
            let request = tokio::spawn(async move {
                let response = send(gateway, get("/")).await;
                text(response).await
            });
            // Wait until it is either held by `busy` or answered by `idle`.
            loop {
                if busy.requests() + idle.requests() == i
                    && (request.is_finished() || busy.requests() > held.len())
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if request.is_finished() {
                request.await.unwrap();
            } else {
                held.push(request);
            }
        }
        // Once `busy` holds a request, `idle` (none in flight) always wins.
        assert!(busy.requests() <= 1, "busy got {}", busy.requests());
        assert_eq!(idle.requests(), 20 - busy.requests());
        assert_eq!(
            upstream.targets().map(|t| t.in_flight).sum::<usize>(),
            held.len()
        );

        release.send(true).unwrap();
        for request in held {
            assert_eq!(request.await.unwrap(), "busy");
        }
        assert!(upstream.targets().all(|t| t.in_flight == 0));
    })
    .await;
}

#[tokio::test]
async fn refusing_target_is_ejected_then_tried_again() {
    bounded(async {
        let dead = closed_port().await;
        let live = echo().await;
        let upstream = Upstream::builder("users", [format!("http://{dead}"), live.url()])
            .eject_for(Duration::from_secs(30))
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream.clone())).await;
        let mut client = h1_client(gateway).await;
        let mut ok = 0;
        for _ in 0..10 {
            let response = client.send_request(get("/")).await.unwrap();
            ok += usize::from(response.status() == StatusCode::OK);
            text(response).await;
        }
        // The first request met the refusal and was retried; none was lost.
        assert_eq!(ok, 10);
        assert_eq!(live.requests(), 10);
        let ejected: Vec<bool> = upstream.targets().map(|t| t.ejected).collect();
        assert_eq!(ejected, [true, false]);
        assert!(upstream.is_available());

        skip(Duration::from_secs(31)).await;
        assert!(upstream.targets().all(|t| !t.ejected));
        for _ in 0..2 {
            let response = client.send_request(get("/")).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            text(response).await;
        }
        // Round robin sent one of the two to the dead target again, which ejected it again.
        assert_eq!(
            upstream.targets().map(|t| t.ejected).collect::<Vec<_>>(),
            [true, false]
        );
    })
    .await;
}

#[tokio::test]
async fn only_target_refusing_is_a_502_without_retry_loop() {
    bounded(async {
        let dead = closed_port().await;
        let upstream = Upstream::builder("users", [format!("http://{dead}")])
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream.clone())).await;
        assert_eq!(
            send(gateway, get("/")).await.status(),
            StatusCode::BAD_GATEWAY
        );
        assert!(!upstream.is_available());
        // Ejected targets are still used when there is nothing else.
        assert_eq!(
            send(gateway, get("/")).await.status(),
            StatusCode::BAD_GATEWAY
        );
    })
    .await;
}

/// A server that reads one request head per connection and closes without answering.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn idempotent_request_is_retried_after_a_broken_exchange() {
    bounded(async {
        let (hole, swallowed) = black_hole().await;
        let live = echo().await;
        for method in ["GET", "PUT", "DELETE"] {
            // A fresh upstream per method: round robin starts at the black hole.
            let upstream = Upstream::builder("users", [hole.clone(), live.url()])
                .build()
                .unwrap();
            let gateway = gateway(Proxy::new(upstream)).await;
            let request = Request::builder()
                .method(method)
                .uri("/item")
                .header("host", "gateway.test")
                .body(empty())
                .unwrap();
            let response = send(gateway, request).await;
            assert_eq!(response.status(), StatusCode::OK, "{method}");
            let seen = Echoed::parse(&text(response).await);
            assert_eq!(seen.request_line, format!("{method} /item HTTP/1.1"));
        }
        assert_eq!(swallowed.load(Ordering::SeqCst), 3);
        assert_eq!(live.requests(), 3);
    })
    .await;
}

#[tokio::test]
async fn request_with_body_or_unsafe_method_is_not_retried() {
    bounded(async {
        let (hole, swallowed) = black_hole().await;
        let live = echo().await;
        for (method, body) in [("POST", ""), ("PUT", "data")] {
            let upstream = Upstream::builder("users", [hole.clone(), live.url()])
                .build()
                .unwrap();
            let gateway = gateway(Proxy::new(upstream)).await;
            let request = Request::builder()
                .method(method)
                .uri("/item")
                .header("host", "gateway.test")
                .body(full(body))
                .unwrap();
            let response = send(gateway, request).await;
            assert_eq!(
                response.status(),
                StatusCode::BAD_GATEWAY,
                "{method} {body:?}"
            );
        }
        assert_eq!(swallowed.load(Ordering::SeqCst), 2);
        assert_eq!(live.requests(), 0);
    })
    .await;
}

#[tokio::test]
async fn connections_are_reused_across_client_connections() {
    bounded(async {
        let echo = echo().await;
        let gateway = gateway(Proxy::new(
            Upstream::builder("users", [echo.url()]).build().unwrap(),
        ))
        .await;
        for _ in 0..5 {
            let mut client = h1_client(gateway).await;
            for _ in 0..4 {
                let response = client.send_request(get("/")).await.unwrap();
                text(response).await;
            }
        }
        assert_eq!(echo.requests(), 20);
        assert_eq!(echo.connections(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_on_a_multi_thread_runtime() {
    bounded(async {
        let echo = echo().await;
        let gateway = gateway(Proxy::new(
            Upstream::builder("users", [echo.url()]).build().unwrap(),
        ))
        .await;
        let clients = (0..4).map(|_| {
            tokio::spawn(async move {
                let mut client = h1_client(gateway).await;
                for _ in 0..25 {
                    let response = client.send_request(get("/")).await.unwrap();
                    assert_eq!(response.status(), 200);
                    text(response).await;
                }
            })
        });
        for client in clients.collect::<Vec<_>>() {
            client.await.unwrap();
        }
        assert_eq!(echo.requests(), 100);
        // Pools are per thread and tasks move between threads, so a few more connections
        // than concurrent clients are opened; most requests still reuse one.
        assert!(
            echo.connections() * 4 <= 100,
            "{} connections",
            echo.connections()
        );
    })
    .await;
}

#[tokio::test]
async fn idle_connections_expire() {
    bounded(async {
        let echo = echo().await;
        let upstream = Upstream::builder("users", [echo.url()])
            .idle_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream)).await;
        let mut client = h1_client(gateway).await;
        let mut request = async || text(client.send_request(get("/")).await.unwrap()).await;
        request().await;
        skip(Duration::from_secs(9)).await;
        request().await;
        assert_eq!(echo.connections(), 1);
        skip(Duration::from_secs(11)).await;
        request().await;
        assert_eq!(echo.connections(), 2);
    })
    .await;
}

/// A server that answers one request per connection, then closes it without saying so
/// (no `Connection: close`): every pooled connection goes stale.
async fn one_shot_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    (url, served)
}

#[tokio::test]
async fn stale_pooled_connections_never_lose_a_request() {
    bounded(async {
        let (url, served) = one_shot_server().await;
        for method in ["GET", "POST"] {
            let gateway = gateway(Proxy::new(
                Upstream::builder("users", [url.clone()]).build().unwrap(),
            ))
            .await;
            let mut client = h1_client(gateway).await;
            for i in 0..10 {
                let request = Request::builder()
                    .method(method)
                    .uri("/")
                    .header("host", "gateway.test")
                    .body(empty())
                    .unwrap();
                let response = client.send_request(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{method} #{i}");
                assert_eq!(text(response).await, "ok");
            }
        }
        assert_eq!(served.load(Ordering::SeqCst), 20);
    })
    .await;
}

#[tokio::test]
async fn response_body_dropped_early_closes_its_connection() {
    bounded(async {
        let big = upstream(|_request: Request<Incoming>| async {
            Response::new(http_body_util::BodyExt::boxed(Generated::new(
                8 << 20,
                16 << 10,
            )))
        })
        .await;
        let upstream = Upstream::builder("users", [big.url()]).build().unwrap();
        let gateway = gateway(Proxy::new(upstream.clone())).await;

        let response = send(gateway, get("/")).await;
        let mut body = response.into_body();
        http_body_util::BodyExt::frame(&mut body)
            .await
            .unwrap()
            .unwrap();
        drop(body);
        // The lease ends with the proxy's body, once the gateway notices the client left.
        while upstream.targets().any(|t| t.in_flight > 0) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let response = send(gateway, get("/")).await;
        let (len, _) = verify_generated(response.into_body()).await;
        assert_eq!(len, 8 << 20);
        assert_eq!(big.connections(), 2);
    })
    .await;
}

#[tokio::test]
async fn pooled_connections_of_a_dropped_upstream_are_closed() {
    bounded(async {
        // A server that counts the connections it saw closed.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let closed = Arc::new(AtomicUsize::new(0));
        let counter = closed.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                                if stream.write_all(reply).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        let old = Proxy::new(Upstream::builder("users", [url.clone()]).build().unwrap());
        let response = tower::ServiceExt::oneshot(old, get("/")).await.unwrap();
        assert_eq!(text_of(response).await, "ok");
        // The old upstream is gone (a config reload); its idle connection is still pooled.
        let new = Proxy::new(Upstream::builder("users", [url]).build().unwrap());
        let response = tower::ServiceExt::oneshot(new, get("/")).await.unwrap();
        assert_eq!(text_of(response).await, "ok");
        while closed.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

async fn text_of(response: Response<gateway_proxy::ProxyBody>) -> String {
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    String::from_utf8(body.to_bytes().to_vec()).unwrap()
}
