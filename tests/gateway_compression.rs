//! Response compression through the gateway binary: each algorithm decoded by a real decoder
//! to the upstream's exact bytes, negotiation by q-values, every response that must go out as
//! it is, a streamed body whose first chunk arrives before the upstream finishes, the route
//! settings (`false`, `true`, a table) and a reload that turns compression on.

mod support;

use std::convert::Infallible;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use support::{Served, ServedBody, TestGateway, config, send};
use tokio::sync::Notify;

type Body = ServedBody;

/// The JSON document `/json/N` serves: `N` bytes, repetitive enough to compress well but not
/// constant, so a decoder that drops or reorders bytes is caught.
fn document(len: usize) -> Vec<u8> {
    let mut out = b"[".to_vec();
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(
            format!("{{\"id\":{i},\"name\":\"user-{}\"}},", i * 7 % 1000).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// A content server: each path names the response it gets (see `answer`).
struct ContentUpstream {
    served: Served,
    /// Releases the rest of `/stream`.
    release: Arc<Notify>,
}

impl ContentUpstream {
    async fn start() -> Self {
        let release = Arc::new(Notify::new());
        let served = Served::start({
            let release = release.clone();
            move |request| answer(request, release.clone())
        })
        .await;
        Self { served, release }
    }

    fn url(&self) -> String {
        self.served.url()
    }
}

fn response(
    status: StatusCode,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Body> {
    let body: Bytes = body.into();
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(body).map_err(|e| match e {}).boxed())
        .unwrap()
}

async fn answer(
    request: Request<Incoming>,
    release: Arc<Notify>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let json = document(20_000);
    let path = path.rsplit('/').next().unwrap_or_default();
    Ok(match path {
        "json" => response(
            StatusCode::OK,
            &[("content-type", "application/json")],
            json,
        ),
        "etag" => response(
            StatusCode::OK,
            &[("content-type", "application/json"), ("etag", "\"v7\"")],
            json,
        ),
        "small" => response(
            StatusCode::OK,
            &[("content-type", "application/json")],
            document(100),
        ),
        "png" => response(StatusCode::OK, &[("content-type", "image/png")], json),
        "encoded" => response(
            StatusCode::OK,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            json,
        ),
        "no-transform" => response(
            StatusCode::OK,
            &[
                ("content-type", "application/json"),
                ("cache-control", "public, no-transform"),
            ],
            json,
        ),
        "sse" => response(
            StatusCode::OK,
            &[("content-type", "text/event-stream")],
            json,
        ),
        "no-content" => response(
            StatusCode::NO_CONTENT,
            &[("content-type", "application/json")],
            "",
        ),
        "not-modified" => response(
            StatusCode::NOT_MODIFIED,
            &[("content-type", "application/json")],
            "",
        ),
        "stream" => {
            // The first 4 KiB now, the rest only once the test has seen the first part.
            let first = Bytes::from(document(4096));
            let rest = Bytes::from(document(8192).split_off(4096));
            let frames = futures_util::stream::unfold(0u8, move |step| {
                let (first, rest, release) = (first.clone(), rest.clone(), release.clone());
                async move {
                    match step {
                        0 => Some((Ok::<_, Infallible>(Frame::data(first)), 1)),
                        1 => {
                            release.notified().await;
                            Some((Ok(Frame::data(rest)), 2))
                        }
                        _ => None,
                    }
                }
            });
            Response::builder()
                .header("content-type", "application/json")
                .body(StreamBody::new(frames).boxed())
                .unwrap()
        }
        _ => response(StatusCode::NOT_FOUND, &[], "no such content"),
    })
}

fn request(method: &str, url: &str, accept: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    if let Some(accept) = accept {
        builder = builder.header("accept-encoding", accept);
    }
    builder.body(Full::default()).unwrap()
}

fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => {
            out = zstd::stream::decode_all(bytes).unwrap();
        }
        other => panic!("unexpected coding {other}"),
    }
    out
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.to_str().unwrap())
}

fn varies_on_accept_encoding(headers: &HeaderMap) -> bool {
    headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding")
    })
}

