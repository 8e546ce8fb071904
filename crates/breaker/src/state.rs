//! The breaker's whole state in one 64-bit word, so every transition is a single
//! compare-and-swap and the closed-state check is a single load.
//!
//! Layout, low bits first:
//!
//! | bits  | meaning                                                              |
//! |-------|----------------------------------------------------------------------|
//! | 0-1   | phase: closed, open or half-open                                     |
//! | 2-15  | generation, bumped on every transition (wraps)                       |
//! | 16-21 | reopenings since the last close (how far `open_for` has grown)       |
//! | 22-63 | closed: consecutive failures; open: deadline in ms since the breaker's base; half-open: probes in flight (22-42) and successes (43-63) |
//!
//! The generation ties an outcome to the period that admitted its request: a response that
//! arrives after the circuit moved on (a slow call admitted while closed, a probe of an earlier
//! half-open period) changes nothing. It wraps after 16384 transitions, far more than any
//! request outlives.

use std::fmt;

use crate::policy::MAX_STREAK;

/// The state of a circuit breaker, for readiness checks and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Requests flow; failures are counted.
    Closed,
    /// Requests are refused until `open_for` has passed.
    Open,
    /// A limited number of probe requests decide whether to close or reopen.
    HalfOpen,
}

impl BreakerState {
    /// The state's name: `closed`, `open` or `half_open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const PHASE_MASK: u64 = 0b11;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

const GEN_SHIFT: u32 = 2;
const GEN_BITS: u32 = 14;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

const STREAK_SHIFT: u32 = GEN_SHIFT + GEN_BITS;
const STREAK_BITS: u32 = 6;
// The policy's cap on reopenings is what these bits can count.
const _: () = assert!(MAX_STREAK == (1 << STREAK_BITS) - 1);

const PAYLOAD_SHIFT: u32 = STREAK_SHIFT + STREAK_BITS;
/// The largest closed-state failure count or open-state deadline (ms: 139 years).
pub(crate) const MAX_PAYLOAD: u64 = (1 << (64 - PAYLOAD_SHIFT)) - 1;
const HALF_BITS: u32 = (64 - PAYLOAD_SHIFT) / 2;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;

/// The packed state; see the module documentation for the layout.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u64);

impl Word {
    pub(crate) const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    pub(crate) const fn bits(self) -> u64 {
        self.0
    }

    /// The initial state: closed, generation 0, no failures.
    pub(crate) const INITIAL: Self = Self(CLOSED);

