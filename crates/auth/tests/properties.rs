//! Property tests of the authenticator against untrusted credentials, driven through
//! `JwtAuthLayer` over a trivial service: arbitrary `Authorization` bytes, dot-separated
//! base64url strings, and compact JWS with arbitrary JSON headers and claims, signed with the
//! right secret, a wrong one, or not at all.
//!
//! Failures are not persisted to files: a failing case found here is kept as a regular
//! `#[test]` instead.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::{SECRET, b64, now};
use gateway_auth::{AuthFailure, Authenticator, JwtAuthLayer, MintError, mint_hs256};
use gateway_core::Identity;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Value, json};
use tower::{Layer, ServiceExt, service_fn};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const ISSUER: &str = "issuer-a";
const AUDIENCE: &str = "aud-a";
const LEEWAY: u64 = 30;

/// HS256 with the test secret, one issuer, one audience, 30 s of leeway; every other
/// setting as the defaults (`exp` required, `X-User-ID` from `user_id`/`sub`, `X-User-Role`
/// from `role`, realm `gateway`).
fn authenticator() -> Authenticator {
    Authenticator::builder()
        .hmac_secret(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .leeway(Duration::from_secs(LEEWAY))
        .build()
        .unwrap()
}

/// What the upstream saw of an admitted request.
#[derive(Clone, Debug)]
struct Admitted {
    claims: Option<Map<String, Value>>,
    user_id: Vec<Vec<u8>>,
    user_role: Vec<Vec<u8>>,
}

/// What the client sees of a response.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    failure: Option<AuthFailure>,
    challenge: Option<String>,
    detail: Option<String>,
    admitted: Option<Admitted>,
}

async fn upstream(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let values = |name: &str| -> Vec<Vec<u8>> {
        request
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect()
    };
    let admitted = Admitted {
        claims: request
            .extensions()
            .get::<Identity>()
            .map(|identity| identity.claims().clone()),
        user_id: values("x-user-id"),
        user_role: values("x-user-role"),
    };
    let mut response = Response::new(Full::default());
    response.extensions_mut().insert(admitted);
    Ok(response)
}

/// Sends a request with these `Authorization` values (and a spoofed `X-User-ID`) through
/// the layer.
fn send(auth: &Authenticator, authorization: &[Vec<u8>]) -> Outcome {
    let mut request = Request::get("/orders")
        .header("x-user-id", "spoofed-admin")
        .body(Full::default())
        .unwrap();
    for value in authorization {
        let value = HeaderValue::from_bytes(value).expect("generated values are header values");
        request.headers_mut().append("authorization", value);
    }
    send_request(auth, request)
}

fn send_request(auth: &Authenticator, request: Request<Full<Bytes>>) -> Outcome {
    let service = JwtAuthLayer::new(auth.clone()).layer(service_fn(upstream));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = service.oneshot(request).await.unwrap();
        let status = response.status();
        let failure = response.extensions().get::<AuthFailure>().copied();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let admitted = response.extensions().get::<Admitted>().cloned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let detail = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned));
        Outcome {
            status,
            failure,
            challenge,
            detail,
            admitted,
        }
    })
}

fn send_token(auth: &Authenticator, token: &str) -> Outcome {
    send(auth, &[format!("Bearer {token}").into_bytes()])
}

/// The `WWW-Authenticate` challenge of a rejection, as RFC 6750 section 3 and
/// `AuthFailure`'s documentation give it: none for a 503, a bare challenge without
/// credentials, else the error code and the reason's description.
fn expected_challenge(failure: AuthFailure) -> Option<String> {
    let code = match failure {
        AuthFailure::KeysUnavailable => return None,
        AuthFailure::MissingToken => return Some("Bearer realm=\"gateway\"".to_owned()),
        AuthFailure::Malformed => "invalid_request",
        AuthFailure::InsufficientRole => "insufficient_scope",
        _ => "invalid_token",
    };
    Some(format!(
        "Bearer realm=\"gateway\", error=\"{code}\", error_description=\"{}\"",
        failure.description()
    ))
}

