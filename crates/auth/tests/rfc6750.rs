//! RFC 6750 section 3.1 error codes: a malformed *request* is `invalid_request`, a present
//! but malformed *token* is `invalid_token`, a request without bearer credentials gets a
//! bare challenge.
//!
//! Reasons are compared by their metric label (`as_str`), the contract the gateway's
//! metrics rely on.

mod common;

use bytes::Bytes;
use common::*;
use gateway_auth::{AuthFailure, AuthMode, Authenticator, JwtAuthLayer};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

/// Accepts the token from the header, the `session` cookie and the `access_token` parameter.
fn authenticator() -> Authenticator {
    Authenticator::builder()
        .hmac_secret(SECRET)
        .token_from_cookie("session")
        .token_from_query("access_token")
        .build()
        .unwrap()
}

/// What a client sees of a response.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    /// The `error` code of the `WWW-Authenticate` challenge.
    error: Option<String>,
    challenge: Option<String>,
    detail: Option<String>,
    reason: Option<&'static str>,
}

async fn send(layer: &JwtAuthLayer, request: Request<Full<Bytes>>) -> Seen {
    let response = layer
        .layer(tower::service_fn(echo))
        .oneshot(request)
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let error = challenge.as_deref().and_then(|c| {
        let rest = &c[c.find("error=\"")? + 7..];
        Some(rest[..rest.find('"')?].to_owned())
    });
    let reason = response
        .extensions()
        .get::<AuthFailure>()
        .map(|f| f.as_str());
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let detail = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned));
    Seen {
        status,
        error,
        challenge,
        detail,
        reason,
    }
}

fn bearer(value: &[u8]) -> Request<Full<Bytes>> {
    with_header(value, "/")
}

fn with_header(value: &[u8], uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .header("authorization", HeaderValue::from_bytes(value).unwrap())
        .body(Full::default())
        .unwrap()
}

