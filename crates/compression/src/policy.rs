//! The checked form of a [`CompressionConfig`], shared by every service of a layer.

use std::sync::Arc;

use http::{HeaderMap, Response};
use http_body::Body;

use crate::config::CompressionConfig;
use crate::error::CompressionError;
use crate::negotiate::{self, Algorithm};
use crate::predicate::{self, ContentTypePattern};

/// What to compress and how: the offered algorithms in order of preference, the minimum size
/// and the content types. Built by [`CompressionConfig::build`]; cloning shares it (an `Arc`).
#[derive(Clone, Debug)]
pub struct CompressionPolicy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    algorithms: Vec<Algorithm>,
    min_size: u64,
    content_types: Vec<ContentTypePattern>,
}

impl CompressionConfig {
    /// Checks the config and builds the policy the layer runs.
    ///
    /// # Errors
    ///
    /// [`CompressionError`] naming the first bad entry: an unknown or repeated algorithm, or a
    /// content type that is not a `type/subtype`, `type/*` or `*/*` pattern.
    pub fn build(&self) -> Result<CompressionPolicy, CompressionError> {
        let mut algorithms = Vec::with_capacity(self.algorithms.len());
        for (index, name) in self.algorithms.iter().enumerate() {
            let algorithm =
                Algorithm::from_config(name).ok_or_else(|| CompressionError::UnknownAlgorithm {
                    index,
                    name: name.clone(),
                })?;
            if algorithms.contains(&algorithm) {
                return Err(CompressionError::DuplicateAlgorithm {
                    index,
                    name: name.clone(),
                });
            }
            algorithms.push(algorithm);
        }
        let content_types = self
            .content_types
            .iter()
            .enumerate()
            .map(|(index, pattern)| {
                ContentTypePattern::parse(pattern).map_err(|reason| CompressionError::ContentType {
                    index,
                    pattern: pattern.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CompressionPolicy {
            inner: Arc::new(Inner {
                algorithms,
                min_size: self.min_size.bytes(),
                content_types,
            }),
        })
    }
}

impl Default for CompressionPolicy {
    /// The policy of an empty `[compression]` table.
    fn default() -> Self {
        CompressionConfig::default()
            .build()
            .expect("the default config is valid")
    }
}

impl CompressionPolicy {
    /// The algorithms offered, most preferred first.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.inner.algorithms
    }

    /// The smallest `Content-Length` compressed, in bytes.
    pub fn min_size(&self) -> u64 {
        self.inner.min_size
    }

    /// The algorithm a request with these headers gets, or `None` for identity; see the
    /// crate docs for the rules.
    pub fn negotiate(&self, request_headers: &HeaderMap) -> Option<Algorithm> {
        negotiate::negotiate(request_headers, &self.inner.algorithms)
    }

    /// Whether this response may be compressed (to a request that accepts it): its content
    /// type is listed and not `text/event-stream`, its length is unknown or at least
    /// [`min_size`](Self::min_size), it has no `Content-Encoding`, no `Content-Range`, no
    /// `Cache-Control: no-transform`, and its status is not 1xx, 204, 206 or 304.
    ///
    /// The length is `Content-Length`, or else the body's exact size hint.
    pub fn is_compressible<B: Body>(&self, response: &Response<B>) -> bool {
        !self.inner.algorithms.is_empty()
            && predicate::is_compressible(
                response.status(),
                response.headers(),
                response.body().size_hint().exact(),
                self.inner.min_size,
                &self.inner.content_types,
            )
    }
}
