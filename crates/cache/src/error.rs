//! Why a cache config is invalid.

/// Why a [`CacheConfig`](crate::CacheConfig) or a
/// [`RouteCacheConfig`](crate::config::RouteCacheConfig) cannot be built; the message names
/// the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// `max_size` is zero: the store could hold nothing.
    #[error("max_size: a cache needs room for at least one response (got 0)")]
    EmptyStore,
    /// `max_object` is zero or larger than `max_size`.
    #[error("max_object: must be between 1 byte and max_size ({max_size} bytes), got {max_object}")]
    ObjectSize {
        /// `max_object` in bytes.
        max_object: u64,
        /// `max_size` in bytes.
        max_size: u64,
    },
    /// `max_object` exceeds what one entry can weigh (4 GiB).
    #[error("max_object: at most 4GiB per response, got {0} bytes")]
    ObjectTooLarge(u64),
    /// An entry of `key_headers` is not a header name.
    #[error("key_headers[{index}]: `{name}` is not a valid header name")]
    KeyHeader {
        /// The entry's position in the list.
        index: usize,
        /// The entry as written.
        name: String,
    },
    /// A header is listed twice in `key_headers`.
    #[error("key_headers[{index}]: `{name}` is already listed")]
    DuplicateKeyHeader {
        /// The position of the repeated entry.
        index: usize,
        /// The entry as written.
        name: String,
    },
    /// A credential header is listed in `key_headers`: keying on a raw credential would store
    /// one response per token, and `authorized = "per_user"` is the way to key by user.
    #[error(
        "key_headers[{index}]: `{name}` carries credentials; use authorized = \"per_user\" to key by the verified user"
    )]
    CredentialKeyHeader {
        /// The entry's position in the list.
        index: usize,
        /// The entry as written.
        name: String,
    },
}
