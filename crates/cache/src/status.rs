//! The `Cache-Status` field (RFC 9211) values the cache writes, and the result classes it
//! counts.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue};

/// `Cache-Status`.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Answered from a fresh entry.
pub(crate) const HIT: HeaderValue = HeaderValue::from_static("gateway; hit");
/// Answered from a stale entry while a background request refreshes it.
pub(crate) const HIT_STALE: HeaderValue =
    HeaderValue::from_static("gateway; hit; detail=stale-while-revalidate");
/// Forwarded (no usable entry), and the response stored.
pub(crate) const MISS_STORED: HeaderValue = HeaderValue::from_static("gateway; fwd=miss; stored");
/// Forwarded (no usable entry); the response could not be stored.
pub(crate) const MISS: HeaderValue = HeaderValue::from_static("gateway; fwd=miss");
/// Waited for another request's fetch and answered from what it stored.
pub(crate) const COLLAPSED: HeaderValue = HeaderValue::from_static("gateway; fwd=miss; collapsed");
/// A stale entry was revalidated and the upstream answered 304.
pub(crate) const REVALIDATED: HeaderValue =
    HeaderValue::from_static("gateway; fwd=stale; fwd-status=304");
/// A stale entry was revalidated and the upstream sent a new response, stored.
pub(crate) const STALE_REPLACED: HeaderValue =
    HeaderValue::from_static("gateway; fwd=stale; stored");
/// A stale entry was revalidated and the upstream sent a response that was not stored.
pub(crate) const STALE_FORWARDED: HeaderValue = HeaderValue::from_static("gateway; fwd=stale");
/// A stale entry served because the upstream failed.
pub(crate) const STALE_IF_ERROR: HeaderValue =
    HeaderValue::from_static("gateway; fwd=stale; detail=stale-if-error");
/// The request was not for the cache (credentials, `no-store`, a range).
pub(crate) const BYPASS: HeaderValue = HeaderValue::from_static("gateway; fwd=bypass");
/// The request's method is not cached (it may invalidate entries).
pub(crate) const METHOD: HeaderValue = HeaderValue::from_static("gateway; fwd=method");

/// How the cache handled a request, as counted by [`CacheCounters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheResult {
    /// Answered from a fresh entry (304s to conditional requests included).
    Hit,
    /// No usable entry: forwarded, or collapsed onto another request's fetch.
    Miss,
    /// Answered from a stale entry (`stale-while-revalidate`, `stale-if-error`).
    Stale,
    /// Not for the cache: an unsafe or uncached method, credentials on an
    /// `authorized = "never"` route, `no-store`, a range request.
    Bypass,
    /// A stale entry revalidated with a 304.
    Revalidated,
}

impl CacheResult {
    /// Every result, in the order of [`as_str`](Self::as_str)'s labels.
    pub const ALL: [CacheResult; 5] = [
        Self::Hit,
        Self::Miss,
        Self::Stale,
        Self::Bypass,
        Self::Revalidated,
    ];

    /// The result's label: `hit`, `miss`, `stale`, `bypass`, `revalidated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Bypass => "bypass",
            Self::Revalidated => "revalidated",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Requests by [`CacheResult`]: plain atomics, shared by the services of a layer and
/// readable at any time (the gateway keeps one per route across reloads).
#[derive(Debug, Default)]
pub struct CacheCounters {
    counts: [AtomicU64; 5],
}

impl CacheCounters {
    /// How many requests had `result`.
    pub fn get(&self, result: CacheResult) -> u64 {
        self.counts[result.slot()].load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, result: CacheResult) {
        self.counts[result.slot()].fetch_add(1, Ordering::Relaxed);
    }
}

/// The store's size and evictions, read by [`CacheStore::stats`](crate::CacheStore::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Stored entries (responses and the per-URI `Vary` records).
    pub entries: u64,
    /// What they weigh: bodies, headers, keys and bookkeeping, in bytes.
    pub bytes: u64,
    /// Entries evicted for room since the store was built.
    pub evictions: u64,
}
