//! The `[compression]` table of the gateway config (and `[routes.compression]`, which replaces it
//! for one route): plain serde data, checked and turned into a [`CompressionPolicy`] by
//! [`CompressionConfig::build`].
//!
//! ```toml
//! [compression]
//! algorithms = ["br", "zstd", "gzip"]   # server preference when the client's q-values tie
//! min_size = "1KiB"                     # smaller responses (by Content-Length) are sent as is
//! content_types = ["text/*", "application/json", "application/javascript", "image/svg+xml"]
//! ```
//!
//! [`CompressionPolicy`]: crate::CompressionPolicy

use gateway_core::config::ByteSize;
use serde::Deserialize;

/// `[compression]` / `[routes.compression]`: which algorithms to offer, from what size on, and
/// for which content types. Every field has a default, so an empty table turns compression on
/// with the defaults.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// The algorithms offered, most preferred first: `gzip`, `br` and `zstd`. The order breaks
    /// ties between codings the client accepts with the same q-value. An empty list never
    /// compresses. Default: `["br", "zstd", "gzip"]`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Responses whose `Content-Length` is below this are sent uncompressed; a response of
    /// unknown length counts as large. Default: `1KiB`.
    #[serde(default = "default_min_size")]
    pub min_size: ByteSize,
    /// The media types compressed: `type/subtype`, `type/*`, or `*/*`, matched
    /// case-insensitively against the response's `Content-Type` without its parameters.
    /// Default: `["text/*", "application/json", "application/javascript", "image/svg+xml"]`.
    #[serde(default = "default_content_types")]
    pub content_types: Vec<String>,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            algorithms: default_algorithms(),
            min_size: default_min_size(),
            content_types: default_content_types(),
        }
    }
}

fn default_algorithms() -> Vec<String> {
    ["br", "zstd", "gzip"].map(String::from).to_vec()
}

fn default_min_size() -> ByteSize {
    ByteSize(1024)
}

fn default_content_types() -> Vec<String> {
    [
        "text/*",
        "application/json",
        "application/javascript",
        "image/svg+xml",
    ]
    .map(String::from)
    .to_vec()
}
