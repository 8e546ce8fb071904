//! Real servers and clients on loopback for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::PeerAddr;
use gateway_proxy::Proxy;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower::ServiceExt;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestBody = BoxBody<Bytes, BoxError>;

/// Every test is bounded: a hang fails instead of blocking the run.
pub async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("test timed out")
}

pub fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> TestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// An upstream server (HTTP/1.1 and h2c, with upgrades) counting connections and requests.
pub struct UpstreamServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    /// Connections accepted and not closed yet: whether a client still holds any.
    pub open: Arc<AtomicUsize>,
}

impl UpstreamServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

pub async fn upstream<H, F>(handler: H) -> UpstreamServer
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(listener, handler)
}

/// An upstream server on `addr`, such as `127.0.0.2:0`.
pub async fn upstream_on<H, F>(addr: SocketAddr, handler: H) -> UpstreamServer
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await.unwrap();
    serve(listener, handler)
}

/// Serves `listener` as [`upstream`] does.
pub fn serve<H, F>(listener: TcpListener, handler: H) -> UpstreamServer
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let server = UpstreamServer {
        addr,
        connections: connections.clone(),
        requests: requests.clone(),
        open: open.clone(),
    };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            open.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let requests = requests.clone();
            let open = open.clone();
            let service = service_fn(move |request| {
                requests.fetch_add(1, Ordering::SeqCst);
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            tokio::spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    server
}

/// Listeners on one port at each of `ips`, so that a hostname resolving to those addresses
/// reaches a different server at each address, as DNS discovery sees real hosts (Linux
/// routes all of 127/8 to loopback).
pub async fn same_port_listeners(ips: &[IpAddr]) -> Vec<TcpListener> {
    let (&first, rest) = ips.split_first().expect("at least one address");
    // The port the OS picks on the first address may be taken on another one.
    for _ in 0..50 {
        let listener = TcpListener::bind((first, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut listeners = vec![listener];
        for &ip in rest {
            match TcpListener::bind((ip, port)).await {
                Ok(listener) => listeners.push(listener),
                Err(_) => break,
            }
        }
        if listeners.len() == ips.len() {
            return listeners;
        }
    }
    panic!("no port free on every one of {ips:?}");
}

/// Polls `check` every 5 ms until it gives a value; panics with `what` after `within`.
pub async fn eventually<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An upstream answering every request with a description of it: the request line, then
/// one `name: value` line per header (lower-case names), then the body's length.
pub async fn echo() -> UpstreamServer {
    upstream(|request: Request<Incoming>| async move {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut text = format!("{} {} {:?}\n", parts.method, parts.uri, parts.version);
        for (name, value) in &parts.headers {
            text.push_str(&format!(
                "{}: {}\n",
                name,
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        text.push_str(&format!("body-length: {}\n", body.len()));
        Response::builder()
            .header("x-upstream", "echo")
            .body(full(text))
            .unwrap()
    })
    .await
}

/// What `echo` saw.
pub struct Echoed {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
}

impl Echoed {
    pub fn parse(text: &str) -> Self {
        let mut lines = text.lines();
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|line| line.split_once(": "))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        Self {
            request_line,
            headers,
        }
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} appears {} times", all.len());
        all.first().copied()
    }

    pub fn has(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }
}

/// Serves `proxy` like a gateway would: HTTP/1.1 and HTTP/2, upgrades on, the peer address
/// recorded.
pub async fn gateway(proxy: Proxy) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            let proxy = proxy.clone();
            let service = service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                proxy.clone().oneshot(request)
            });
            tokio::spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An HTTP/1.1 client connection.
pub async fn h1_client(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// Sends one request on a new HTTP/1.1 connection.
pub async fn send(addr: SocketAddr, request: Request<TestBody>) -> Response<Incoming> {
    let mut client = h1_client(addr).await;
    client.send_request(request).await.unwrap()
}

pub fn get(path: &str) -> Request<TestBody> {
    Request::get(path)
        .header("host", "gateway.test")
        .body(empty())
        .unwrap()
}

pub async fn text(response: Response<Incoming>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A port on which nothing listens: connections are refused.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A body fed through a channel, to control when each chunk is sent.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    pub fn new() -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(1);
        (tx, Self { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// The byte at `offset` of a generated body: period 251, coprime to every chunk size used,
/// so a lost, repeated or reordered chunk shows.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// A body of `len` generated bytes in `chunk`-sized frames, never held whole.
pub struct Generated {
    pattern: Bytes,
    offset: u64,
    len: u64,
    chunk: usize,
}

impl Generated {
    pub fn new(len: u64, chunk: usize) -> Self {
        let pattern: Vec<u8> = (0..(chunk as u64 + 251)).map(pattern_byte).collect();
        Self {
            pattern: Bytes::from(pattern),
            offset: 0,
            len,
            chunk,
        }
    }
}

impl Body for Generated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let left = self.len - self.offset;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = left.min(self.chunk as u64) as usize;
        let start = (self.offset % 251) as usize;
        let chunk = self.pattern.slice(start..start + n);
        self.offset += n as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset == self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.offset)
    }
}

/// Reads a body frame by frame, checking every byte against the pattern; returns the
/// length and the number of data frames.
pub async fn verify_generated<B>(mut body: B) -> (u64, usize)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let expected = Generated::new(0, 1 << 20).pattern;
    let mut offset = 0u64;
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        let mut rest = &data[..];
        while !rest.is_empty() {
            let start = (offset % 251) as usize;
            let n = rest.len().min(1 << 20);
            assert_eq!(
                &rest[..n],
                &expected[start..start + n],
                "mismatch at offset {offset}"
            );
            rest = &rest[n..];
            offset += n as u64;
        }
        frames += 1;
    }
    (offset, frames)
}