/// A rejection: the upstream was not called; status, challenge and problem detail are the
/// reason's; returns the reason.
fn rejection(outcome: &Outcome) -> Result<AuthFailure, TestCaseError> {
    prop_assert!(outcome.admitted.is_none(), "admitted: {:?}", outcome);
    let Some(failure) = outcome.failure else {
        return Err(TestCaseError::fail(format!("no AuthFailure: {outcome:?}")));
    };
    prop_assert_eq!(outcome.status, failure.status());
    prop_assert!(
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(&outcome.status)
    );
    prop_assert_eq!(&outcome.challenge, &expected_challenge(failure));
    prop_assert_eq!(outcome.detail.as_deref(), Some(failure.description()));
    Ok(failure)
}

/// Reasons of a token that is there but not good (`invalid_token`).
const TOKEN_FAILURES: [AuthFailure; 3] = [
    AuthFailure::MalformedToken,
    AuthFailure::AlgorithmNotAllowed,
    AuthFailure::BadSignature,
];

fn hs256(secret: &[u8], input: &str) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, input.as_bytes())
        .as_ref()
        .to_vec()
}

/// A compact JWS of these exact header and claims texts, signed with HS256 and `secret`.
fn jws(secret: &[u8], header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = hs256(secret, &input);
    format!("{input}.{}", b64(&signature))
}

// ---------------------------------------------------------------------------------------------
// Authorization header bytes
// ---------------------------------------------------------------------------------------------

/// Bytes a header value may hold (no control characters but HTAB, no DEL).
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff]
}

const B64TOKEN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

fn authorization_value() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop::sample::select(vec![
        "Bearer", "bearer", "BEARER", "bEaReR", "Bearerx", "Bear", "Basic", "Digest", "",
    ]);
    let separator = prop::sample::select(vec!["", " ", " ", " ", "  ", "\t", " \t"]);
    let token = prop_oneof![
        // b64token characters, sometimes with `=` padding.
        (
            prop::collection::vec(prop::sample::select(B64TOKEN.to_vec()), 0..24),
            0usize..3
        )
            .prop_map(|(mut t, pad)| {
                t.extend(std::iter::repeat_n(b'=', pad));
                t
            }),
        prop::collection::vec(header_byte(), 0..24),
        Just(b"a.b.c".to_vec()),
        Just(b"eyJhbGciOiJIUzI1NiJ9.e30.".to_vec()),
    ];
    prop_oneof![
        3 => (scheme, separator, token).prop_map(|(scheme, separator, token)| {
            let mut value = format!("{scheme}{separator}").into_bytes();
            value.extend(token);
            value
        }),
        1 => prop::collection::vec(header_byte(), 0..40),
    ]
}

/// What the layer makes of `Authorization` values, by the documented rules: several headers
/// are ambiguous; a scheme (the text before the first SP or HTAB) other than `Bearer` (any
/// case) is no bearer credential; `Bearer`, exactly one SP and a `b64token` is a token (then
/// judged as a token); anything else with the `Bearer` scheme is a malformed request.
enum Credentials {
    Missing,
    Malformed,
    Token,
}

fn classify(values: &[Vec<u8>]) -> Credentials {
    let [value] = values else {
        return if values.is_empty() {
            Credentials::Missing
        } else {
            Credentials::Malformed
        };
    };
    let scheme_len = value
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(value.len());
    if !value[..scheme_len].eq_ignore_ascii_case(b"bearer") {
        return Credentials::Missing;
    }
    let Some(token) = value[scheme_len..].strip_prefix(b" ") else {
        return Credentials::Malformed;
    };
    // `b64token` is `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    let end = token.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    let unpadded = &token[..end];
    if unpadded.is_empty() || !unpadded.iter().all(|b| B64TOKEN.contains(b)) {
        return Credentials::Malformed;
    }
    Credentials::Token
}

