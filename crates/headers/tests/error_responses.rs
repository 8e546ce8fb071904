//! Response rules apply to every response, including the ones a layer generates itself.

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::values;
use gateway_core::{Problem, ResponseBody, UpstreamFailure};
use gateway_headers::{HeaderRules, ResponseHeadersLayer, SetRequestIdLayer};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

fn policy() -> HeaderRules {
    HeaderRules::builder()
        .set("X-Gateway", "gateway")
        .set("X-Content-Type-Options", "nosniff")
        .set("X-Path", "{path}")
        .remove("Server")
        .build()
        .unwrap()
}

/// A service that answers like the router (404), the rate limiter (429) or the proxy (502)
/// would: a problem+json response it generated itself.
async fn generated(
    request: Request<()>,
) -> Result<Response<ResponseBody<Empty<Bytes>>>, Infallible> {
    let status = match request.uri().path() {
        "/limited" => StatusCode::TOO_MANY_REQUESTS,
        "/down" => StatusCode::BAD_GATEWAY,
        _ => StatusCode::NOT_FOUND,
    };
    let mut response = ResponseBody::problem(Problem::new(status).with_detail("generated"));
    if status == StatusCode::BAD_GATEWAY {
        response
            .extensions_mut()
            .insert(UpstreamFailure::Unreachable);
    }
    response
        .headers_mut()
        .insert("server", "inner".parse().unwrap());
    Ok(response)
}

#[tokio::test]
async fn generated_error_responses_get_the_response_rules() {
    let service = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new())
        .layer(ResponseHeadersLayer::new(policy()))
        .service(service_fn(generated));
    for (path, status) in [
        ("/nowhere", StatusCode::NOT_FOUND),
        ("/limited", StatusCode::TOO_MANY_REQUESTS),
        ("/down", StatusCode::BAD_GATEWAY),
    ] {
        let request = Request::get(path).body(()).unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status);
        let h = response.headers();
        assert_eq!(values(h, "x-gateway"), ["gateway"], "{path}");
        assert_eq!(values(h, "x-content-type-options"), ["nosniff"]);
        assert_eq!(values(h, "x-path"), [path]);
        assert!(h.get("server").is_none());
        assert_eq!(h["x-request-id"].len(), 32);
        // The markers other layers set and the body pass through untouched.
        assert_eq!(
            response.extensions().get::<UpstreamFailure>().is_some(),
            status == StatusCode::BAD_GATEWAY
        );
        assert_eq!(h["content-type"], "application/problem+json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["status"], status.as_u16());
        assert_eq!(json["detail"], "generated");
    }
}

#[tokio::test]
async fn an_inner_error_passes_through_untouched() {
    let failing = service_fn(|_: Request<()>| async { Err::<Response<()>, _>("broken") });
    let err = ResponseHeadersLayer::new(policy())
        .layer(failing)
        .oneshot(Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(err, "broken");
}

#[tokio::test]
async fn a_pending_inner_future_is_edited_when_it_completes() {
    let slow = service_fn(|_: Request<()>| async {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(Response::new(()))
    });
    let response = ResponseHeadersLayer::new(policy())
        .layer(slow)
        .oneshot(Request::new(()))
        .await
        .unwrap();
    assert_eq!(values(response.headers(), "x-gateway"), ["gateway"]);
}
