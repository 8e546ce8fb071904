//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use gateway_core::{Identity, PeerAddr};
use http::{HeaderMap, Request, Response};
use serde_json::Value;
use tower::service_fn;
use tower::util::ServiceFn;

/// An identity with the given JSON claims.
pub fn identity(claims: Value) -> Identity {
    let Value::Object(map) = claims else {
        panic!("claims must be an object")
    };
    Identity::new(Arc::new(map))
}

/// A request from `peer`.
pub fn request_from(peer: &str) -> http::request::Builder {
    let peer: SocketAddr = peer.parse().unwrap();
    Request::get("/").extension(PeerAddr(peer))
}

/// Every value of a header, as text.
pub fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// The request headers an inner service saw.
pub type Seen = Arc<Mutex<Option<Request<()>>>>;

type Recorder =
    Box<dyn Fn(Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> + Send + Sync>;

/// An inner service that records the request it receives (headers and extensions) and answers
/// with a response carrying `response_headers`.
pub fn recording(response_headers: &[(&'static str, &'static str)]) -> (ServiceFn<Recorder>, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let response_headers = response_headers.to_vec();
    let f: Recorder = Box::new(move |request: Request<()>| {
        *record.lock().unwrap() = Some(request);
        let mut response = Response::new(());
        for (name, value) in &response_headers {
            response.headers_mut().append(*name, value.parse().unwrap());
        }
        std::future::ready(Ok(response))
    });
    (service_fn(f), seen)
}

/// The request recorded by [`recording`].
pub fn seen(seen: &Seen) -> Request<()> {
    seen.lock()
        .unwrap()
        .take()
        .expect("the inner service was called")
}
