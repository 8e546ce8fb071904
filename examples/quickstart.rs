//! The gateway on embedded defaults: a small in-process upstream, the gateway in front of it
//! with auth, rate limiting, a circuit breaker and header rules, and the curl commands to try.
//! No Redis, no config file to edit.
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```
//!
//! Set `QUICKSTART_PORT` to use another port than 8080 (0 picks a free one).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use gateway::bin::{Config, RunningGateway};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A demo upstream: answers every request with what it received, as JSON.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the demo upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let headers: serde_json::Map<String, serde_json::Value> = request
                        .headers()
                        .iter()
                        .map(|(name, value)| {
                            (
                                name.to_string(),
                                String::from_utf8_lossy(value.as_bytes()).into(),
                            )
                        })
                        .collect();
                    let echo = serde_json::json!({
                        "upstream": "demo",
                        "method": request.method().as_str(),
                        "uri": request.uri().to_string(),
                        "headers": headers,
                    });
                    let mut body = serde_json::to_vec_pretty(&echo).unwrap_or_default();
                    body.push(b'\n');
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

const SECRET: &str = "quickstart-secret-change-me-0123456789abcdef";

fn config(
    upstream: SocketAddr,
    port: u16,
    admin_port: u16,
    secret_file: &std::path::Path,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
trusted_proxies = ["127.0.0.0/8"]

[admin]
listen = "127.0.0.1:{admin_port}"

[jwt]
algorithms = ["HS256"]
secret_file = "{secret}"
issuer = "api-gateway"
leeway = "30s"

[headers.response]
set = {{ "X-Gateway" = "gateway" }}

[upstreams.demo]
targets = ["http://{upstream}"]
[upstreams.demo.circuit_breaker]
failure_threshold = 5
success_threshold = 2
open_for = "10s"

[[routes]]
path = "/public"
upstream = "demo"
strip_prefix = true
[routes.rate_limit]
algorithm = "fixed_window"
limit = 5
window = "10s"
key = "ip"
[routes.response_headers]
remove = ["Server"]

[[routes]]
path = "/api/users"
upstream = "demo"
auth = "required"
[routes.request_headers]
set = {{ "X-Source" = "gateway", "X-Caller" = "{{claim.user_id}}" }}
remove = ["Cookie"]

[[routes]]
path = "/admin"
upstream = "demo"
auth = "required"
roles = ["admin"]
"#,
        secret = secret_file.display()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _log = gateway::bin::logging::init(gateway::bin::logging::LogFormat::Text);
    let port: u16 = std::env::var("QUICKSTART_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let upstream = runtime.block_on(upstream());

    let dir = std::env::temp_dir().join(format!("gateway-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let secret_file = dir.join("jwt-secret");
    std::fs::write(&secret_file, SECRET)?;
    let config_path = dir.join("gateway.toml");
    let start = |port: u16,
                 admin_port: u16|
     -> Result<RunningGateway, Box<dyn std::error::Error + Send + Sync>> {
        std::fs::write(
            &config_path,
            config(upstream, port, admin_port, &secret_file),
        )?;
        let config = Config::load(&config_path)?;
        Ok(RunningGateway::start(config, Some(config_path.clone()))?)
    };
    // Prefer the well-known ports; fall back to free ones when they are taken.
    let gateway = start(port, 9901).or_else(|error| {
        eprintln!("ports {port}/9901 unavailable ({error}); using free ports");
        start(0, 0)
    })?;
    let addr = gateway.local_addr();
    let admin = gateway
        .admin_addr()
        .map_or_else(|| "-".to_owned(), |a| a.to_string());

    let claims = |pairs: &[&str]| pairs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let parsed = Config::load(&config_path)?;
    let user = gateway::bin::mint_token(
        &parsed,
        &claims(&["user_id=alice", "role=user"]),
        Duration::from_secs(3600),
    )?;
    let admin_token = gateway::bin::mint_token(
        &parsed,
        &claims(&["user_id=root", "role=admin"]),
        Duration::from_secs(3600),
    )?;

    println!(
        r#"
gateway listening on http://{addr}  (admin on http://{admin}, upstream on http://{upstream})
config: {config}

Try:
  curl -i http://{addr}/public/hello                       # proxied, prefix stripped, rate limited (5 per 10s per IP)
  for i in $(seq 7); do curl -s -o /dev/null -w '%{{http_code}}\n' http://{addr}/public/x; done   # 200 x5, then 429
  curl -i http://{addr}/api/users/42                       # 401: no token
  curl -i -H 'Authorization: Bearer {user}' http://{addr}/api/users/42
  curl -i -H 'X-User-ID: mallory' -H 'Authorization: Bearer {user}' http://{addr}/api/users/42   # spoofed header replaced
  curl -i -H 'Authorization: Bearer {user}' http://{addr}/admin       # 403: role user
  curl -i -H 'Authorization: Bearer {admin_token}' http://{addr}/admin
  curl -i http://{addr}/nowhere                            # 404 problem+json
  curl -s http://{admin}/ready; curl -s http://{admin}/metrics | head -30

Edit {config} while it runs: the gateway reloads it. Ctrl-C stops it.
"#,
        config = config_path.display(),
    );

    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    gateway.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
