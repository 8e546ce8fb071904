//! Per-request cost of the JWT layer: token in, claims in the extensions, forwarded headers
//! set, compared with the bare inner service.
//!
//! Rows: `bare` (no layer), `cache_hit` (HS256 token already verified), and one signature
//! check per request (cache disabled) for HS256, RS256 (2048-bit), ES256 and, for
//! reference, PS256 and EdDSA. Futures are polled once with a no-op waker: everything here
//! completes synchronously, so no runtime noise is measured.
//!
//! `cargo bench --bench auth`; results in `benches/README.md`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use gateway_auth::{Algorithm, Authenticator, JwtAuthLayer};
use gateway_core::Identity;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use tower::{Layer, Service};

const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret";

type Req = Request<Empty<Bytes>>;

fn claims() -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({
        "iss": "api-gateway", "aud": "my-api", "sub": "user-1234567", "user_id": "user-1234567",
        "role": "admin", "email": "alice@example.com", "iat": now, "exp": now + 86_400,
    })
}

fn sign(alg: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> HeaderValue {
    let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": "bench"}).to_string();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let signature = sign(input.as_bytes());
    HeaderValue::try_from(format!(
        "Bearer {input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
    .unwrap()
}

fn pem(der: &[u8]) -> String {
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

fn builder() -> gateway_auth::AuthenticatorBuilder {
    Authenticator::builder()
        .issuer("api-gateway")
        .audience("my-api")
}

/// One benchmark row: an authenticator and a token it accepts.
struct Case {
    name: &'static str,
    auth: Authenticator,
    token: HeaderValue,
}

fn cases() -> Vec<Case> {
    use aws_lc_rs::encoding::AsDer;
    let rng = SystemRandom::new();
    let hs = sign("HS256", |m| {
        aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET),
            m,
        )
        .as_ref()
        .to_vec()
    });
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let rsa_pem = pem(rsa.public_key().as_der().unwrap().as_ref());
    let rsa_sign = |padding: &'static dyn signature::RsaEncoding, m: &[u8]| {
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(padding, &rng, m, &mut sig).unwrap();
        sig
    };
    let rs = sign("RS256", |m| rsa_sign(&signature::RSA_PKCS1_SHA256, m));
    let ps = sign("PS256", |m| rsa_sign(&signature::RSA_PSS_SHA256, m));
    let ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let es = sign("ES256", |m| ec.sign(&rng, m).unwrap().as_ref().to_vec());
    let ed = Ed25519KeyPair::generate().unwrap();
    let eddsa = sign("EdDSA", |m| ed.sign(m).as_ref().to_vec());

    let uncached = |b: gateway_auth::AuthenticatorBuilder| b.cache_size(0).build().unwrap();
    vec![
        Case {
            name: "cache_hit",
            auth: builder().hmac_secret(SECRET).build().unwrap(),
            token: hs.clone(),
        },
        Case {
            name: "hs256",
            auth: uncached(builder().hmac_secret(SECRET)),
            token: hs,
        },
        Case {
            name: "rs256",
            auth: uncached(builder().public_key_pem(rsa_pem.clone())),
            token: rs,
        },
        Case {
            name: "ps256",
            auth: uncached(
                builder()
                    .public_key_pem(rsa_pem)
                    .algorithms([Algorithm::PS256]),
            ),
            token: ps,
        },
        Case {
            name: "es256",
            auth: uncached(
                builder().public_key_pem(pem(ec.public_key().as_der().unwrap().as_ref())),
            ),
            token: es,
        },
        Case {
            name: "eddsa",
            auth: uncached(
                builder().public_key_pem(pem(ed.public_key().as_der().unwrap().as_ref())),
            ),
            token: eddsa,
        },
    ]
}

/// The upstream: reads the identity (as a rate limiter by user would) and answers.
#[derive(Clone)]
struct Upstream;

impl Service<Req> for Upstream {
    type Response = Response<Empty<Bytes>>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        black_box(request.extensions().get::<Identity>());
        std::future::ready(Ok(Response::new(Empty::new())))
    }
}

/// Drives one request through `service`; every future here is ready on first poll.
fn serve<S, B>(service: &mut S, token: &HeaderValue) -> u16
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let mut request = Request::new(Empty::new());
    request.headers_mut().insert(AUTHORIZATION, token.clone());
    match pin!(service.call(request)).poll(&mut cx) {
        Poll::Ready(response) => response.unwrap().status().as_u16(),
        Poll::Pending => unreachable!("all futures in this bench complete at once"),
    }
}

/// The primitives the layer is built on (aws-lc-rs, keys parsed once; serde_json), to read
/// the layer's rows against.
fn primitives(c: &mut Criterion, cases: &[Case]) {
    let mut group = c.benchmark_group("primitive");
    let token = cases[0]
        .token
        .to_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned();
    // What keying the cache by SHA-256 would cost per hit (the cache compares full tokens
    // instead; see crates/auth/src/cache.rs).
    group.bench_function("sha256_of_token", |b| {
        b.iter(|| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(token.as_bytes()))
        })
    });
    let message = token.rsplit_once('.').unwrap().0.as_bytes().to_vec();
    let rng = SystemRandom::new();
    let hmac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let tag = aws_lc_rs::hmac::sign(&hmac, &message);
    group.bench_function("hs256_verify", |b| {
        b.iter(|| aws_lc_rs::hmac::verify(&hmac, black_box(&message), tag.as_ref()).unwrap())
    });
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let mut rsa_sig = vec![0; rsa.public_modulus_len()];
    rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, &message, &mut rsa_sig)
        .unwrap();
    let rsa_pub = signature::ParsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        rsa.public_key().as_ref(),
    )
    .unwrap();
    group.bench_function("rs256_verify", |b| {
        b.iter(|| rsa_pub.verify_sig(black_box(&message), &rsa_sig).unwrap())
    });
    let ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let ec_sig = ec.sign(&rng, &message).unwrap();
    let ec_pub = signature::ParsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        ec.public_key().as_ref(),
    )
    .unwrap();
    group.bench_function("es256_verify", |b| {
        b.iter(|| {
            ec_pub
                .verify_sig(black_box(&message), ec_sig.as_ref())
                .unwrap()
        })
    });
    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    group.bench_function("claims_json_to_map", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(black_box(
                &payload,
            ))
            .unwrap()
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let cases = cases();
    primitives(c, &cases);
    let mut group = c.benchmark_group("auth");
    let mut bare = Upstream;
    group.bench_function("bare", |b| {
        b.iter(|| serve(&mut bare, black_box(&cases[0].token)))
    });
    for case in &cases {
        let mut service = JwtAuthLayer::new(case.auth.clone()).layer(Upstream);
        assert_eq!(
            serve(&mut service, &case.token),
            200,
            "{} token must be accepted",
            case.name
        );
        group.bench_function(case.name, |b| {
            b.iter(|| serve(&mut service, black_box(&case.token)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
