//! The layer over a `service_fn` upstream: negotiation, what is compressed, headers, codecs and
//! streaming.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use gateway_compression::{Algorithm, CompressionBody, CompressionLayer, CompressionPolicy};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, ETAG, VARY};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceExt};

fn html(len: usize) -> impl Fn() -> Response<Full<Bytes>> + Clone + Send + 'static {
    move || {
        let body = text(len);
        respond(
            &[
                ("content-type", "text/html; charset=utf-8"),
                ("content-length", &body.len().to_string()),
            ],
            &body,
        )
    }
}

fn encoding<B>(response: &Response<B>) -> Option<&str> {
    response
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap())
}

fn vary(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(VARY)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_algorithm_round_trips_exactly() {
    let policy = CompressionPolicy::default();
    for name in ["gzip", "br", "zstd"] {
        let response = call(&policy, get(Some(name)), html(20_000)).await;
        assert_eq!(encoding(&response), Some(name));
        assert!(response.headers().get(CONTENT_LENGTH).is_none());
        assert_eq!(vary(response.headers()), ["accept-encoding"]);
        let (compressed, _) = collect(response.into_body()).await;
        assert!(
            compressed.len() < 2_000,
            "{name}: {} bytes",
            compressed.len()
        );
        assert_eq!(decode(name, &compressed), text(20_000).as_bytes(), "{name}");
    }
}

#[tokio::test]
async fn no_accept_encoding_is_identity() {
    let response = call(&CompressionPolicy::default(), get(None), html(4096)).await;
    assert_eq!(encoding(&response), None);
    assert_eq!(response.headers()[CONTENT_LENGTH], "4096");
    // Compressible, so caches must key it by Accept-Encoding all the same.
    assert_eq!(vary(response.headers()), ["accept-encoding"]);
    let (body, _) = collect(response.into_body()).await;
    assert_eq!(body, text(4096));
}

#[tokio::test]
async fn q_values_then_configured_order() {
    let default = CompressionPolicy::default();
    let gzip_first = policy(r#"algorithms = ["gzip", "zstd", "br"]"#);
    let cases: &[(&CompressionPolicy, &str, Option<&str>)] = &[
        (&default, "gzip, br, zstd", Some("br")),
        (&gzip_first, "gzip, br, zstd", Some("gzip")),
        (&gzip_first, "br, zstd", Some("zstd")),
        (&default, "gzip;q=0.9, br;q=0.5", Some("gzip")),
        (&default, "gzip;q=0.5, br;q=0.8, zstd;q=0.8", Some("br")),
        (
            &gzip_first,
            "gzip;q=0.5, br;q=0.8, zstd;q=0.8",
            Some("zstd"),
        ),
        (&default, "br;q=0, *", Some("zstd")),
        (&default, "*", Some("br")),
        (&default, "*;q=0", None),
        (&default, "identity;q=0", None),
        (&default, "identity;q=0, deflate", None),
        (&default, "gzip;q=0.4, identity;q=0.8", None),
        (&default, "gzip;q=0", None),
        (&default, "deflate", None),
        (&default, "GZIP;Q=0.5", Some("gzip")),
        (&policy(r#"algorithms = ["gzip"]"#), "br, zstd", None),
        (&policy("algorithms = []"), "gzip", None),
    ];
    for &(policy, accept, expected) in cases {
        let response = call(policy, get(Some(accept)), html(4096)).await;
        assert_eq!(encoding(&response), expected, "Accept-Encoding: {accept}");
        assert_eq!(
            policy
                .negotiate(get(Some(accept)).headers())
                .map(Algorithm::name),
            expected,
            "{accept}"
        );
    }
}

#[tokio::test]
async fn never_compressed() {
    let policy = CompressionPolicy::default();
    let big = text(4096);
    let with = |extra: &'static [(&'static str, &'static str)]| {
        let big = big.clone();
        move || {
            let mut headers = vec![("content-type", "text/plain")];
            headers.extend_from_slice(extra);
            respond(&headers, &big)
        }
    };
    // A sanity check that the base response is compressed.
    let response = call(&policy, get(Some("gzip")), with(&[])).await;
    assert_eq!(encoding(&response), Some("gzip"));

    let cases: &[(&str, &[(&str, &str)])] = &[
        ("already encoded", &[("content-encoding", "br")]),
        ("no-transform", &[("cache-control", "public, No-Transform")]),
        ("range", &[("content-range", "bytes 0-4095/10000")]),
    ];
    for (name, extra) in cases {
        let response = call(&policy, get(Some("gzip")), with(extra)).await;
        assert_ne!(encoding(&response), Some("gzip"), "{name}");
        assert!(response.headers().get(VARY).is_none(), "{name}");
        let (body, _) = collect(response.into_body()).await;
        assert_eq!(body, big, "{name}");
    }

    for status in [
        StatusCode::SWITCHING_PROTOCOLS,
        StatusCode::from_u16(103).unwrap(),
        StatusCode::NO_CONTENT,
        StatusCode::NOT_MODIFIED,
        StatusCode::PARTIAL_CONTENT,
    ] {
        let respond = with(&[]);
        let response = call(&policy, get(Some("gzip")), move || {
            let mut response = respond();
            *response.status_mut() = status;
            response
        })
        .await;
        assert_eq!(encoding(&response), None, "{status}");
    }

    let head = Request::builder()
        .method(Method::HEAD)
        .header("accept-encoding", "gzip")
        .body(())
        .unwrap();
    let response = call(&policy, head, with(&[])).await;
    assert_eq!(encoding(&response), None, "HEAD");

    for content_type in ["text/event-stream", "TEXT/Event-Stream; charset=utf-8"] {
        let big = big.clone();
        let response = call(&policy, get(Some("gzip")), move || {
            respond(&[("content-type", content_type)], &big)
        })
        .await;
        assert_eq!(encoding(&response), None, "{content_type}");
    }
}

#[tokio::test]
async fn content_types() {
    let default = CompressionPolicy::default();
    let cases = [
        (Some("text/html"), true),
        (Some("Text/CSS; charset=utf-8"), true),
        (Some("application/json"), true),
        (Some("APPLICATION/JSON ; charset=utf-8"), true),
        (Some("application/javascript"), true),
        (Some("image/svg+xml"), true),
        (Some("image/png"), false),
        (Some("application/octet-stream"), false),
        (Some("application/json-seq"), false),
        (None, false),
    ];
    for (content_type, compressed) in cases {
        let response = call(&default, get(Some("gzip")), move || {
            let mut headers = vec![];
            headers.extend(content_type.map(|t| ("content-type", t)));
            respond(&headers, &text(2048))
        })
        .await;
        assert_eq!(
            encoding(&response).is_some(),
            compressed,
            "{content_type:?}"
        );
    }
    let custom = policy(r#"content_types = ["application/*"]"#);
    let response = call(&custom, get(Some("gzip")), || {
        respond(&[("content-type", "application/x-ndjson")], &text(2048))
    })
    .await;
    assert_eq!(encoding(&response), Some("gzip"));
    let response = call(&custom, get(Some("gzip")), html(2048)).await;
    assert_eq!(encoding(&response), None);
}

#[tokio::test]
async fn min_size() {
    let policy = policy(r#"min_size = "1KiB""#);
    let response = call(&policy, get(Some("gzip")), html(1023)).await;
    assert_eq!(encoding(&response), None);
    assert_eq!(response.headers()[CONTENT_LENGTH], "1023");
    assert!(response.headers().get(VARY).is_none());
    let response = call(&policy, get(Some("gzip")), html(1024)).await;
    assert_eq!(encoding(&response), Some("gzip"));

    // No Content-Length, but the body's exact size is known: small.
    let response = call(&policy, get(Some("gzip")), || {
        respond(&[("content-type", "text/plain")], "tiny")
    })
    .await;
    assert_eq!(encoding(&response), None);

    // Unknown length counts as large.
    let response = call(&policy, get(Some("gzip")), || {
        let (tx, rx) = mpsc::channel(1);
        tx.try_send(Frame::data(Bytes::from_static(b"tiny")))
            .unwrap();
        Response::builder()
            .header("content-type", "text/plain")
            .body(ChannelBody(rx))
            .unwrap()
    })
    .await;
    assert_eq!(encoding(&response), Some("gzip"));
    let (body, _) = collect(response.into_body()).await;
    assert_eq!(decode("gzip", &body), b"tiny");
}

#[tokio::test]
async fn vary_is_appended_once() {
    let policy = CompressionPolicy::default();
    let cases: &[(&[&str], &[&str])] = &[
        (&["origin"], &["origin", "accept-encoding"]),
        (&["Origin, Accept-Encoding"], &["Origin, Accept-Encoding"]),
        (
            &["origin", "accept-encoding"],
            &["origin", "accept-encoding"],
        ),
        (&["*"], &["*"]),
    ];
    for &(before, after) in cases {
        let response = call(&policy, get(Some("br")), move || {
            let mut headers = vec![("content-type", "text/plain")];
            headers.extend(before.iter().map(|v| ("vary", *v)));
            respond(&headers, &text(2048))
        })
        .await;
        assert_eq!(encoding(&response), Some("br"));
        assert_eq!(vary(response.headers()), after, "{before:?}");
    }
}

#[tokio::test]
async fn strong_etags_become_weak() {
    let policy = CompressionPolicy::default();
    for (etag, expected) in [(r#""abc""#, r#"W/"abc""#), (r#"W/"abc""#, r#"W/"abc""#)] {
        let response = call(&policy, get(Some("zstd")), move || {
            respond(
                &[("content-type", "text/plain"), ("etag", etag)],
                &text(2048),
            )
        })
        .await;
        assert_eq!(response.headers()[ETAG], expected);
    }
    // Not compressed: left alone.
    let response = call(&policy, get(None), || {
        respond(
            &[("content-type", "text/plain"), ("etag", r#""abc""#)],
            &text(2048),
        )
    })
    .await;
    assert_eq!(response.headers()[ETAG], r#""abc""#);
}

/// The next frame, failing rather than waiting for input that never comes.
async fn next_frame(
    body: &mut CompressionBody<ChannelBody>,
) -> Option<Result<Frame<Bytes>, gateway_core::BoxError>> {
    tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("a frame, not a wait for more input")
}

/// Each frame the upstream sends must be decodable by the client before the next one is sent.
#[tokio::test]
async fn frames_are_flushed_as_they_arrive() {
    let policy = CompressionPolicy::default();
    for name in ["gzip", "br", "zstd"] {
        let (tx, rx) = mpsc::channel(1);
        let rx = std::sync::Mutex::new(Some(rx));
        let inner = tower::service_fn(move |_: Request<()>| {
            let rx = rx.lock().unwrap().take().unwrap();
            async move {
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(ChannelBody(rx))
                        .unwrap(),
                )
            }
        });
        let service = CompressionLayer::new(policy.clone()).layer(inner);
        let response = service.oneshot(get(Some(name))).await.unwrap();
        assert_eq!(encoding(&response), Some(name));
        let mut body = response.into_body();
        let mut decoder = Incremental::new(name);

        tx.send(Frame::data(Bytes::from_static(b"{\"first\": 1}\n")))
            .await
            .unwrap();
        let chunk = next_frame(&mut body)
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(decoder.feed(&chunk), "{\"first\": 1}\n", "{name}");

        tx.send(Frame::data(Bytes::from_static(b"{\"second\": 2}\n")))
            .await
            .unwrap();
        let chunk = next_frame(&mut body)
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(
            decoder.feed(&chunk),
            "{\"first\": 1}\n{\"second\": 2}\n",
            "{name}"
        );

        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        tx.send(Frame::trailers(trailers.clone())).await.unwrap();
        drop(tx);
        let mut rest = Vec::new();
        let mut got_trailers = None;
        while let Some(frame) = next_frame(&mut body).await {
            let frame = frame.unwrap();
            match frame.into_data() {
                Ok(data) => {
                    assert!(got_trailers.is_none(), "data after trailers");
                    rest.extend_from_slice(&data);
                }
                Err(frame) => got_trailers = Some(frame.into_trailers().unwrap()),
            }
        }
        assert_eq!(got_trailers, Some(trailers), "{name}");
        assert!(body.is_end_stream());
        decoder.feed(&rest);
    }
}

#[tokio::test]
async fn whole_streamed_body_decodes() {
    let policy = CompressionPolicy::default();
    for name in ["gzip", "br", "zstd"] {
        let response = call(&policy, get(Some(name)), || {
            let (tx, rx) = mpsc::channel(64);
            for i in 0..50 {
                tx.try_send(Frame::data(Bytes::from(format!(
                    "line {i} {}\n",
                    text(100)
                ))))
                .unwrap();
            }
            Response::builder()
                .header("content-type", "text/csv")
                .body(ChannelBody(rx))
                .unwrap()
        })
        .await;
        let (compressed, trailers) = collect(response.into_body()).await;
        assert!(trailers.is_none());
        let expected: String = (0..50)
            .map(|i| format!("line {i} {}\n", text(100)))
            .collect();
        assert_eq!(decode(name, &compressed), expected.as_bytes(), "{name}");
    }
}

#[tokio::test]
async fn inner_body_errors_pass_through() {
    struct Failing;
    impl Body for Failing {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Ready(Some(Err(std::io::Error::other("upstream reset"))))
        }
    }
    let response = call(&CompressionPolicy::default(), get(Some("gzip")), || {
        Response::builder()
            .header("content-type", "text/plain")
            .body(Failing)
            .unwrap()
    })
    .await;
    assert_eq!(encoding(&response), Some("gzip"));
    let error = response.into_body().collect().await.unwrap_err();
    assert_eq!(error.to_string(), "upstream reset");
}

#[tokio::test]
async fn identity_body_passes_through() {
    let body = CompressionBody::identity(Full::new(Bytes::from_static(b"hello")));
    assert_eq!(body.algorithm(), None);
    assert_eq!(body.size_hint().exact(), Some(5));
    assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
}

#[tokio::test]
async fn poll_ready_is_the_inner_services() {
    #[derive(Clone)]
    struct NotReady;
    impl Service<Request<()>> for NotReady {
        type Response = Response<Full<Bytes>>;
        type Error = &'static str;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Err("overloaded"))
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            unreachable!()
        }
    }
    let mut service = CompressionLayer::new(CompressionPolicy::default()).layer(NotReady);
    assert_eq!(service.ready().await.err(), Some("overloaded"));
}

#[test]
fn send_sync_clone() {
    fn send_sync<T: Send + Sync>() {}
    fn clone<T: Clone>() {}
    send_sync::<CompressionBody<Full<Bytes>>>();
    send_sync::<CompressionBody<ChannelBody>>();
    send_sync::<CompressionPolicy>();
    send_sync::<CompressionLayer>();
    clone::<
        gateway_compression::Compression<
            tower::util::BoxCloneSyncService<
                Request<()>,
                Response<Full<Bytes>>,
                std::convert::Infallible,
            >,
        >,
    >();
    send_sync::<
        gateway_compression::ResponseFuture<
            std::future::Ready<Result<Response<Full<Bytes>>, std::convert::Infallible>>,
        >,
    >();
}