proptest! {
    #![proptest_config(config())]

    /// Any `Authorization` header (one or two of them): no panic, never admitted, and the
    /// rejection is the one RFC 6750 prescribes: a bare challenge without bearer credentials
    /// (401), `invalid_request` for a malformed request (401), `invalid_token` for a token
    /// that is not valid (401).
    #[test]
    fn authorization_bytes_are_rejected_as_documented(
        values in prop::collection::vec(authorization_value(), 0..3),
    ) {
        let outcome = send(&authenticator(), &values);
        let failure = rejection(&outcome)?;
        match classify(&values) {
            Credentials::Missing => prop_assert_eq!(failure, AuthFailure::MissingToken),
            Credentials::Malformed => prop_assert_eq!(failure, AuthFailure::Malformed),
            Credentials::Token => prop_assert!(TOKEN_FAILURES.contains(&failure), "{:?}", failure),
        }
    }

    /// One to three dot-separated base64url strings (of anything: random bytes, JSON, empty):
    /// never admitted, always `invalid_token`; fewer than three parts is a malformed token.
    #[test]
    fn dot_separated_base64url_is_an_invalid_token(
        parts in prop::collection::vec(
            prop_oneof![
                "[A-Za-z0-9_-]{0,40}",
                prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| b64(&b)),
                prop::sample::select(vec![
                    r#"{"alg":"HS256"}"#, r#"{"alg":"none"}"#, r#"{"alg":"RS256"}"#, "{}", "[]",
                    "null", r#"{"exp":1}"#, r#"{"alg":"HS256","crit":["x"]}"#,
                ]).prop_map(|json| b64(json.as_bytes())),
            ],
            1..4,
        ),
    ) {
        let token = parts.join(".");
        prop_assume!(!token.is_empty());
        let failure = rejection(&send_token(&authenticator(), &token))?;
        prop_assert!(TOKEN_FAILURES.contains(&failure), "{:?}", failure);
        if parts.len() < 3 {
            prop_assert_eq!(failure, AuthFailure::MalformedToken);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compact JWS with arbitrary headers and claims
// ---------------------------------------------------------------------------------------------

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        any::<String>().prop_map(Value::String),
        "[a-z\\r\\n ]{0,6}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    scalar.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,3}", inner), 0..3)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A JOSE header as text, and what the verifier must make of it before the signature:
