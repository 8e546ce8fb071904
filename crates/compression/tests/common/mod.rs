//! Shared helpers of the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use gateway_compression::{
    CompressionBody, CompressionConfig, CompressionLayer, CompressionPolicy,
};
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceExt};

/// A body fed through a channel, one frame per message; its length is unknown.
pub struct ChannelBody(pub mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

pub fn policy(toml: &str) -> CompressionPolicy {
    toml::from_str::<CompressionConfig>(toml)
        .unwrap()
        .build()
        .unwrap()
}

/// Text of `len` bytes that compresses well.
pub fn text(len: usize) -> String {
    "The quick brown fox jumps over the lazy dog. "
        .chars()
        .cycle()
        .take(len)
        .collect()
}

/// Sends `request` through the layer in front of a service answering `response` (cloned).
pub async fn call<B>(
    policy: &CompressionPolicy,
    request: Request<()>,
    response: impl Fn() -> Response<B> + Clone + Send + 'static,
) -> Response<CompressionBody<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
{
    let inner = tower::service_fn(move |_: Request<()>| {
        let response = response.clone();
        async move { Ok::<_, Infallible>(response()) }
    });
    let mut service = CompressionLayer::new(policy.clone()).layer(inner);
    service.ready().await.unwrap().call(request).await.unwrap()
}

pub fn get(accept_encoding: Option<&str>) -> Request<()> {
    let mut builder = Request::builder().uri("/");
    if let Some(value) = accept_encoding {
        builder = builder.header("accept-encoding", value);
    }
    builder.body(()).unwrap()
}

/// A response with these headers and body.
pub fn respond(headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    for (name, value) in headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

pub async fn collect<B>(body: B) -> (Bytes, Option<HeaderMap>)
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (collected.to_bytes(), trailers)
}

/// Decodes a whole body in `encoding`.
pub fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => {
            out = zstd::stream::decode_all(data).unwrap();
        }
        other => panic!("unexpected encoding {other}"),
    }
    out
}

/// A decoder fed chunk by chunk, exposing what it has decoded so far.
pub enum Incremental {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Incremental {
    pub fn new(encoding: &str) -> Self {
        match encoding {
            "gzip" => Self::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            "br" => Self::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
            "zstd" => Self::Zstd(zstd::stream::write::Decoder::new(Vec::new()).unwrap()),
            other => panic!("unexpected encoding {other}"),
        }
    }

    /// Feeds `chunk`, returning everything decoded so far.
    pub fn feed(&mut self, chunk: &[u8]) -> String {
        let out = match self {
            Self::Gzip(d) => {
                d.write_all(chunk).unwrap();
                d.flush().unwrap();
                d.get_ref()
            }
            Self::Brotli(d) => {
                d.write_all(chunk).unwrap();
                d.flush().unwrap();
                d.get_ref()
            }
            Self::Zstd(d) => {
                d.write_all(chunk).unwrap();
                d.flush().unwrap();
                d.get_ref()
            }
        };
        String::from_utf8(out.clone()).unwrap()
    }
}
