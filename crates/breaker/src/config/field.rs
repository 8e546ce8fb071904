//! `deserialize_with` functions running the [`check`](super::check)s while a field is read,
//! so that an error points at the field's line.

use gateway_core::config::HumanDuration;
use serde::Deserialize;
use serde::de::{Deserializer, Error};

use super::check;
use super::error::ConfigError;
use crate::status::FailureStatus;

fn checked<'de, D, T, U>(
    deserializer: D,
    check: impl FnOnce(&T) -> Result<U, ConfigError>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let value = T::deserialize(deserializer)?;
    check(&value).map_err(D::Error::custom)?;
    Ok(value)
}

macro_rules! fields {
    ($($name:ident: $ty:ty => $check:expr;)*) => {$(
        pub(super) fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            checked(d, $check)
        }
    )*};
}

fields! {
    failure_threshold: Option<u32> => |n: &Option<u32>| n.map(check::failure_threshold).transpose();
    success_threshold: u32 => |n: &u32| check::success_threshold(*n);
    half_open_max_calls: u32 => |n: &u32| check::half_open_max_calls(*n);
    min_calls: Option<u32> => |n: &Option<u32>| n.map(check::min_calls).transpose();
    failure_rate: Option<f64> => |r: &Option<f64>| r.map(check::failure_rate).transpose();
    open_for: HumanDuration => |d: &HumanDuration| check::open_for(d.get());
    max_open_for: Option<HumanDuration> => |d: &Option<HumanDuration>| d.map(|d| check::max_open_for(d.get())).transpose();
    window: Option<HumanDuration> => |d: &Option<HumanDuration>| d.map(|d| check::window(d.get())).transpose();
    failure_status: Option<Vec<u16>> => |codes: &Option<Vec<u16>>| match codes {
        Some(codes) => Ok(Some(FailureStatus::from_codes(codes.iter().copied())?)),
        None => Ok(None),
    };
}