/// A correctly signed HS256 token over raw header and payload bytes (the signature is checked
/// before the payload is parsed, so a broken payload must be signed to reach the parser).
fn signed(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// Tokens whose JWS syntax or content is broken, though each is a well-formed `b64token`
/// (so `Authorization: Bearer <it>` is a well-formed request).
fn malformed_tokens() -> Vec<(&'static str, String)> {
    let payload = claims(json!({}));
    vec![
        ("one part", "abc".to_owned()),
        ("two parts", "a.b".to_owned()),
        ("four parts", "a.b.c.d".to_owned()),
        ("header not JSON", "not.a.token".to_owned()),
        ("header bad base64url", "eyJ+.e30.sig".to_owned()),
        ("header without alg", "e30.e30.sig".to_owned()),
        ("claims not JSON", signed(br#"{"alg":"HS256"}"#, b"{nope")),
        (
            "claims not an object",
            hmac_token("HS256", SECRET, json!({}), &json!(["a"])),
        ),
        (
            "critical extension",
            hmac_token("HS256", SECRET, json!({"crit": ["exp"]}), &payload),
        ),
        ("oversized", "a".repeat(9000)),
    ]
}

#[tokio::test]
async fn a_malformed_token_is_invalid_token() {
    let layer = JwtAuthLayer::new(authenticator());
    for (what, token) in malformed_tokens() {
        let seen = send(&layer, bearer(format!("Bearer {token}").as_bytes())).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            seen.error.as_deref(),
            Some("invalid_token"),
            "{what}: {seen:?}"
        );
        assert_eq!(seen.reason, Some("malformed_token"), "{what}");
        assert_eq!(
            seen.challenge.as_deref(),
            Some(
                "Bearer realm=\"gateway\", error=\"invalid_token\", \
                 error_description=\"the bearer token is malformed\""
            ),
            "{what}"
        );
        assert_eq!(
            seen.detail.as_deref(),
            Some("the bearer token is malformed"),
            "{what}"
        );
    }

    // The same from the other configured sources.
    let by_cookie = Request::get("/")
        .header("cookie", "session=not.a.token")
        .body(Full::default())
        .unwrap();
    let by_query = Request::get("/?access_token=abc")
        .body(Full::default())
        .unwrap();
    for request in [by_cookie, by_query] {
        let seen = send(&layer, request).await;
        assert_eq!(
            (seen.status, seen.error.as_deref(), seen.reason),
            (
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                Some("malformed_token")
            )
        );
    }

    // An optional route does not let a malformed token pass as anonymous.
    let optional = JwtAuthLayer::new(authenticator()).mode(AuthMode::Optional);
    let seen = send(&optional, bearer(b"Bearer not.a.token")).await;
    assert_eq!(seen.error.as_deref(), Some("invalid_token"));

    // Verifying a token directly gives the same reason.
    let failure = authenticator().authenticate("abc").await.unwrap_err();
    assert_eq!(failure.as_str(), "malformed_token");
}

#[tokio::test]
async fn a_malformed_request_is_invalid_request() {
    let layer = JwtAuthLayer::new(authenticator());
    let token = hs256(&claims(json!({"user_id": "alice"})));
    let request = |uri: String, headers: &[(&str, String)]| {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder.body(Full::default()).unwrap()
    };
    let auth_header = || ("authorization", format!("Bearer {token}"));
    let session = || ("cookie", format!("session={token}"));

    let cases: Vec<(&str, Request<Full<Bytes>>)> = vec![
        ("no token", bearer(b"Bearer")),
        ("empty token", bearer(b"Bearer ")),
        ("two spaces", bearer(format!("Bearer  {token}").as_bytes())),
        (
            "trailing space",
            bearer(format!("Bearer {token} ").as_bytes()),
        ),
        ("two words", bearer(format!("Bearer {token} x").as_bytes())),
        ("tab", bearer(format!("Bearer\t{token}").as_bytes())),
        ("not a b64token", bearer(b"Bearer a\xff.b.c")),
        ("quotes", bearer(b"Bearer \"a.b.c\"")),
        ("padding inside", bearer(b"Bearer a=.b.c")),
        (
            "two Authorization headers",
            request("/".into(), &[auth_header(), auth_header()]),
        ),
        (
            "header and cookie",
            request("/".into(), &[auth_header(), session()]),
        ),
        (
            "header and query",
            request(format!("/?access_token={token}"), &[auth_header()]),
        ),
        (
            "cookie and query",
            request(format!("/?access_token={token}"), &[session()]),
        ),
        (
            "query parameter twice",
            request(format!("/?access_token={token}&access_token={token}"), &[]),
        ),
        (
            "cookie twice",
            request(
                "/".into(),
                &[("cookie", format!("session={token}; session={token}"))],
            ),
        ),
        (
            "empty query parameter",
            request("/?access_token=".into(), &[]),
        ),
    ];
    for (what, request) in cases {
        let seen = send(&layer, request).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            seen.error.as_deref(),
            Some("invalid_request"),
            "{what}: {seen:?}"
        );
        assert_eq!(seen.reason, Some("malformed"), "{what}");
    }

    // Each source alone is fine.
    for request in [
        request("/".into(), &[auth_header()]),
        request("/".into(), &[session()]),
        request(format!("/?access_token={token}"), &[]),
    ] {
        assert_eq!(send(&layer, request).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn both_reasons_are_metric_labels() {
    let labels: Vec<&str> = AuthFailure::ALL.iter().map(|f| f.as_str()).collect();
    assert!(labels.contains(&"malformed"), "{labels:?}");
    assert!(labels.contains(&"malformed_token"), "{labels:?}");
}

/// Guards behaviour this change keeps: per RFC 6750 section 3.1, a request "attempted using
/// an unsupported authentication method" lacks authentication information, so it gets no
/// error code (and an optional route lets it through to the upstream).
#[tokio::test]
async fn another_scheme_is_no_bearer_credential() {
    let basic = || with_header(b"Basic dXNlcjpwYXNz", "/");
    let seen = send(&JwtAuthLayer::new(authenticator()), basic()).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.challenge.as_deref(), Some("Bearer realm=\"gateway\""));
    assert_eq!(seen.reason, Some("missing_token"));

    let optional = JwtAuthLayer::new(authenticator()).mode(AuthMode::Optional);
    assert_eq!(send(&optional, basic()).await.status, StatusCode::OK);
}
