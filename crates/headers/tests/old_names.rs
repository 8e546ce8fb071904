//! The names from before the layer/service naming rule still compile, as deprecated aliases.

#![allow(deprecated)]

use std::convert::Infallible;

use gateway_headers::{RequestIdLayer, RequestIdService};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test]
async fn the_old_request_id_names_still_work() {
    let upstream = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let service: RequestIdService<_> = RequestIdLayer::new().layer(upstream);
    let response = service.oneshot(Request::new(())).await.unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 32);
}