/// `None` when it is acceptable (`alg` exactly `HS256`, no `crit`, a string `kid` or none).
fn jose_header() -> impl Strategy<Value = (String, Option<AuthFailure>)> {
    let alg = prop_oneof![
        6 => Just(("\"HS256\"".to_owned(), None)),
        // The same text with escapes: still HS256.
        1 => Just((r#""H\u0053256""#.to_owned(), None)),
        3 => prop::sample::select(vec!["HS384", "HS512", "none", "None", "hs256", "RS256", "ES256", "EdDSA", "HS256 ", ""])
            .prop_map(|alg| (format!("\"{alg}\""), Some(AuthFailure::AlgorithmNotAllowed))),
        1 => "[A-Za-z0-9]{0,8}"
            .prop_filter("not HS256", |alg| alg != "HS256")
            .prop_map(|alg| (format!("\"{alg}\""), Some(AuthFailure::AlgorithmNotAllowed))),
        1 => prop::sample::select(vec!["256", "null", "[\"HS256\"]", "{}", "true"])
            .prop_map(|alg| (alg.to_owned(), Some(AuthFailure::MalformedToken))),
    ];
    let kid = prop_oneof![
        3 => Just((None, None)),
        2 => "[a-z0-9-]{0,8}".prop_map(|kid| (Some(format!("\"{kid}\"")), None)),
        1 => Just((Some("null".to_owned()), None)),
        1 => Just((Some("7".to_owned()), Some(AuthFailure::MalformedToken))),
    ];
    let crit = prop_oneof![
        4 => Just((None, None)),
        1 => Just((Some("null".to_owned()), None)),
        1 => prop::sample::select(vec!["[\"exp\"]", "[]", "\"b64\"", "0"])
            .prop_map(|crit| (Some(crit.to_owned()), Some(AuthFailure::MalformedToken))),
    ];
    let extra = prop::collection::vec(("x[a-z]{0,3}|typ|cty|jku", json_value()), 0..3);
    let object = (alg, kid, crit, extra, any::<bool>()).prop_map(
        |((alg, alg_failure), (kid, kid_failure), (crit, crit_failure), extra, alg_last)| {
            let mut fields: Vec<String> = extra
                .into_iter()
                .map(|(name, value)| format!("{}:{value}", Value::String(name)))
                .collect();
            // Duplicate names would be ambiguous; the generated extras never clash.
            fields.sort();
            fields.dedup_by(|a, b| a.split(':').next() == b.split(':').next());
            if let Some(kid) = kid {
                fields.push(format!("\"kid\":{kid}"));
            }
            if let Some(crit) = crit {
                fields.push(format!("\"crit\":{crit}"));
            }
            let alg = format!("\"alg\":{alg}");
            if alg_last {
                fields.push(alg);
            } else {
                fields.insert(0, alg);
            }
            // A malformed field decides first; then `crit`; then `alg`.
            let failure = kid_failure
                .or(alg_failure.filter(|f| *f == AuthFailure::MalformedToken))
                .or(crit_failure)
                .or(alg_failure);
            (format!("{{{}}}", fields.join(",")), failure)
        },
    );
    prop_oneof![
        8 => object,
        1 => prop::sample::select(vec!["[]", "\"HS256\"", "null", "{}", "{\"typ\":\"JWT\"}", "", "{\"alg\":\"HS256\""])
            .prop_map(|text| (text.to_owned(), Some(AuthFailure::MalformedToken))),
    ]
}

/// A registered claim: absent (`None`) or a JSON value, relative to now where it is a time.
#[derive(Clone, Debug)]
enum Time {
    Absent,
    /// Seconds from now (negative: in the past), as an integer or a float.
    At(i64, bool),
    Other(Value),
}

fn time(near: impl Strategy<Value = i64>) -> impl Strategy<Value = Time> {
    prop_oneof![
        1 => Just(Time::Absent),
        1 => Just(Time::Other(Value::Null)),
        5 => (near, any::<bool>()).prop_map(|(delta, float)| Time::At(delta, float)),
        1 => prop::sample::select(vec![json!("9999999999"), json!(true), json!([1]), json!({})])
            .prop_map(Time::Other),
    ]
}

impl Time {
    fn value(&self, now: u64) -> Option<Value> {
        match self {
            Self::Absent => None,
            Self::At(delta, float) => {
                let at = now as i64 + delta;
                Some(if *float {
                    json!(at as f64 + 0.5)
                } else {
                    json!(at)
                })
            }
            Self::Other(value) => Some(value.clone()),
        }
    }
}

/// Times far enough from every edge (now +- leeway) that the seconds a test takes do not
/// matter: well past, just past (inside the leeway), just ahead (inside it), well ahead.
fn time_offsets() -> std::ops::Range<i64> {
    -1_000_000..1_000_000
}

fn claims_strategy()
-> impl Strategy<Value = (Time, Time, Option<Value>, Option<Value>, Map<String, Value>)> {
    let offset = prop_oneof![
        time_offsets().prop_filter("away from the edges", |d| (d + LEEWAY as i64).abs() > 100
            && (d - LEEWAY as i64).abs() > 100),
        -10i64..10,
    ];
    let iss = prop_oneof![
        Just(None),
        Just(Some(json!(ISSUER))),
        Just(Some(json!(ISSUER))),
        Just(Some(json!("issuer-b"))),
        Just(Some(json!([ISSUER]))),
        Just(Some(json!(7))),
        Just(Some(Value::Null)),
    ];
    let aud = prop_oneof![
        Just(None),
        Just(Some(json!(AUDIENCE))),
        Just(Some(json!(AUDIENCE))),
        Just(Some(json!("aud-b"))),
        Just(Some(json!(["aud-b", AUDIENCE]))),
        Just(Some(json!(["aud-b", 3]))),
        Just(Some(json!([[AUDIENCE]]))),
        Just(Some(json!({"aud": AUDIENCE}))),
        Just(Some(Value::Null)),
    ];
    let extra = prop::collection::vec(
        (
            prop_oneof![
                "[a-z_]{1,8}",
                Just("sub".to_owned()),
                Just("user_id".to_owned()),
                Just("role".to_owned())
            ],
            json_value(),
        ),
        0..5,
    )
    .prop_map(|pairs| pairs.into_iter().collect::<Map<_, _>>());
    (time(offset.clone()), time(offset), iss, aud, extra)
}

/// The claims of a generated token, `exp`, `nbf`, `iss` and `aud` set (or not) as drawn.
fn claims_at(
    now: u64,
    (exp, nbf, iss, aud, extra): &(Time, Time, Option<Value>, Option<Value>, Map<String, Value>),
) -> Map<String, Value> {
    let mut claims = extra.clone();
    for (name, value) in [
        ("exp", exp.value(now)),
        ("nbf", nbf.value(now)),
        ("iss", iss.clone()),
        ("aud", aud.clone()),
    ] {
        claims.remove(name);
        if let Some(value) = value {
            claims.insert(name.to_owned(), value);
        }
    }
    claims
}

/// The documented claim checks, in order: a required claim (`exp`) absent or null; `exp`
/// not a number, or past beyond the leeway; `nbf` not a number, or ahead beyond the leeway;
/// `iss` not the configured issuer; `aud` not naming the configured audience (a string, or
/// an array holding it).
fn claims_verdict(claims: &Map<String, Value>, now: u64) -> Option<AuthFailure> {
    let present = |name: &str| claims.get(name).filter(|v| !v.is_null());
    let (now, leeway) = (now as f64, LEEWAY as f64);
    let Some(exp) = present("exp") else {
        return Some(AuthFailure::MissingClaim);
    };
    let Some(exp) = exp.as_f64() else {
        return Some(AuthFailure::InvalidClaim);
    };
    if exp + leeway < now {
        return Some(AuthFailure::Expired);
    }
    if let Some(nbf) = present("nbf") {
        let Some(nbf) = nbf.as_f64() else {
            return Some(AuthFailure::InvalidClaim);
        };
        if nbf > now + leeway {
            return Some(AuthFailure::NotYetValid);
        }
    }
    if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
        return Some(AuthFailure::WrongIssuer);
    }
    let names_audience = |v: &Value| v.as_str() == Some(AUDIENCE);
    let audience = match claims.get("aud") {
        Some(Value::Array(auds)) => auds.iter().any(names_audience),
        Some(aud) => names_audience(aud),
        None => false,
    };
    if !audience {
        return Some(AuthFailure::WrongAudience);
    }
    None
}

/// A claim as forwarded header text: scalars as text, arrays of scalars joined with `,`.
fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Array(_) => None,
                other => claim_text(other),
            })
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join(",")),
        Value::Null | Value::Object(_) => None,
    }
}

