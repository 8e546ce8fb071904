//! The Lua scripts that count checks, the arguments they take and the replies they give.
//!
//! Each script counts a batch of keys in one call; its header says what it takes and returns.

use std::time::Duration;

use fred::prelude::Value;
use fred::types::scripts::Script;

use super::error::StoreError;
use crate::decision::Quota;
use crate::memory::Outcome;
use crate::policy::Kind;

/// Counts hits in fixed windows that start at each key's first hit.
const FIXED_WINDOW_LUA: &str = include_str!("../lua/fixed_window.lua");

/// Grants up to the asked number of hits in fixed windows, never beyond the limit (leases).
const FIXED_WINDOW_LEASE_LUA: &str = include_str!("../lua/fixed_window_lease.lua");

/// Token buckets kept as their theoretical arrival time, on the Redis server's clock.
const TOKEN_BUCKET_LUA: &str = include_str!("../lua/token_bucket.lua");

/// The scripts, by [`ScriptKind`].
pub(super) fn scripts() -> [Script; 3] {
    [
        Script::from_lua(FIXED_WINDOW_LUA),
        Script::from_lua(FIXED_WINDOW_LEASE_LUA),
        Script::from_lua(TOKEN_BUCKET_LUA),
    ]
}

/// What Redis answered for one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Granted {
    pub(crate) outcome: Outcome,
    /// Hits granted: the cost when allowed, 0 when refused; with a lease, possibly fewer than
    /// asked for.
    pub(crate) hits: u32,
}

/// Which script counts a check: an index into [`Shared::scripts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ScriptKind {
    FixedWindow = 0,
    FixedWindowLease = 1,
    /// Checks and leases alike: the script grants what it can of what is asked for.
    TokenBucket = 2,
}

impl ScriptKind {
    pub(super) fn of(policy: Kind, lease: bool) -> Self {
        match (policy, lease) {
            (Kind::FixedWindow { .. }, false) => Self::FixedWindow,
            (Kind::FixedWindow { .. }, true) => Self::FixedWindowLease,
            (Kind::TokenBucket { .. }, _) => Self::TokenBucket,
        }
    }

    /// Numbers in the reply per key.
    pub(super) fn reply_width(self) -> usize {
        match self {
            Self::FixedWindow => 2,
            Self::FixedWindowLease => 3,
            Self::TokenBucket => 4,
        }
    }
}

/// Appends one key's ARGV (see the scripts' headers).
pub(super) fn push_args(args: &mut Vec<Value>, policy: Kind, cost: u32, lease: bool) {
    match policy {
        Kind::FixedWindow { window_ms, limit } => {
            args.push(Value::Integer(window_ms as i64));
            args.push(Value::Integer(i64::from(cost)));
            if lease {
                args.push(Value::Integer(i64::from(limit)));
            }
        }
        Kind::TokenBucket {
            capacity,
            interval_us,
        } => {
            args.push(Value::Integer(interval_us as i64));
            args.push(Value::Integer(i64::from(capacity)));
            args.push(Value::Integer(i64::from(cost)));
        }
    }
}

