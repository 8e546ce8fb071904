//! A fetch: one upstream request for a key, run in a task of its own, that answers its
//! leader (the request that started it), stores what may be stored while it streams to the
//! leader, and tells the requests waiting for it.
//!
//! The fetch is a task rather than part of the leader's future so that the leader's client
//! going away (its future or body dropped) does not cancel it while others wait for it: a
//! fetch stops early only when neither the leader nor any waiter is left to serve.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gateway_core::BoxError;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Body;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::body::{CacheBody, CachedBody};
use crate::entry::{self, Entry};
use crate::freshness::{Exchange, Freshness};
use crate::key::{RequestKey, Target};
use crate::service::{Shared, answer};
use crate::status::{self, CACHE_STATUS, CacheResult};
use crate::store::{FlightGuard, Outcome};

/// Where a fetch sends its leader's response.
pub(crate) type Reply<B, E> = oneshot::Sender<Result<Response<CacheBody<B>>, E>>;

/// Frames buffered between the fetch and its leader's connection: enough to keep the
/// upstream read going across a slow write, little enough to bound the memory per fetch.
const FRAMES: usize = 8;

/// One fetch, with everything it needs once its request is sent.
pub(crate) struct Fetch<B, E> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) key: RequestKey,
    /// The leader's request headers as the client sent them: the values `Vary` selects by,
    /// and the client's own validators.
    pub(crate) client_headers: HeaderMap,
    pub(crate) target: Arc<Target>,
    pub(crate) request_time: Instant,
    /// The stale entry this fetch replaces (the request carries its validators, if any).
    pub(crate) stale: Option<Arc<Entry>>,
    pub(crate) guard: Option<FlightGuard>,
    /// The leader's reply; `None` for a background refresh (its client was answered stale).
    pub(crate) reply: Option<Reply<B, E>>,
}