/// The forwarded header values of the first of `names` the claims have as text, when that
/// text is a header value: none otherwise (the client's copy is removed either way).
fn forwarded(claims: &Map<String, Value>, names: &[&str]) -> Vec<Vec<u8>> {
    names
        .iter()
        .find_map(|name| claim_text(claims.get(*name)?))
        .filter(|text| HeaderValue::from_str(text).is_ok())
        .map(String::into_bytes)
        .into_iter()
        .collect()
}

/// The claims of `token` as JSON parsing reads its payload: the verifier's view. (Without
/// serde_json's `float_roundtrip` feature a float may come back one ULP off the value that
/// was written, so the claims a token was made from are not always these.)
fn payload_claims(token: &str) -> Map<String, Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// An admitted request: the upstream sees the token's claims, and the forwarded headers
/// from them (never the client's spoofed copy).
fn admission(outcome: &Outcome, claims: &Map<String, Value>) -> Result<(), TestCaseError> {
    prop_assert_eq!(outcome.status, StatusCode::OK, "{:?}", outcome);
    prop_assert!(outcome.failure.is_none());
    let Some(admitted) = &outcome.admitted else {
        return Err(TestCaseError::fail("the upstream was not called"));
    };
    prop_assert_eq!(admitted.claims.as_ref(), Some(claims));
    prop_assert_eq!(&admitted.user_id, &forwarded(claims, &["user_id", "sub"]));
    prop_assert_eq!(&admitted.user_role, &forwarded(claims, &["role"]));
    Ok(())
}

/// How a token's signature goes wrong.
#[derive(Clone, Debug)]
enum Forgery {
    /// HS256 with another secret.
    OtherSecret(Vec<u8>),
    /// Random bytes.
    Garbage(Vec<u8>),
    /// No signature at all (`alg: none` style).
    Empty,
    /// The right signature of other claims.
    Transplanted,
}

