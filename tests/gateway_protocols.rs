//! Protocols at the edge: TLS with ALPN (HTTP/1.1 and HTTP/2), trace context, and the limits
//! that protect the listener from slow or huge request heads.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use support::upstream::Upstream;
use support::{TempDir, TestGateway, config, get, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Certificate {
    dir: TempDir,
    der: CertificateDer<'static>,
}

fn certificate() -> Certificate {
    let dir = TempDir::new();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path.join("key.pem"), key.serialize_pem()).unwrap();
    Certificate {
        der: cert.der().clone(),
        dir,
    }
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    cert: &Certificate,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// An HTTP/1.1 client connection over `stream`.
async fn http1_over(
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// `GET path` for `localhost` on `sender`.
async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
) -> hyper::Result<http::Response<hyper::body::Incoming>> {
    let request = Request::get(path)
        .header("host", "localhost")
        .body(Full::<Bytes>::default())
        .unwrap();
    sender.send_request(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_terminates_for_http1_and_http2() {
    let upstream = Upstream::start("app").await;
    let cert = certificate();
    let gw = TestGateway::start(&config(&format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n[upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        cert.dir.path.join("cert.pem").display(),
        cert.dir.path.join("key.pem").display(),
        upstream.url()
    )));

    // HTTP/1.1 over TLS.
    let stream = tls_connect(gw.addr, &cert, &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut sender = http1_over(stream).await;
    let response = get_on(&mut sender, "/one").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo = json(&response.into_body().collect().await.unwrap().to_bytes());
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");

    // HTTP/2 negotiated with ALPN.
    let stream = tls_connect(gw.addr, &cert, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get("https://localhost/two?x=1")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let echo = json(&response.into_body().collect().await.unwrap().to_bytes());
    assert_eq!(echo["uri"], "/two?x=1");
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");

    // Plain HTTP on the TLS port gets nowhere.
    let mut plain = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
}

#[test]
fn check_rejects_a_missing_certificate() {
    let dir = TempDir::new();
    let path = dir.path.join("gateway.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
    )
    .unwrap();
    let config = gateway::bin::Config::load(&path).unwrap();
    let error = gateway::bin::check(&config).unwrap_err().to_string();
    assert!(
        error.contains("server.tls") && error.contains("/nonexistent/cert.pem"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_generated_or_passed_through() {
    /// `00-<32 hex, not all zero>-<16 hex, not all zero>-<2 hex>`, lower-case (W3C).
    fn is_w3c_traceparent(value: &str) -> bool {
        let parts: Vec<&str> = value.split('-').collect();
        let hex = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        parts.len() == 4
            && parts[0] == "00"
            && hex(parts[1], 32)
            && parts[1].bytes().any(|b| b != b'0')
            && hex(parts[2], 16)
            && parts[2].bytes().any(|b| b != b'0')
            && hex(parts[3], 2)
    }
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        upstream.url()
    )));
    let (_, body) = get(&gw.url("/a")).await;
    let generated = json(&body)["headers"]["traceparent"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(is_w3c_traceparent(&generated), "{generated}");
    let (_, body) = get(&gw.url("/b")).await;
    assert_ne!(
        json(&body)["headers"]["traceparent"][0],
        generated.as_str(),
        "each request starts its own trace"
    );

    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let request = Request::get(gw.url("/c"))
        .header("traceparent", incoming)
        .header("tracestate", "vendor=x")
        .body(Full::default())
        .unwrap();
    let (_, body) = support::send(request).await;
    let headers = &json(&body)["headers"];
    assert_eq!(headers["traceparent"][0], incoming);
    assert_eq!(headers["tracestate"][0], "vendor=x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_heads_get_431_and_slow_heads_are_cut_off() {
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(
        &config(&format!(
            "[upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
            upstream.url()
        ))
        .replace(
            "access_log = false",
            "access_log = false\nmax_header_size = \"16KiB\"\nheader_read_timeout = \"300ms\"",
        ),
    );

    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let big = "x".repeat(32 * 1024);
    stream
        .write_all(format!("GET / HTTP/1.1\r\nhost: gw\r\nx-big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    assert!(
        response.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&response)
    );

    // A head that never completes: the connection is closed after the read timeout.
    let mut slow = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: gw\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the slow connection was kept open");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!rest.starts_with(b"HTTP/1.1 200"));
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_style_trailers_pass_end_to_end_over_h2c() {
    let upstream = Upstream::start("grpc").await;
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.grpc]\ntargets = [\"{}\"]\nh2c = true\n[[routes]]\npath = \"/\"\nupstream = \"grpc\"\n",
        upstream.url()
    )));
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!("http://{}/pkg.Service/grpc", gw.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\x00\x00\x00\x00\x00")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reached the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(
        trailers["x-request-te"], "trailers",
        "TE: trailers reached the h2 upstream"
    );
    assert_eq!(&collected.to_bytes()[..], b"\x00\x00\x00\x00\x02hi");
}

/// An HTTPS upstream: hyper behind a rustls acceptor with the given certificate.
async fn https_upstream(cert: &Certificate) -> std::net::SocketAddr {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let key = PrivateKeyDer::from_pem_file(cert.dir.path.join("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let alpn =
                    String::from_utf8_lossy(stream.get_ref().1.alpn_protocol().unwrap_or(b"none"))
                        .into_owned();
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        // HTTP/1.1 carries the authority in Host, HTTP/2 in the URI.
                        let host = request
                            .headers()
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .map(str::to_owned);
                        let host = host
                            .or_else(|| request.uri().authority().map(|a| a.to_string()))
                            .unwrap_or_default();
                        let path = request
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let text =
                            format!("{path} {:?} alpn={alpn} sni-host={host}", request.version());
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from(text),
                            )))
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_against_the_configured_ca() {
    let cert = certificate();
    let upstream = https_upstream(&cert).await;
    let target = format!("https://localhost:{}", upstream.port());
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.secure]\ntargets = [\"{target}/base\"]\ntls_ca = \"{ca}\"\n\
         [upstreams.secure_h2]\ntargets = [\"{target}\"]\ntls_ca = \"{ca}\"\nh2c = true\n\
         [upstreams.untrusted]\ntargets = [\"{target}\"]\ntls_ca = \"{other}\"\n\
         [[routes]]\npath = \"/h1\"\nupstream = \"secure\"\nstrip_prefix = true\n\
         [[routes]]\npath = \"/h2\"\nupstream = \"secure_h2\"\n\
         [[routes]]\npath = \"/untrusted\"\nupstream = \"untrusted\"\n",
        ca = cert.dir.path.join("cert.pem").display(),
        other = {
            let other = certificate();
            let path = cert.dir.path.join("other-ca.pem");
            std::fs::copy(other.dir.path.join("cert.pem"), &path).unwrap();
            path.display().to_string()
        },
    )));
    let (parts, body) = get(&gw.url("/h1/x?y=1")).await;
    assert_eq!(parts.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.starts_with("/base/x?y=1 HTTP/1.1 alpn=http/1.1"),
        "{text}"
    );
    assert!(
        text.contains(&format!("sni-host=localhost:{}", upstream.port())),
        "{text}"
    );

    let (parts, body) = get(&gw.url("/h2")).await;
    assert_eq!(parts.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("HTTP/2.0 alpn=h2"), "{text}");
    assert!(
        text.contains(&format!("sni-host=localhost:{}", upstream.port())),
        "{text}"
    );

    // A certificate from another CA is refused: 502, nothing leaks.
    let (parts, _) = get(&gw.url("/untrusted")).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
}

/// Reads one response with a `Content-Length` body from `stream`; returns head and body.
async fn read_response(stream: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let head = String::from_utf8(support::read_head(stream).await).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a content-length");
    let mut body = vec![0u8; length];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut body))
        .await
        .expect("no body")
        .unwrap();
    (head, body)
}

