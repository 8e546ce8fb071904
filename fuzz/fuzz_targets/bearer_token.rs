//! The JWT layer on any `Authorization` bytes: never admitted without the secret's
//! signature, always a 401 with a reason, never a panic.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use bytes::Bytes;
use gateway_auth::{AuthFailure, Authenticator, JwtAuthLayer};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt, service_fn};

fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        Authenticator::builder()
            .hmac_secret(b"fuzzing-secret-that-no-input-knows".as_slice())
            .build()
            .unwrap()
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

fuzz_target!(|values: Vec<Vec<u8>>| {
    let mut request = Request::get("/orders")
        .body(Full::<Bytes>::default())
        .unwrap();
    for value in &values {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            request.headers_mut().append("authorization", value);
        }
    }
    let service = JwtAuthLayer::new(authenticator().clone()).layer(service_fn(
        |_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        },
    ));
    let response = runtime().block_on(service.oneshot(request)).unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.extensions().get::<AuthFailure>().is_some());
    assert!(response.headers().contains_key("www-authenticate"));
});
