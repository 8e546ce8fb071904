//! The rate-limit response headers and the 429 / 503 responses.

use std::time::Duration;

use bytes::Bytes;
use gateway_core::Problem;
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::decision::Quota;
use crate::header_mode::HeaderMode;
use crate::policy::Policy;

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A route's header values that do not change between requests, and its 429 detail.
#[derive(Clone, Debug)]
pub(crate) struct RouteHeaders {
    mode: HeaderMode,
    limit: HeaderValue,
    policy: HeaderValue,
    detail: String,
}

impl RouteHeaders {
    pub(crate) fn new(policy: &Policy, mode: HeaderMode) -> Self {
        let window = policy.window();
        let detail = if policy.is_token_bucket() {
            format!(
                "too many requests: bursts of {} requests are allowed, refilled at {:.3} per second",
                policy.limit(),
                f64::from(policy.limit()) / window.as_secs_f64()
            )
        } else {
            format!(
                "too many requests: the limit is {} requests per {}",
                policy.limit(),
                humanize(window)
            )
        };
        Self {
            mode,
            limit: HeaderValue::from(policy.limit()),
            policy: text_value(format!(
                "\"default\";q={};w={}",
                policy.limit(),
                ceil_secs(window)
            )),
            detail,
        }
    }

    pub(crate) fn mode(&self) -> HeaderMode {
        self.mode
    }

    /// Adds the quota headers to a response.
    ///
    /// Every request's response gets them, so the per-request values are written into one
    /// buffer (one allocation, no formatting machinery) that the header values share.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, quota: &Quota) {
        let (legacy, standard) = (self.mode.legacy(), self.mode.standard());
        if !legacy && !standard {
            return;
        }
        let reset = ceil_secs(quota.reset);
        let mut remaining_text = itoa::Buffer::new();
        let remaining_text = remaining_text.format(quota.remaining).as_bytes();
        let mut reset_text = itoa::Buffer::new();
        let reset_text = reset_text.format(reset).as_bytes();
        // `"default";r=R;t=T`, with R and T also sliced out for the legacy headers.
        let mut text = Vec::with_capacity(16 + remaining_text.len() + reset_text.len());
        text.extend_from_slice(b"\"default\";r=");
        let remaining_at = text.len()..text.len() + remaining_text.len();
        text.extend_from_slice(remaining_text);
        text.extend_from_slice(b";t=");
        let reset_at = text.len()..text.len() + reset_text.len();
        text.extend_from_slice(reset_text);
        let text = Bytes::from(text);
        headers.reserve(usize::from(legacy) * 3 + usize::from(standard) * 2);
        if legacy {
            headers.insert(X_RATELIMIT_LIMIT, self.limit.clone());
            headers.insert(X_RATELIMIT_REMAINING, text_value(text.slice(remaining_at)));
            headers.insert(X_RATELIMIT_RESET, text_value(text.slice(reset_at)));
        }
        if standard {
            headers.insert(RATELIMIT_POLICY, self.policy.clone());
            headers.insert(RATELIMIT, text_value(text));
        }
    }

    /// The 429 response for a refused request.
    pub(crate) fn too_many_requests(&self, quota: &Quota) -> Response<Full<Bytes>> {
        let mut response = Problem::new(StatusCode::TOO_MANY_REQUESTS)
            .with_detail(self.detail.clone())
            .into_response();
        let retry_after = ceil_secs(quota.retry_after.unwrap_or(quota.reset)).max(1);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after));
        self.apply(response.headers_mut(), quota);
        response
    }
}

/// The 503 response of `on_error = "deny"` when Redis cannot answer.
pub(crate) fn unavailable() -> Response<Full<Bytes>> {
    let mut response = Problem::new(StatusCode::SERVICE_UNAVAILABLE)
        .with_detail("rate limiting is temporarily unavailable; retry shortly")
        .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn humanize(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// A header value from text made of digits, letters, quotes and punctuation, which is always
/// valid.
fn text_value(text: impl Into<Bytes>) -> HeaderValue {
    HeaderValue::from_maybe_shared(text.into()).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota() -> Quota {
        Quota {
            limit: 100,
            remaining: 42,
            reset: Duration::from_millis(29_001),
            retry_after: None,
        }
    }

    #[test]
    fn all_headers_with_reset_rounded_up() {
        let policy = Policy::fixed_window(100, Duration::from_secs(60)).unwrap();
        let mut headers = HeaderMap::new();
        RouteHeaders::new(&policy, HeaderMode::All).apply(&mut headers, &quota());
        assert_eq!(headers["x-ratelimit-limit"], "100");
        assert_eq!(headers["x-ratelimit-remaining"], "42");
        assert_eq!(headers["x-ratelimit-reset"], "30");
        assert_eq!(headers["ratelimit-policy"], "\"default\";q=100;w=60");
        assert_eq!(headers["ratelimit"], "\"default\";r=42;t=30");
    }

    #[test]
    fn modes_select_the_sets() {
        let policy = Policy::token_bucket(10, 2.5).unwrap();
        let mut headers = HeaderMap::new();
        RouteHeaders::new(&policy, HeaderMode::Standard).apply(&mut headers, &quota());
        assert!(headers.get("x-ratelimit-limit").is_none());
        assert_eq!(headers["ratelimit-policy"], "\"default\";q=10;w=4");
        let mut headers = HeaderMap::new();
        RouteHeaders::new(&policy, HeaderMode::None).apply(&mut headers, &quota());
        assert!(headers.is_empty());
    }

    #[test]
    fn too_many_requests_is_a_problem_with_retry_after() {
        let policy = Policy::fixed_window(5, Duration::from_millis(1500)).unwrap();
        let quota = Quota {
            limit: 5,
            remaining: 0,
            reset: Duration::from_millis(200),
            retry_after: Some(Duration::from_millis(200)),
        };
        let response = RouteHeaders::new(&policy, HeaderMode::Legacy).too_many_requests(&quota);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
        assert!(response.headers().get("ratelimit").is_none());
    }
}
