//! The proxy alone behind a minimal hyper server, to measure the crate with the team's
//! benchmark harness (`../shared/bench/proxybench.py`).
//!
//! Env: `PROXY_ADDR` (listen address, default `127.0.0.1:8080`), `UPSTREAM_URL` (the one
//! target, default `http://127.0.0.1:8081`), `WORKERS` (threads, each a current-thread
//! runtime with its own `SO_REUSEPORT` listener; default 1), `H1_ONLY=1` (serve HTTP/1.1
//! only, without the HTTP/2 detection of hyper-util's auto builder, to measure its cost).
//!
//! ```sh
//! cargo build --release -p gateway-proxy --example bench_proxy
//! PROXY_CMD='exec target/release/examples/bench_proxy' ../shared/bench/proxybench.py
//! ```

use std::net::{SocketAddr, TcpListener as StdListener};

use gateway_core::PeerAddr;
use gateway_proxy::{Proxy, Upstream};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn bind(addr: SocketAddr) -> std::io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

async fn serve(listener: StdListener, proxy: Proxy, h1_only: bool) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    let mut auto = auto::Builder::new(TokioExecutor::new());
    auto.http1().writev(false);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.writev(false);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let service = service_fn(move |mut request| {
            request.extensions_mut().insert(PeerAddr(peer));
            proxy.forward(request)
        });
        let io = TokioIo::new(stream);
        if h1_only {
            let conn = http1.serve_connection(io, service).with_upgrades();
            tokio::spawn(conn);
        } else {
            let auto = auto.clone();
            tokio::spawn(async move { auto.serve_connection_with_upgrades(io, service).await });
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = env_or("PROXY_ADDR", "127.0.0.1:8080").parse()?;
    let target = env_or("UPSTREAM_URL", "http://127.0.0.1:8081");
    let workers: usize = env_or("WORKERS", "1").parse()?;
    let h1_only = env_or("H1_ONLY", "0") == "1";
    let proxy = Proxy::new(Upstream::builder("bench", [target]).build()?);

    let threads: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let listener = bind(addr)?;
            let proxy = proxy.clone();
            Ok(std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(serve(listener, proxy, h1_only));
            }))
        })
        .collect::<std::io::Result<_>>()?;
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}
