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
    /// A health check's settings are unusable.
    #[error("health check of upstream `{upstream}`: {reason}")]
    InvalidHealthCheck {
        /// The upstream.
        upstream: String,
        /// What is wrong.
        reason: String,
    },
    /// Discovery or health checks need a Tokio runtime to run on, and `build` was called
    /// outside one.
    #[error(
        "upstream `{0}` resolves names or checks health in the background: build it inside a Tokio runtime"
    )]
    NoRuntime(String),
    /// SRV discovery without a resolver.
    #[error("upstream `{0}` takes targets from SRV records: give it a resolver")]
    NoResolver(String),
    /// The DNS resolver cannot be set up (an unreadable `/etc/resolv.conf`).
    #[error("DNS resolver: {0}")]
    Resolver(String),
}
