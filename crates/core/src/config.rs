//! Config value types shared by the layers' `serde` configs: durations (`50ms`, `30s`, `1m`)
//! and byte sizes (`512KiB`, `10MiB`, `1GB`).
//!
//! Both validate while deserializing, so a bad value is reported by the config loader with its
//! file, line and field.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

/// A duration written as humans do: `50ms`, `30s`, `1m`, `1h 30m`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if may_exceed_duration_max(s) {
            return Err(format!("duration `{s}` is too large"));
        }
        humantime::parse_duration(s.trim())
            .map(Self)
            .map_err(|e| format!("invalid duration `{s}` ({e}); write e.g. `50ms`, `30s`, `1m`"))
    }
}

/// Whether the numbers of `s` may add up to more than [`Duration::MAX`]: an upper bound, each
/// number in the unit after it (a year when the unit is unknown), one more unit when it has
/// a fraction. Whitespace is skipped, as humantime skips it inside numbers.
///
/// humantime 2.x panics (`overflow in Duration::new`) instead of failing when the seconds
/// reach `u64::MAX` while the nanoseconds carry exactly one second (chronotope/humantime#66,
/// e.g. `18446744073709551615s 1000ms`); a text whose total cannot exceed `Duration::MAX`
/// never gets there, and one that may is too large anyway.
fn may_exceed_duration_max(s: &str) -> bool {
    const YEAR: u128 = 31_557_600_000_000_000;
    let mut chars = s.chars().filter(|c| !c.is_whitespace()).peekable();
    let mut bound: u128 = 0;
    while chars.peek().is_some() {
        let mut number: Option<u128> = None;
        while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
            let n = number.unwrap_or(0);
            number = Some(n.saturating_mul(10).saturating_add(digit.into()));
            chars.next();
        }
        let fraction = chars.next_if_eq(&'.').is_some();
        while chars.next_if(char::is_ascii_digit).is_some() {}
        let unit: String = std::iter::from_fn(|| chars.next_if(|c| c.is_alphabetic())).collect();
        if number.is_none() && !fraction && unit.is_empty() {
            // Neither number nor unit (humantime rejects the character).
            chars.next();
            continue;
        }
        let nanos: u128 = match unit.as_str() {
            "nanos" | "nsec" | "ns" => 1,
            "usec" | "us" | "µs" => 1_000,
            "millis" | "msec" | "ms" => 1_000_000,
            "seconds" | "second" | "secs" | "sec" | "s" => 1_000_000_000,
            "minutes" | "minute" | "min" | "mins" | "m" => 60_000_000_000,
            "hours" | "hour" | "hr" | "hrs" | "h" => 3_600_000_000_000,
            "days" | "day" | "d" => 86_400_000_000_000,
            "weeks" | "week" | "wk" | "wks" | "w" => 604_800_000_000_000,
            "months" | "month" | "M" => 2_630_016_000_000_000,
            _ => YEAR,
        };
        let units = number.unwrap_or(0).saturating_add(u128::from(fraction));
        bound = bound.saturating_add(units.saturating_mul(nanos));
    }
    bound > Duration::MAX.as_nanos()
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A byte count: a plain integer, or a number with a unit (`B`, `KB`, `KiB`, `MB`, `MiB`,
/// `GB`, `GiB`; case-insensitive; SI units are powers of 1000, IEC units of 1024).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let invalid =
            || format!("invalid size `{s}`; write e.g. `512KiB`, `10MiB` or a byte count");
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "kib" => 1 << 10,
            "mb" | "m" => 1_000_000,
            "mib" => 1 << 20,
            "gb" | "g" => 1_000_000_000,
            "gib" => 1 << 30,
            _ => return Err(invalid()),
        };
        number
            .checked_mul(multiplier)
            .map(Self)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"10MiB\" or a byte count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            "50ms".parse::<HumanDuration>().unwrap().get(),
            Duration::from_millis(50)
        );
        assert_eq!(
            "1m".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(60)
        );
        assert!("5 parsecs".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!("10MiB".parse::<ByteSize>().unwrap().bytes(), 10 << 20);
        assert_eq!("1kb".parse::<ByteSize>().unwrap().bytes(), 1000);
        assert_eq!("42".parse::<ByteSize>().unwrap().bytes(), 42);
        assert!("10 MeB".parse::<ByteSize>().is_err());
        assert!("99999999999GiB".parse::<ByteSize>().is_err());
    }
}