    pub(crate) fn state(self) -> BreakerState {
        match self.0 & PHASE_MASK {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    fn generation(self) -> u64 {
        (self.0 >> GEN_SHIFT) & GEN_MASK
    }

    fn next_generation(self) -> u64 {
        (self.generation() + 1) & GEN_MASK
    }

    /// Whether both words belong to the same period (same phase, same generation).
    pub(crate) fn same_period(self, other: Self) -> bool {
        let period = PHASE_MASK | (GEN_MASK << GEN_SHIFT);
        self.0 & period == other.0 & period
    }

    /// Reopenings since the last close.
    pub(crate) fn streak(self) -> u64 {
        (self.0 >> STREAK_SHIFT) & MAX_STREAK
    }

    fn payload(self) -> u64 {
        self.0 >> PAYLOAD_SHIFT
    }

    fn pack(phase: u64, generation: u64, streak: u64, payload: u64) -> Self {
        debug_assert!(streak <= MAX_STREAK && payload <= MAX_PAYLOAD);
        Self(phase | generation << GEN_SHIFT | streak << STREAK_SHIFT | payload << PAYLOAD_SHIFT)
    }

    // Closed.

    /// Consecutive failures counted in the closed state.
    pub(crate) fn failures(self) -> u64 {
        self.payload()
    }

    /// The same closed period with another failure count.
    pub(crate) fn with_failures(self, failures: u64) -> Self {
        Self::pack(CLOSED, self.generation(), 0, failures.min(MAX_PAYLOAD))
    }

    /// The next period: closed, no failures, growth reset.
    pub(crate) fn to_closed(self) -> Self {
        Self::pack(CLOSED, self.next_generation(), 0, 0)
    }

    // Open.

    /// The open state's deadline in ms since the breaker's base.
    pub(crate) fn open_until(self) -> u64 {
        self.payload()
    }

    /// The next period: open until `until_ms`, after `streak` reopenings.
    pub(crate) fn to_open(self, streak: u64, until_ms: u64) -> Self {
        Self::pack(
            OPEN,
            self.next_generation(),
            streak.min(MAX_STREAK),
            until_ms.min(MAX_PAYLOAD),
        )
    }

    // Half-open.

    /// Probes in flight.
    pub(crate) fn probes(self) -> u64 {
        self.payload() & HALF_MASK
    }

    /// Successful probes in this half-open period.
    pub(crate) fn successes(self) -> u64 {
        self.payload() >> HALF_BITS
    }

    /// The next period: half-open with one probe (the caller's) in flight.
    pub(crate) fn to_half_open(self) -> Self {
        Self::pack(HALF_OPEN, self.next_generation(), self.streak(), 1)
    }

    /// The same half-open period with other counts.
    pub(crate) fn with_probes(self, probes: u64, successes: u64) -> Self {
        debug_assert!(probes <= HALF_MASK && successes <= HALF_MASK);
        Self::pack(
            HALF_OPEN,
            self.generation(),
            self.streak(),
            successes << HALF_BITS | probes,
        )
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Word");
        s.field("state", &self.state())
            .field("generation", &self.generation())
            .field("streak", &self.streak());
        match self.state() {
            BreakerState::Closed => s.field("failures", &self.failures()),
            BreakerState::Open => s.field("open_until", &self.open_until()),
            BreakerState::HalfOpen => s
                .field("probes", &self.probes())
                .field("successes", &self.successes()),
        };
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let closed = Word::INITIAL.with_failures(41);
        assert_eq!(closed.state(), BreakerState::Closed);
        assert_eq!(closed.failures(), 41);

        let open = closed.to_open(5, MAX_PAYLOAD);
        assert_eq!(open.state(), BreakerState::Open);
        assert_eq!(open.open_until(), MAX_PAYLOAD);
        assert_eq!(open.streak(), 5);
        assert!(!open.same_period(closed));

        let half = open.to_half_open();
        assert_eq!(
            (half.state(), half.probes(), half.successes(), half.streak()),
            (BreakerState::HalfOpen, 1, 0, 5)
        );
        let half2 = half.with_probes(HALF_MASK, HALF_MASK);
        assert_eq!((half2.probes(), half2.successes()), (HALF_MASK, HALF_MASK));
        assert!(half2.same_period(half));
        assert_eq!(Word::from_bits(half2.bits()), half2);

        let closed_again = half2.to_closed();
        assert_eq!(
            (
                closed_again.state(),
                closed_again.failures(),
                closed_again.streak()
            ),
            (BreakerState::Closed, 0, 0)
        );
        assert!(!closed_again.same_period(closed));
    }

    #[test]
    fn generation_wraps_without_touching_other_fields() {
        let mut word = Word::INITIAL;
        for _ in 0..=GEN_MASK {
            word = word.to_open(MAX_STREAK, 7).to_half_open();
        }
        assert_eq!(word.state(), BreakerState::HalfOpen);
        assert_eq!(word.streak(), MAX_STREAK);
        assert_eq!(word.probes(), 1);
        assert!(word.generation() <= GEN_MASK);
    }

    #[test]
    fn saturating_payloads() {
        assert_eq!(
            Word::INITIAL.with_failures(u64::MAX).failures(),
            MAX_PAYLOAD
        );
        assert_eq!(
            Word::INITIAL.to_open(u64::MAX, u64::MAX).streak(),
            MAX_STREAK
        );
    }
}
