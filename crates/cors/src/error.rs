//! Why a CORS config is invalid.

/// Why a CORS config is invalid; the message starts with the field (and the index in its list),
/// as in `allow_origins[1]: ...`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorsError {
    /// `allow_origins` is empty.
    #[error("allow_origins: list at least one origin, or [\"*\"] to allow any")]
    NoOrigins,
    /// An entry of `allow_origins` is not an origin or a valid wildcard pattern.
    #[error("allow_origins[{index}]: `{origin}`: {reason}")]
    Origin {
        /// The index of the entry.
        index: usize,
        /// The entry as written.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `"*"` is listed together with `allow_credentials = true`.
    #[error(
        "allow_origins[{index}]: \"*\" cannot be combined with allow_credentials = true \
         (browsers refuse credentials with `Access-Control-Allow-Origin: *`); list the origins"
    )]
    AnyOriginWithCredentials {
        /// The index of the `"*"` entry.
        index: usize,
    },
    /// `allow_methods` is empty.
    #[error("allow_methods: list at least one method, or leave it out for GET, HEAD, POST")]
    NoMethods,
    /// An entry of `allow_methods` is not a usable method name.
    #[error("allow_methods[{index}]: `{method}`: {reason}")]
    Method {
        /// The index of the entry.
        index: usize,
        /// The entry as written.
        method: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry of `allow_headers` or `expose_headers` is not a usable header name.
    #[error("{field}[{index}]: `{name}`: {reason}")]
    Header {
        /// `allow_headers` or `expose_headers`.
        field: &'static str,
        /// The index of the entry.
        index: usize,
        /// The entry as written.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