/// Upstream failures a stale entry may stand in for (`stale-if-error`).
fn is_failure(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

impl<B, E> Fetch<B, E>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    E: Send + 'static,
{
    fn record(&self, result: CacheResult) {
        // A background refresh's client was counted when it was answered, and a miss's
        // when it started the fetch.
        if self.reply.is_some() && self.stale.is_some() {
            self.shared.policy.counters.record(result);
        }
    }

    fn send(&mut self, response: Result<Response<CacheBody<B>>, E>) -> bool {
        match self.reply.take() {
            Some(reply) => reply.send(response).is_ok(),
            None => false,
        }
    }

    /// Answers the leader from an entry.
    fn send_entry(&mut self, entry: &Entry, now: Instant, cache_status: HeaderValue) {
        let response = answer(entry, &self.client_headers, now, false, cache_status);
        self.send(Ok(response));
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(guard) = self.guard.take() {
            guard.finish(outcome);
        }
    }

    pub(crate) async fn run<F>(mut self, future: F)
    where
        F: Future<Output = Result<Response<B>, E>>,
    {
        let result = future.await;
        let exchange = Exchange::since(self.request_time);
        let now = exchange.response_time;
        let defaults = self.shared.policy.defaults;
        let usable_on_error = |stale: &Option<Arc<Entry>>| {
            stale
                .as_ref()
                .filter(|e| e.freshness.may_serve_on_error(now))
                .cloned()
        };
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                if let Some(stale) = usable_on_error(&self.stale) {
                    self.record(CacheResult::Stale);
                    self.send_entry(&stale, now, status::STALE_IF_ERROR);
                } else {
                    self.record(CacheResult::Miss);
                    self.send(Err(error));
                }
                return;
            }
        };
        let status = response.status();
        if let Some(stale) = self.stale.clone() {
            if status == StatusCode::NOT_MODIFIED {
                let refreshed = Arc::new(stale.refreshed(response.headers(), exchange, &defaults));
                self.shared
                    .store
                    .insert(&mut self.key, &self.client_headers, refreshed.clone());
                self.record(CacheResult::Revalidated);
                self.finish(Outcome::Stored);
                self.send_entry(&refreshed, now, status::REVALIDATED);
                return;
            }
            if is_failure(status)
                && let Some(stale) = usable_on_error(&self.stale)
            {
                self.record(CacheResult::Stale);
                self.send_entry(&stale, now, status::STALE_IF_ERROR);
                return;
            }
        }
        self.record(CacheResult::Miss);
        let revalidating = self.stale.is_some();
        let max_object = self.shared.store.max_object();
        let Some(storable) = entry::storable(status, response.headers(), &defaults, max_object)
        else {
            if revalidating && status.is_success() {
                // The origin replaced the stale entry with something not to be stored.
                self.shared.store.remove(self.key.current());
            }
            let mut response = response.map(CacheBody::inner);
            let cache_status = if revalidating {
                status::STALE_FORWARDED
            } else {
                status::MISS
            };
            response.headers_mut().append(CACHE_STATUS, cache_status);
            self.send(Ok(response));
            return;
        };
        self.stream_and_store(response, storable, exchange, revalidating)
            .await;
    }

    /// Forwards the body to the leader frame by frame while recording it; stores it when it
    /// ends whole and within `max_object`.
    async fn stream_and_store(
        mut self,
        response: Response<B>,
        storable: entry::Storable,
        exchange: Exchange,
        revalidating: bool,
    ) {
        // A background refresh has no client to stream to, and runs to its end.
        let background = self.reply.is_none();
        let (mut parts, body) = response.into_parts();
        let status = parts.status;
        // From the headers as received: `Age` is not stored but counts here.
        let freshness = Freshness::new(
            &parts.headers,
            &storable.directives,
            exchange,
            storable.lifetime,
            &self.shared.policy.defaults,
        );
        let stored_headers = entry::stored_headers(parts.headers.clone());
        let cache_status = if revalidating {
            status::STALE_REPLACED
        } else {
            status::MISS_STORED
        };
        parts.headers.append(CACHE_STATUS, cache_status);
        let (frames, receiver) = mpsc::channel(FRAMES);
        let leader =
            Response::from_parts(parts, CacheBody::cached(CachedBody::streaming(receiver)));
        let mut frames = self.send(Ok(leader)).then_some(frames);

        let max_object = self.shared.store.max_object();
        let expected = entry::content_length(&stored_headers).unwrap_or(0);
        // Copied into one buffer rather than kept as the frames: a frame's bytes may be a
        // slice of a much larger read buffer, which the entry would keep alive unweighed.
        let mut recorded =
            BytesMut::with_capacity(usize::try_from(expected.min(max_object)).unwrap_or(0));
        let mut recording = true;
        let mut body = pin!(body);
        loop {
            let wanted = frames.is_some()
                || (recording
                    && (background || self.guard.as_ref().is_some_and(FlightGuard::has_waiters)));
            if !wanted {
                // Nobody left to serve: the fetch is given up (its waiters, if any left
                // since, go upstream themselves).
                return;
            }
            let next = poll_fn(|cx| body.as_mut().poll_frame(cx))
                .await
                .map(|frame| frame.map_err(Into::<BoxError>::into));
            let frame = match next {
                None => break,
                Some(Ok(frame)) => frame,
                Some(Err(error)) => {
                    self.finish(Outcome::NotStored);
                    if let Some(frames) = &frames {
                        let _ = frames.send(Err(error)).await;
                    }
                    return;
                }
            };
            match frame.data_ref() {
                Some(data) if recording => {
                    if (recorded.len() + data.len()) as u64 > max_object {
                        recording = false;
                        recorded = BytesMut::new();
                        self.finish(Outcome::NotStored);
                    } else {
                        recorded.extend_from_slice(data);
                    }
                }
                Some(_) => {}
                None => {
                    // Trailers are not stored: the response is not either.
                    if recording {
                        recording = false;
                        self.finish(Outcome::NotStored);
                    }
                }
            }
            if let Some(sender) = &frames
                && sender.send(Ok(frame)).await.is_err()
            {
                frames = None;
            }
        }
        if recording {
            let body: Bytes = recorded.freeze();
            // A frozen buffer becomes shared (an allocation and a compare-and-swap) on its
            // first clone; cloned once here, no hit pays for it.
            drop(body.clone());
            let mut headers = stored_headers;
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            let headers = entry::compact(&headers);
            let entry = Arc::new(Entry {
                status,
                headers,
                body,
                freshness,
                target: self.target.clone(),
                vary: storable.vary,
            });
            let stored = self
                .shared
                .store
                .insert(&mut self.key, &self.client_headers, entry);
            self.finish(if stored {
                Outcome::Stored
            } else {
                Outcome::NotStored
            });
        }
        // The leader's body ends only now, once the entry can be found.
        drop(frames);
    }
}
