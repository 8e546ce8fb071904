//! Why a compression config is invalid.

/// Why a [`CompressionConfig`](crate::CompressionConfig) cannot be built; the message names
/// the field and the entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// An entry of `algorithms` is not one of `gzip`, `br`, `zstd`.
    #[error("algorithms[{index}]: unknown algorithm `{name}` (gzip, br, zstd)")]
    UnknownAlgorithm {
        /// The entry's position in the list.
        index: usize,
        /// The entry as written.
        name: String,
    },
    /// An algorithm is listed more than once.
    #[error("algorithms[{index}]: `{name}` is already listed")]
    DuplicateAlgorithm {
        /// The position of the repeated entry.
        index: usize,
        /// The entry as written.
        name: String,
    },
    /// An entry of `content_types` is not a media type pattern.
    #[error(
        "content_types[{index}]: invalid content type pattern `{pattern}`: {reason} \
         (write `type/subtype`, `type/*` or `*/*`)"
    )]
    ContentType {
        /// The entry's position in the list.
        index: usize,
        /// The entry as written.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
