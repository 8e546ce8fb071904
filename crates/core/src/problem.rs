//! RFC 9457 problem details: the body of every response a gateway layer generates itself.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// The media type of a problem details document.
pub const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");

/// An RFC 9457 problem details document (`type`, `title`, `status`, `detail`).
///
/// `detail` is shown to clients, so it must say what went wrong in terms of the request
/// and never leak internals (addresses, stack traces, upstream error texts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    status: StatusCode,
    type_uri: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: Cow<'static, str>,
}

impl Problem {
    /// A problem with the given status, `type` `about:blank` and the status's reason as title.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            type_uri: Cow::Borrowed("about:blank"),
            title: Cow::Borrowed(status.canonical_reason().unwrap_or("Error")),
            detail: Cow::Borrowed(""),
        }
    }

    /// Sets the human-readable explanation specific to this occurrence.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Sets the short summary of the problem type.
    #[must_use]
    pub fn with_title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        self.title = title.into();
        self
    }

    /// Sets the URI reference identifying the problem type.
    #[must_use]
    pub fn with_type(mut self, type_uri: impl Into<Cow<'static, str>>) -> Self {
        self.type_uri = type_uri.into();
        self
    }

    /// The HTTP status of the problem.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The detail text.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Serializes the document as JSON.
    pub fn to_json(&self) -> Bytes {
        let mut doc = serde_json::Map::with_capacity(4);
        doc.insert("type".into(), self.type_uri.as_ref().into());
        doc.insert("title".into(), self.title.as_ref().into());
        doc.insert("status".into(), self.status.as_u16().into());
        if !self.detail.is_empty() {
            doc.insert("detail".into(), self.detail.as_ref().into());
        }
        // A map of strings and a number always serializes.
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    }

    /// Builds the response: status, `Content-Type: application/problem+json`, JSON body.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.to_json()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(CONTENT_TYPE, PROBLEM_JSON);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_the_rfc_9457_members() {
        let problem =
            Problem::new(StatusCode::BAD_GATEWAY).with_detail("upstream \"users\" is unreachable");
        let json: serde_json::Value = serde_json::from_slice(&problem.to_json()).unwrap();
        assert_eq!(json["type"], "about:blank");
        assert_eq!(json["title"], "Bad Gateway");
        assert_eq!(json["status"], 502);
        assert_eq!(json["detail"], "upstream \"users\" is unreachable");
    }

    #[test]
    fn empty_detail_is_omitted() {
        let json: serde_json::Value =
            serde_json::from_slice(&Problem::new(StatusCode::NOT_FOUND).to_json()).unwrap();
        assert!(json.get("detail").is_none());
        assert_eq!(json["status"], 404);
    }
}