/// One key's outcome from its numbers in the reply of a `kind` script.
pub(super) fn parse_reply(
    kind: ScriptKind,
    policy: Kind,
    cost: u32,
    numbers: &[i64],
) -> Result<Granted, StoreError> {
    let unexpected = || {
        StoreError::UnexpectedReply(Value::Array(
            numbers.iter().map(|&n| Value::Integer(n)).collect(),
        ))
    };
    let non_negative = |n: i64| u64::try_from(n).unwrap_or(0);
    let granted = |hits: u64, limit: u32, remaining: u64, reset: Duration, retry: Duration| {
        let allowed = hits > 0;
        Granted {
            outcome: Outcome {
                allowed,
                quota: Quota {
                    limit,
                    remaining: remaining.min(u64::from(limit)) as u32,
                    reset,
                    retry_after: (!allowed).then_some(retry),
                },
            },
            hits: hits.min(u64::from(cost)) as u32,
        }
    };
    match (kind, policy, numbers) {
        (ScriptKind::FixedWindow, Kind::FixedWindow { limit, .. }, &[count, ttl_ms]) => {
            let count = non_negative(count);
            let hits = if count <= u64::from(limit) { cost } else { 0 };
            let reset = Duration::from_millis(non_negative(ttl_ms));
            let remaining = u64::from(limit).saturating_sub(count);
            Ok(granted(hits.into(), limit, remaining, reset, reset))
        }
        (
            ScriptKind::FixedWindowLease,
            Kind::FixedWindow { limit, .. },
            &[grant, count, ttl_ms],
        ) => {
            let reset = Duration::from_millis(non_negative(ttl_ms));
            let remaining = u64::from(limit).saturating_sub(non_negative(count));
            Ok(granted(non_negative(grant), limit, remaining, reset, reset))
        }
        (
            ScriptKind::TokenBucket,
            Kind::TokenBucket { capacity, .. },
            &[grant, remaining, reset_us, retry_us],
        ) => Ok(granted(
            non_negative(grant),
            capacity,
            non_negative(remaining),
            Duration::from_micros(non_negative(reset_us)),
            Duration::from_micros(non_negative(retry_us)),
        )),
        _ => Err(unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_and_checked() {
        let fixed = Kind::FixedWindow {
            limit: 5,
            window_ms: 1000,
        };
        let parse = |kind, policy, numbers: &[i64]| parse_reply(kind, policy, 1, numbers);
        let at_limit = parse(ScriptKind::FixedWindow, fixed, &[5, 300]).unwrap();
        assert!(at_limit.outcome.allowed);
        assert_eq!((at_limit.hits, at_limit.outcome.quota.remaining), (1, 0));
        let over = parse(ScriptKind::FixedWindow, fixed, &[6, 300]).unwrap();
        assert!(!over.outcome.allowed);
        assert_eq!(over.hits, 0);
        assert_eq!(
            over.outcome.quota.retry_after,
            Some(Duration::from_millis(300))
        );
        assert!(parse(ScriptKind::FixedWindow, fixed, &[6]).is_err());

        let bucket = Kind::TokenBucket {
            capacity: 3,
            interval_us: 400_000,
        };
        let refused = parse(ScriptKind::TokenBucket, bucket, &[0, 0, 1_200_000, 400_000]).unwrap();
        assert!(!refused.outcome.allowed);
        assert_eq!(
            refused.outcome.quota.retry_after,
            Some(Duration::from_millis(400))
        );
        assert_eq!(refused.outcome.quota.reset, Duration::from_millis(1200));
        assert!(parse(ScriptKind::TokenBucket, bucket, &[1, 2]).is_err());
        assert!(
            parse(ScriptKind::FixedWindow, bucket, &[1, 2]).is_err(),
            "a reply is read with its own script's layout"
        );
    }

    #[test]
    fn lease_replies_say_how_many_hits_were_granted() {
        let fixed = Kind::FixedWindow {
            limit: 25,
            window_ms: 1000,
        };
        // 10 asked, 5 left under the limit: 5 granted.
        let partial = parse_reply(ScriptKind::FixedWindowLease, fixed, 10, &[5, 25, 700]).unwrap();
        assert!(partial.outcome.allowed);
        assert_eq!((partial.hits, partial.outcome.quota.remaining), (5, 0));
        let none = parse_reply(ScriptKind::FixedWindowLease, fixed, 10, &[0, 25, 700]).unwrap();
        assert!(!none.outcome.allowed);
        assert_eq!(
            none.outcome.quota.retry_after,
            Some(Duration::from_millis(700))
        );

        let bucket = Kind::TokenBucket {
            capacity: 20,
            interval_us: 1000,
        };
        let granted = parse_reply(ScriptKind::TokenBucket, bucket, 8, &[8, 12, 8000, 0]).unwrap();
        assert_eq!((granted.hits, granted.outcome.quota.remaining), (8, 12));
        // A reply can never grant more than was asked for.
        let odd = parse_reply(ScriptKind::TokenBucket, bucket, 8, &[9, 0, 9000, 0]).unwrap();
        assert_eq!(odd.hits, 8);
    }
}
