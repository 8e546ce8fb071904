//! A copy of a bodiless request's head, to send it again when its connection breaks after
//! it was sent.
//!
//! Taken for every idempotent bodiless request (most of them), so it is kept cheap: the
//! header fields are copied into a list (a reference-count increment each) whose storage
//! is reused from a per-thread spare list, instead of cloning the header map with its index
//! and entries, two allocations and two frees per request.

use std::cell::RefCell;

use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use crate::request_body::UpstreamBody;

type Fields = Vec<(HeaderName, HeaderValue)>;

/// Spare lists kept per thread; beyond this, lists are freed.
const SPARES: usize = 256;
/// Lists that grew larger than this are freed rather than kept.
const MAX_KEPT_FIELDS: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Fields>> = const { RefCell::new(Vec::new()) };
}

/// The head of a bodiless request.
pub(crate) struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    fields: Fields,
}

impl Replay {
    pub(crate) fn of(parts: &Parts) -> Self {
        let mut fields = SPARE
            .try_with(|spare| spare.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        fields.reserve(parts.headers.len());
        fields.extend(
            parts
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            fields,
        }
    }

    /// The request again, with an empty body.
    pub(crate) fn into_request(mut self) -> Request<UpstreamBody> {
        let mut headers = HeaderMap::with_capacity(self.fields.len());
        for (name, value) in self.fields.drain(..) {
            headers.append(name, value);
        }
        let mut request = Request::new(UpstreamBody::Empty);
        *request.method_mut() = std::mem::take(&mut self.method);
        *request.uri_mut() = std::mem::take(&mut self.uri);
        *request.version_mut() = self.version;
        *request.headers_mut() = headers;
        request
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let mut fields = std::mem::take(&mut self.fields);
        if fields.capacity() == 0 || fields.capacity() > MAX_KEPT_FIELDS {
            return;
        }
        fields.clear();
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut()
                && spare.len() < SPARES
            {
                spare.push(fields);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_method_uri_and_every_field_in_order() {
        let request = Request::put("/a?b=c")
            .header("x-one", "1")
            .header("x-multi", "a")
            .header("x-multi", "b")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        for _ in 0..3 {
            // The second and third copies reuse the first one's storage.
            let again = Replay::of(&parts).into_request();
            assert_eq!(again.method(), Method::PUT);
            assert_eq!(again.uri(), "/a?b=c");
            assert_eq!(again.headers(), &parts.headers);
            let multi: Vec<_> = again.headers().get_all("x-multi").iter().collect();
            assert_eq!(multi, ["a", "b"]);
        }
        assert!(SPARE.with(|spare| !spare.borrow().is_empty()));
    }
}
