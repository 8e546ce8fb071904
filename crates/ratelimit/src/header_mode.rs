//! Which rate-limit headers a route's responses carry.

/// Which rate-limit headers responses carry. `Retry-After` is always sent on a 429.
///
/// In a `[routes.rate_limit]` table: `headers = "all" | "standard" | "legacy" | "none"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HeaderMode {
    /// Both sets below (the default).
    #[default]
    All,
    /// `RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=42;t=30`, the
    /// structured fields of draft-ietf-httpapi-ratelimit-headers (-07 and later).
    Standard,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until the
    /// window ends or the bucket is full), as most gateways send them.
    Legacy,
    /// No rate-limit headers.
    None,
}

impl HeaderMode {
    /// Whether the draft standard's fields are sent.
    pub(crate) fn standard(self) -> bool {
        matches!(self, Self::All | Self::Standard)
    }

    /// Whether the `X-RateLimit-*` headers are sent.
    pub(crate) fn legacy(self) -> bool {
        matches!(self, Self::All | Self::Legacy)
    }
}