/// `gateway_released_connections` on `admin`, once it reads `expected` (or after 5 s).
async fn released_connections(admin: std::net::SocketAddr, expected: f64) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = get(&format!("http://{admin}/metrics")).await;
        let text = String::from_utf8(body.to_vec()).unwrap();
        let released = support::metric(&text, "gateway_released_connections").unwrap();
        if released == expected || std::time::Instant::now() > deadline {
            return released;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_give_their_buffers_back_and_stay_usable() {
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(
        &config(&format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n\
             [upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
            upstream.url()
        ))
        .replace(
            "access_log = false",
            "access_log = false\nrelease_idle_after = \"100ms\"",
        ),
    );
    let admin = gw.admin.unwrap();
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    // Released after the first request; served again and released again after the second.
    for path in ["/first", "/second"] {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: gw\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        assert_eq!(json(&body)["uri"], path);
        assert_eq!(released_connections(admin, 1.0).await, 1.0);
    }

    // And an upgrade on it still becomes a tunnel.
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let head = String::from_utf8_lossy(&support::read_head(&mut stream).await).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    stream.write_all(b"through").await.unwrap();
    let mut echoed = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"through");
    // A tunnel is not an idle connection, however long it is quiet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(released_connections(admin, 0.0).await, 0.0);
    assert_eq!(upstream.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_connections_give_hyper_buffers_back_and_stay_usable() {
    let upstream = Upstream::start("app").await;
    let cert = certificate();
    let gw = TestGateway::start(
        &config(&format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n\
             [server.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n[upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
            cert.dir.path.join("cert.pem").display(),
            cert.dir.path.join("key.pem").display(),
            upstream.url()
        ))
        .replace(
            "access_log = false",
            "access_log = false\nrelease_idle_after = \"100ms\"",
        ),
    );
    let admin = gw.admin.unwrap();

    // ALPN http/1.1: released while idle, its TLS session kept for the next request.
    let mut sender = http1_over(tls_connect(gw.addr, &cert, &[b"http/1.1"]).await).await;
    for (round, path) in ["/one", "/two", "/three"].into_iter().enumerate() {
        let response = get_on(&mut sender, path)
            .await
            .unwrap_or_else(|error| panic!("request {round} on the released connection: {error}"));
        assert_eq!(response.status(), StatusCode::OK);
        let echo = json(&response.into_body().collect().await.unwrap().to_bytes());
        assert_eq!(echo["uri"], path);
        assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
        assert_eq!(released_connections(admin, 1.0).await, 1.0);
    }

    // No ALPN: served as before (hyper-util reads what the client speaks), not released.
    let mut sender = http1_over(tls_connect(gw.addr, &cert, &[]).await).await;
    let response = get_on(&mut sender, "/alpn-less").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(released_connections(admin, 1.0).await, 1.0);
}
