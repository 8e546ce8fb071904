//! Test support for the end-to-end tests: real upstream HTTP servers on free loopback ports
//! and an in-process gateway started from a TOML config.

#![allow(dead_code, unreachable_pub)]

pub mod chromium;
pub mod jwt;
pub mod raw;
pub mod redis;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gateway::bin::{Config, RunningGateway};

/// A gateway started in-process from a config text, shut down on drop.
pub struct TestGateway {
    gateway: Option<RunningGateway>,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub config_path: PathBuf,
    _dir: TempDir,
}

impl TestGateway {
    /// Starts a gateway; `{listen}` in the config is replaced by a free port on loopback.
    pub fn start(config: &str) -> Self {
        let dir = TempDir::new();
        let config_path = dir.path.join("gateway.toml");
        std::fs::write(&config_path, config).unwrap();
        let parsed =
            Config::load(&config_path).unwrap_or_else(|e| panic!("test config invalid: {e}"));
        // The gateway owns its runtimes: start (and stop) it off the test's runtime.
        let path = config_path.clone();
        let gateway = std::thread::spawn(move || RunningGateway::start(parsed, Some(path)))
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("gateway failed to start: {e}"));
        Self {
            addr: gateway.local_addr(),
            admin: gateway.admin_addr(),
            gateway: Some(gateway),
            config_path,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn gateway(&self) -> &RunningGateway {
        self.gateway.as_ref().unwrap()
    }

    /// Reloads the config file (after the test rewrote it).
    pub fn reload(&self) -> Result<u64, String> {
        let gateway = self.gateway();
        std::thread::scope(|scope| {
            scope
                .spawn(|| gateway.reload().map_err(|e| e.to_string()))
                .join()
                .unwrap()
        })
    }

    /// Shuts down gracefully, returning once every worker stopped.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            std::thread::spawn(move || gateway.shutdown())
                .join()
                .unwrap();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A config with a server section on a free port, plus `rest`.
pub fn config(rest: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\nshutdown_grace = \"5s\"\naccess_log = false\n\n{rest}"
    )
}

/// A temporary directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "gateway-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A plain HTTP/1.1 client over real sockets (keep-alive pool from hyper-util).
pub fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http()
}

/// Sends a request and collects the response.
pub async fn send(
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> (http::response::Parts, bytes::Bytes) {
    use http_body_util::BodyExt;
    let response = tokio::time::timeout(Duration::from_secs(20), client().request(request))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body failed").to_bytes();
    (parts, body)
}

/// GET a URL.
pub async fn get(url: &str) -> (http::response::Parts, bytes::Bytes) {
    send(http::Request::get(url).body(Default::default()).unwrap()).await
}

/// Reads a raw HTTP response head (through the blank line) from a stream, byte by byte so
/// nothing after it (an upgraded stream's data) is consumed.
pub async fn read_head(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await;
        assert_eq!(
            read.expect("no response head").unwrap(),
            1,
            "connection closed during the head"
        );
        head.push(byte[0]);
    }
    head
}

/// Parses a JSON body.
pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The value of one Prometheus series (`name{labels}`) in a `/metrics` text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// An HTTP/1.1 and HTTP/2 server on a free loopback port whose every request `answer`
/// scripts, for the tests whose upstream names its responses; stopped when dropped.
pub struct Served {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a [`Served`] upstream answers with.
pub type ServedBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

impl Served {
    pub async fn start<F, Fut>(answer: F) -> Self
    where
        F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<
                Output = Result<http::Response<ServedBody>, std::convert::Infallible>,
            > + Send
            + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = std::sync::Arc::new(answer);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| answer(request));
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Self { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
