//! Each operation, on requests and responses, and the order they apply in.

mod common;

use common::{recording, seen, values};
use gateway_headers::{HeaderRules, HeaderRulesError, RequestHeadersLayer, ResponseHeadersLayer};
use http::Request;
use tower::{Layer, ServiceExt};

fn rules(
    build: impl FnOnce(gateway_headers::HeaderRulesBuilder) -> gateway_headers::HeaderRulesBuilder,
) -> HeaderRules {
    build(HeaderRules::builder()).build().unwrap()
}

/// Applies `rules` to a request with `headers` and returns the headers the inner service saw.
async fn on_request(rules: HeaderRules, headers: &[(&str, &str)]) -> http::HeaderMap {
    let (inner, record) = recording(&[]);
    let mut request = Request::get("/");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    RequestHeadersLayer::new(rules)
        .layer(inner)
        .oneshot(request.body(()).unwrap())
        .await
        .unwrap();
    seen(&record).headers().clone()
}

/// Applies `rules` to a response that carries `headers`.
async fn on_response(
    rules: HeaderRules,
    headers: &[(&'static str, &'static str)],
) -> http::HeaderMap {
    let (inner, _) = recording(headers);
    let response = ResponseHeadersLayer::new(rules)
        .layer(inner)
        .oneshot(Request::new(()))
        .await
        .unwrap();
    response.headers().clone()
}

#[tokio::test]
async fn set_replaces_every_value() {
    let h = on_request(
        rules(|r| r.set("X-A", "new")),
        &[("x-a", "1"), ("x-a", "2")],
    )
    .await;
    assert_eq!(values(&h, "x-a"), ["new"]);
    let h = on_request(rules(|r| r.set("X-A", "new")), &[]).await;
    assert_eq!(values(&h, "x-a"), ["new"]);
}

#[tokio::test]
async fn add_appends_after_existing_values() {
    let h = on_request(
        rules(|r| r.add("Via", "1.1 gateway")),
        &[("via", "1.0 edge")],
    )
    .await;
    assert_eq!(values(&h, "via"), ["1.0 edge", "1.1 gateway"]);
    let h = on_request(rules(|r| r.add("Via", "1.1 gateway")), &[]).await;
    assert_eq!(values(&h, "via"), ["1.1 gateway"]);
}

#[tokio::test]
async fn remove_deletes_every_value_and_nothing_else() {
    let h = on_request(
        rules(|r| r.remove("Cookie")),
        &[("cookie", "a=1"), ("cookie", "b=2"), ("accept", "*/*")],
    )
    .await;
    assert!(h.get("cookie").is_none());
    assert_eq!(values(&h, "accept"), ["*/*"]);
}

#[tokio::test]
async fn rename_moves_all_values_and_replaces_the_target() {
    let r = rules(|r| r.rename("X-Api-Token", "Authorization"));
    let h = on_request(
        r.clone(),
        &[
            ("x-api-token", "t1"),
            ("x-api-token", "t2"),
            ("authorization", "spoofed"),
        ],
    )
    .await;
    assert!(h.get("x-api-token").is_none());
    assert_eq!(values(&h, "authorization"), ["t1", "t2"]);

    let h = on_request(r.clone(), &[("x-api-token", "only")]).await;
    assert_eq!(values(&h, "authorization"), ["only"]);

    // Without the old header, the new one is left as it is.
    let h = on_request(r, &[("authorization", "Bearer x")]).await;
    assert_eq!(values(&h, "authorization"), ["Bearer x"]);
}

#[tokio::test]
async fn set_if_absent_fills_only_a_missing_header() {
    let r = rules(|r| r.set_if_absent("Accept", "application/json"));
    assert_eq!(
        values(&on_request(r.clone(), &[]).await, "accept"),
        ["application/json"]
    );
    assert_eq!(
        values(&on_request(r, &[("accept", "text/html")]).await, "accept"),
        ["text/html"]
    );
}