fn gateway_config(upstream: &ContentUpstream, extra_routes: &str) -> String {
    config(&format!(
        "[compression]\nalgorithms = [\"br\", \"zstd\", \"gzip\"]\nmin_size = \"1KiB\"\n\
         [upstreams.content]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/c\"\nupstream = \"content\"\n{extra_routes}",
        upstream.url()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_algorithm_decodes_to_the_upstreams_exact_bytes() {
    let upstream = ContentUpstream::start().await;
    let gw = TestGateway::start(&gateway_config(&upstream, ""));
    let original = document(20_000);
    for coding in ["gzip", "br", "zstd"] {
        let (parts, body) = send(request("GET", &gw.url("/c/json"), Some(coding))).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(header(&parts.headers, "content-encoding"), Some(coding));
        assert!(!parts.headers.contains_key("content-length"), "{coding}");
        assert!(varies_on_accept_encoding(&parts.headers), "{coding}");
        assert!(
            body.len() < original.len() / 4,
            "{coding}: {} bytes",
            body.len()
        );
        assert_eq!(decode(coding, &body), original, "{coding}");
    }
    // A strong validator no longer describes the bytes: it goes out weak.
    let (parts, body) = send(request("GET", &gw.url("/c/etag"), Some("gzip"))).await;
    assert_eq!(header(&parts.headers, "etag"), Some("W/\"v7\""));
    assert_eq!(decode("gzip", &body), original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q_values_choose_the_coding_and_ties_go_to_the_configured_order() {
    let upstream = ContentUpstream::start().await;
    let gw = TestGateway::start(&gateway_config(&upstream, ""));
    for (accept, expected) in [
        ("gzip;q=0.5, br;q=0.8", Some("br")),
        ("gzip;q=1, zstd;q=0.9", Some("gzip")),
        ("gzip, zstd, br", Some("br")),
        ("gzip, zstd", Some("zstd")),
        ("br;q=0, *", Some("zstd")),
        ("br;q=0, zstd;q=0, *;q=0.1", Some("gzip")),
        ("GZIP", Some("gzip")),
        ("identity", None),
        ("identity;q=1, gzip;q=0.5", None),
        ("gzip;q=0", None),
        ("*;q=0", None),
        ("compress, deflate", None),
        ("", None),
    ] {
        let (parts, body) = send(request("GET", &gw.url("/c/json"), Some(accept))).await;
        assert_eq!(parts.status, StatusCode::OK, "{accept:?}");
        assert_eq!(
            header(&parts.headers, "content-encoding"),
            expected,
            "{accept:?}"
        );
        match expected {
            Some(coding) => assert_eq!(decode(coding, &body), document(20_000), "{accept:?}"),
            None => {
                assert_eq!(body.as_ref(), document(20_000), "{accept:?}");
                assert_eq!(header(&parts.headers, "content-length"), Some("20000"));
            }
        }
        // Compressed or not, a cache must key this response by Accept-Encoding.
        assert!(varies_on_accept_encoding(&parts.headers), "{accept:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_that_must_not_be_compressed_go_out_as_they_are() {
    let upstream = ContentUpstream::start().await;
    let gw = TestGateway::start(&gateway_config(
        &upstream,
        // A route that would compress anything, behind a limit of one request: the 429 the
        // gateway makes itself is not the upstream's to compress.
        "[[routes]]\npath = \"/limited\"\nupstream = \"content\"\n\
         [routes.compression]\ncontent_types = [\"*/*\"]\nmin_size = \"0B\"\n\
         [routes.rate_limit]\nlimit = 1\nwindow = \"1h\"\nkey = \"global\"\n\
         [[routes]]\npath = \"/plain\"\nupstream = \"content\"\ncompression = false\n",
    ));
    let everything = Some("gzip, br, zstd");
    let cases: [(&str, &str, Option<&str>, StatusCode); 11] = [
        ("GET", "/c/json", None, StatusCode::OK),
        ("HEAD", "/c/json", everything, StatusCode::OK),
        ("GET", "/c/small", everything, StatusCode::OK),
        ("GET", "/c/png", everything, StatusCode::OK),
        ("GET", "/c/encoded", Some("br"), StatusCode::OK),
        ("GET", "/c/no-transform", everything, StatusCode::OK),
        ("GET", "/c/sse", everything, StatusCode::OK),
        ("GET", "/c/no-content", everything, StatusCode::NO_CONTENT),
        (
            "GET",
            "/c/not-modified",
            everything,
            StatusCode::NOT_MODIFIED,
        ),
        ("GET", "/plain/json", everything, StatusCode::OK),
        ("GET", "/c/missing", everything, StatusCode::NOT_FOUND),
    ];
    for (method, path, accept, status) in cases {
        let (parts, body) = send(request(method, &gw.url(path), accept)).await;
        assert_eq!(parts.status, status, "{method} {path}");
        let encoding = header(&parts.headers, "content-encoding");
        if path == "/c/encoded" {
            // The upstream's own coding, untouched (and not a second one on top).
            assert_eq!(encoding, Some("gzip"), "{path}");
            assert_eq!(body.as_ref(), document(20_000));
        } else {
            assert_eq!(encoding, None, "{method} {path}");
        }
        if method == "GET" && status == StatusCode::OK {
            let expected = if path == "/c/small" {
                document(100)
            } else {
                document(20_000)
            };
            assert_eq!(body.as_ref(), expected, "{path}");
        }
    }
    // HEAD keeps the length the GET would have had uncompressed.
    let (parts, body) = send(request("HEAD", &gw.url("/c/json"), everything)).await;
    assert_eq!(header(&parts.headers, "content-length"), Some("20000"));
    assert!(body.is_empty());
    // The route's own table compresses what `[compression]` would not (a PNG, 100 bytes)...
    let (parts, body) = send(request("GET", &gw.url("/limited/small"), Some("gzip"))).await;
    assert_eq!(header(&parts.headers, "content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &body), document(100));
    // ...but not the gateway's own 429.
    let (parts, body) = send(request("GET", &gw.url("/limited/small"), Some("gzip"))).await;
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&parts.headers, "content-encoding"), None);
    assert_eq!(
        header(&parts.headers, "content-type"),
        Some("application/problem+json")
    );
    assert!(support::json(&body)["status"] == 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_chunk_reaches_the_client_before_the_upstream_finishes() {
    let upstream = ContentUpstream::start().await;
    let gw = TestGateway::start(&gateway_config(&upstream, ""));
    let response = support::client()
        .request(request("GET", &gw.url("/c/stream"), Some("gzip")))
        .await
        .unwrap();
    assert_eq!(header(response.headers(), "content-encoding"), Some("gzip"));
    let mut body = response.into_body();
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    // The upstream holds the rest until released: all of its first chunk must be decodable
    // from what the gateway sent so far.
    while decoder.get_ref().len() < 4096 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first chunk did not arrive while the upstream waited")
            .expect("body ended early")
            .unwrap();
        if let Some(data) = frame.data_ref() {
            decoder.write_all(data).unwrap();
            decoder.flush().unwrap();
        }
    }
    assert_eq!(decoder.get_ref().as_slice(), document(4096));
    upstream.release.notify_one();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            decoder.write_all(data).unwrap();
        }
    }
    assert_eq!(decoder.finish().unwrap(), document(8192));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_settings_and_a_reload_turn_compression_on_and_off() {
    let upstream = ContentUpstream::start().await;
    // No `[compression]`: routes do not compress unless they say so.
    let text = config(&format!(
        "[upstreams.content]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/c\"\nupstream = \"content\"\n\
         [[routes]]\npath = \"/on\"\nupstream = \"content\"\ncompression = true\n",
        upstream.url()
    ));
    let gw = TestGateway::start(&text);
    let coding = |path: &'static str| {
        let url = gw.url(path);
        async move {
            let (parts, _) = send(request("GET", &url, Some("gzip, zstd"))).await;
            header(&parts.headers, "content-encoding").map(str::to_owned)
        }
    };
    assert_eq!(coding("/c/json").await, None);
    // `true` without a `[compression]` section: the defaults (br, zstd, gzip).
    assert_eq!(coding("/on/json").await.as_deref(), Some("zstd"));

    // One connection across the reload: it must stay open and see the new policy.
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let before = sender
        .send_request(request("GET", &gw.url("/c/json"), Some("gzip")))
        .await
        .unwrap();
    assert_eq!(header(before.headers(), "content-encoding"), None);
    before.into_body().collect().await.unwrap();

    std::fs::write(
        &gw.config_path,
        text.replace(
            "[upstreams.content]",
            "[compression]\nalgorithms = [\"gzip\"]\n[upstreams.content]",
        ),
    )
    .unwrap();
    gw.reload().unwrap();
    sender
        .ready()
        .await
        .expect("the reload closed the connection");
    let after = sender
        .send_request(request("GET", &gw.url("/c/json"), Some("gzip")))
        .await
        .unwrap();
    assert_eq!(header(after.headers(), "content-encoding"), Some("gzip"));
    let body = after.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(decode("gzip", &body), document(20_000));
    // `true` now means the gateway-wide settings: gzip only.
    assert_eq!(coding("/on/json").await.as_deref(), Some("gzip"));
}
