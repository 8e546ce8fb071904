//! Header names in the config.

use std::str::FromStr;

use http::HeaderName;
use serde::de::{self, Deserialize, Deserializer};

/// A header name checked while deserializing (case-insensitive, stored lowercase).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ValidHeaderName(pub HeaderName);

impl ValidHeaderName {
    /// The header name.
    pub fn get(&self) -> &HeaderName {
        &self.0
    }
}

impl FromStr for ValidHeaderName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HeaderName::from_str(s)
            .map(Self)
            .map_err(|_| format!("`{s}` is not a valid header name"))
    }
}

impl<'de> Deserialize<'de> for ValidHeaderName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(de::Error::custom)
    }
}
