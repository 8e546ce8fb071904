//! TEMPORARY measurement probe (not part of the crate): the leanest possible proxy.
use std::cell::RefCell;
use std::net::SocketAddr;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use http::HeaderValue;
use http_body::Body;
use std::pin::Pin;
use std::task::{Context, Poll};
use bytes::Bytes;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

thread_local! { static POOL: RefCell<Vec<http1::SendRequest<Incoming>>> = const { RefCell::new(Vec::new()) }; }

struct Guarded { body: Incoming, conn: Option<http1::SendRequest<Incoming>> }
impl Body for Guarded {
    type Data = Bytes; type Error = hyper::Error;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) | Poll::Ready(None) = &r { if self.body.is_end_stream() || matches!(r, Poll::Ready(None)) { if let Some(c) = self.conn.take() { POOL.with(|p| p.borrow_mut().push(c)); } } }
        r
    }
    fn is_end_stream(&self) -> bool { self.body.is_end_stream() }
    fn size_hint(&self) -> http_body::SizeHint { self.body.size_hint() }
}

async fn proxy(mut req: http::Request<Incoming>, upstream: SocketAddr, host: HeaderValue) -> Result<http::Response<Guarded>, hyper::Error> {
    req.headers_mut().insert(http::header::HOST, host);
    let mut conn = loop {
        match POOL.with(|p| p.borrow_mut().pop()) {
            Some(c) if c.is_ready() => break c,
            Some(_) => continue,
            None => {
                let s = tokio::net::TcpStream::connect(upstream).await.unwrap();
                s.set_nodelay(true).unwrap();
                let (tx, conn) = http1::Builder::new().writev(false).handshake(TokioIo::new(s)).await?;
                tokio::spawn(conn);
                break tx;
            }
        }
    };
    let resp = conn.send_request(req).await?;
    Ok(resp.map(|body| Guarded { body, conn: Some(conn) }))
}

fn main() {
    let addr: SocketAddr = std::env::var("PROXY_ADDR").unwrap().parse().unwrap();
    let up: SocketAddr = std::env::var("UPSTREAM_URL").unwrap().trim_start_matches("http://").parse().unwrap();
    let host = HeaderValue::from_str(&up.to_string()).unwrap();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().writev(false);
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let host = host.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| proxy(req, up, host.clone()));
                let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).await;
            });
        }
    });
}
