//! Which statuses count as failures: a set of error statuses, checked once.

use std::fmt;

use http::StatusCode;

/// The lowest status that can count as a failure.
const FIRST: u16 = 400;
/// The highest status that can count as a failure.
const LAST: u16 = 599;

/// A set of error statuses (400-599) that count as failures: any 5xx by default.
///
/// A fixed-size bit set, so classifying a response is one bit test and copying the set costs
/// no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FailureStatus {
    bits: [u64; 4],
}

/// A status code that cannot count as a failure because it is not an error status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status {0} is not an error status (400-599) and cannot count as a failure")]
pub struct NotAnErrorStatus(pub u16);

impl FailureStatus {
    /// No status counts: only errors and upstream-failure markers trip the breaker.
    pub const fn none() -> Self {
        Self { bits: [0; 4] }
    }

    /// Every 5xx status counts (the default).
    pub fn server_errors() -> Self {
        let mut set = Self::none();
        for code in 500..=LAST {
            set.insert_unchecked(code);
        }
        set
    }

    /// Exactly the given statuses count.
    pub fn from_codes<I>(codes: I) -> Result<Self, NotAnErrorStatus>
    where
        I: IntoIterator<Item = u16>,
    {
        let mut set = Self::none();
        for code in codes {
            if !(FIRST..=LAST).contains(&code) {
                return Err(NotAnErrorStatus(code));
            }
            set.insert_unchecked(code);
        }
        Ok(set)
    }

    /// Whether responses with this status count as failures.
    pub fn contains(&self, status: StatusCode) -> bool {
        let code = status.as_u16();
        if !(FIRST..=LAST).contains(&code) {
            return false;
        }
        let offset = usize::from(code - FIRST);
        self.bits[offset / 64] & (1 << (offset % 64)) != 0
    }

    fn insert_unchecked(&mut self, code: u16) {
        let offset = usize::from(code - FIRST);
        self.bits[offset / 64] |= 1 << (offset % 64);
    }

    fn codes(&self) -> impl Iterator<Item = u16> + '_ {
        (FIRST..=LAST).filter(|&code| {
            let offset = usize::from(code - FIRST);
            self.bits[offset / 64] & (1 << (offset % 64)) != 0
        })
    }
}

impl Default for FailureStatus {
    fn default() -> Self {
        Self::server_errors()
    }
}

impl fmt::Debug for FailureStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.codes()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_every_server_error() {
        let set = FailureStatus::default();
        assert!(set.contains(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(set.contains(StatusCode::from_u16(599).unwrap()));
        assert!(!set.contains(StatusCode::from_u16(499).unwrap()));
        assert!(!set.contains(StatusCode::OK));
        assert_eq!(set.codes().count(), 100);
    }

    #[test]
    fn explicit_codes_only() {
        let set = FailureStatus::from_codes([429, 503]).unwrap();
        assert!(set.contains(StatusCode::TOO_MANY_REQUESTS));
        assert!(set.contains(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!set.contains(StatusCode::INTERNAL_SERVER_ERROR));
        assert_eq!(format!("{set:?}"), "{429, 503}");
    }

    #[test]
    fn non_error_codes_are_refused() {
        assert_eq!(FailureStatus::from_codes([200]), Err(NotAnErrorStatus(200)));
        assert_eq!(FailureStatus::from_codes([600]), Err(NotAnErrorStatus(600)));
        assert!(!FailureStatus::none().contains(StatusCode::BAD_GATEWAY));
    }
}
