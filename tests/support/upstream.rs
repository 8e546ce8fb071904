//! A real upstream HTTP server for the tests: it echoes what it received as JSON, and has
//! endpoints that are slow, fail, stream, or upgrade.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

/// Counters of what the upstream saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub requests: AtomicUsize,
    pub connections: AtomicUsize,
    /// When set, every request gets a 500.
    pub failing: AtomicBool,
}

/// A running upstream; stopped when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Starts an upstream named `name` (it reports its name in every echo) on a free port,
    /// serving HTTP/1.1 and HTTP/2 (prior knowledge).
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let task = {
            let seen = seen.clone();
            let name = name.to_owned();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, peer)) = listener.accept().await else {
                        continue;
                    };
                    seen.connections.fetch_add(1, Ordering::Relaxed);
                    let seen = seen.clone();
                    let name = name.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            handle(request, name.clone(), peer, seen.clone())
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self {
            addr,
            name: name.to_owned(),
            seen,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::Relaxed)
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *response.status_mut() = status;
    response
}

async fn handle(
    request: Request<Incoming>,
    name: String,
    peer: SocketAddr,
    seen: Arc<Seen>,
) -> Result<Response<Body>, Infallible> {
    seen.requests.fetch_add(1, Ordering::Relaxed);
    if seen.failing.load(Ordering::Relaxed) {
        return Ok(full(StatusCode::INTERNAL_SERVER_ERROR, "failing"));
    }
    let path = request.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/status/") {
        let code = rest
            .parse()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        return Ok(full(code, format!("status {code}")));
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(1000))).await;
        return Ok(full(StatusCode::OK, "slow"));
    }
    if let Some(n) = path.strip_prefix("/stream/") {
        // `n` MiB produced in 64 KiB chunks, never held whole.
        let mib: usize = n.parse().unwrap_or(1);
        let chunks = futures_util::stream::iter((0..mib * 16).map(|i| {
            Ok::<_, Infallible>(Frame::data(Bytes::from(vec![(i % 251) as u8; 64 * 1024])))
        }));
        return Ok(Response::new(StreamBody::new(chunks).boxed()));
    }
    if path.ends_with("/grpc") {
        // gRPC-style: a data frame, then the status in trailers.
        let te = request
            .headers()
            .get("te")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert(
            "x-request-te",
            te.parse().unwrap_or_else(|_| "?".parse().unwrap()),
        );
        let frames = futures_util::stream::iter([
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\x00\x00\x00\x00\x02hi"))),
            Ok(Frame::trailers(trailers)),
        ]);
        let mut response = Response::new(StreamBody::new(frames).boxed());
        response
            .headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        return Ok(response);
    }
    if path == "/ws" {
        return Ok(upgrade(request));
    }
    // Echo: method, path and query as received, headers, body length and checksum.
    let method = request.method().to_string();
    let uri = request.uri().to_string();
    let version = format!("{:?}", request.version());
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers()
        .keys()
        .map(|name| {
            let values: Vec<serde_json::Value> = request
                .headers()
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
                .collect();
            (name.as_str().to_owned(), values.into())
        })
        .collect();
    let mut body = request.into_body();
    let mut length = 0u64;
    let mut checksum = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            length += data.len() as u64;
            checksum = data.iter().fold(checksum, |sum, &b| {
                sum.wrapping_mul(31).wrapping_add(u64::from(b))
            });
        }
    }
    let echo = serde_json::json!({
        "upstream": name,
        "peer": peer.to_string(),
        "method": method,
        "uri": uri,
        "version": version,
        "headers": headers,
        "body_length": length,
        "body_checksum": checksum,
    });
    let mut response = full(StatusCode::OK, serde_json::to_vec(&echo).unwrap());
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
        .headers_mut()
        .insert("server", "test-upstream".parse().unwrap());
    response
        .headers_mut()
        .insert("keep-alive", "timeout=5".parse().unwrap());
    Ok(response)
}

/// Accepts any `Upgrade` and echoes bytes on the upgraded stream.
fn upgrade(mut request: Request<Incoming>) -> Response<Body> {
    let protocol = request.headers().get("upgrade").cloned();
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut buf = [0u8; 4096];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if io.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut response = full(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    response
        .headers_mut()
        .insert("connection", "upgrade".parse().unwrap());
    if let Some(protocol) = protocol {
        response.headers_mut().insert("upgrade", protocol);
    }
    response
}

/// Checksum as the upstream computes it, for comparing what was sent.
pub fn checksum(data: &[u8], previous: u64) -> u64 {
    data.iter().fold(previous, |sum, &b| {
        sum.wrapping_mul(31).wrapping_add(u64::from(b))
    })
}
