//! The shared circuit breaker: admission, outcome recording and transitions.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::policy::{MAX_STREAK, Policy};
use crate::state::{BreakerState, Word};
use crate::status::FailureStatus;
use crate::striped::{Padded, stripe_count, this_thread_stripe};
use crate::window::Window;

/// How long a caller refused because every half-open probe slot is taken should wait.
const PROBE_BUSY_RETRY: Duration = Duration::from_secs(1);

/// A circuit breaker shared by every route to one service: cloning shares the state.
///
/// Create one per upstream and give a clone to each [`BreakerLayer`] in front of it.
/// It can also guard calls that are not tower services, with [`try_acquire`](Self::try_acquire).
///
/// Time is read from [`tokio::time::Instant`], so tests can drive it with tokio's paused clock.
///
/// [`BreakerLayer`]: crate::BreakerLayer
#[derive(Clone)]
pub struct CircuitBreaker {
    handles: Arc<Handles>,
}

/// The state, and per-thread handles to it for permits to hold: a permit's reference count is
/// then written by its own thread only, instead of every request of every thread writing one
/// shared count.
struct Handles {
    shared: Arc<Shared>,
    lanes: Box<[Lane]>,
}

/// One thread stripe's handle to the state, alone on its cache lines.
type Lane = Arc<Padded<Arc<Shared>>>;

struct Shared {
    /// The state word: read by every request, written only when something changes.
    word: Padded<AtomicU64>,
    /// Transition and rejection counters, written off the closed-state path.
    counters: Padded<Counters>,
    policy: Policy,
    window: Option<Window>,
    base: Instant,
    name: Option<Box<str>>,
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    half_opened: AtomicU64,
    closed: AtomicU64,
    rejected: AtomicU64,
}

/// A request refused by an open (or fully probed half-open) circuit.
///
/// The layer puts it in the extensions of its 503 responses, so that metrics and access logs
/// can tell them from the upstream's own 503s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerRejected {
    /// The state that refused the request: [`BreakerState::Open`], or
    /// [`BreakerState::HalfOpen`] when all probe slots were taken.
    pub state: BreakerState,
    /// How long until the circuit may let requests through again (`Retry-After`).
    pub retry_after: Duration,
}

/// A snapshot of a breaker's state and counters, for `/metrics` and `/ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The current state.
    pub state: BreakerState,
    /// Transitions into [`BreakerState::Open`] so far.
    pub opened: u64,
    /// Transitions into [`BreakerState::HalfOpen`] so far.
    pub half_opened: u64,
    /// Transitions into [`BreakerState::Closed`] so far.
    pub closed: u64,
    /// Requests refused so far.
    pub rejected: u64,
}

impl BreakerMetrics {
    /// Transitions into `state` so far.
    pub fn transitions_to(&self, state: BreakerState) -> u64 {
        match state {
            BreakerState::Open => self.opened,
            BreakerState::HalfOpen => self.half_opened,
            BreakerState::Closed => self.closed,
        }
    }
}

/// Leave to send one request through the breaker; report how it went with
/// [`success`](Self::success) or [`failure`](Self::failure).
///
/// Dropping a permit without reporting (the caller went away) counts as neither, and frees
/// the probe slot it holds in the half-open state.
#[must_use = "a permit reports the outcome of the call it admitted"]
pub struct Permit {
    lane: Lane,
    /// The word that admitted the call; closed once the outcome is in, so that dropping the
    /// permit then does nothing.
    ticket: Word,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Abandoned,
}

