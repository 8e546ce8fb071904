//! The `gateway` binary as operators run it: `check`, `--version`, signals.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn gateway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
}

struct TempConfig(PathBuf);

impl TempConfig {
    fn new(name: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("gateway-cli-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const VALID: &str = r#"[server]
listen = "127.0.0.1:0"

[upstreams.users]
targets = ["http://127.0.0.1:9"]

[[routes]]
path = "/users"
upstream = "users"
"#;

fn check(name: &str, text: &str) -> (i32, String) {
    let config = TempConfig::new(name, text);
    let output = gateway()
        .args(["check", "--config"])
        .arg(&config.0)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn check_accepts_a_valid_config() {
    let (code, text) = check("valid", VALID);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok"), "{text}");
}

#[test]
fn check_names_file_line_and_field() {
    let cases = [
        (
            "unknown-key",
            VALID.replace("path = \"/users\"", "path = \"/users\"\nstrip_prefx = true"),
            9,
            "strip_prefx",
        ),
        (
            "bad-duration",
            VALID.replace(
                "listen = \"127.0.0.1:0\"",
                "listen = \"127.0.0.1:0\"\nrequest_timeout = \"soon\"",
            ),
            3,
            "server.request_timeout",
        ),
        (
            "bad-upstream",
            VALID.replace("upstream = \"users\"", "upstream = \"nobody\""),
            9,
            "routes[0].upstream",
        ),
        (
            "bad-listen",
            VALID.replace("127.0.0.1:0", "localhost"),
            2,
            "server.listen",
        ),
        ("syntax", VALID.replace("[[routes]]", "[[routes]"), 7, ""),
        (
            "header-template",
            format!("{VALID}[routes.request_headers]\nset = {{ \"X-Caller\" = \"{{nope}}\" }}\n"),
            11,
            "routes[0].request_headers",
        ),
        (
            "header-crlf",
            format!(
                "{VALID}[routes.response_headers]\nset = {{ \"X-A\" = \"a\\r\\nSet-Cookie: x=1\" }}\n"
            ),
            11,
            "routes[0].response_headers",
        ),
        (
            "rate-limit",
            // Checked across the table's fields, and located at the key the check names.
            format!("{VALID}[routes.rate_limit]\nlimit = 0\nwindow = \"1m\"\n"),
            11,
            "routes[0].rate_limit",
        ),
        (
            "breaker",
            VALID.replace(
                "[[routes]]",
                "[upstreams.users.circuit_breaker]\nfailure_threshold = -1\n\n[[routes]]",
            ),
            8,
            "upstreams.users.circuit_breaker",
        ),
        (
            "target-url",
            VALID.replace(
                "targets = [\"http://127.0.0.1:9\"]",
                "targets = [\n  \"http://127.0.0.1:9\",\n  \"not a url\",\n]",
            ),
            7,
            "upstreams.users.targets[1]",
        ),
        (
            "access-cidr",
            VALID.replace(
                "[upstreams.users]",
                "[access]\nallow = [\"10.0.0.0/33\"]\n\n[upstreams.users]",
            ),
            5,
            "access",
        ),
        (
            "cors-credentials-any",
            format!("{VALID}[routes.cors]\nallow_origins = [\"*\"]\nallow_credentials = true\n"),
            11,
            "routes[0].cors",
        ),
        (
            "cors-wildcard-scheme",
            format!("{VALID}[routes.cors]\nallow_origins = [\"https://*\"]\n"),
            11,
            "routes[0].cors",
        ),
        (
            "compression-algorithm",
            VALID.replace(
                "[upstreams.users]",
                "[compression]\nalgorithms = [\"gzip\", \"lz4\"]\n\n[upstreams.users]",
            ),
            5,
            "compression",
        ),
        (
            "route-compression-key",
            format!("{VALID}[routes.compression]\nmin_sise = \"1KiB\"\n"),
            11,
            "routes[0].compression.min_sise",
        ),
        (
            "route-compression-value",
            VALID.replace(
                "upstream = \"users\"",
                "upstream = \"users\"\ncompression = \"yes\"",
            ),
            10,
            "routes[0].compression",
        ),
        (
            "route-compression-content-type",
            format!("{VALID}[routes.compression]\ncontent_types = [\"json\"]\n"),
            11,
            "routes[0].compression",
        ),
    ];
    for (name, text, line, field) in cases {
        let (code, output) = check(name, &text);
        assert_eq!(code, 1, "{name}: {output}");
        assert!(
            output.contains(&format!(
                "gateway-cli-{}-{name}.toml:{line}:",
                std::process::id()
            )),
            "{name}: {output}"
        );
        assert!(output.contains(field), "{name}: {output}");
    }
}

#[test]
fn check_reports_a_missing_file() {
    let output = gateway()
        .args(["check", "--config", "/nonexistent/gateway.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/gateway.toml"));
}

#[test]
fn version_is_printed() {
    let output = gateway().arg("--version").output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// A raw upstream that answers one request after a delay.
/// The receiver gets the request head when it has arrived.
fn slow_upstream(
    delay: Duration,
) -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<Vec<u8>>,
    std::thread::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived, arrival) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                return;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let _ = arrived.send(head);
        std::thread::sleep(delay);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone");
    });
    (addr, arrival, handle)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[cfg(unix)]
#[test]
fn sigterm_finishes_the_in_flight_request_then_exits_0() {
    let (upstream, arrival, upstream_thread) = slow_upstream(Duration::from_millis(800));
    let port = free_port();
    let config = TempConfig::new(
        "sigterm",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[upstreams.slow]\ntargets = [\"http://{upstream}\"]\n[[routes]]\npath = \"/\"\nupstream = \"slow\"\n"
        ),
    );
    let (mut child, mut stream) = start(&config, port, Stdio::null());
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    // Once the upstream has the request, ask the gateway to stop.
    arrival
        .recv_timeout(Duration::from_secs(10))
        .expect("the request never reached the upstream");
    terminate(&child);
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("done"), "{response}");
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    upstream_thread.join().unwrap();
}

/// Starts the binary on `config`, its stdout going to `stdout`, and connects to `port`.
fn start(config: &TempConfig, port: u16, stdout: Stdio) -> (std::process::Child, TcpStream) {
    let child = gateway()
        .arg("--config")
        .arg(&config.0)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("gateway did not start: {error}"),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (child, stream)
}

/// Sends SIGTERM to the gateway.
fn terminate(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The value of header `name` (lower case) in a raw message head.
fn head_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

#[cfg(unix)]
#[test]
fn access_log_lines_carry_the_id_the_upstream_saw() {
    // The id reaches the log from the echoed response header, or, without the echo, from a
    // response extension: both ways must log the id the upstream got.
    for (name, headers, echoed) in [
        ("log-echoed", "", true),
        (
            "log-unechoed",
            "[headers]\nrequest_id = { echo = false }\n",
            false,
        ),
    ] {
        let (upstream, arrival, upstream_thread) = slow_upstream(Duration::ZERO);
        let port = free_port();
        let config = TempConfig::new(
            name,
            &format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n{headers}[upstreams.one]\ntargets = [\"http://{upstream}\"]\n[[routes]]\npath = \"/\"\nupstream = \"one\"\n"
            ),
        );
        let (mut child, mut stream) = start(&config, port, Stdio::piped());
        stream
            .write_all(b"GET /logged HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let upstream_head = String::from_utf8(
            arrival
                .recv_timeout(Duration::from_secs(10))
                .expect("the request never reached the upstream"),
        )
        .unwrap();
        let id = head_value(&upstream_head, "x-request-id").expect("the upstream got an id");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(
            head_value(&response, "x-request-id"),
            echoed.then(|| id.clone()),
            "{name}: {response}"
        );
        terminate(&child);
        let mut log = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0));
        upstream_thread.join().unwrap();
        let line = log
            .lines()
            .find(|line| line.contains("path=\"/logged\""))
            .unwrap_or_else(|| panic!("{name}: no access log line in {log:?}"));
        assert!(
            line.contains(&format!("request_id=\"{id}\"")),
            "{name}: {line}"
        );
        assert!(line.contains("status=200"), "{name}: {line}");
    }
}
