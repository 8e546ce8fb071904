//! Response compression as a tower layer: `gzip`, `br` and `zstd`, negotiated from the
//! request's `Accept-Encoding`, streamed frame by frame.
//!
//! A [`CompressionConfig`] (the `[compression]` table) is built once into a
//! [`CompressionPolicy`], which a [`CompressionLayer`] shares with every service it wraps.
//!
//! # Negotiation
//!
//! Among the configured `algorithms`, the one the client weighs highest in `Accept-Encoding`
//! wins (`q=0` excludes a coding, `*` stands for the codings not listed); ties go to the
//! earlier in `algorithms`. Identity is kept when the client weighs it above every coding we
//! offer, when there is no `Accept-Encoding`, and when nothing we offer is acceptable, even
//! after `identity;q=0`: the gateway never answers 406 for want of a coding.
//!
//! # What is compressed
//!
//! A response is compressed only when its media type (`Content-Type` without parameters,
//! case-insensitive) matches one of `content_types` (`text/*` matches any subtype), and its
//! length (`Content-Length`, or else the body's exact size hint) is at least `min_size` or
//! unknown. Never compressed: a response that already has `Content-Encoding`, carries
//! `Cache-Control: no-transform`, is 1xx (a 101 upgrade included), 204, 304 or a 206 range,
//! is `text/event-stream`, or answers a HEAD or CONNECT request.
//!
//! A compressed response gets `Content-Encoding`, loses `Content-Length`, and has a strong
//! `ETag` made weak (`W/"…"`: the bytes are no longer the upstream's). Every compressible
//! response, compressed or not, gets `Accept-Encoding` added to `Vary` (once).
//!
//! # Streaming
//!
//! Each data frame of the upstream body is compressed and the encoder flushed, so what the
//! upstream sent reaches the client without waiting for the rest of the body; trailers pass
//! through. gzip runs at the default level (6), brotli at quality 4 with a 512 KiB window
//! (fast enough for on-the-fly compression, bounded memory per stream), zstd at its default
//! level (3).
//!
//! tower-http's `CompressionLayer` is not used: it picks the first fully weighted coding in
//! the client's order rather than the server's, ignores `no-transform`, HEAD and 204/304,
//! adds no `Vary`, keeps strong ETags, and buffers in the encoder until its window fills
//! (tower-http#420; it now skips `text/event-stream` instead). The body here drives the
//! same codec crates it would pull in (flate2, brotli, zstd) directly.
//!
//! ```
//! use std::convert::Infallible;
//! use std::io::Read;
//! use bytes::Bytes;
//! use gateway_compression::{CompressionConfig, CompressionLayer};
//! use http::{Request, Response, header};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The `[compression]` table of the gateway config.
//! let config: CompressionConfig = toml::from_str(r#"
//!     algorithms = ["gzip", "br"]
//!     min_size = "1KiB"
//! "#).unwrap();
//! let policy = config.build().unwrap();
//!
//! let page = "<p>hello</p>".repeat(200);
//! let upstream = tower::service_fn(move |_: Request<()>| {
//!     let page = page.clone();
//!     async move {
//!         Ok::<_, Infallible>(
//!             Response::builder()
//!                 .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
//!                 .header(header::CONTENT_LENGTH, page.len())
//!                 .body(Full::new(Bytes::from(page)))
//!                 .unwrap(),
//!         )
//!     }
//! });
//! let service = ServiceBuilder::new()
//!     .layer(CompressionLayer::new(policy))
//!     .service(upstream);
//!
//! let request = Request::builder()
//!     .header(header::ACCEPT_ENCODING, "br;q=0.9, gzip")
//!     .body(())
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
//! assert_eq!(response.headers()[header::VARY], "accept-encoding");
//! assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
//!
//! let compressed = response.into_body().collect().await.unwrap().to_bytes();
//! let mut text = String::new();
//! flate2::read::GzDecoder::new(&compressed[..]).read_to_string(&mut text).unwrap();
//! assert_eq!(text, "<p>hello</p>".repeat(200));
//! # }
//! ```

mod body;
pub mod config;
mod encoder;
mod error;
mod future;
mod layer;
mod negotiate;
mod policy;
mod predicate;
mod service;

pub use body::CompressionBody;
pub use config::CompressionConfig;
pub use error::CompressionError;
pub use future::ResponseFuture;
pub use layer::CompressionLayer;
pub use negotiate::Algorithm;
pub use policy::CompressionPolicy;
pub use service::Compression;