impl CircuitBreaker {
    /// A breaker running `policy`; [`new`](Self::new) and [`named`](Self::named) make one from
    /// a config.
    pub(crate) fn with_policy(name: Option<Box<str>>, policy: Policy) -> Self {
        let shared = Shared {
            word: Padded(AtomicU64::new(Word::INITIAL.bits())),
            counters: Padded(Counters::default()),
            window: policy.rate.as_ref().map(Window::new),
            policy,
            base: Instant::now(),
            name,
        };
        let shared = Arc::new(shared);
        let lanes = (0..stripe_count())
            .map(|_| Arc::new(Padded(shared.clone())))
            .collect();
        Self {
            handles: Arc::new(Handles { shared, lanes }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handles.shared
    }

    /// The breaker's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.shared().name.as_deref()
    }

    /// The current state.
    ///
    /// An open circuit whose `open_for` has passed still reads `Open` until the next request
    /// moves it to half-open.
    pub fn state(&self) -> BreakerState {
        self.shared().load().state()
    }

    /// The state and the transition and rejection counters.
    pub fn metrics(&self) -> BreakerMetrics {
        let counters = &self.shared().counters.0;
        BreakerMetrics {
            state: self.state(),
            opened: counters.opened.load(Ordering::Relaxed),
            half_opened: counters.half_opened.load(Ordering::Relaxed),
            closed: counters.closed.load(Ordering::Relaxed),
            rejected: counters.rejected.load(Ordering::Relaxed),
        }
    }

    /// The statuses this breaker counts as failures (its default classifier).
    pub fn failure_status(&self) -> FailureStatus {
        self.shared().policy.failure_status
    }

    /// Asks to send one request.
    ///
    /// Closed: always granted. Open: refused until `open_for` has passed, then the first
    /// caller becomes a probe and the circuit half-open. Half-open: granted while fewer than
    /// `half_open_max_calls` probes are in flight. Refusals are counted.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit, BreakerRejected> {
        let word = self.shared().load();
        if word.state() == BreakerState::Closed {
            return Ok(self.permit(word));
        }
        self.try_acquire_not_closed(word)
    }

    #[inline(never)]
    fn try_acquire_not_closed(&self, mut word: Word) -> Result<Permit, BreakerRejected> {
        let shared = self.shared();
        loop {
            let next = match word.state() {
                BreakerState::Closed => return Ok(self.permit(word)),
                BreakerState::Open => {
                    let now = shared.now_ms();
                    let until = word.open_until();
                    if now < until {
                        return Err(
                            shared.reject(BreakerState::Open, Duration::from_millis(until - now))
                        );
                    }
                    word.to_half_open()
                }
                BreakerState::HalfOpen => {
                    if word.probes() >= shared.policy.half_open_max_calls {
                        return Err(shared.reject(BreakerState::HalfOpen, PROBE_BUSY_RETRY));
                    }
                    word.with_probes(word.probes() + 1, word.successes())
                }
            };
            match shared.update(word, next) {
                Ok(()) => return Ok(self.permit(next)),
                Err(actual) => word = actual,
            }
        }
    }

    #[inline]
    fn permit(&self, ticket: Word) -> Permit {
        let lanes = &self.handles.lanes;
        Permit {
            lane: lanes[this_thread_stripe(lanes.len())].clone(),
            ticket,
        }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name())
            .field("state", &self.shared().load())
            .field("policy", &self.shared().policy)
            .finish()
    }
}

impl Permit {
    /// The call succeeded.
    pub fn success(self) {
        self.settle(Outcome::Success);
    }

    /// The call failed.
    pub fn failure(self) {
        self.settle(Outcome::Failure);
    }

    /// The call failed if `failed`, else succeeded.
    pub fn record(self, failed: bool) {
        self.settle(if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        });
    }

    /// Whether this permit is a half-open probe (its outcome decides the circuit's fate).
    pub fn is_probe(&self) -> bool {
        self.ticket.state() == BreakerState::HalfOpen
    }

    #[inline]
    fn settle(mut self, outcome: Outcome) {
        let ticket = std::mem::replace(&mut self.ticket, Word::INITIAL);
        self.lane.0.settle(ticket, outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // Only a probe holds something to give back; a settled permit's ticket is closed.
        if self.ticket.state() == BreakerState::HalfOpen {
            self.lane.0.settle(self.ticket, Outcome::Abandoned);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.lane.0.name)
            .field("ticket", &self.ticket)
            .finish()
    }
}

impl Shared {
    fn load(&self) -> Word {
        Word::from_bits(self.word.0.load(Ordering::Acquire))
    }

