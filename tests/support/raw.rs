//! A raw TCP upstream for the tests that need a server to misbehave on the wire: it reads
//! each request head itself and answers with whatever bytes the test scripts.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// Every byte the upstream received, on all its connections, in arrival order per connection.
#[derive(Debug, Default)]
pub struct Received(Mutex<Vec<u8>>);

impl Received {
    /// What arrived so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Records bytes that arrived.
    pub fn push(&self, bytes: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(bytes);
    }
}

/// A running raw upstream; stopped when dropped.
pub struct RawUpstream {
    pub addr: SocketAddr,
    pub received: Arc<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUpstream {
    /// Starts an upstream that reads each request head (recording it) and hands the head and
    /// the connection to `answer`, once per request head read.
    pub async fn start<F, Fut>(answer: F) -> Self
    where
        F: Fn(String, TcpStream, Arc<Received>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<TcpStream>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Received::default());
        let answer = Arc::new(answer);
        let task = {
            let received = received.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (answer, received) = (answer.clone(), received.clone());
                    tokio::spawn(async move {
                        let mut stream = Some(stream);
                        while let Some(mut conn) = stream.take() {
                            let Some(head) = read_head(&mut conn, &received).await else {
                                return;
                            };
                            stream = answer(head, conn, received.clone()).await;
                        }
                    });
                }
            })
        };
        Self {
            addr,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one request head, byte by byte so nothing after it is consumed.
async fn read_head(stream: &mut TcpStream, received: &Received) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return None,
        }
    }
    received.push(&head);
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Copies what arrives on `stream` into `received` until it closes.
pub async fn record_rest(mut stream: TcpStream, received: Arc<Received>) {
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n @ 1..)) =
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await
    {
        received.push(&buf[..n]);
    }
}
