//! Errors of building an [`Upstream`](crate::Upstream).

/// Why an upstream could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A target URL is not `http(s)://host:port[/base]`.
    #[error("invalid target URL `{url}`: {reason}")]
    InvalidTarget {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The upstream has no target.
    #[error("upstream `{0}` has no targets")]
    NoTargets(String),
    /// TLS to `https://` targets cannot be set up (no trust roots, unreadable CA file).
    #[error("upstream TLS: {0}")]
    Tls(String),
    /// An `Upgrade` protocol that cannot be allowed.
    #[error("upgrade protocol `{protocol}`: {reason}")]
    InvalidUpgrade {
        /// The protocol as given.
        protocol: String,
        /// Why it cannot be allowed.
        reason: &'static str,
    },
}