fn forgery() -> impl Strategy<Value = Forgery> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 32..48)
            .prop_filter("not the secret", |s| s != SECRET)
            .prop_map(Forgery::OtherSecret),
        // The secret with one more byte: close, and still another key.
        1 => Just(Forgery::OtherSecret([SECRET, b"!"].concat())),
        2 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Forgery::Garbage),
        1 => Just(Forgery::Empty),
        1 => Just(Forgery::Transplanted),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// A JWS not signed with the secret is never admitted, whatever its header and claims:
    /// it is refused for its header when that is unacceptable, else for its signature.
    #[test]
    fn tokens_not_signed_with_the_secret_are_never_admitted(
        (header, header_failure) in jose_header(),
        drawn in claims_strategy(),
        forgery in forgery(),
    ) {
        let now = now();
        let claims = Value::Object(claims_at(now, &drawn)).to_string();
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let token = match &forgery {
            Forgery::OtherSecret(secret) => format!("{input}.{}", b64(&hs256(secret, &input))),
            Forgery::Garbage(bytes) => format!("{input}.{}", b64(bytes)),
            Forgery::Empty => format!("{input}."),
            Forgery::Transplanted => {
                let other = jws(SECRET, &header, r#"{"sub":"someone-else","exp":99999999999}"#);
                let signature = other.rsplit('.').next().unwrap();
                format!("{input}.{signature}")
            }
        };
        let failure = rejection(&send_token(&authenticator(), &token))?;
        prop_assert_eq!(failure, header_failure.unwrap_or(AuthFailure::BadSignature));
    }

    /// A JWS signed with the secret is judged by its header, then its claims: admitted
    /// exactly when the header is acceptable and `exp`, `nbf`, `iss` and `aud` pass, else
    /// refused with the first failing check's reason.
    #[test]
    fn tokens_signed_with_the_secret_are_judged_by_their_claims(
        (header, header_failure) in jose_header(),
        drawn in claims_strategy(),
    ) {
        let now = now();
        let claims = claims_at(now, &drawn);
        let token = jws(SECRET, &header, &Value::Object(claims.clone()).to_string());
        let auth = authenticator();
        let expected = header_failure.or_else(|| claims_verdict(&claims, now));
        for _ in 0..2 {
            // Twice: the second time a valid token comes from the cache.
            let outcome = send_token(&auth, &token);
            match expected {
                None => admission(&outcome, &payload_claims(&token))?,
                Some(expected) => prop_assert_eq!(rejection(&outcome)?, expected),
            }
        }
    }

    /// Tokens from `mint_hs256`, with any further claims and any lifetime from a minute on,
    /// are admitted, and carry exactly the minted claims.
    #[test]
    fn minted_tokens_are_admitted(
        extra in prop::collection::vec(("[a-z_]{1,8}|sub|user_id|role", json_value()), 0..6),
        ttl in prop_oneof![60u64..3_600, 3_600u64..100_000_000],
    ) {
        let reserved = ["exp", "iat", "nbf", "iss", "aud"];
        let extra: Map<String, Value> = extra
            .into_iter()
            .filter(|(name, _)| !reserved.contains(&name.as_str()))
            .collect();
        let token = mint_hs256(SECRET, extra.clone(), Duration::from_secs(ttl), Some(ISSUER), Some(AUDIENCE)).unwrap();
        let outcome = send_token(&authenticator(), &token);
        let claims = payload_claims(&token);
        admission(&outcome, &claims)?;
        // The minted claims, as JSON reads them back.
        let extra: Map<String, Value> =
            serde_json::from_str(&Value::Object(extra).to_string()).unwrap();
        for (name, value) in &extra {
            prop_assert_eq!(claims.get(name), Some(value));
        }
        prop_assert_eq!(claims.get("iss"), Some(&json!(ISSUER)));
        prop_assert_eq!(claims.get("aud"), Some(&json!(AUDIENCE)));
        let (iat, exp) = (claims["iat"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
        prop_assert_eq!(exp - iat, ttl);
        prop_assert_eq!(claims.len(), extra.len() + 4);
    }

    /// Any lifetime, issuer or audience: minting fails or succeeds, never panics; a lifetime
    /// past the end of time is an error.
    #[test]
    fn minting_never_panics(
        ttl in prop_oneof![any::<u64>(), Just(u64::MAX)],
        issuer in prop::option::of("\\PC{0,8}"),
        audience in prop::option::of("\\PC{0,8}"),
        secret in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let minted = mint_hs256(&secret, Map::new(), Duration::from_secs(ttl), issuer.as_deref(), audience.as_deref());
        if secret.len() < 32 {
            prop_assert!(minted.is_err());
        } else if now().checked_add(ttl).is_none() {
            prop_assert!(matches!(minted, Err(MintError::Ttl)), "{:?}", minted);
        } else {
            prop_assert_eq!(minted.unwrap().split('.').count(), 3);
        }
    }

    /// A valid token changed anywhere (one character replaced, inserted or removed, or cut
    /// short) is never admitted, even right after the original was (and sits in the cache).
    #[test]
    fn any_change_to_a_valid_token_is_refused(
        sub in "[a-z0-9]{1,12}",
        at in any::<prop::sample::Index>(),
        replacement in prop::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/~!\" ".to_vec(),
        ),
        edit in 0u8..4,
    ) {
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(sub));
        let token = mint_hs256(SECRET, claims, Duration::from_secs(3600), Some(ISSUER), Some(AUDIENCE)).unwrap();
        let auth = authenticator();
        prop_assert_eq!(send_token(&auth, &token).status, StatusCode::OK);

        let mut changed = token.clone().into_bytes();
        let i = at.index(changed.len());
        match edit {
            0 => changed[i] = replacement,
            1 => changed.insert(i, replacement),
            2 => {
                changed.remove(i);
            }
            _ => changed.truncate(i),
        }
        prop_assume!(changed != token.as_bytes());
        let failure = rejection(&send(&auth, &[[b"Bearer ".as_slice(), &changed].concat()]))?;
        prop_assert!(
            TOKEN_FAILURES.contains(&failure) || failure == AuthFailure::Malformed,
            "{:?}",
            failure
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Token sources: header, cookie, query parameter
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// With the `session` cookie and the `access_token` parameter configured, a valid token
    /// is admitted from exactly one place, whatever other cookies and parameters surround
    /// it, and refused as ambiguous (`invalid_request`) from two or three.
    #[test]
    fn a_valid_token_is_admitted_from_exactly_one_place(
        places in (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_filter("somewhere", |(h, c, q)| *h || *c || *q),
        quoted in any::<bool>(),
        cookies in prop::collection::vec("[a-z]{1,7}=[A-Za-z0-9.\\-]{0,8}", 0..4),
        params in prop::collection::vec("[a-z_]{1,12}=[A-Za-z0-9.%-]{0,8}", 0..4),
        cookie_at in any::<prop::sample::Index>(),
        param_at in any::<prop::sample::Index>(),
    ) {
        let cookies: Vec<String> = cookies.into_iter().filter(|c| !c.starts_with("session=")).collect();
        let mut params: Vec<String> = params.into_iter().filter(|p| !p.starts_with("access_token=")).collect();
        let (in_header, in_cookie, in_query) = places;
        let auth = Authenticator::builder()
            .hmac_secret(SECRET)
            .token_from_cookie("session")
            .token_from_query("access_token")
            .build()
            .unwrap();
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("alice"));
        let token = mint_hs256(SECRET, claims, Duration::from_secs(3600), None, None).unwrap();

        let mut builder = Request::get({
            if in_query {
                params.insert(param_at.index(params.len() + 1), format!("access_token={token}"));
            }
            if params.is_empty() { "/orders".to_owned() } else { format!("/orders?{}", params.join("&")) }
        });
        if in_header {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let mut cookies = cookies;
        if in_cookie {
            let value = if quoted { format!("\"{token}\"") } else { token.clone() };
            cookies.insert(cookie_at.index(cookies.len() + 1), format!("session={value}"));
        }
        if !cookies.is_empty() {
            builder = builder.header("cookie", cookies.join("; "));
        }
        let outcome = send_request(&auth, builder.body(Full::default()).unwrap());
        let count = [in_header, in_cookie, in_query].iter().filter(|p| **p).count();
        if count == 1 {
            prop_assert_eq!(outcome.status, StatusCode::OK, "{:?}", outcome);
            prop_assert_eq!(&outcome.admitted.unwrap().user_id, &vec![b"alice".to_vec()]);
        } else {
            prop_assert_eq!(rejection(&outcome)?, AuthFailure::Malformed);
        }
    }

    /// Arbitrary `Cookie` headers and query strings, with the cookie and parameter sources
    /// configured: no panic, never admitted, and a well-formed rejection.
    #[test]
    fn arbitrary_cookies_and_queries_are_never_admitted(
        cookies in prop::collection::vec(prop::collection::vec(header_byte(), 0..40), 0..3),
        query in prop::option::of("[A-Za-z0-9=&;%._~+/-]{0,40}"),
    ) {
        let auth = Authenticator::builder()
            .hmac_secret(SECRET)
            .token_from_cookie("session")
            .token_from_query("access_token")
            .build()
            .unwrap();
        let uri = match &query {
            Some(query) => format!("/orders?{query}"),
            None => "/orders".to_owned(),
        };
        let mut request = Request::get(uri).body(Full::default()).unwrap();
        for cookie in &cookies {
            request.headers_mut().append("cookie", HeaderValue::from_bytes(cookie).unwrap());
        }
        rejection(&send_request(&auth, request))?;
    }
}