    /// Milliseconds since the breaker was built, on tokio's (pausable) clock.
    fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.base)
            .as_millis() as u64
    }

    /// Replaces `from` with `to`, or returns the word that is there instead. A change of
    /// period is a transition: counted and logged once, by the caller that made it.
    fn update(&self, from: Word, to: Word) -> Result<(), Word> {
        self.word
            .0
            .compare_exchange(from.bits(), to.bits(), Ordering::AcqRel, Ordering::Acquire)
            .map_err(Word::from_bits)?;
        if !to.same_period(from) {
            self.transitioned(from, to);
        }
        Ok(())
    }

    fn reject(&self, state: BreakerState, retry_after: Duration) -> BreakerRejected {
        self.counters.0.rejected.fetch_add(1, Ordering::Relaxed);
        BreakerRejected { state, retry_after }
    }

    #[inline]
    fn settle(&self, ticket: Word, outcome: Outcome) {
        // The common case stays inline: a success while closed, with no failure-rate window
        // to feed (so failures are counted consecutively).
        if outcome == Outcome::Success
            && ticket.state() == BreakerState::Closed
            && self.window.is_none()
        {
            self.end_failure_run(ticket);
            return;
        }
        self.settle_slow(ticket, outcome);
    }

    #[inline(never)]
    fn settle_slow(&self, ticket: Word, outcome: Outcome) {
        match (ticket.state(), outcome) {
            (BreakerState::Closed, Outcome::Success) => {
                if let Some(window) = &self.window
                    && self.load().same_period(ticket)
                {
                    window.record(self.now_ms(), false);
                }
                if self.policy.failure_threshold.is_some() {
                    self.end_failure_run(ticket);
                }
            }
            (BreakerState::Closed, Outcome::Failure) => self.closed_failure(ticket),
            (BreakerState::HalfOpen, _) => self.probe_settled(ticket, outcome),
            // A call admitted while closed and abandoned tells nothing; permits are never
            // issued in the open state.
            _ => {}
        }
    }

    /// A success ends a run of consecutive failures. After no failure (the usual case) it
    /// costs one load and writes nothing.
    #[inline]
    fn end_failure_run(&self, ticket: Word) {
        let mut current = self.load();
        while current.same_period(ticket) && current.failures() > 0 {
            match self.update(current, current.with_failures(0)) {
                Ok(()) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn closed_failure(&self, ticket: Word) {
        if let Some(threshold) = self.policy.failure_threshold {
            let mut current = self.load();
            loop {
                if !current.same_period(ticket) {
                    return;
                }
                let failures = current.failures() + 1;
                let next = if failures >= threshold {
                    current.to_open(0, self.now_ms() + self.policy.open_for_ms)
                } else {
                    current.with_failures(failures)
                };
                match self.update(current, next) {
                    Ok(()) if next.state() == BreakerState::Open => return,
                    Ok(()) => break,
                    Err(actual) => current = actual,
                }
            }
        } else if !self.load().same_period(ticket) {
            return;
        }
        let Some(window) = &self.window else { return };
        let now = self.now_ms();
        window.record(now, true);
        if !window.should_trip(now) {
            return;
        }
        let mut current = self.load();
        while current.same_period(ticket) {
            match self.update(current, current.to_open(0, now + self.policy.open_for_ms)) {
                Ok(()) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn probe_settled(&self, ticket: Word, outcome: Outcome) {
        let mut current = self.load();
        while current.same_period(ticket) {
            let probes = current.probes().saturating_sub(1);
            let next = match outcome {
                Outcome::Abandoned => current.with_probes(probes, current.successes()),
                Outcome::Success => {
                    let successes = current.successes() + 1;
                    if successes >= self.policy.success_threshold {
                        if let Some(window) = &self.window {
                            // Nothing records into the window while half-open, so clearing
                            // before the close cannot lose a count of the new period.
                            window.clear();
                        }
                        current.to_closed()
                    } else {
                        current.with_probes(probes, successes)
                    }
                }
                Outcome::Failure => {
                    let streak = (current.streak() + 1).min(MAX_STREAK);
                    current.to_open(streak, self.now_ms() + self.open_for_ms(streak))
                }
            };
            match self.update(current, next) {
                Ok(()) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// How long to stay open after `streak` reopenings without a close.
    fn open_for_ms(&self, streak: u64) -> u64 {
        let base = self.policy.open_for_ms;
        match self.policy.growth {
            None => base,
            Some(growth) => {
                let grown = base as f64 * growth.multiplier.powi(streak as i32);
                grown.min(growth.max_ms as f64) as u64
            }
        }
    }

    fn transitioned(&self, from: Word, to: Word) {
        let counters = &self.counters.0;
        let name = self.name.as_deref().unwrap_or("-");
        let from = from.state().as_str();
        match to.state() {
            BreakerState::Open => {
                counters.opened.fetch_add(1, Ordering::Relaxed);
                let open_for = Duration::from_millis(to.open_until().saturating_sub(self.now_ms()));
                tracing::warn!(
                    breaker = name,
                    from,
                    ?open_for,
                    reopenings = to.streak(),
                    "circuit breaker opened: refusing requests"
                );
            }
            BreakerState::HalfOpen => {
                counters.half_opened.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    breaker = name,
                    from,
                    "circuit breaker half-open: letting probes through"
                );
            }
            BreakerState::Closed => {
                counters.closed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    breaker = name,
                    from,
                    "circuit breaker closed: service recovered"
                );
            }
        }
    }
}