#[tokio::test]
async fn header_names_are_case_insensitive() {
    let h = on_request(
        rules(|r| r.remove("COOKIE").set("x-MiXeD", "v")),
        &[("Cookie", "a")],
    )
    .await;
    assert!(h.get("cookie").is_none());
    assert_eq!(values(&h, "X-Mixed"), ["v"]);
}

#[tokio::test]
async fn operations_apply_in_the_documented_order() {
    let r = rules(|r| {
        r.add("X-J", "two")
            .add("X-K", "extra")
            .set_if_absent("X-K", "default")
            .set_if_absent("X-H", "default")
            .set_if_absent("X-I", "default")
            .set("X-J", "one")
            .set("X-D", "set")
            .set("X-Cookie", "{header.cookie}")
            .rename("X-G", "X-H")
            .rename("X-C", "X-D")
            .rename("X-B", "X-A")
            .remove("X-A")
            .remove("X-I")
            .remove("Cookie")
    });
    let h = on_request(
        r,
        &[
            ("x-a", "a"),
            ("x-b", "b"),
            ("x-c", "c"),
            ("x-g", "g"),
            ("x-i", "i"),
            ("cookie", "session=1"),
        ],
    )
    .await;
    // remove before rename: X-A holds what X-B held.
    assert_eq!(values(&h, "x-a"), ["b"]);
    // rename before set: set has the last word on X-D.
    assert_eq!(values(&h, "x-d"), ["set"]);
    // set_if_absent sees the result of rename (X-H came from X-G) and of remove (X-I).
    assert_eq!(values(&h, "x-h"), ["g"]);
    assert_eq!(values(&h, "x-i"), ["default"]);
    // add comes last: after set, and after set_if_absent's default.
    assert_eq!(values(&h, "x-j"), ["one", "two"]);
    assert_eq!(values(&h, "x-k"), ["default", "extra"]);
    // Templates read the request before any edit.
    assert!(h.get("cookie").is_none());
    assert_eq!(values(&h, "x-cookie"), ["session=1"]);
}

#[tokio::test]
async fn every_operation_applies_to_responses() {
    let r = rules(|r| {
        r.remove("Server")
            .rename("X-Upstream-Trace", "X-Trace")
            .set("X-Gateway", "gateway")
            .set_if_absent("Cache-Control", "no-store")
            .add("Vary", "Accept")
    });
    let h = on_response(
        r.clone(),
        &[
            ("server", "nginx"),
            ("x-upstream-trace", "t"),
            ("vary", "Origin"),
        ],
    )
    .await;
    assert!(h.get("server").is_none());
    assert!(h.get("x-upstream-trace").is_none());
    assert_eq!(values(&h, "x-trace"), ["t"]);
    assert_eq!(values(&h, "x-gateway"), ["gateway"]);
    assert_eq!(values(&h, "cache-control"), ["no-store"]);
    assert_eq!(values(&h, "vary"), ["Origin", "Accept"]);

    let h = on_response(r, &[("cache-control", "max-age=60")]).await;
    assert_eq!(values(&h, "cache-control"), ["max-age=60"]);
    assert_eq!(values(&h, "vary"), ["Accept"]);
}

#[tokio::test]
async fn empty_rules_change_nothing() {
    let r = HeaderRules::default();
    assert!(r.is_empty());
    let h = on_request(r.clone(), &[("x-a", "1"), ("x-a", "2")]).await;
    assert_eq!(values(&h, "x-a"), ["1", "2"]);
    assert_eq!(h.len(), 2);
    let h = on_response(r, &[("server", "s")]).await;
    assert_eq!(values(&h, "server"), ["s"]);
}

