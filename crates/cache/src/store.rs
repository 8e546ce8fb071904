//! The gateway-wide response store: a concurrent cache bounded by weight (moka, TinyLFU
//! admission with LRU eviction), an index of its keys by path for invalidation and purges,
//! and the fetches in flight that concurrent misses wait for.
//!
//! moka's synchronous cache rather than its `future` one: a lookup never waits (its
//! bookkeeping runs under a try-lock, skipped when another thread holds it), so a hit is
//! answered inside `call` with a ready future, where the `future` cache's async `get` would
//! need a boxed future per request.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use http::{HeaderMap, HeaderName};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::entry::Entry;
use crate::key::{RequestKey, Target};
use crate::status::StoreStats;

/// A key of the store, as [`RequestKey`] writes it.
type Key = Box<[u8]>;

/// What one key of the store holds.
#[derive(Clone, Debug)]
pub(crate) enum Slot {
    /// A response.
    Response(Arc<Entry>),
    /// The header names the URI's responses vary on; its variants have keys of their own.
    Vary {
        names: Arc<[HeaderName]>,
        target: Arc<Target>,
    },
}

impl Slot {
    fn target(&self) -> &Arc<Target> {
        match self {
            Self::Response(entry) => &entry.target,
            Self::Vary { target, .. } => target,
        }
    }

    fn weight(&self, key_len: usize) -> u32 {
        match self {
            Self::Response(entry) => entry.weight(key_len),
            Self::Vary { names, .. } => {
                let names: usize = names.iter().map(|n| n.as_str().len() + 16).sum();
                u32::try_from(key_len + names + 128).unwrap_or(u32::MAX)
            }
        }
    }
}

/// The store's keys by path, so that an unsafe request or a purge finds every variant,
/// user and query of a path without scanning the store. Kept in step by the store's
/// eviction listener.
#[derive(Default)]
struct Index {
    by_path: DashMap<Box<str>, PathKeys>,
}

/// The keys stored for one path, with their targets.
type PathKeys = HashMap<Box<[u8]>, Arc<Target>>;

impl Index {
    fn add(&self, key: &[u8], target: &Arc<Target>) {
        self.by_path
            .entry(target.path.clone())
            .or_default()
            .insert(key.into(), target.clone());
    }

    /// Forgets `key` if it still stands for the slot of `target`: a removal reported late
    /// (after a purge, the key stored again by a later fetch) must not unindex the newer
    /// slot. Each fetch has its own `Target`, shared only by what that fetch stored.
    fn remove(&self, key: &[u8], target: &Arc<Target>) {
        let path = &*target.path;
        if let Some(mut keys) = self.by_path.get_mut(path)
            && keys.get(key).is_some_and(|t| Arc::ptr_eq(t, target))
        {
            keys.remove(key);
        }
        self.by_path.remove_if(path, |_, keys| keys.is_empty());
    }

    /// Takes out the keys of `path` whose target matches.
    fn take(&self, path: &str, matches: impl Fn(&Target) -> bool) -> Vec<Box<[u8]>> {
        let mut taken = Vec::new();
        if let Some(mut keys) = self.by_path.get_mut(path) {
            keys.retain(|key, target| {
                let hit = matches(target);
                if hit {
                    taken.push(key.clone());
                }
                !hit
            });
        }
        self.by_path.remove_if(path, |_, keys| keys.is_empty());
        taken
    }
}

/// Expires entries that can no longer be of use (stale past their windows, no validator),
/// so they stop taking room before the size bound would evict them.
struct SlotExpiry;

impl moka::Expiry<Box<[u8]>, Slot> for SlotExpiry {
    fn expire_after_create(
        &self,
        _key: &Box<[u8]>,
        value: &Slot,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        match value {
            Slot::Response(entry) if !entry.has_validator() => {
                Some(entry.freshness.useful_for(Instant::now()))
            }
            _ => None,
        }
    }