/// Global rules wrap route rules: for requests the global ones run first (the route has the
/// last word), for responses the route's run first and the global ones last (the gateway-wide
/// policy has the last word, and also covers responses no route produced).
#[tokio::test]
async fn global_and_route_rules_compose_in_the_documented_order() {
    let global_request = rules(|r| r.set("X-Env", "global").set("X-Global", "yes"));
    let route_request = rules(|r| r.set("X-Env", "route"));
    let global_response = rules(|r| {
        r.set("X-Frame-Options", "DENY")
            .set_if_absent("Cache-Control", "no-store")
    });
    let route_response = rules(|r| {
        r.set("X-Frame-Options", "SAMEORIGIN")
            .set("Cache-Control", "max-age=5")
    });

    let (inner, record) = recording(&[]);
    let route = ResponseHeadersLayer::new(route_response)
        .layer(RequestHeadersLayer::new(route_request).layer(inner));
    let gateway = ResponseHeadersLayer::new(global_response)
        .layer(RequestHeadersLayer::new(global_request).layer(route));

    let response = gateway.oneshot(Request::new(())).await.unwrap();
    let upstream = seen(&record);
    assert_eq!(values(upstream.headers(), "x-env"), ["route"]);
    assert_eq!(values(upstream.headers(), "x-global"), ["yes"]);
    assert_eq!(values(response.headers(), "x-frame-options"), ["DENY"]);
    assert_eq!(values(response.headers(), "cache-control"), ["max-age=5"]);
}

#[test]
fn ambiguous_or_dangerous_rule_sets_are_rejected() {
    let cases: Vec<(HeaderRulesError, gateway_headers::HeaderRulesBuilder)> = vec![
        (
            HeaderRulesError::Conflict {
                name: "x-a".into(),
                first: "set",
                second: "set_if_absent",
            },
            HeaderRules::builder()
                .set("X-A", "1")
                .set_if_absent("x-a", "2"),
        ),
        (
            HeaderRulesError::Conflict {
                name: "x-a".into(),
                first: "remove",
                second: "rename",
            },
            HeaderRules::builder().remove("X-A").rename("X-A", "X-B"),
        ),
        (
            HeaderRulesError::RenameChain { name: "x-b".into() },
            HeaderRules::builder()
                .rename("X-A", "X-B")
                .rename("X-B", "X-C"),
        ),
        (
            HeaderRulesError::RenameChain { name: "x-a".into() },
            HeaderRules::builder().rename("X-A", "x-a"),
        ),
        (
            HeaderRulesError::Duplicate {
                field: "add",
                name: "x-a".into(),
            },
            HeaderRules::builder().add("X-A", "1").add("x-a", "2"),
        ),
        (
            HeaderRulesError::Protected {
                field: "set",
                name: "content-length".into(),
            },
            HeaderRules::builder().set("Content-Length", "0"),
        ),
        (
            HeaderRulesError::Protected {
                field: "rename",
                name: "transfer-encoding".into(),
            },
            HeaderRules::builder().rename("Transfer-Encoding", "X-TE"),
        ),
        (
            HeaderRulesError::Protected {
                field: "remove",
                name: "connection".into(),
            },
            HeaderRules::builder().remove("Connection"),
        ),
        (
            HeaderRulesError::InvalidName {
                field: "remove",
                name: "Bad Name".into(),
            },
            HeaderRules::builder().remove("Bad Name"),
        ),
    ];
    for (expected, builder) in cases {
        assert_eq!(builder.build().unwrap_err(), expected);
    }
}

#[test]
fn the_builder_reports_the_first_error_with_operation_and_header() {
    let err = HeaderRules::builder()
        .set("X-Ok", "fine")
        .add("X-Bad", "{nope}")
        .set("Also Bad", "x")
        .build()
        .unwrap_err();
    let HeaderRulesError::InvalidTemplate { field, header, .. } = &err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!((*field, header.as_str()), ("add", "X-Bad"));
    assert!(
        err.to_string()
            .starts_with("`add.X-Bad`: unknown placeholder `{nope}`"),
        "{err}"
    );
}