    fn expire_after_update(
        &self,
        key: &Box<[u8]>,
        value: &Slot,
        updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

/// The gateway-wide store of responses, shared by every route's
/// [`CacheLayer`](crate::CacheLayer). Cloning is cheap (the store is shared).
///
/// Bounded in bytes (`max_size`: bodies, headers, keys); when full, moka's TinyLFU policy
/// keeps the entries asked for most often and evicts the least recently used of the rest.
#[derive(Clone)]
pub struct CacheStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    cache: Cache<Box<[u8]>, Slot>,
    index: Arc<Index>,
    flights: DashMap<Box<[u8]>, Arc<Flight>>,
    evictions: Arc<AtomicU64>,
    max_size: u64,
    max_object: u64,
}

impl fmt::Debug for CacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheStore")
            .field("max_size", &self.inner.max_size)
            .field("max_object", &self.inner.max_object)
            .finish_non_exhaustive()
    }
}

impl CacheStore {
    /// A store of at most `max_size` bytes that keeps responses of at most `max_object`
    /// bytes (clamped to `max_size` and to 4 GiB).
    #[must_use]
    pub fn new(max_size: u64, max_object: u64) -> Self {
        let index = Arc::new(Index::default());
        let evictions = Arc::new(AtomicU64::new(0));
        let cache = Cache::builder()
            .max_capacity(max_size)
            .weigher(|key: &Key, slot: &Slot| slot.weight(key.len()))
            .expire_after(SlotExpiry)
            .eviction_listener({
                let index = index.clone();
                let evictions = evictions.clone();
                move |key: Arc<Box<[u8]>>, slot: Slot, cause| {
                    match cause {
                        // The key stays, with a new value.
                        RemovalCause::Replaced => return,
                        RemovalCause::Size => {
                            evictions.fetch_add(1, Ordering::Relaxed);
                        }
                        RemovalCause::Expired | RemovalCause::Explicit => {}
                    }
                    index.remove(&key, slot.target());
                }
            })
            .build();
        Self {
            inner: Arc::new(StoreInner {
                cache,
                index,
                flights: DashMap::new(),
                evictions,
                max_size,
                max_object: max_object.min(max_size).min(u64::from(u32::MAX)),
            }),
        }
    }

    /// The largest response stored, in bytes.
    pub fn max_object(&self) -> u64 {
        self.inner.max_object
    }

    /// The size bound, in bytes.
    pub fn max_size(&self) -> u64 {
        self.inner.max_size
    }

    /// Entries, bytes and evictions. Applies the store's pending bookkeeping first, so the
    /// numbers include every insert and eviction so far.
    pub fn stats(&self) -> StoreStats {
        let cache = &self.inner.cache;
        cache.run_pending_tasks();
        StoreStats {
            entries: cache.entry_count(),
            bytes: cache.weighted_size(),
            evictions: self.inner.evictions.load(Ordering::Relaxed),
        }
    }

    /// Removes every entry of `scope` (a route) whose request path was `path` (any host,
    /// query, user or variant). Returns how many were removed.
    ///
    /// The path is the one the layer saw: behind a gateway route with `strip_prefix`, the
    /// path without the route's prefix.
    pub fn purge(&self, scope: &str, path: &str) -> usize {
        let keys = self.inner.index.take(path, |t| &*t.scope == scope);
        self.invalidate_keys(&keys)
    }

    /// Removes every entry.
    pub fn purge_all(&self) {
        self.inner.cache.invalidate_all();
        self.inner.index.by_path.clear();
        self.inner.cache.run_pending_tasks();
    }

    /// Removes the entries of one target URI in every scope: what a successful unsafe
    /// request invalidates (RFC 9111 section 4.4).
    pub(crate) fn invalidate_uri(&self, host: &str, path: &str, query: &str) -> usize {
        let keys = self
            .inner
            .index
            .take(path, |t| &*t.host == host && &*t.query == query);
        self.invalidate_keys(&keys)
    }

    /// Removes one key's slot.
    pub(crate) fn remove(&self, key: &[u8]) {
        self.inner.cache.invalidate(key);
    }

    fn invalidate_keys(&self, keys: &[Box<[u8]>]) -> usize {
        // No index lock is held here: the eviction listener takes one.
        for key in keys {
            self.inner.cache.invalidate(&key[..]);
        }
        keys.len()
    }

    /// The stored response for a request: the URI's own, or the variant its headers select.
    pub(crate) fn lookup(&self, key: &mut RequestKey, headers: &HeaderMap) -> Option<Arc<Entry>> {
        let cache = &self.inner.cache;
        match cache.get(key.uri())? {
            Slot::Response(entry) => Some(entry),
            Slot::Vary { names, .. } => match cache.get(key.variant(&names, headers))? {
                Slot::Response(entry) => Some(entry),
                Slot::Vary { .. } => None,
            },
        }
    }

    /// Stores `entry` under the request's key (and a `Vary` record when it varies). Returns
    /// whether it was kept: an entry that can never be used is not.
    pub(crate) fn insert(
        &self,
        key: &mut RequestKey,
        headers: &HeaderMap,
        entry: Arc<Entry>,
    ) -> bool {
        if !entry.has_validator() && entry.freshness.useful_for(Instant::now()).is_zero() {
            return false;
        }
        if !entry.vary.is_empty() {
            let record = Slot::Vary {
                names: entry.vary.clone(),
                target: entry.target.clone(),
            };
            self.put(key.uri(), record);
            let variant = key.variant(&entry.vary, headers);
            self.put(variant, Slot::Response(entry));
        } else {
            self.put(key.uri(), Slot::Response(entry));
        }
        true
    }

    fn put(&self, key: &[u8], slot: Slot) {
        // Indexed first: an eviction right after the insert then finds the key to remove.
        self.inner.index.add(key, slot.target());
        self.inner.cache.insert(key.into(), slot);
    }

    /// Joins the fetch in flight for `key`, or starts one.
    pub(crate) fn join(&self, key: &[u8]) -> Role {
        use dashmap::mapref::entry::Entry as MapEntry;
        let leader = |store: &Self| {
            let flight = Arc::new(Flight::default());
            (
                flight.clone(),
                FlightGuard {
                    store: store.clone(),
                    key: key.into(),
                    flight,
                    done: false,
                },
            )
        };
        match self.inner.flights.entry(key.into()) {
            MapEntry::Occupied(mut occupied) => {
                if let Some(waiter) = occupied.get().wait() {
                    return Role::Waiter(waiter);
                }
                // Finished while still in the map: start a new one.
                let (flight, guard) = leader(self);
                occupied.insert(flight);
                Role::Leader(guard)
            }
            MapEntry::Vacant(vacant) => {
                let (flight, guard) = leader(self);
                vacant.insert(flight);
                Role::Leader(guard)
            }
        }
    }

    /// The number of fetches in flight (for tests and diagnostics).
    #[doc(hidden)]
    pub fn flights(&self) -> usize {
        self.inner.flights.len()
    }
}

/// What a fetch ended in, as its waiters are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response was stored: look it up.
    Stored,
    /// Nothing was stored: go upstream yourself.
    NotStored,
}

/// One fetch in flight and the requests waiting for it.
#[derive(Default)]
pub(crate) struct Flight {
    state: Mutex<FlightState>,
}

#[derive(Default)]
struct FlightState {
    finished: bool,
    waiters: Vec<oneshot::Sender<Outcome>>,
}

impl Flight {
    fn wait(&self) -> Option<oneshot::Receiver<Outcome>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.finished {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        state.waiters.push(tx);
        Some(rx)
    }
}

/// A request's part in a fetch.
pub(crate) enum Role {
    /// Fetch, and tell the waiters.
    Leader(FlightGuard),
    /// Wait for the leader's outcome.
    Waiter(oneshot::Receiver<Outcome>),
}

/// The leader's hold on its flight: tells the waiters the outcome once, `NotStored` if it
/// is dropped before (an error, a panic, a fetch given up).
pub(crate) struct FlightGuard {
    store: CacheStore,
    key: Box<[u8]>,
    flight: Arc<Flight>,
    done: bool,
}

impl FlightGuard {
    /// Whether a waiter still waits (waiters whose clients left do not count).
    pub(crate) fn has_waiters(&self) -> bool {
        let mut state = self.flight.state.lock().unwrap_or_else(|e| e.into_inner());
        state.waiters.retain(|tx| !tx.is_closed());
        !state.waiters.is_empty()
    }

    /// Tells the waiters and leaves the map.
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.notify(outcome);
    }

    fn notify(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let waiters = {
            let mut state = self.flight.state.lock().unwrap_or_else(|e| e.into_inner());
            state.finished = true;
            std::mem::take(&mut state.waiters)
        };
        // The flight's lock is released before the map's is taken (`join` takes them in
        // the other order).
        self.store
            .inner
            .flights
            .remove_if(&self.key[..], |_, flight| Arc::ptr_eq(flight, &self.flight));
        for waiter in waiters {
            let _ = waiter.send(outcome);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.notify(Outcome::NotStored);
    }
}
